import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as codec from './codec.ts';
import * as C from './constants.ts';

const hex = (b: Buffer): string => b.toString('hex');

test('server greeting: NBDMAGIC, IHAVEOPT, fixed newstyle + no zeroes', () => {
  assert.equal(hex(codec.encodeServerGreeting()), '4e42444d41474943' + '49484156454f5054' + '0003');
});

test('option reply bytes: reply magic, option, type, length, data', () => {
  assert.equal(hex(codec.encodeOptionReply(C.NBD_OPT_GO, C.NBD_REP_ACK)), '0003e889045565a9' + '00000007' + '00000001' + '00000000');
  assert.equal(hex(codec.encodeOptionReply(C.NBD_OPT_GO, C.NBD_REP_ERR_UNKNOWN, Buffer.from('x'))), '0003e889045565a9' + '00000007' + '80000006' + '00000001' + '78');
});

test('NBD_INFO_EXPORT and NBD_INFO_BLOCK_SIZE payloads', () => {
  assert.equal(hex(codec.encodeInfoExport(1073741824n, 0x1ff)), '0000' + '0000000040000000' + '01ff');
  assert.equal(hex(codec.encodeInfoBlockSize(1, 4096, 33554432)), '0003' + '00000001' + '00001000' + '02000000');
});

test('requests round-trip and decode from fixed bytes', () => {
  const bytes = Buffer.from('25609513' + '0001' + '0001' + '0102030405060708' + '0000000000100000' + '00001000', 'hex');
  assert.deepEqual(codec.decodeRequest(bytes), { magic: C.NBD_REQUEST_MAGIC, flags: C.NBD_CMD_FLAG_FUA, type: C.NBD_CMD_WRITE, handle: 0x0102030405060708n, offset: 0x100000n, length: 4096 });
  assert.equal(hex(codec.encodeRequest({ flags: 1, type: 1, handle: 0x0102030405060708n, offset: 0x100000n, length: 4096 })), hex(bytes));
});

test('simple and structured replies', () => {
  assert.equal(hex(codec.encodeSimpleReply(7n, C.NBD_EIO)), '67446698' + '00000005' + '0000000000000007');
  assert.equal(hex(codec.encodeChunkDone(7n)), '668e33ef' + '0001' + '0000' + '0000000000000007' + '00000000');
  assert.equal(hex(codec.encodeOffsetDataHeader(7n, 512n, 4)), '668e33ef' + '0001' + '0001' + '0000000000000007' + '0000000c' + '0000000000000200');
  assert.equal(hex(codec.encodeChunkError(7n, C.NBD_EINVAL, 'no')), '668e33ef' + '0001' + '8001' + '0000000000000007' + '00000008' + '00000016' + '0002' + '6e6f');
});

test('NBD_OPT_GO data parses; malformed data is refused', () => {
  const d = Buffer.from('00000003' + '766431' + '0002' + '0001' + '0003', 'hex');
  assert.deepEqual(codec.decodeInfoRequest(d), { name: 'vd1', requests: [C.NBD_INFO_NAME, C.NBD_INFO_BLOCK_SIZE] });
  assert.equal(codec.decodeInfoRequest(Buffer.from('000000ff0000', 'hex')), null, 'name length past the end');
  assert.equal(codec.decodeInfoRequest(Buffer.from('00000000' + '0001', 'hex')), null, 'request count past the end');
});

test('export-name reply is 10 bytes with NO_ZEROES, 134 without', () => {
  assert.equal(codec.encodeExportNameReply(1n, 1, true).length, 10);
  assert.equal(codec.encodeExportNameReply(1n, 1, false).length, 134);
});
