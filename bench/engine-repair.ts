/**
 * bench/engine-repair: client writes during re-protection, storage engine v2 (ADR 015), in one
 * process: a VdiskOwner (src/cvm/core/engine/owner.ts) over three nodes' LocalReplicas (the extent
 * store on disk volumes in a temp dir; page cache, so what is measured is CPU, syscalls and locks),
 * an in-memory configuration store, the real clock.
 *
 * A vdisk of --size MiB (one extent group) is written at RF2 on nodes a and b. Then a client writes
 * 64 KiB at random offsets of it, one at a time, for --runtime s (before); node b is declared down
 * and the repair loop's CopyBudget (--mibps, duty 0.5) paces the re-protection onto c while the
 * client goes on (during). Printed: client MiB/s before and during, their ratio (issue 12's goal:
 * at least 0.5), the longest client write during, and how long re-protection took. With
 * `--lock-whole` the copy is not prefilled (no copyThrottle given to the owner: the first cut's
 * shape, the whole copy under the extent group's exclusive lock) for comparison.
 *
 * Usage: node --import tsx bench/engine-repair.ts [--size MiB] [--runtime s] [--mibps n] [--lock-whole]   (defaults 64, 4, 8)
 */
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { SystemClock } from '../src/shared/clock.ts';
import { DiskVolume, formatDisk } from '../src/shared/disk-volume.ts';
import { UnavailableError } from '../src/shared/errors.ts';
import type { EgroupRecord } from '../src/cvm/core/engine/layout.ts';
import { VdiskOwner } from '../src/cvm/core/engine/owner.ts';
import type { CasResult, MetaStore, ReplicaIo, Versioned } from '../src/cvm/core/engine/ports.ts';
import { LocalReplicas } from '../src/cvm/node/engine-replicas.ts';
import { CopyBudget } from '../src/cvm/node/engine-repair.ts';
import { ExtentStore } from '../src/cvm/node/extent-store.ts';
import { machineContext } from './machine.ts';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SIZE_MIB = Math.min(arg('size', 64), 128);
const RUNTIME_S = arg('runtime', 4);
const MIBPS = arg('mibps', 8);
const LOCK_WHOLE = process.argv.includes('--lock-whole');
const MiB = 1 << 20;
const VD = '0be4c400-0000-4000-8000-00000000e2e2';
const clock = new SystemClock();

const dir = mkdtempSync(join(tmpdir(), 'bench-engine-repair-'));
const names = ['a', 'b', 'c'];
const vols = new Map<string, DiskVolume>();
const replicas = new Map<string, LocalReplicas>();
for (const n of names) {
  formatDisk(join(dir, n), { serial: `${n}1`, model: 'bench', mediaType: 'SSD', capacityBytes: 4096 * MiB });
  const v = DiskVolume.open(join(dir, n));
  vols.set(n, v);
  const m = new Map([[`${n}1`, v]]);
  replicas.set(n, new LocalReplicas(new ExtentStore(m), m));
}
const down = new Set<string>();
const subs = new Set<(n: string) => void>();
const at = (l: { node: string }): LocalReplicas => {
  if (down.has(l.node)) throw new UnavailableError(`${l.node} is down`);
  return replicas.get(l.node)!;
};
const io: ReplicaIo = {
  write: async (l, f) => at(l).write(l.disk, f),
  read: async (l, q) => at(l).read(l.disk, q),
  extentGens: async (l, v, e, epoch) => at(l).extentGens(l.disk, v, e, epoch),
  readExtent: async (l, v, e, x) => at(l).readExtent(l.disk, v, e, x),
  writeExtent: async (l, v, e, x, epoch, img) => at(l).writeExtent(l.disk, v, e, x, epoch, img),
  sync: async (c, v) => at(c).syncVdisk(v),
};
const records = new Map<number, Versioned<EgroupRecord>>();
let rev = 1;
let owner = 0;
const now = <T>(v: T): Promise<T> => Promise.resolve(structuredClone(v));
const meta: MetaStore = {
  getEgroup: (_v, e) => now(records.get(e) ?? null),
  listEgroups: () => now(records),
  createEgroup: (_v, e, epoch, record): Promise<CasResult> => {
    if (epoch !== owner) return now({ ok: false, reason: 'epoch' });
    if (records.has(e)) return now({ ok: false, reason: 'exists' });
    records.set(e, { value: structuredClone(record), version: ++rev });
    return now({ ok: true, record: records.get(e)! });
  },
  casEgroup: (_v, e, epoch, version, record): Promise<CasResult> => {
    if (epoch !== owner) return now({ ok: false, reason: 'epoch' });
    if (records.get(e)?.version !== version) return now({ ok: false, reason: 'version' });
    records.set(e, { value: structuredClone(record), version: ++rev });
    return now({ ok: true, record: records.get(e)! });
  },
  acquireOwner: () => now({ epoch: (owner = ++rev) }),
  releaseOwner: () => now(undefined),
  leaseValid: () => true,
};

