import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBytes, parseMiB, parseNic } from './compute.ts';
import { InputError } from '../shared/errors.ts';

test('memory sizes read as MiB; anything else names the field', () => {
  assert.equal(parseMiB('256M', 'memory'), 256);
  assert.equal(parseMiB('2G', 'memory'), 2048);
  assert.equal(parseMiB('512', 'memory'), 512);
  assert.equal(parseMiB('1GiB', 'memory'), 1024);
  assert.equal(parseBytes('10G', 'disk'), 10 * 1024 ** 3);
  for (const bad of ['', '0', '-1G', 'lots', '1.5M', '512K', '2X']) {
    assert.throws(() => parseMiB(bad, 'memory'), (e: unknown) => e instanceof InputError && e.field === 'memory', bad);
  }
});

test('a NIC is a subnet, with a fixed address after =', () => {
  assert.deepEqual(parseNic('lab'), { subnet: 'lab' });
  assert.deepEqual(parseNic('lab=10.0.0.5'), { subnet: 'lab', ip: '10.0.0.5' });
  assert.throws(() => parseNic('=10.0.0.5'), (e: unknown) => e instanceof InputError && e.field === 'nic');
});
