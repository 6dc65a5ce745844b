import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCrcs, decodeReply, decodeRequestHeader, decodeSyncMany, encodeCrcs, encodeReply, encodeRequest, encodeSyncMany, payloadBytes, validateRequest, wholePageCount, OP_READ, OP_SYNC_MANY, OP_WRITE, OP_WRITE_SYNC, OP_ZERO, REQ_HEADER } from './replication-codec.ts';
import * as R from './replication-codec.ts';
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
  assert.throws(() => validateRequest({ op: OP_READ, version: 4, id: 1, disk: 'S1', vdisk: V, block: 0, offset: 0, length: 7 }), /newer/);
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

test('version 2 (engine) ops: payload sizes, version per op, bounds and malformed payloads', () => {
  assert.equal(R.versionFor(OP_WRITE), 1);
  assert.equal(R.versionFor(R.OP_WRITE_V2), 2);
  assert.equal(decodeRequestHeader(encodeRequest({ op: R.OP_EXTENT_GENS, id: 1, disk: 'S1', vdisk: V, block: 0, offset: 0, length: 8 })).version, 2);
  assert.equal(payloadBytes({ op: R.OP_WRITE_V2, offset: 4096, length: 8192 }), 16 + 8 + 8192);
  assert.equal(payloadBytes({ op: R.OP_ZERO_V2, offset: 0, length: 8192 }), 16);
  assert.equal(payloadBytes({ op: R.OP_EXTENT_GENS, offset: 0, length: 8 }), 8);
  assert.equal(payloadBytes({ op: R.OP_WRITE_EXTENT, offset: 0, length: 100 }), 100);
  assert.equal(payloadBytes({ op: R.OP_READ_EXTENT, offset: 0, length: 0 }), 0);
  const req = { op: R.OP_WRITE_V2, id: 1, disk: 'S1', vdisk: V, block: 130, offset: 0, length: 4096 };
  validateRequest(req);
  assert.throws(() => validateRequest({ ...req, version: 1 }), /version 2/);
  assert.throws(() => validateRequest({ ...req, offset: 100 }), /whole pages/);
  assert.throws(() => validateRequest({ ...req, length: 0 }), /whole pages/);
  assert.throws(() => validateRequest({ ...req, offset: 1 << 20 }), /whole pages/);
  assert.throws(() => validateRequest({ ...req, op: R.OP_WRITE_EXTENT, length: R.WRITE_EXTENT_MAX + 1 }), /at most/);
  validateRequest({ ...req, op: R.OP_SYNC_VDISK, disk: '-', offset: 0, length: 0 });
  // framing: sizes out of bounds are refused before any payload is read
  const h = { magic: R.REQ_MAGIC, op: R.OP_WRITE_EXTENT, version: 2, diskLength: 2, length: R.WRITE_EXTENT_MAX };
  assert.equal(R.frameError(h), undefined);
  assert.match(R.frameError({ ...h, length: R.WRITE_EXTENT_MAX + 1 }) ?? '', /over/);
  assert.match(R.frameError({ ...h, op: R.OP_WRITE_V2, length: (1 << 20) + 1 }) ?? '', /over/);
  assert.match(R.frameError({ ...h, version: 4 }) ?? '', /newer/);
  assert.match(R.frameError({ ...h, magic: 1 }) ?? '', /magic/);
  assert.match(R.frameError({ ...h, diskLength: 0 }) ?? '', /disk/);
  // versions: u64 round trip; beyond 2^53 refused
  assert.deepEqual(R.decodeVersion(R.encodeVersion(2 ** 40, 7)), { epoch: 2 ** 40, gen: 7 });
  const big = Buffer.alloc(16, 0xff);
  assert.throws(() => R.decodeVersion(big), /epoch: too large/);
  assert.throws(() => R.decodeVersion(Buffer.alloc(12)), /cut short/);
  assert.throws(() => R.decodeU64(Buffer.alloc(3), 'epoch'), /epoch: cut short/);
  const gens = new Map([[0, { epoch: 3, gen: 9 }], [127, { epoch: 4, gen: 1 }]]);
  assert.deepEqual(R.decodeGens(R.encodeGens(gens)), gens);
  assert.throws(() => R.decodeGens(Buffer.alloc(21)), /21 bytes/);
});

