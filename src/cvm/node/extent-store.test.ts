import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { DiskVolume, formatDisk, setDiskFailed } from '../../shared/disk-volume.ts';
import { DiskIoError, InputError } from '../../shared/errors.ts';
import { ChecksumError, DATA_AT, EpochError, ExtentStore, pageCrcs, wholePages, type ExtentRef, type TearWrite } from './extent-store.ts';

const MiB = 1 << 20;
const PAGE = 4096;
const VD = '11111111-2222-3333-4444-555555555555';
const ref = (block = 0): ExtentRef => ({ disk: 'd1', vdisk: VD, block });

interface Fixture {
  dir: string;
  vol: DiskVolume;
  store: (tear?: (r: ExtentRef) => TearWrite | undefined) => ExtentStore;
  file: (r?: ExtentRef) => string;
  done: () => void;
}

function fixture(capacity = 64 * MiB): Fixture {
  const root = mkdtempSync(join(tmpdir(), 'cvg-extents-'));
  const dir = join(root, 'd1');
  formatDisk(dir, { serial: 'd1', model: 'M', mediaType: 'SSD', capacityBytes: capacity });
  const vol = DiskVolume.open(dir);
  return {
    dir,
    vol,
    // a new store is a restarted CVM: nothing cached. No oplog: these tests read and damage the
    // extent files themselves (extent-store-oplog.test.ts tests the store with its oplog)
    store: (tear) => new ExtentStore(new Map([['d1', vol]]), { oplogBytes: 0, ...(tear ? { tear } : {}) }),
    file: (r = ref()) => join(dir, 'data', ExtentStore.fileOf(r)),
    done: () => {
      vol.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

const flip = (b: Buffer, at: number): void => void b.writeUInt8((b[at] ?? 0) ^ 0x40, at);
const fill = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

test('writes read back, from one buffer or chunks never joined, aligned or not; unwritten reads as zeros', async () => {
  const f = fixture();
  try {
    const s = f.store();
    const a = fill(MiB, 1);
    await s.write(ref(), 0, [a.subarray(0, 1000), a.subarray(1000, 700_000), a.subarray(700_000)]);
    assert.ok((await s.read(ref(), 0, MiB)).equals(a));
    const b = fill(10_000, 7);
    await s.write(ref(), 5000, b); // partial pages at both ends
    const want = Buffer.from(a);
    b.copy(want, 5000);
    assert.ok((await s.read(ref(), 0, MiB)).equals(want));
    assert.ok((await f.store().read(ref(), 0, MiB)).equals(want), 'after a restart');
    assert.ok((await s.read(ref(3), 100, 5000)).equals(Buffer.alloc(5000)), 'never written');
    await assert.rejects(s.write(ref(), MiB - 10, Buffer.alloc(11)), InputError);
  } finally {
    f.done();
  }
});

test('caller-supplied page checksums are stored as given (and a wrong one is caught on read)', async () => {
  const f = fixture();
  try {
    const s = f.store();
    const data = fill(3 * PAGE + 100, 3);
    const crcs = pageCrcs(PAGE - 50, [data]);
    assert.deepEqual(wholePages(PAGE - 50, data.length), { first: 1, count: 3 });
    assert.equal(crcs[0], crc32c(data.subarray(50, 50 + PAGE)));
    await s.write(ref(), PAGE - 50, data, { crcs });
    assert.ok((await f.store().read(ref(), PAGE - 50, data.length)).equals(data));
    const other = fill(data.length, 4);
    const bad = pageCrcs(PAGE - 50, [other]);
    bad[1] = (bad[1] ?? 0) ^ 1;
    await s.write(ref(), PAGE - 50, other, { crcs: bad });
    await assert.rejects(f.store().read(ref(), 2 * PAGE, 10), ChecksumError);
    assert.ok((await f.store().read(ref(), 3 * PAGE, 10)).equals(other.subarray(2 * PAGE + 50, 2 * PAGE + 60)));
    await assert.rejects(s.write(ref(), 0, Buffer.alloc(4 * PAGE), { crcs }), /one checksum per whole page/);
  } finally {
    f.done();
  }
});

test('a flipped byte on disk is a ChecksumError; a partial-page write over it fails too and does not re-checksum it', async () => {
  const f = fixture();
  try {
    await f.store().write(ref(), 0, fill(MiB, 2));
    const raw = readFileSync(f.file());
    flip(raw, DATA_AT + 5 * PAGE + 17);
    writeFileSync(f.file(), raw);
    const s = f.store();
    await assert.rejects(s.read(ref(), 5 * PAGE, 100), ChecksumError);
    assert.ok((await s.read(ref(), 4 * PAGE, PAGE)).equals(fill(MiB, 2).subarray(4 * PAGE, 5 * PAGE)), 'other pages still read');
    await assert.rejects(s.write(ref(), 5 * PAGE + 100, Buffer.from('x')), ChecksumError);
    await assert.rejects(f.store().read(ref(), 5 * PAGE, 100), ChecksumError, 'still corrupt after a restart: the page got no fresh checksum');
    await s.write(ref(), 5 * PAGE, Buffer.alloc(PAGE, 9)); // a whole-page write repairs it
    assert.ok((await f.store().read(ref(), 5 * PAGE, PAGE)).equals(Buffer.alloc(PAGE, 9)));
  } finally {
    f.done();
  }
});

test('a corrupt header copy falls back to the other one; both corrupt: ChecksumError until a whole-extent write', async () => {
  const f = fixture();
  try {
    const s = f.store();
    await s.write(ref(), 0, fill(MiB, 4)); // seq 1: slot B
    await s.write(ref(), 0, Buffer.alloc(PAGE, 1)); // seq 2: slot A, page 0 changed
    const raw = readFileSync(f.file());
    flip(raw, 100); // slot A
    writeFileSync(f.file(), raw);
    // slot B wins: page 0 holds the new data, which matches neither of B's checksums (B knows the old page only)
    await assert.rejects(f.store().read(ref(), 0, PAGE), ChecksumError);
    assert.ok((await f.store().read(ref(), PAGE, PAGE)).equals(fill(MiB, 4).subarray(PAGE, 2 * PAGE)));
    flip(raw, 4096 + 100); // and slot B
    writeFileSync(f.file(), raw);
    const t = f.store();
    await assert.rejects(t.read(ref(), PAGE, PAGE), ChecksumError);
    await assert.rejects(t.write(ref(), 0, Buffer.alloc(PAGE)), ChecksumError);
    await t.write(ref(), 0, fill(MiB, 5));
    assert.ok((await f.store().read(ref(), 0, MiB)).equals(fill(MiB, 5)));
  } finally {
    f.done();
  }
});

test('a crash after the header copy and before the pages reads as the old data; the next write goes on', async () => {
  const f = fixture();
  try {
    await f.store().write(ref(), 0, fill(MiB, 1));
    for (const [offset, len] of [[0, MiB], [3 * PAGE, 2 * PAGE], [PAGE + 10, 100]] as const) {
      const torn = f.store(() => 'header-only');
      await assert.rejects(torn.write(ref(), offset, fill(len, 99)), /simulated crash/);
      const after = f.store();
      assert.ok((await after.read(ref(), 0, MiB)).equals(fill(MiB, 1)), `old data after a torn write at ${offset}+${len}`);
    }
    const s = f.store();
    await s.write(ref(), PAGE + 10, Buffer.from('hello'));
    const want = fill(MiB, 1);
    Buffer.from('hello').copy(want, PAGE + 10);
    assert.ok((await f.store().read(ref(), 0, MiB)).equals(want));
  } finally {
    f.done();
  }
});

test('a crash after the pages and before the header: the page reads as a ChecksumError (never as wrong data), others are fine', async () => {
  const f = fixture();
  try {
    await f.store().write(ref(), 0, fill(MiB, 1));
    await assert.rejects(f.store(() => 'data-only').write(ref(), 2 * PAGE, Buffer.alloc(PAGE, 0xee)), /simulated crash/);
    const s = f.store();
    await assert.rejects(s.read(ref(), 2 * PAGE, PAGE), ChecksumError);
    assert.ok((await s.read(ref(), 3 * PAGE, PAGE)).equals(fill(MiB, 1).subarray(3 * PAGE, 4 * PAGE)));
    // the first write of an extent torn in its header: the extent is still empty (nothing was acknowledged)
    await assert.rejects(f.store(() => 'header-only').write(ref(1), 0, fill(MiB, 3)), /simulated crash/);
    const raw = readFileSync(f.file(ref(1)));
    raw.fill(0x55, 4096 + 50, 4096 + 60); // slot B torn
    writeFileSync(f.file(ref(1)), raw);
    assert.ok((await f.store().read(ref(1), 0, MiB)).equals(Buffer.alloc(MiB)));
  } finally {
    f.done();
  }
});

test('epoch fencing: a write with an older epoch is refused and changes nothing; generations count writes or are named', async () => {
  const f = fixture();
  try {
    const s = f.store();
    assert.equal(await s.write(ref(), 0, Buffer.alloc(PAGE, 1), { epoch: 5 }), 1);
    assert.equal(await s.write(ref(), 0, Buffer.alloc(PAGE, 2), { epoch: 5 }), 2);
    await assert.rejects(s.write(ref(), 0, Buffer.alloc(PAGE, 3), { epoch: 4 }), EpochError);
    await assert.rejects(s.write(ref(), 0, Buffer.alloc(PAGE, 3)), EpochError, 'an unfenced (v1) write too');
    assert.ok((await s.read(ref(), 0, PAGE)).equals(Buffer.alloc(PAGE, 2)));
    assert.equal(await s.write(ref(), 0, Buffer.alloc(PAGE, 4), { epoch: 7, generation: 40 }), 40);
    assert.deepEqual(await f.store().meta(ref()), { exists: true, epoch: 7, generation: 40 });
    await f.store().write(ref(9), 0, Buffer.alloc(10));
    assert.deepEqual(await f.store().extentGens('d1', VD, 0, 128), new Map([[0, { epoch: 7, generation: 40 }], [9, { epoch: 0, generation: 1 }]]));
    assert.deepEqual(await f.store().extentGens('d1', VD, 1, 8), new Map());
  } finally {
    f.done();
  }
});

test('zeroing: whole pages are marked, not written; a whole extent keeps only its header and its space returns; partial pages are merged', async () => {
  const f = fixture(7 * MiB);
  try {
    const s = f.store();
    for (let b = 0; b < 6; b++) await s.write(ref(b), 0, fill(MiB, b));
    const used = f.vol.used();
    assert.ok(used >= 6 * MiB);
    await assert.rejects(s.write(ref(7), 0, fill(MiB, 7)), /no space/, 'the disk is full');
    await s.zero(ref(0), 0, MiB);
    assert.equal(statSync(f.file(ref(0))).size, DATA_AT, 'only the header is left');
    assert.equal(f.vol.used(), used - MiB);
    await s.write(ref(7), 0, fill(MiB, 7)); // the space is back
    // partial: pages 1..2 marked, 100 bytes of page 0 and of page 3 merged
    await s.zero(ref(1), PAGE - 100, 2 * PAGE + 200);
    const want = fill(MiB, 1);
    want.fill(0, PAGE - 100, 3 * PAGE + 100);
    assert.ok((await f.store().read(ref(1), 0, MiB)).equals(want));
    // the zero bytes a write of the shared zero buffer would mark, not write: the same as zero()
    await s.write(ref(2), 0, Buffer.alloc(MiB));
    assert.equal(statSync(f.file(ref(2))).size, DATA_AT);
    assert.ok((await f.store().read(ref(2), 0, MiB)).equals(Buffer.alloc(MiB)));
    assert.deepEqual((await f.store().meta(ref(2))).exists, true);
    // never written: stays absent
    await s.zero(ref(30), 0, MiB);
    assert.equal((await s.meta(ref(30))).exists, false);
    // drop removes the file
    await s.drop(ref(3));
    assert.ok((await s.read(ref(3), 0, 10)).equals(Buffer.alloc(10)));
    assert.equal((await f.store().meta(ref(3))).exists, false);
  } finally {
    f.done();
  }
});

test('FLUSH of a vdisk syncs the extents written since the last one; a failed disk fails I/O', async () => {
  const f = fixture();
  try {
    const s = f.store();
    let syncs = 0;
    const datasync = f.vol.datasync.bind(f.vol);
    f.vol.datasync = (rel: string) => {
      syncs++;
      return datasync(rel);
    };
    await s.write(ref(0), 0, Buffer.alloc(PAGE, 1));
    await s.write(ref(1), 0, Buffer.alloc(PAGE, 1));
    await s.write(ref(2), 0, Buffer.alloc(PAGE, 1), { sync: true });
    await s.syncVdisk(VD);
    assert.equal(syncs, 2);
    await s.syncVdisk(VD);
    assert.equal(syncs, 2, 'nothing new to sync');
    setDiskFailed(f.dir, true);
    await new Promise((r) => setTimeout(r, 60)); // the hot path looks at the disk's state every 50 ms
    await assert.rejects(f.store().read(ref(0), 0, PAGE), DiskIoError);
    await assert.rejects(s.write(ref(0), 0, Buffer.alloc(PAGE)), DiskIoError);
    setDiskFailed(f.dir, false);
  } finally {
    f.done();
  }
});

test('bytes per vdisk: extents holding data × 1 MiB, counted once from the disk then kept by writes, zeroes and drops', async () => {
  const f = fixture();
  const other = '99999999-2222-3333-4444-555555555555';
  try {
    const s0 = f.store();
    await s0.write(ref(0), 0, fill(PAGE, 1));
    await s0.write(ref(1), 5 * PAGE, fill(10, 2)); // a partial page: the extent still counts whole
    await s0.write({ disk: 'd1', vdisk: other, block: 130 }, 0, fill(PAGE, 3));
    await s0.write(ref(2), 0, Buffer.alloc(2 * PAGE)); // zeros only: a header, no data
    // a restarted CVM: nothing known until the count, which reads the extent folders once
    const s = f.store();
    assert.equal(s.vdiskBytes(), undefined, 'not counted yet');
    await s.countExtents();
    assert.deepEqual(s.vdiskBytes(), new Map([['d1', new Map([[VD, 2 * MiB], [other, MiB]])]]));
    await s.write(ref(5), 0, fill(PAGE, 4));
    await s.write(ref(0), PAGE, fill(PAGE, 5)); // already counted
    assert.equal(s.vdiskBytes()?.get('d1')?.get(VD), 3 * MiB);
    await s.zero(ref(1), 0, MiB); // a whole extent zeroed keeps only its header: its data no longer counts
    await s.drop(ref(5));
    assert.equal(s.vdiskBytes()?.get('d1')?.get(VD), MiB);
    await s.drop({ disk: 'd1', vdisk: other, block: 130 });
    assert.deepEqual(s.vdiskBytes(), new Map([['d1', new Map([[VD, MiB]])]]), 'a vdisk with none is left out');
    // a write that fails (a crash after its pages) is counted from what the disk holds
    const torn = f.store(() => 'data-only');
    await torn.countExtents();
    await assert.rejects(torn.write(ref(7), 0, fill(PAGE, 6)), DiskIoError);
    assert.equal(torn.vdiskBytes()?.get('d1')?.get(VD), 2 * MiB);
    const again = f.store();
    await again.countExtents();
    assert.equal(again.vdiskBytes()?.get('d1')?.get(VD), 2 * MiB, 'the count at start agrees');
  } finally {
    f.done();
  }
});

test('the count at start and writes running meanwhile agree (each extent counted under its lock)', async () => {
  const f = fixture();
  try {
    const s0 = f.store();
    for (let b = 0; b < 40; b++) await s0.write(ref(b), 0, fill(PAGE, b));
    const s = f.store();
    const counting = s.countExtents();
    await Promise.all([counting, ...Array.from({ length: 20 }, (_, i) => s.write(ref(40 + i), 0, fill(PAGE, i))), ...Array.from({ length: 10 }, (_, i) => s.drop(ref(i)))]);
    assert.equal(s.vdiskBytes()?.get('d1')?.get(VD), 50 * MiB);
  } finally {
    f.done();
  }
});

test('dropVdisk removes a vdisk\'s extents and answers the bytes freed; dropEgroup only one extent group\'s', async () => {
  const f = fixture();
  const other = '99999999-2222-3333-4444-555555555555';
  try {
    const s = f.store();
    await s.countExtents();
    for (const b of [0, 1, 127, 128, 300]) await s.write(ref(b), 0, fill(2 * PAGE, b));
    await s.write({ disk: 'd1', vdisk: other, block: 0 }, 0, fill(PAGE, 9));
    const used0 = f.vol.used();
    const freed = await s.dropEgroup('d1', VD, 0);
    assert.equal(freed, 3 * (DATA_AT + 2 * PAGE), 'blocks 0, 1 and 127: header and two pages each');
    assert.equal(used0 - f.vol.used(), freed);
    assert.ok((await s.read(ref(1), 0, PAGE)).equals(Buffer.alloc(PAGE)), 'reads as never written');
    assert.ok((await s.read(ref(128), 0, 2 * PAGE)).equals(fill(2 * PAGE, 128)), 'extent group 1 stays');
    assert.equal(s.vdiskBytes()?.get('d1')?.get(VD), 2 * MiB);
    assert.equal(await s.dropEgroup('d1', VD, 5), 0, 'nothing there');
    const used1 = f.vol.used();
    assert.equal(await s.dropVdisk('d1', VD), 2 * (DATA_AT + 2 * PAGE));
    assert.equal(used1 - f.vol.used(), 2 * (DATA_AT + 2 * PAGE));
    assert.deepEqual(await f.vol.list('extents'), [other]);
    assert.deepEqual(s.vdiskBytes(), new Map([['d1', new Map([[other, MiB]])]]));
    assert.ok((await s.read(ref(128), 0, PAGE)).equals(Buffer.alloc(PAGE)), 'no cached header survives');
    await s.syncVdisk(VD); // nothing dirty left of it
  } finally {
    f.done();
  }
});
