import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConflictError, InputError } from '../../shared/errors.ts';
import { checkFixed, checkSubnet, nextFree, parseCidr } from './ipam.ts';

const field = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    if (e instanceof InputError) return e.field;
    throw e;
  }
  assert.fail('no error');
};

test('CIDRs', () => {
  const c = parseCidr('cidr', '10.10.0.0/24');
  assert.equal(c.broadcast - c.network, 255);
  assert.throws(() => parseCidr('cidr', '10.10.0.5/24'), /host bits set; the network is 10.10.0.0\/24/);
  assert.equal(field(() => parseCidr('cidr', '10.10.0.0')), 'cidr');
  assert.equal(field(() => parseCidr('cidr', '10.10.0.0/31')), 'cidr');
});

test('a pool inside the CIDR, clear of the network, broadcast and gateway addresses', () => {
  const base = { name: 'lan', vlanId: 1, cidr: '10.10.0.0/24', gateway: '10.10.0.1' };
  assert.deepEqual(checkSubnet({ ...base, pool: { start: '10.10.0.100', end: '10.10.0.200' } }).pool, { start: '10.10.0.100', end: '10.10.0.200' });
  // .254 is where every host's virtual switch answers DHCP from: never in a pool
  assert.deepEqual(checkSubnet(base).pool, { start: '10.10.0.2', end: '10.10.0.253' });
  assert.equal(field(() => checkSubnet({ ...base, pool: { start: '10.10.0.9', end: '10.10.0.254' } })), 'pool');
  assert.deepEqual(checkSubnet({ ...base, gateway: '10.10.0.254' }).pool, { start: '10.10.0.1', end: '10.10.0.252' }, 'the gateway on .254 moves the switch to .253');
  assert.equal(field(() => checkSubnet({ ...base, pool: { start: '10.10.0.0', end: '10.10.0.9' } })), 'pool.start');
  assert.equal(field(() => checkSubnet({ ...base, pool: { start: '10.10.0.9', end: '10.10.0.255' } })), 'pool.end');
  assert.equal(field(() => checkSubnet({ ...base, pool: { start: '10.10.0.9', end: '10.10.1.9' } })), 'pool.end');
  assert.equal(field(() => checkSubnet({ ...base, pool: { start: '10.10.0.1', end: '10.10.0.9' } })), 'pool');
  assert.equal(field(() => checkSubnet({ ...base, pool: { start: '10.10.0.9', end: '10.10.0.3' } })), 'pool.end');
  assert.equal(field(() => checkSubnet({ ...base, gateway: '10.10.1.1' })), 'gateway');
  assert.deepEqual(checkSubnet({ name: 'x', vlanId: 0 }), { cidr: null, gateway: null, pool: null });
});

test('next free address and fixed addresses', () => {
  const s = { cidr: '10.10.0.0/29', gateway: '10.10.0.1', pool: { start: '10.10.0.2', end: '10.10.0.4' }, leases: { '10.10.0.2': 'aa' } as Record<string, string> };
  assert.equal(nextFree(s, 'nics[0].ip', 'lan'), '10.10.0.3');
  s.leases['10.10.0.3'] = 'bb';
  s.leases['10.10.0.4'] = 'cc';
  assert.throws(() => nextFree(s, 'nics[0].ip', 'lan'), (e: unknown) => e instanceof ConflictError && /no free address/.test(e.message));
  checkFixed(s, '10.10.0.5', 'dd', 'nics[0].ip', 'lan'); // outside the pool but inside the CIDR
  assert.equal(field(() => checkFixed(s, '10.10.0.6', 'dd', 'nics[0].ip', 'lan')), 'nics[0].ip', "the switch's DHCP address");
  checkFixed(s, '10.10.0.2', 'aa', 'nics[0].ip', 'lan'); // its own lease
  assert.throws(() => checkFixed(s, '10.10.0.2', 'dd', 'nics[0].ip', 'lan'), ConflictError);
  assert.equal(field(() => checkFixed(s, '10.10.0.7', 'dd', 'nics[0].ip', 'lan')), 'nics[0].ip');
  assert.equal(field(() => checkFixed(s, '10.10.0.1', 'dd', 'nics[0].ip', 'lan')), 'nics[0].ip');
  assert.equal(field(() => checkFixed(s, '10.10.1.1', 'dd', 'nics[0].ip', 'lan')), 'nics[0].ip');
  assert.equal(field(() => nextFree({ cidr: null, gateway: null, pool: null, leases: {} }, 'nics[1].ip', 'flat')), 'nics[1].ip');
});
