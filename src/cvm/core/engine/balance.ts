/**
 * @module
 * Rebalancing for storage engine v2 (pure; ADR 015): when a node returns or joins it holds little
 * or nothing; in-sync replicas of extent groups move onto it until every disk's usage is within a
 * band of the mean. Ported from ../repair-balance.ts (v1, one record per 1 MiB block) to v2's
 * extent-group records.
 *
 *  - The unit is one extent group: each replica counts EGROUP_BYTES (128 MiB) on its disk. Usage is
 *    counted from the records alone (one range read of `/converge/v2/egroups/`, no replica I/O),
 *    not from the disks' free space or the extents really written: files left behind, copies in
 *    flight and sparse extent groups do not make a plan oscillate, and a planned move never needs
 *    a call to a peer. A sparse extent group counts as full: with 128 MiB units the band is coarse
 *    on small disks (at least two units wide), which is what keeps a plan from moving one extent
 *    group back and forth.
 *  - Only healthy records move: every replica in sync and on a known disk (of a node that is up),
 *    none stale. The others are the repair loop's.
 *  - The first replica of a record stays (it was placed on the writer's node, and move() keeps
 *    the order): locality.
 *  - A CVM plans only the moves of the vdisks it may move (those it owns; the leader also the
 *    unowned ones), against the whole cluster's usage, so no two CVMs move the same record.
 *  - The target is a disk below the band, least used first (SSDs first among equals), on a node
 *    not holding another replica of the record; the source the most used disk that has a movable
 *    replica. A move never leaves the target fuller than the source.
 */
import { EGROUP_BYTES, type EgroupRecord, type ReplicaLocation } from './layout.ts';
import type { Media } from './ports.ts';

export interface BalanceDisk {
  serial: string;
  node: string;
  cvmIp: string;
  capacityBytes: number;
  media?: Media;
}

export interface BalanceRecord {
  vdisk: string;
  egroup: number;
  record: EgroupRecord;
}

export interface EgroupMove {
  vdisk: string;
  egroup: number;
  from: ReplicaLocation;
  to: ReplicaLocation;
}

export interface BalanceOptions {
  /** Which vdisks this CVM may move. */
  movable: (vdisk: string) => boolean;
  /** Bytes one replica counts (default EGROUP_BYTES). */
  unitBytes?: number;
  /** Half-width of the band, as a fraction of the mean (default 0.1). */
  band?: number;
  /** Moves per plan at most (default 32). */
  maxMoves?: number;
  /**
   * The part of each target's shortfall this CVM fills (0..1, default 1): every CVM plans against
   * the same usage at once, so each fills its share (movableShare()) and together they fill it
   * once, not once each. At least one move per target below the band.
   */
  share?: number;
}

/** The share of the movable replicas (healthy records, not first replicas) that are of vdisks `movable` accepts. */
export function movableShare(records: readonly BalanceRecord[], movable: (vdisk: string) => boolean): number {
  let mine = 0;
  let all = 0;
  for (const r of records) {
    if (r.record.stale.length > 0) continue;
    const n = Math.max(0, r.record.replicas.length - 1);
    all += n;
    if (movable(r.vdisk)) mine += n;
  }
  return all ? mine / all : 0;
}

/** Per disk, its used fraction as counted from the records (for status and tests). */
export function diskUsage(records: readonly BalanceRecord[], disks: readonly BalanceDisk[], unitBytes = EGROUP_BYTES): Map<string, number> {
  const used = new Map<string, number>(disks.map((d) => [d.serial, 0]));
  for (const r of records) for (const l of [...r.record.replicas, ...r.record.stale]) if (used.has(l.disk)) used.set(l.disk, used.get(l.disk)! + unitBytes);
  return new Map(disks.map((d) => [d.serial, d.capacityBytes > 0 ? used.get(d.serial)! / d.capacityBytes : 0]));
}

/**
 * @param disks the healthy disks of nodes that are up (replicas elsewhere are not counted, and
 *              records with such a replica are not moved)
 */
