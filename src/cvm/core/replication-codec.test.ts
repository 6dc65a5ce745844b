import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCrcs, decodeReply, decodeRequestHeader, decodeSyncMany, encodeCrcs, encodeReply, encodeRequest, encodeSyncMany, payloadBytes, validateRequest, wholePageCount, OP_READ, OP_SYNC_MANY, OP_WRITE, OP_WRITE_SYNC, OP_ZERO, REQ_HEADER } from './replication-codec.ts';
import { InputError } from '../../shared/errors.ts';

const V = '0123abcd-4567-89ef-0123-456789abcdef';

test('a request encodes to the documented bytes and decodes back', () => {
  const b = encodeRequest({ op: OP_WRITE_SYNC, id: 7, disk: 'S1', vdisk: V, block: 3, offset: 4096, length: 512 });
  assert.equal(b.toString('hex'), [
    '43564731', '02', '02', '01', '00', '00000007', '00000003', '00001000', '00000200', '0123abcd456789ef0123456789abcdef', Buffer.from('S1').toString('hex'),
  ].join(''));
  const h = decodeRequestHeader(b.subarray(0, REQ_HEADER));
  assert.deepEqual({ ...h, disk: b.subarray(REQ_HEADER).toString('latin1') }, { magic: 0x43564731, op: 2, diskLength: 2, version: 1, id: 7, block: 3, offset: 4096, length: 512, vdisk: V, disk: 'S1' });
});

test('a reply encodes to the documented bytes', () => {
  const b = encodeReply(9, 2, 5);
  assert.equal(b.toString('hex'), '43564752' + '00000009' + '01000002' + '00000005');
  assert.deepEqual(decodeReply(b), { magic: 0x43564752, id: 9, version: 1, status: 2, length: 5 });
  // a reply to a version 0 request reads as the first cut's (u32 status)
  assert.equal(encodeReply(9, 2, 5, 0).readUInt32BE(8), 2);
});

test('version 1 writes carry one CRC per whole page before the data; version 0 writes the data only', () => {
  assert.equal(wholePageCount(0, 1 << 20), 256);
  assert.equal(wholePageCount(100, 8192), 1);
  assert.equal(wholePageCount(4096, 100), 0);
  assert.equal(payloadBytes({ op: OP_WRITE, offset: 0, length: 8192 }), 8192 + 8);
  assert.equal(payloadBytes({ op: OP_WRITE, version: 0, offset: 0, length: 8192 }), 8192);
  assert.equal(payloadBytes({ op: OP_READ, offset: 0, length: 8192 }), 0);
  const crcs = new Uint32Array([1, 0xffffffff, 42]);
  assert.equal(encodeCrcs(crcs).toString('hex'), '00000001' + 'ffffffff' + '0000002a');
  assert.deepEqual(decodeCrcs(encodeCrcs(crcs)), crcs);
});

test('SYNC_MANY names extents of one vdisk on any of the peer\'s disks; a wrong entry is named', () => {
  const refs = [{ disk: 'S1', block: 3 }, { disk: 'disk-22', block: 0xfffffffe }];
  const b = encodeSyncMany(refs);
  assert.equal(b.subarray(0, 7).toString('hex'), '02' + Buffer.from('S1').toString('hex') + '00000003');
  assert.deepEqual(decodeSyncMany(b), refs);
  assert.equal(payloadBytes({ op: OP_SYNC_MANY, offset: 0, length: b.length }), b.length);
  assert.throws(() => decodeSyncMany(b.subarray(0, 9)), /entries\[1\]: cut short/);
  assert.throws(() => decodeSyncMany(encodeSyncMany([{ disk: '../x', block: 1 }])), /entries\[0\]\.disk/);
  assert.throws(() => validateRequest({ op: OP_SYNC_MANY, version: 0, id: 1, disk: 'S1', vdisk: V, block: 0, offset: 0, length: 7 }), /version 1/);
  assert.throws(() => validateRequest({ op: OP_ZERO, version: 0, id: 1, disk: 'S1', vdisk: V, block: 0, offset: 0, length: 4096 }), /version 1/);
  assert.equal(payloadBytes({ op: OP_ZERO, offset: 0, length: 1 << 20 }), 0);
  assert.throws(() => validateRequest({ op: OP_READ, version: 2, id: 1, disk: 'S1', vdisk: V, block: 0, offset: 0, length: 7 }), /newer/);
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