test('extent images: round trip; malformed ones are refused with the field named', () => {
  const page = (v: number): Uint8Array => new Uint8Array(4096).fill(v);
  const img = { version: { epoch: 5, gen: 2 }, pages: new Map([[3, { data: page(1), crc: 11 }], [255, { data: page(2), crc: 22 }]]) };
  const b = Buffer.concat(R.encodeImage(img));
  assert.equal(b.length, 20 + 2 * 6 + 2 * 4096);
  const back = R.decodeImage(b);
  assert.deepEqual(back.version, img.version);
  assert.deepEqual([...back.pages.keys()], [3, 255]);
  assert.equal(back.pages.get(255)?.crc, 22);
  assert.ok(Buffer.from(back.pages.get(3)!.data).equals(Buffer.from(page(1))));
  assert.deepEqual(R.decodeImage(Buffer.concat(R.encodeImage({ version: { epoch: 1, gen: 1 }, pages: new Map() }))).pages.size, 0);
  assert.throws(() => R.decodeImage(b.subarray(0, 10)), /cut short/);
  assert.throws(() => R.decodeImage(b.subarray(0, b.length - 1)), /bytes for 2 pages/);
  const many = Buffer.from(b);
  many.writeUInt32BE(257, 16);
  assert.throws(() => R.decodeImage(many), /at most 256/);
  const order = Buffer.from(b);
  order.writeUInt16BE(3, 26); // second index == first
  assert.throws(() => R.decodeImage(order), /ascending/);
  const out = Buffer.from(b);
  out.writeUInt16BE(256, 20);
  assert.throws(() => R.decodeImage(out), /image\.pages\[0\]/);
  assert.throws(() => R.encodeImage({ version: { epoch: 1, gen: 1 }, pages: new Map([[0, { data: new Uint8Array(10), crc: 0 }]]) }), /4096/);
});

test('version 3 (forwarding to the owner): offsets split over block and offset, bounds per op', () => {
  assert.equal(R.versionFor(R.OP_FWD_WRITE), 3);
  assert.equal(R.versionFor(R.OP_HANDOFF), 3);
  const req = { op: R.OP_FWD_WRITE, id: 1, disk: '-', vdisk: V, block: 5, offset: 4096, length: 1 << 20 };
  validateRequest(req);
  assert.equal(R.payloadBytes(req), 1 << 20, 'a forwarded write carries its bytes');
  assert.equal(R.payloadBytes({ ...req, op: R.OP_FWD_ZERO }), 0);
  assert.throws(() => validateRequest({ ...req, version: 2 }), /version 3/);
  assert.throws(() => validateRequest({ ...req, offset: 1 << 20 }), (e: unknown) => e instanceof InputError && e.field === 'offset');
  assert.throws(() => validateRequest({ ...req, length: (1 << 20) + 1 }), (e: unknown) => e instanceof InputError && e.field === 'length');
  assert.throws(() => validateRequest({ ...req, op: R.OP_FWD_READ, length: 0 }), /1 to/);
  validateRequest({ ...req, op: R.OP_FWD_ZERO, length: R.FWD_ZERO_MAX });
  assert.throws(() => validateRequest({ ...req, op: R.OP_FWD_ZERO, length: R.FWD_ZERO_MAX + 1 }), /length/);
  const h = { magic: R.REQ_MAGIC, op: R.OP_FWD_ZERO, version: 3, diskLength: 1, length: R.FWD_ZERO_MAX };
  assert.equal(R.frameError(h), undefined, 'a large forwarded zero frames (it has no payload)');
  assert.match(R.frameError({ ...h, op: R.OP_FWD_WRITE }) ?? '', /over/);
});
