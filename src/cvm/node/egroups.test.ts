import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { formatDisk } from '../../shared/disk-volume.ts';
import { NotFoundError } from '../../shared/errors.ts';
import { LocalEgroups, parseEgroupList } from './egroups.ts';
import { LocalReplicas } from './engine-replicas.ts';
test('a sync-many body is checked with the replication protocol\'s rules, naming the entry and field', () => {
  assert.deepEqual(parseEgroupList([{ disk: 'S1', vdisk: '0123abcd-4567-89ef-0123-456789abcdef', block: 3 }]), [{ disk: 'S1', vdisk: '0123abcd-4567-89ef-0123-456789abcdef', block: 3 }]);
  assert.throws(() => parseEgroupList(JSON.parse('[{"disk":"../x","vdisk":"0123abcd-4567-89ef-0123-456789abcdef","block":1}]')), /body\[0\]\.disk: a disk serial/);
  assert.throws(() => parseEgroupList(JSON.parse('[{"disk":"S1","vdisk":"nope","block":1}]')), /body\[0\]\.vdisk/);
  assert.throws(() => parseEgroupList(JSON.parse('[{"disk":"S1","vdisk":"nope","block":-1}]')), /body\[0\]\.block/);
});

const MiB = 1 << 20;
const PAGE = 4096;
const VD1 = '11111111-0000-0000-0000-000000000001';
const VD2 = '22222222-0000-0000-0000-000000000002';
const VD3 = '33333333-0000-0000-0000-000000000003';

/** Two claimed disks with a LocalReplicas over them (what the CVM runs); writes put extents and epoch floors on them. */
function node(): { eg: LocalEgroups; replicas: LocalReplicas; write: (disk: string, vdisk: string, egroup: number, extent: number) => Promise<void>; has: (disk: string, rel: string) => boolean; age: (disk: string, rel: string, s: number) => void; done: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'cvg-sweep-'));
  for (const d of ['d1', 'd2']) formatDisk(join(root, d), { serial: d, model: 'M', mediaType: 'SSD', capacityBytes: 64 * MiB });
  const eg = new LocalEgroups(['d1', 'd2'].map((d) => ({ serial: d, path: join(root, d) })), 'egroups.test');
  const replicas = new LocalReplicas(eg.store, eg.volumes);
  let gen = 0;
  return {
    eg, replicas,
    write: async (disk, vdisk, egroup, extent) => {
      const data = Buffer.alloc(PAGE, 7);
      await replicas.write(disk, { vdisk, egroup, epoch: 5, gen: ++gen, extent, inner: 0, data, length: PAGE, zero: false, crcs: [crc32c(data)] });
    },
    has: (disk, rel) => existsSync(join(root, disk, 'data', rel)),
    age: (disk, rel, s) => utimesSync(join(root, disk, 'data', rel), new Date(Date.now() - s * 1000), new Date(Date.now() - s * 1000)),
    done: () => {
      eg.release();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

test('sweepVdisks frees the extents and epoch floors of vdisks that no longer exist, on every disk, and answers the bytes freed', async () => {
  const n = node();
  try {
    await n.write('d1', VD1, 0, 0);
    await n.write('d2', VD1, 1, 3);
    await n.write('d1', VD2, 0, 0);
    await n.write('d2', VD2, 2, 1);
    await n.write('d2', VD3, 0, 0);
    const used = (): number => [...n.eg.volumes.values()].reduce((a, v) => a + v.used(), 0);
    for (const d of ['d1', 'd2']) for (const top of ['extents', 'floors']) n.age(d, `${top}/${VD2}`, 3600);
    const before = used();
    // VD2 and VD3 are gone; VD3's folders were changed just now: kept this time (a vdisk created after `known` was read)
    const freed = await n.eg.sweepVdisks(new Set([VD1]), { graceMs: 60_000 });
    assert.ok(!n.has('d1', `extents/${VD2}`) && !n.has('d2', `extents/${VD2}`) && !n.has('d1', `floors/${VD2}`) && !n.has('d2', `floors/${VD2}`));
    assert.ok(n.has('d2', `extents/${VD3}/0`), 'inside the grace period');
    assert.ok(n.has('d1', `extents/${VD1}/0`) && n.has('d2', `extents/${VD1}/131`) && n.has('d2', `floors/${VD1}/1`));
    // two extents (header + one page) and two floors (a 4 KiB block each)
    assert.equal(freed, 2 * (8192 + PAGE) + 2 * PAGE);
    assert.equal(before - used(), freed);
    assert.equal(await n.eg.sweepVdisks(new Set([VD1]), { graceMs: 0 }), 8192 + PAGE + PAGE, 'VD3 once its grace is over');
    assert.ok(!n.has('d2', `extents/${VD3}`));
    await n.eg.store.countExtents();
    assert.deepEqual(n.eg.vdiskBytes(), new Map([['d1', new Map([[VD1, MiB]])], ['d2', new Map([[VD1, MiB]])]]));
    assert.equal(await n.eg.sweepVdisks(new Set([VD1]), { graceMs: 0 }), 0, 'nothing left to free');
  } finally {
    n.done();
  }
});

test('dropEgroup frees one extent group\'s extents and floor on one disk, and nothing else', async () => {
  const n = node();
  try {
    await n.write('d1', VD1, 0, 0);
    await n.write('d1', VD1, 0, 127);
    await n.write('d1', VD1, 1, 0);
    await n.write('d2', VD1, 0, 0);
    await n.eg.store.countExtents();
    const freed = await n.eg.dropEgroup('d1', VD1, 0);
    assert.equal(freed, 2 * (8192 + PAGE) + PAGE);
    assert.ok(!n.has('d1', `extents/${VD1}/0`) && !n.has('d1', `extents/${VD1}/127`) && !n.has('d1', `floors/${VD1}/0`));
    assert.ok(n.has('d1', `extents/${VD1}/128`) && n.has('d1', `floors/${VD1}/1`), 'extent group 1 stays');
    assert.ok(n.has('d2', `extents/${VD1}/0`) && n.has('d2', `floors/${VD1}/0`), 'the other disk\'s replica stays');
    assert.deepEqual(n.eg.vdiskBytes(), new Map([['d1', new Map([[VD1, MiB]])], ['d2', new Map([[VD1, MiB]])]]));
    const r = await n.replicas.read('d1', { vdisk: VD1, egroup: 0, extent: 0, inner: 0, length: PAGE });
    assert.ok(Buffer.from(r.data).equals(Buffer.alloc(PAGE)), 'reads as never written');
    await assert.rejects(n.eg.dropEgroup('zz', VD1, 0), NotFoundError);
  } finally {
    n.done();
  }
});
