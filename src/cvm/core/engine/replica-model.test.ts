/** The replica-side reference semantics (replica-model.ts) the real extent store must match. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from './crc32c.ts';
import { PAGE_BYTES } from './layout.ts';
import { CorruptPageError, StaleEpochError, StaleGenerationError, type WriteFrame } from './ports.ts';
import { ReplicaModel, extentKey } from './replica-model.ts';

const page = (b: number): Uint8Array => new Uint8Array(PAGE_BYTES).fill(b);
const frame = (epoch: number, gen: number, b: number, extent = 0): WriteFrame => ({ vdisk: 'vd', egroup: 0, epoch, gen, extent, inner: 0, data: page(b), length: PAGE_BYTES, zero: false, crcs: [crc32c(page(b))] });
const model = (): ReplicaModel => new ReplicaModel('n1', [{ serial: 'd', media: 'ssd' }], crc32c);
const readPage = (m: ReplicaModel, extent = 0): Uint8Array => m.read('d', { vdisk: 'vd', egroup: 0, extent, inner: 0, length: PAGE_BYTES }).data;

test('crc32c is the Castagnoli checksum', () => {
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
});

test('a frame below the extent group\'s epoch floor is refused; extentGens raises the floor (fencing)', () => {
  const m = model();
  m.write('d', frame(5, 1, 1));
  m.extentGens('d', 'vd', 0, 7);
  assert.throws(() => m.write('d', frame(6, 2, 2)), StaleEpochError);
  m.write('d', frame(7, 1, 3));
  assert.deepEqual(readPage(m), page(3));
});

test('a write whose version is not above the extent\'s is refused (a late frame never undoes a newer write)', () => {
  const m = model();
  m.write('d', frame(5, 2, 1));
  assert.throws(() => m.write('d', frame(5, 2, 9)), StaleGenerationError);
  assert.throws(() => m.write('d', frame(5, 1, 9)), StaleGenerationError);
  assert.deepEqual(readPage(m), page(1));
  assert.deepEqual(m.extentGens('d', 'vd', 0, 5).get(0), { epoch: 5, gen: 2 });
});

test('power loss keeps what SYNC(vdisk) made durable, loses the rest; the dirty set is per vdisk', () => {
  const m = model();
  m.write('d', frame(1, 1, 1));
  m.sync('vd');
  m.write('d', frame(1, 2, 2));
  m.write('d', { ...frame(1, 1, 3), vdisk: 'other' });
  m.sync('other');
  m.powerLoss(() => false);
  assert.deepEqual(readPage(m), page(1));
  assert.deepEqual(m.read('d', { vdisk: 'other', egroup: 0, extent: 0, inner: 0, length: PAGE_BYTES }).data, page(3));
});

test('a bad page fails the read; a page matching its previous checksum (a torn write) reads', () => {
  const m = model();
  m.write('d', frame(1, 1, 1));
  m.write('d', frame(1, 2, 2));
  assert.ok(m.corrupt('d', extentKey('vd', 0, 0), 0, 10));
  assert.throws(() => readPage(m), CorruptPageError);
  assert.throws(() => m.readExtent('d', 'vd', 0, 0), CorruptPageError);
  // the old data under the new header: matches the previous checksum
  const d = m.disks.get('d')!;
  const e = d.cur.get(extentKey('vd', 0, 0))!;
  d.cur.set(extentKey('vd', 0, 0), { version: e.version, pages: new Map([[0, { ...e.pages.get(0)!, data: page(1) }]]) });
  assert.deepEqual(readPage(m), page(1));
});

test('zero pages read as zeros; copies replace an extent, version included', () => {
  const m = model();
  m.write('d', frame(1, 1, 1));
  m.write('d', { ...frame(1, 2, 0), data: null, zero: true, crcs: [] });
  assert.deepEqual(readPage(m), page(0));
  const src = model();
  src.write('d', frame(3, 8, 4));
  m.writeExtent('d', 'vd', 0, 0, 3, src.readExtent('d', 'vd', 0, 0));
  assert.deepEqual(readPage(m), page(4));
  assert.equal(m.digest('d', 'vd', 0), src.digest('d', 'vd', 0));
  m.writeExtent('d', 'vd', 0, 0, 3, null);
  assert.deepEqual(m.extentGens('d', 'vd', 0, 3).size, 0);
});
