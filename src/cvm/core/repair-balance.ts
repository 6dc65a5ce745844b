/**
 * @module
 * Rebalancing (pure): when a node returns or joins it holds little or nothing; replicas move onto
 * it until every disk's usage is within a band of the mean (ADR 015).
 *
 *  - Usage is counted from the records (replicas × unit), not from the disks' free space: files
 *    left for the orphan sweep, or copies in flight, do not make a plan oscillate.
 *  - A disk is within the band when its used fraction is within `band` × mean of the mean (and at
 *    least two units: a few blocks never move back and forth).
 *  - The first replica of a record stays (it is on the writer's node: locality); the others move.
 *  - A CVM plans only the moves of records whose first replica is its own (the CVM that restores a
 *    record moves it too: no two CVMs move the same record), against the whole cluster's usage.
 *  - The target is a disk below the band, least used first (SSDs first among equals), on a node
 *    not already holding a replica of the record; the source the most used disk that has a
 *    movable replica. A move never leaves the target fuller than the source.
 */
import type { Replica } from './placement.ts';
import type { EgroupRecord } from './repair.ts';

export interface BalanceDisk {
  serial: string;
  node: string;
  cvmIp: string;
  capacityBytes: number;
  mediaType?: string;
}

export interface Move {
  key: string;
  vdisk: string;
  block: number;
  /** The record as planned (the move is done only if it is still this). */
  replicas: Replica[];
  from: Replica;
  to: Replica;
}

export interface BalanceOptions {
  /** Bytes one replica takes. */
  unitBytes: number;
  /** Half-width of the band, as a fraction of the mean (default 0.1). */
  band?: number;
  /** Moves per plan at most (default 64). */
  maxMoves?: number;
}

/**
 * @param disks  the healthy disks of nodes that are up (replicas elsewhere are not counted, and
 *               records with such a replica are not moved: they are the repair loop's)
 */
export function planRebalance(records: readonly EgroupRecord[], disks: readonly BalanceDisk[], localNode: string, o: BalanceOptions): Move[] {
  const band = o.band ?? 0.1;
  const maxMoves = o.maxMoves ?? 64;
  const byDisk = new Map(disks.filter((d) => d.capacityBytes > 0).map((d) => [d.serial, d]));
  if (byDisk.size < 2) return [];
  const used = new Map<string, number>([...byDisk.keys()].map((k) => [k, 0]));
  for (const rec of records) for (const r of rec.replicas) if (used.has(r.disk)) used.set(r.disk, (used.get(r.disk) ?? 0) + o.unitBytes);
  const capacity = [...byDisk.values()].reduce((a, d) => a + d.capacityBytes, 0);
  const mean = [...used.values()].reduce((a, b) => a + b, 0) / capacity;
  const frac = (serial: string): number => (used.get(serial) ?? 0) / (byDisk.get(serial)?.capacityBytes ?? 1);
  const tol = (d: BalanceDisk): number => Math.max(band * mean, (2 * o.unitBytes) / d.capacityBytes);
  // movable replicas by source disk: not a first replica, of a record this CVM moves, every replica on a known disk
  const movable = new Map<string, { rec: EgroupRecord; idx: number }[]>();
  for (const rec of records) {
    if (rec.replicas[0]?.node !== localNode || !rec.replicas.every((r) => byDisk.has(r.disk))) continue;
    rec.replicas.forEach((r, idx) => {
      if (idx === 0) return;
      let l = movable.get(r.disk);
      if (!l) movable.set(r.disk, (l = []));
      l.push({ rec, idx });
    });
  }
  const moved = new Set<string>();
  const out: Move[] = [];
  const ssdFirst = (a: BalanceDisk, b: BalanceDisk): number => frac(a.serial) - frac(b.serial) || Number(b.mediaType === 'SSD') - Number(a.mediaType === 'SSD') || a.serial.localeCompare(b.serial);
  while (out.length < maxMoves) {
    const targets = [...byDisk.values()].filter((d) => frac(d.serial) < mean - tol(d)).sort(ssdFirst);
    const sources = [...byDisk.values()].sort((a, b) => frac(b.serial) - frac(a.serial) || a.serial.localeCompare(b.serial));
    let found: Move | undefined;
    let toDisk: BalanceDisk | undefined;
    for (const to of targets) {
      for (const from of sources) {
        if (frac(from.serial) - o.unitBytes / from.capacityBytes < frac(to.serial) + o.unitBytes / to.capacityBytes - 1e-12) continue;
        const c = (movable.get(from.serial) ?? []).find((x) => !moved.has(x.rec.key) && !x.rec.replicas.some((r) => r.node === to.node));
        if (!c) continue;
        found = { key: c.rec.key, vdisk: c.rec.vdisk, block: c.rec.block, replicas: c.rec.replicas, from: c.rec.replicas[c.idx]!, to: { node: to.node, cvmIp: to.cvmIp, disk: to.serial } };
        toDisk = to;
        break;
      }
      if (found) break;
    }
    if (!found || !toDisk) break;
    moved.add(found.key);
    used.set(found.from.disk, (used.get(found.from.disk) ?? 0) - o.unitBytes);
    used.set(toDisk.serial, (used.get(toDisk.serial) ?? 0) + o.unitBytes);
    out.push(found);
  }
  return out;
}
