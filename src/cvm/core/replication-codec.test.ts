import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeReply, decodeRequestHeader, encodeReply, encodeRequest, validateRequest, OP_READ, OP_WRITE_SYNC, REQ_HEADER } from './replication-codec.ts';
import { InputError } from '../../shared/errors.ts';

const V = '0123abcd-4567-89ef-0123-456789abcdef';

test('a request encodes to the documented bytes and decodes back', () => {
  const b = encodeRequest({ op: OP_WRITE_SYNC, id: 7, disk: 'S1', vdisk: V, block: 3, offset: 4096, length: 512 });
  assert.equal(b.toString('hex'), [
    '43564731', '02', '02', '0000', '00000007', '00000003', '00001000', '00000200', '0123abcd456789ef0123456789abcdef', Buffer.from('S1').toString('hex'),
  ].join(''));
  const h = decodeRequestHeader(b.subarray(0, REQ_HEADER));
  assert.deepEqual({ ...h, disk: b.subarray(REQ_HEADER).toString('latin1') }, { magic: 0x43564731, op: 2, diskLength: 2, id: 7, block: 3, offset: 4096, length: 512, vdisk: V, disk: 'S1' });
});

test('a reply encodes to the documented bytes', () => {
  const b = encodeReply(9, 2, 5);
  assert.equal(b.toString('hex'), '43564752' + '00000009' + '00000002' + '00000005');
  assert.deepEqual(decodeReply(b), { magic: 0x43564752, id: 9, status: 2, length: 5 });
});

test('validation names the field', () => {
  const ok = { op: OP_READ, id: 1, disk: 'S1', vdisk: V, block: 0, offset: 0, length: 4096 };
  validateRequest(ok);
  const field = (r: typeof ok): string => {
    try {
      validateRequest(r);
      return '';
    } catch (e) {
      assert.ok(e instanceof InputError);
      return e.field;
    }
  };
  assert.equal(field({ ...ok, op: 99 }), 'op');
  assert.equal(field({ ...ok, disk: '../x' }), 'disk');
  assert.equal(field({ ...ok, vdisk: 'nope' }), 'vdisk');
  assert.equal(field({ ...ok, offset: 1 << 20, length: 1 }), 'length');
});
