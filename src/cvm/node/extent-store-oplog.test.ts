import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, statSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskVolume, formatDisk } from '../../shared/disk-volume.ts';
import { VirtualClock } from '../../shared/clock.ts';
import { DATA_AT, ExtentStore, HEADER_BYTES, type ExtentRef } from './extent-store.ts';
import { decodeRecords } from './oplog.ts';

const MiB = 1 << 20;
const PAGE = 4096;
const VD = '11111111-2222-3333-4444-555555555555';
const ref = (block = 0): ExtentRef => ({ disk: 'd1', vdisk: VD, block });
const fill = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

/**
 * A disk and stores over it. A new store is a CVM restarted after a crash: nothing of the old one's
 * memory survives, and the old one (on a clock nobody advances) never drains again. The files
 * are what the page cache held, as after a process crash.
 */
function fixture(oplogBytes = 8 * MiB): { dir: string; store: () => ExtentStore; clock: VirtualClock; file: (r?: ExtentRef) => string; seg: (i: number) => string; done: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'cvg-oplog-'));
  const dir = join(root, 'd1');
  formatDisk(dir, { serial: 'd1', model: 'M', mediaType: 'SSD', capacityBytes: 256 * MiB });
  const vol = DiskVolume.open(dir);
  const clock = new VirtualClock(0);
  return {
    dir,
    clock,
    store: () => new ExtentStore(new Map([['d1', vol]]), { oplogBytes, clock }),
    file: (r = ref()) => join(dir, 'data', ExtentStore.fileOf(r)),
    seg: (i) => join(dir, 'data', 'oplog', String(i)),
    done: () => {
      vol.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

const size = (p: string): number => {
  try {
    return statSync(p).size;
  } catch {
    return -1;
  }
};
const pageOnFile = (file: string, p: number): Buffer => readFileSync(file).subarray(DATA_AT + p * PAGE, DATA_AT + (p + 1) * PAGE);

test('small writes go to the oplog, read back from memory, and survive a crash (replayed into the extent file)', async () => {
  const f = fixture();
  try {
    const s = f.store();
    await s.write(ref(), 0, fill(MiB, 1)); // the first write creates the file (straight to it)
    for (let p = 0; p < 8; p++) await s.write(ref(), (p * 37 % 256) * PAGE, Buffer.alloc(PAGE, p + 1));
    await s.write(ref(), 3 * PAGE + 100, Buffer.from('partial')); // merged with the page, via the oplog
    const want = fill(MiB, 1);
    for (let p = 0; p < 8; p++) want.fill(p + 1, (p * 37 % 256) * PAGE, (p * 37 % 256 + 1) * PAGE);
    Buffer.from('partial').copy(want, 3 * PAGE + 100);
    assert.ok((await s.read(ref(), 0, MiB)).equals(want));
    assert.ok(pageOnFile(f.file(), 37).equals(fill(MiB, 1).subarray(37 * PAGE, 38 * PAGE)), 'the extent file still holds the old page');
    assert.ok(size(f.seg(0)) > 9 * PAGE, 'the writes are in the oplog');
    assert.equal(s.oplogUsage().memoryBytes, 8 * PAGE, "8 pages (page 3 written twice)");
    assert.equal((await s.meta(ref())).generation, 10);

    const t = f.store(); // crash: the first store's memory is gone
    assert.ok((await t.read(ref(), 0, MiB)).equals(want), 'replayed');
    assert.equal((await t.meta(ref())).generation, 10);
    assert.equal(size(f.seg(0)), 0, 'the oplog is emptied once replayed');
    assert.ok(pageOnFile(f.file(), 37).equals(Buffer.alloc(PAGE, 2)), 'into the extent file');
  } finally {
    f.done();
  }
});

test('an idle oplog drains to the extent files and frees its memory', async () => {
  const f = fixture();
  try {
    const s = f.store();
    await s.write(ref(), 0, fill(MiB, 2));
    await s.write(ref(), 9 * PAGE, Buffer.alloc(2 * PAGE, 7));
    assert.equal(s.oplogUsage().memoryBytes, 2 * PAGE);
    f.clock.advance(999);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(s.oplogUsage().memoryBytes, 2 * PAGE, 'not idle long enough yet');
    f.clock.advance(1);
    for (let i = 0; i < 100 && (s.oplogUsage().memoryBytes > 0 || size(f.seg(0)) !== 0); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(s.oplogUsage().memoryBytes, 0);
    assert.equal(size(f.seg(0)), 0);
    assert.ok(pageOnFile(f.file(), 10).equals(Buffer.alloc(PAGE, 7)));
    assert.ok((await f.store().read(ref(), 8 * PAGE, 3 * PAGE)).equals(Buffer.concat([fill(MiB, 2).subarray(8 * PAGE, 9 * PAGE), Buffer.alloc(2 * PAGE, 7)])));
  } finally {
    f.done();
  }
});

test('a drain torn by a crash (its header in the file, its pages not) is completed from the oplog', async () => {
  const f = fixture();
  try {
    const s = f.store();
    await s.write(ref(), 0, fill(MiB, 3));
    await s.write(ref(), 20 * PAGE, Buffer.alloc(PAGE, 5));
    await s.write(ref(), 20 * PAGE, Buffer.alloc(PAGE, 6)); // the page twice: its previous checksum is not the file's
    await s.write(ref(), 40 * PAGE, Buffer.alloc(PAGE, 8));
    const recs = decodeRecords(readFileSync(f.seg(0)), HEADER_BYTES);
    assert.equal(recs.length, 3);
    const last = recs[2]!.header;
    const seq = last.readUInt32BE(28);
    const fd = openSync(f.file(), 'r+');
    writeSync(fd, last, 0, last.length, (seq % 2) * 4096); // the drain's header landed, no page did
    closeSync(fd);
    const t = f.store();
    assert.ok((await t.read(ref(), 20 * PAGE, PAGE)).equals(Buffer.alloc(PAGE, 6)));
    assert.ok((await t.read(ref(), 40 * PAGE, PAGE)).equals(Buffer.alloc(PAGE, 8)));
    assert.ok((await t.read(ref(), 0, PAGE)).equals(fill(MiB, 3).subarray(0, PAGE)));
  } finally {
    f.done();
  }
});

test('a write straight to the file after an oplog write wins after a crash; a dropped extent does not come back', async () => {
  const f = fixture();
  try {
    const s = f.store();
    await s.write(ref(), 0, fill(MiB, 4));
    await s.write(ref(), 5 * PAGE, Buffer.alloc(PAGE, 1)); // oplog
    await s.write(ref(), 0, Buffer.alloc(MiB, 2)); // straight to the file (too large for the oplog)
    assert.ok((await s.read(ref(), 5 * PAGE, PAGE)).equals(Buffer.alloc(PAGE, 2)));
    assert.ok((await f.store().read(ref(), 0, MiB)).equals(Buffer.alloc(MiB, 2)), 'the older oplog record is not replayed over it');

    const u = f.store();
    await u.write(ref(1), 0, fill(MiB, 5));
    await u.write(ref(1), 7 * PAGE, Buffer.alloc(PAGE, 3)); // oplog
    await u.drop(ref(1));
    assert.equal(size(f.file(ref(1))), -1);
    const v = f.store();
    assert.ok((await v.read(ref(1), 0, 8 * PAGE)).equals(Buffer.alloc(8 * PAGE)), 'still dropped');
    assert.equal(size(f.file(ref(1))), -1);
    assert.equal((await v.meta(ref(1))).exists, false);
  } finally {
    f.done();
  }
});

test('a full segment is drained while the other takes appends; with both full, writes go straight to the files', async () => {
  const f = fixture(256 * 1024); // two 128 KiB segments: 20 records of a page each
  try {
    const s = f.store();
    for (let b = 0; b < 4; b++) await s.write(ref(b), 0, fill(MiB, 10 + b));
    const want = [0, 1, 2, 3].map((b) => fill(MiB, 10 + b));
    // 4 writers of single pages, 400 writes: the segments fill, swap, drain
    let n = 0;
    await Promise.all([0, 1, 2, 3].map(async (b) => {
      for (let i = 0; i < 100; i++) {
        const p = (i * 53 + b) % 256;
        const page = Buffer.alloc(PAGE, (n++ % 250) + 1);
        await s.write(ref(b), p * PAGE, page);
        page.copy(want[b]!, p * PAGE);
      }
    }));
    for (let b = 0; b < 4; b++) assert.ok((await s.read(ref(b), 0, MiB)).equals(want[b]!), `extent ${b} reads back`);
    assert.ok(s.oplogUsage().memoryBytes <= 256 * 1024, `memory bounded by the oplog: ${s.oplogUsage().memoryBytes}`);
    const t = f.store(); // crash mid-way
    for (let b = 0; b < 4; b++) assert.ok((await t.read(ref(b), 0, MiB)).equals(want[b]!), `extent ${b} after a crash`);
    await t.drainOplogs();
    assert.equal(t.oplogUsage().memoryBytes, 0);
  } finally {
    f.done();
  }
});
