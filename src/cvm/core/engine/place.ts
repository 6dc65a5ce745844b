/**
 * @module
 * Replica placement for a new extent group (pure), ADR 015: like ../placement.ts (first replica on
 * the writer's node, the others on distinct other nodes with the most free space), but on each node
 * an SSD is preferred to an HDD, and nodes that already hold a replica (or are excluded) are skipped.
 */
import { UnavailableError } from '../../../shared/errors.ts';
import type { ReplicaLocation } from './layout.ts';
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
  if (out.length < count) throw new UnavailableError(`cannot place ${count} replica(s) on distinct nodes: only ${out.length} node(s) have a healthy disk with ${needBytes} bytes free`);
  return out;
}
