/**
 * @module
 * Replica placement for a new extent group (pure), ADR 015: like ../placement.ts (first replica on
 * the writer's node, the others on distinct other nodes with the most free space), but on each node
 * an SSD is preferred to an HDD, and nodes that already hold a replica (or are excluded) are skipped.
 */
import { PoolFullError, UnavailableError } from '../../../shared/errors.ts';
import { EGROUP_BYTES, EXTENT_BYTES, EXTENT_HEADER_BYTES, type EgroupRecord, type ReplicaLocation } from './layout.ts';
import type { SpaceDisk } from './ports.ts';

/** The disk of a node a new replica goes to: an SSD if one has room, else the freest disk. */
function bestDisk(ds: readonly SpaceDisk[]): SpaceDisk {
  return ds.reduce((a, b) => {
    if (a.media !== b.media) return a.media === 'ssd' ? a : b;
    return b.freeBytes > a.freeBytes || (b.freeBytes === a.freeBytes && b.serial < a.serial) ? b : a;
  });
}

/**
 * @param count        how many replicas to place
 * @param excludeNodes nodes that already hold a replica of the extent group (or must not get one)
 */
export function placeEgroup(disks: readonly SpaceDisk[], localNode: string, count: number, needBytes: number, excludeNodes: readonly string[] = []): ReplicaLocation[] {
  const usable = disks.filter((d) => d.ok && d.freeBytes >= needBytes && !excludeNodes.includes(d.node));
  const byNode = new Map<string, SpaceDisk[]>();
  for (const d of usable) byNode.set(d.node, [...(byNode.get(d.node) ?? []), d]);
  const out: ReplicaLocation[] = [];
  const local = byNode.get(localNode);
  if (local && count > 0) {
    const d = bestDisk(local);
    out.push({ node: d.node, cvmIp: d.cvmIp, disk: d.serial });
  }
  const others = [...byNode.entries()]
    .filter(([n]) => n !== localNode)
    .map(([n, ds]) => ({ n, d: bestDisk(ds), ssd: ds.some((x) => x.media === 'ssd'), total: ds.reduce((a, x) => a + x.freeBytes, 0) }))
    .sort((a, b) => Number(b.ssd) - Number(a.ssd) || b.total - a.total || a.n.localeCompare(b.n));
  for (const o of others) {
    if (out.length >= count) break;
    out.push({ node: o.n, cvmIp: o.d.cvmIp, disk: o.d.serial });
  }
  if (out.length < count) {
    const why = `cannot place ${count} replica(s) on distinct nodes: only ${out.length} node(s) have a healthy disk with ${needBytes} bytes free`;
    // enough nodes with healthy disks, too few with room: the pool is full (not a passing fault)
    const healthy = new Set(disks.filter((d) => d.ok && !excludeNodes.includes(d.node)).map((d) => d.node));
    if (healthy.size >= count) throw new PoolFullError(`the storage pool is full: ${why}`);
    throw new UnavailableError(why);
  }
  return out;
}

/**
 * The bytes an extent group of a vdisk of `vdiskBytes` may come to hold on each of its replicas'
 * disks (its data, up to 128 MiB or the vdisk's end, and the extents' headers). Placement counts an
 * extent group at this size from its first write on (a thick reservation): 128 MiB regions placed
 * on thin free space would overfill a disk as they grow.
 */
export function egroupReserve(vdiskBytes: number, egroup: number): number {
  const data = Math.max(0, Math.min(EGROUP_BYTES, vdiskBytes - egroup * EGROUP_BYTES));
  return data + Math.ceil(data / EXTENT_BYTES) * EXTENT_HEADER_BYTES;
}

/** Per disk serial, what the recorded extent groups (in-sync and stale replicas) may come to hold. Vdisks of unknown size count 128 MiB per extent group. */
export function committedBytes(records: Iterable<{ vdisk: string; egroup: number; record: EgroupRecord }>, sizeOf: (vdisk: string) => number | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of records) {
    const bytes = egroupReserve(sizeOf(r.vdisk) ?? (r.egroup + 1) * EGROUP_BYTES, r.egroup);
    for (const l of [...r.record.replicas, ...r.record.stale]) out.set(l.disk, (out.get(l.disk) ?? 0) + bytes);
  }
  return out;
}
