import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCreateRequest, storeMembers, initialCluster } from './cluster.ts';
import { InputError } from '../../shared/errors.ts';

const ok = { name: 'lab', cvmIps: ['127.20.1.1', '127.20.1.2', '127.20.1.3'] };

test('defaults: RF2 for three or more nodes, RF1 for fewer; no VIP', () => {
  assert.equal(parseCreateRequest(ok).redundancyFactor, 2);
  assert.equal(parseCreateRequest({ name: 'one', cvmIps: ['127.20.1.1'] }).redundancyFactor, 1);
  assert.equal(parseCreateRequest(ok).vip, null);
});

test('RF needs enough nodes: RF2 three, RF3 five', () => {
  assert.throws(() => parseCreateRequest({ ...ok, redundancyFactor: 3 }), (e: unknown) => e instanceof InputError && e.field === 'redundancyFactor' && /at least 5/.test(e.reason));
  assert.throws(() => parseCreateRequest({ name: 'two', cvmIps: ['127.20.1.1', '127.20.1.2'], redundancyFactor: 2 }), /at least 3/);
  assert.throws(() => parseCreateRequest({ ...ok, redundancyFactor: 4 }), (e: unknown) => e instanceof InputError && e.allowed?.includes('3') === true);
});

test('bad input names the field', () => {
  const field = (b: unknown): string => {
    try {
      parseCreateRequest(b);
    } catch (e) {
      return (e as InputError).field;
    }
    return '';
  };
  assert.equal(field(null), 'body');
  assert.equal(field({ ...ok, name: '9lives' }), 'name');
  assert.equal(field({ ...ok, cvmIps: [] }), 'cvmIps');
  assert.equal(field({ ...ok, cvmIps: ['127.20.1.1', '127.20.1.300'] }), 'cvmIps[1]');
  assert.equal(field({ ...ok, cvmIps: ['127.20.1.1', '127.20.1.1', '127.20.1.2'] }), 'cvmIps');
  assert.equal(field({ ...ok, vip: '127.20.1.2' }), 'vip');
  assert.equal(field({ ...ok, dns: 'x' }), 'dns');
});

test('the store runs on 1, 3 or 5 CVMs', () => {
  assert.deepEqual(storeMembers(['a'], 1), ['a']);
  assert.deepEqual(storeMembers(['a', 'b'], 1), ['a']);
  assert.deepEqual(storeMembers(['a', 'b', 'c', 'd'], 2), ['a', 'b', 'c']);
  assert.deepEqual(storeMembers(['a', 'b', 'c', 'd', 'e', 'f'], 2), ['a', 'b', 'c']);
  assert.deepEqual(storeMembers(['a', 'b', 'c', 'd', 'e', 'f'], 3), ['a', 'b', 'c', 'd', 'e']);
  assert.equal(initialCluster([{ name: 'n1', ip: '127.0.0.2' }, { name: 'n2', ip: '127.0.0.3' }]), 'n1=https://127.0.0.2:2380,n2=https://127.0.0.3:2380');
});
