import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualClock } from '../../shared/clock.ts';
import { formatDisk } from '../../shared/disk-volume.ts';
import type { CvmStatus } from '../protocol/cluster.ts';
import type { Replica } from '../core/placement.ts';
import { LocalEgroups } from './egroups.ts';
import { Repairer, EGROUPS_PREFIX } from './repairer.ts';

const V = '11111111-2222-3333-4444-555555555555';
const rep = (node: string, disk: string): Replica => ({ node, cvmIp: `ip-${node}`, disk });
const status = (disks: { serial: string; ok: boolean }[]): CvmStatus => ({ disks: disks.map((d) => ({ ...d, mediaType: 'SSD', capacityBytes: 1 << 30, usedBytes: 0 })) } as unknown as CvmStatus);

function fixture(): { dir: string; local: LocalEgroups } {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-repairer-'));
  formatDisk(join(dir, 'a1'), { serial: 'a1', model: 'M', mediaType: 'SSD', capacityBytes: 64 << 20 });
  return { dir, local: new LocalEgroups([{ serial: 'a1', path: join(dir, 'a1') }]) };
}

test('a failed disk on a peer: this CVM restores the extent groups whose first good replica it holds; a node down within the grace waits', async () => {
  const { dir, local } = fixture();
  try {
    const store: Record<string, string> = {
      [`${EGROUPS_PREFIX}${V}/0`]: JSON.stringify([rep('A', 'a1'), rep('B', 'b1')]),
      [`${EGROUPS_PREFIX}${V}/1`]: JSON.stringify([rep('B', 'b1'), rep('A', 'a1')]),
      [`${EGROUPS_PREFIX}${V}/2`]: JSON.stringify([rep('C', 'c1'), rep('B', 'b1')]),
      [`${EGROUPS_PREFIX}${V}/3`]: JSON.stringify([rep('A', 'a1'), rep('C', 'c1')]),
    };
    const restored: [number, string[]][] = [];
    let cUp = true;
    const clock = new VirtualClock(1_000_000);
    const r = new Repairer({
      clock, local, localNode: 'A', log: () => undefined, graceMs: 10_000,
      list: (prefix) => Promise.resolve(Object.fromEntries(Object.entries(store).filter(([k]) => k.startsWith(prefix)))),
      members: () => [{ serial: 'A', cvmIp: 'ip-A' }, { serial: 'B', cvmIp: 'ip-B' }, { serial: 'C', cvmIp: 'ip-C' }],
      statusOf: (ip) => {
        if (ip === 'ip-B') return Promise.resolve(status([{ serial: 'b1', ok: false }]));
        if (ip === 'ip-C' && !cUp) return Promise.reject(new Error('connection refused'));
        return Promise.resolve(status([{ serial: ip === 'ip-A' ? 'a1' : 'c1', ok: true }]));
      },
      backend: () => Promise.resolve({
        restore: (block: number, _seen: readonly Replica[], lost: readonly Replica[]) => {
          restored.push([block, lost.map((l) => l.disk)]);
          return Promise.resolve('restored' as const);
        },
      }),
    });
    await r.pass();
    assert.deepEqual(restored, [[0, ['b1']], [1, ['b1']]], 'blocks 0 and 1 (A holds their first good replica); block 2 is C\'s to restore');
    assert.equal(r.stats.restored, 2);
    assert.equal(r.stats.pending, 3);

    restored.length = 0;
    store[`${EGROUPS_PREFIX}${V}/0`] = JSON.stringify([rep('A', 'a1'), rep('D', 'd1')]);
    store[`${EGROUPS_PREFIX}${V}/1`] = JSON.stringify([rep('A', 'a1'), rep('D', 'd1')]);
    delete store[`${EGROUPS_PREFIX}${V}/2`];
    cUp = false;
    await r.pass();
    assert.deepEqual(restored, [], 'C has just gone: its replicas wait for the grace period');
    clock.advance(10_000);
    await r.pass();
    assert.deepEqual(restored, [[3, ['c1']]], 'past the grace, block 3\'s replica on C is lost and A restores it');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the sweep removes local replica files no record points at, once they are old enough', async () => {
  const { dir, local } = fixture();
  try {
    const store: Record<string, string> = { [`${EGROUPS_PREFIX}${V}/0`]: JSON.stringify([rep('A', 'a1'), rep('B', 'b1')]), [`${EGROUPS_PREFIX}${V}/1`]: JSON.stringify([rep('B', 'b1'), rep('C', 'c1')]) };
    for (const block of [0, 1, 2]) await local.write({ disk: 'a1', vdisk: V, block }, 0, Buffer.alloc(4096, 7), true);
    const file = (b: number): string => join(dir, 'a1', 'data', 'extents', V, String(b));
    const clock = new VirtualClock(Date.now());
    const r = new Repairer({
      clock, local, localNode: 'A', log: () => undefined, orphanAgeMs: 60_000,
      list: (prefix) => Promise.resolve(Object.fromEntries(Object.entries(store).filter(([k]) => k.startsWith(prefix)))),
      members: () => [], statusOf: () => Promise.reject(new Error('unused')), backend: () => Promise.resolve(undefined),
    });
    await r.sweep();
    assert.ok([0, 1, 2].every((b) => existsSync(file(b))), 'young files stay (a copy may be in progress)');
    const old = new Date(clock.now() - 120_000);
    for (const b of [0, 1, 2]) utimesSync(file(b), old, old);
    const usedBefore = local.space()[0]!.usedBytes;
    await r.sweep();
    assert.ok(existsSync(file(0)), 'block 0 is referenced: kept');
    assert.ok(!existsSync(file(1)) && !existsSync(`${file(1)}.crc`), 'block 1 moved to other disks: removed with its checksums');
    assert.ok(!existsSync(file(2)), 'block 2 has no record (vdisk deleted): removed');
    assert.equal(r.stats.orphansRemoved, 2);
    assert.ok(local.space()[0]!.usedBytes < usedBefore, 'the space is freed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