export function planBalance(records: readonly BalanceRecord[], disks: readonly BalanceDisk[], o: BalanceOptions): EgroupMove[] {
  const unit = o.unitBytes ?? EGROUP_BYTES;
  const band = o.band ?? 0.1;
  const maxMoves = o.maxMoves ?? 32;
  const byDisk = new Map(disks.filter((d) => d.capacityBytes > 0).map((d) => [d.serial, d]));
  if (byDisk.size < 2) return [];
  const used = new Map<string, number>([...byDisk.keys()].map((k) => [k, 0]));
  for (const r of records) for (const l of [...r.record.replicas, ...r.record.stale]) if (used.has(l.disk)) used.set(l.disk, used.get(l.disk)! + unit);
  const capacity = [...byDisk.values()].reduce((a, d) => a + d.capacityBytes, 0);
  const mean = [...used.values()].reduce((a, b) => a + b, 0) / capacity;
  const frac = (serial: string): number => used.get(serial)! / byDisk.get(serial)!.capacityBytes;
  const tol = (d: BalanceDisk): number => Math.max(band * mean, (2 * unit) / d.capacityBytes);
  // movable replicas by source disk: not a first replica, of a healthy record of a vdisk this CVM moves
  const movable = new Map<string, { r: BalanceRecord; idx: number }[]>();
  for (const r of records) {
    const rec = r.record;
    if (!o.movable(r.vdisk) || rec.stale.length > 0 || !rec.replicas.every((l) => byDisk.get(l.disk)?.node === l.node)) continue;
    rec.replicas.forEach((l, idx) => {
      if (idx === 0) return;
      let list = movable.get(l.disk);
      if (!list) movable.set(l.disk, (list = []));
      list.push({ r, idx });
    });
  }
  const key = (r: BalanceRecord): string => `${r.vdisk}/${r.egroup}`;
  const moved = new Set<string>();
  const out: EgroupMove[] = [];
  // moves each target may receive from this CVM: its share of the target's shortfall below the mean
  const share = Math.min(1, Math.max(0, o.share ?? 1));
  const quota = new Map([...byDisk.values()].map((d) => [d.serial, Math.ceil((share * Math.max(0, mean - frac(d.serial)) * d.capacityBytes) / unit)]));
  const leastUsedFirst = (a: BalanceDisk, b: BalanceDisk): number => frac(a.serial) - frac(b.serial) || Number(b.media === 'ssd') - Number(a.media === 'ssd') || a.serial.localeCompare(b.serial);
  while (out.length < maxMoves) {
    const targets = [...byDisk.values()].filter((d) => frac(d.serial) < mean - tol(d) && quota.get(d.serial)! > 0).sort(leastUsedFirst);
    const sources = [...byDisk.values()].sort((a, b) => frac(b.serial) - frac(a.serial) || a.serial.localeCompare(b.serial));
    let found: { m: EgroupMove; to: BalanceDisk } | undefined;
    for (const to of targets) {
      for (const from of sources) {
        if (from.serial === to.serial) continue;
        if (frac(from.serial) - unit / from.capacityBytes < frac(to.serial) + unit / to.capacityBytes - 1e-12) continue;
        const c = (movable.get(from.serial) ?? []).find((x) => !moved.has(key(x.r)) && !x.r.record.replicas.some((l, i) => i !== x.idx && l.node === to.node));
        if (!c) continue;
        found = { m: { vdisk: c.r.vdisk, egroup: c.r.egroup, from: c.r.record.replicas[c.idx]!, to: { node: to.node, cvmIp: to.cvmIp, disk: to.serial } }, to };
        break;
      }
      if (found) break;
    }
    if (!found) break;
    moved.add(`${found.m.vdisk}/${found.m.egroup}`);
    used.set(found.m.from.disk, used.get(found.m.from.disk)! - unit);
    used.set(found.to.serial, used.get(found.to.serial)! + unit);
    quota.set(found.to.serial, quota.get(found.to.serial)! - 1);
    out.push(found.m);
  }
  return out;
}
