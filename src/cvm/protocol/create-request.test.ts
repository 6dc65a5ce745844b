import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCreateRequest } from './create-request.ts';
import { InputError } from '../../shared/errors.ts';

const base = { name: 'lab', cvmIps: ['127.20.1.1', '127.20.1.2', '127.20.1.3'] };
const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const bmc = (i: number, o: Record<string, unknown> = {}): Record<string, unknown> => ({ cvmIp: `127.20.1.${i}`, address: `https://127.10.0.${i}`, user: 'admin', password: 's3cret-pw', ca: CA, ...o });

test('bmcs: optional (empty), each kept as given; ca may be null; a bare address is allowed', () => {
  assert.deepEqual(parseCreateRequest(base).bmcs, []);
  const r = parseCreateRequest({ ...base, bmcs: [bmc(1), bmc(2, { ca: null, address: '127.10.0.2' })] });
  assert.deepEqual(r.bmcs, [
    { cvmIp: '127.20.1.1', address: 'https://127.10.0.1', user: 'admin', password: 's3cret-pw', ca: CA },
    { cvmIp: '127.20.1.2', address: '127.10.0.2', user: 'admin', password: 's3cret-pw', ca: null },
  ]);
});

test('bmcs: bad entries name the field (bmcs[1].address …), and the password never appears in the error', () => {
  const err = (bmcs: unknown): InputError => {
    try {
      parseCreateRequest({ ...base, bmcs });
    } catch (e) {
      assert.ok(e instanceof InputError);
      return e;
    }
    throw new Error('accepted');
  };
  assert.equal(err('x').field, 'bmcs');
  assert.equal(err([5]).field, 'bmcs[0]');
  assert.equal(err([bmc(1), bmc(2, { address: 'http://127.10.0.2' })]).field, 'bmcs[1].address');
  assert.equal(err([bmc(1, { address: 'https://u:p@127.10.0.1' })]).field, 'bmcs[0].address');
  assert.equal(err([bmc(1, { cvmIp: '127.20.1.9' })]).field, 'bmcs[0].cvmIp');
  assert.equal(err([bmc(1), bmc(1)]).field, 'bmcs[1].cvmIp');
  assert.equal(err([bmc(1, { user: '' })]).field, 'bmcs[0].user');
  assert.equal(err([bmc(1, { ca: 'not a pem' })]).field, 'bmcs[0].ca');
  const pw = err([bmc(1, { password: 'x'.repeat(300) })]);
  assert.equal(pw.field, 'bmcs[0].password');
  assert.ok(!pw.message.includes('xxxx') && pw.value === undefined);
});