const budget = new CopyBudget({ clock, mibPerSec: MIBPS, dutyCycle: 0.5 });
const o = await VdiskOwner.open({
  vdisk: VD, node: 'a', cvmIp: 'ip-a', rf: 2, io, meta, clock, checksum: (p) => crc32c(p),
  liveness: { isDown: (n) => down.has(n), subscribe: (fn) => { subs.add(fn); return () => subs.delete(fn); } },
  // c is not a candidate for the first placement: a and b hold the extent group
  space: { disks: () => names.filter((n) => n !== 'c' || down.size > 0).map((n) => ({ serial: `${n}1`, node: n, cvmIp: `ip-${n}`, freeBytes: 4096 * MiB, ok: true, media: 'ssd' as const })) },
  ...(LOCK_WHOLE ? {} : { copyThrottle: budget.throttle }),
});

console.log(machineContext());
const chunk = Buffer.alloc(MiB, 0x5a);
for (let off = 0; off < SIZE_MIB * MiB; off += MiB) await o.pwrite(off, chunk);
await o.flush();
const rec0 = records.get(0)!.value;
console.log(`vdisk of ${SIZE_MIB} MiB on ${rec0.replicas.map((l) => `${l.node}/${l.disk}`).join(', ')}; client: 64 KiB random writes, one at a time; copies ${LOCK_WHOLE ? 'NOT throttled, whole copy under the exclusive lock' : `at ${MIBPS} MiB/s, duty 0.5, prefilled outside the lock`}`);

const W = 64 * 1024;
const block = Buffer.alloc(W, 0x33);
async function client(until: () => boolean): Promise<{ mib: number; secs: number; worstMs: number }> {
  const t0 = performance.now();
  let n = 0;
  let worst = 0;
  while (!until()) {
    const off = randomInt(0, (SIZE_MIB * MiB) / W) * W;
    const s = performance.now();
    await o.pwrite(off, block);
    worst = Math.max(worst, performance.now() - s);
    n++;
  }
  const secs = (performance.now() - t0) / 1000;
  return { mib: (n * W) / MiB, secs, worstMs: worst };
}

const t0 = Date.now();
const before = await client(() => Date.now() - t0 > RUNTIME_S * 1000);
// b goes down: the replica goes stale; the repair runs (as the loop would) while the client goes on
down.add('b');
for (const f of subs) f('b');
await o.idle();
let repaired = false;
const r0 = performance.now();
const repair = o.repair({ needed: true }).then((r) => {
  repaired = true;
  return { r, secs: (performance.now() - r0) / 1000 };
});
const during = await client(() => repaired);
const { r, secs } = await repair;
const after = records.get(0)!.value;
const rate = (x: { mib: number; secs: number }): number => x.mib / x.secs;
console.log(`before:  ${rate(before).toFixed(1)} MiB/s (longest write ${before.worstMs.toFixed(1)} ms)`);
console.log(`during:  ${rate(during).toFixed(1)} MiB/s (longest write ${during.worstMs.toFixed(1)} ms) over ${during.secs.toFixed(1)} s`);
console.log(`ratio:   ${(rate(during) / rate(before)).toFixed(2)} (goal >= 0.5)`);
console.log(`re-protection: ${SIZE_MIB} MiB in ${secs.toFixed(1)} s (${(SIZE_MIB / secs).toFixed(1)} MiB/s); ${r.replaced} replica placed; record now ${after.replicas.map((l) => l.node).join(', ')}${after.stale.length ? ` (stale ${after.stale.map((l) => l.node).join(', ')})` : ''}; budget waited ${(budget.stats.waitedMs / 1000).toFixed(1)} s`);
console.log(machineContext());
await o.close();
for (const v of vols.values()) v.close();
rmSync(dir, { recursive: true, force: true });
