import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSize, checkRf, checkName, poolOf } from './storage.ts';
import { InputError } from '../../shared/errors.ts';

test('sizes: units, whole MiB, limits; errors name the field', () => {
  assert.equal(parseSize('size', '10G'), 10 * 1024 ** 3);
  assert.equal(parseSize('size', '512M'), 512 * 1024 ** 2);
  assert.equal(parseSize('size', '1GiB'), 1024 ** 3);
  assert.equal(parseSize('size', 1048576), 1048576);
  assert.throws(() => parseSize('size', '1000'), (e: unknown) => e instanceof InputError && e.field === 'size' && /whole number of MiB/.test(e.reason));
  assert.throws(() => parseSize('size', 'lots'), InputError);
  assert.throws(() => parseSize('size', '0M'), InputError);
  assert.throws(() => parseSize('size', '65T'), /64 TiB/);
});

test('container RF within the cluster RF', () => {
  assert.equal(checkRf(2, 2), 2);
  assert.equal(checkRf(1, 2), 1);
  assert.throws(() => checkRf(3, 2), /more than this cluster tolerates/);
  assert.throws(() => checkRf('2', 3), (e: unknown) => e instanceof InputError && e.field === 'replicationFactor');
});

test('names and the pool capacity', () => {
  assert.equal(checkName('name', 'vm-disk.01'), 'vm-disk.01');
  assert.throws(() => checkName('name', '-x'), InputError);
  assert.throws(() => checkName('name', 'a/b'), InputError);
  const p = poolOf([{ serial: 'a', node: 'n1', cvmIp: '1', mediaType: 'SSD', capacityBytes: 4 }, { serial: 'b', node: 'n2', cvmIp: '2', mediaType: 'HDD', capacityBytes: 8 }]);
  assert.equal(p.capacityBytes, 12);
});
