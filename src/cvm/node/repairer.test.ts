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

test('with the failure detector: a node declared down is lost at once; a record short of its RF is restored; a node back gets replicas moved to it', async () => {
  const { dir, local } = fixture();
  try {
    const store: Record<string, string> = {};
    for (let b = 0; b < 8; b++) store[`${EGROUPS_PREFIX}${V}/${b}`] = JSON.stringify([rep('A', 'a1'), rep(b < 4 ? 'B' : 'C', b < 4 ? 'b1' : 'c1')]);
    store[`${EGROUPS_PREFIX}${V}/8`] = JSON.stringify([rep('A', 'a1')]); // a write dropped its second replica
    const down = new Map<string, string>();
    const listeners = new Set<(e: { kind: 'down'; node: string; record: { node: string; by: string; at: string; reason: string } } | { kind: 'up'; node: string }) => void>();
    const clock = new VirtualClock(1_000_000);
    const restored: [number, string[]][] = [];
    const moved: [number, string, string][] = [];
    const r = new Repairer({
      clock, local, localNode: 'A', log: () => undefined, graceMs: 60_000,
      list: (prefix) => Promise.resolve(Object.fromEntries(Object.entries(store).filter(([k]) => k.startsWith(prefix)))),
      members: () => [{ serial: 'A', cvmIp: 'ip-A' }, { serial: 'B', cvmIp: 'ip-B' }, { serial: 'C', cvmIp: 'ip-C' }],
      statusOf: (ip) => (ip === 'ip-C' && down.has('C') ? Promise.reject(new Error('refused')) : Promise.resolve(status([{ serial: `${ip.slice(3).toLowerCase()}1`, ok: true }]))),
      liveness: { isDown: (n) => down.has(n), downNodes: () => [...down].map(([node, at]) => ({ node, at })), on: (fn) => (listeners.add(fn), () => listeners.delete(fn)) },
      pool: () => Promise.resolve(['A', 'B', 'C'].map((n) => ({ serial: `${n.toLowerCase()}1`, node: n, cvmIp: `ip-${n}`, capacityBytes: 64 << 20, mediaType: 'SSD' }))),
      backend: () => Promise.resolve({
        rf: 2,
        restore: (block: number, _seen: readonly Replica[], lost: readonly Replica[]) => {
          restored.push([block, lost.map((l) => l.disk)]);
          store[`${EGROUPS_PREFIX}${V}/${block}`] = JSON.stringify([rep('A', 'a1'), rep('B', 'b1')]);
          return Promise.resolve('restored' as const);
        },
        move: (block: number, seen: readonly Replica[], from: Replica, to: Replica) => {
          moved.push([block, from.disk, to.disk]);
          store[`${EGROUPS_PREFIX}${V}/${block}`] = JSON.stringify(seen.map((x) => (x.disk === from.disk ? to : x)));
          return Promise.resolve('moved' as const);
        },
      }),
    });
    r.start(); // subscribes to the failure detector's events (its timer never fires: the clock stands still)
    await r.pass();
    assert.deepEqual(restored, [[8, []]], 'the short record is restored; nothing else is lost');
    restored.length = 0;
    down.set('C', new Date(clock.now()).toISOString());
    for (const l of listeners) l({ kind: 'down', node: 'C', record: { node: 'C', by: 'A', at: '', reason: '' } });
    await r.pass();
    assert.deepEqual(restored.map(([b, l]) => [b, l]), [4, 5, 6, 7].map((b) => [b, ['c1']]), 'declared down: no grace period');
    // every record is now [A, B]; C comes back empty
    down.delete('C');
    for (const l of listeners) l({ kind: 'up', node: 'C' });
    await r.pass();
    assert.ok(moved.length >= 3 && moved.every(([, from, to]) => from === 'b1' && to === 'c1'), JSON.stringify(moved));
    assert.equal(r.moved, moved.length);
    await r.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('replicas on a node declared down leave their records in one batch before the copies', async () => {
  const { dir, local } = fixture();
  try {
    const store: Record<string, string> = {};
    for (let b = 0; b < 3; b++) store[`${EGROUPS_PREFIX}${V}/${b}`] = JSON.stringify([rep('A', 'a1'), rep('C', 'c1')]);
    const batches: number[] = [];
    const seen: [number, string[], string[]][] = [];
    const r = new Repairer({
      clock: new VirtualClock(0), local, localNode: 'A', log: () => undefined,
      list: (prefix) => Promise.resolve(Object.fromEntries(Object.entries(store).filter(([k]) => k.startsWith(prefix)))),
      members: () => [{ serial: 'A', cvmIp: 'ip-A' }], statusOf: () => Promise.resolve(status([{ serial: 'a1', ok: true }])),
      liveness: { isDown: (n) => n === 'C', downNodes: () => [{ node: 'C', at: new Date(0).toISOString() }], on: () => () => undefined },
      swapMany: (items) => {
        batches.push(items.length);
        return Promise.resolve(items.map((x) => {
          if (store[x.key] !== x.from) return false;
          store[x.key] = x.to;
          return true;
        }));
      },
      backend: () => Promise.resolve({
        rf: 2,
        restore: (block: number, s: readonly Replica[], lost: readonly Replica[]) => {
          seen.push([block, s.map((x) => x.disk), lost.map((x) => x.disk)]);
          return Promise.resolve('restored' as const);
        },
      }),
    });
    await r.pass();
    assert.deepEqual(batches, [3]);
    assert.deepEqual(seen, [0, 1, 2].map((b) => [b, ['a1'], []]), 'each restored from its record without C');
    assert.equal(store[`${EGROUPS_PREFIX}${V}/0`], JSON.stringify([rep('A', 'a1')]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
