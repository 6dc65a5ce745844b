/**
 * @module
 * Replica placement (pure): where the RF copies of a new extent group go. The first replica on the
 * writer's own node (data locality); the others on distinct other nodes, the nodes with the most
 * free space first. On each node the disk is an SSD if one has room (below SSD_FILL_FRACTION full,
 * when its capacity is known), the freest first; otherwise the freest disk. Disks that are failed,
 * or too full to take the extent group, are never chosen.
 */
import { DiskFullError, UnavailableError } from '../../shared/errors.ts';

export interface DiskSpace {
  serial: string;
  node: string;
  cvmIp: string;
  freeBytes: number;
  ok: boolean;
  /** 'SSD' or 'HDD' (the pool's record of the disk); unknown counts as HDD. */
  mediaType?: string;
  capacityBytes?: number;
}

/** New replicas go to an SSD until it is this full; then to the node's other disks. */
export const SSD_FILL_FRACTION = 0.9;

const ssdWithRoom = (d: DiskSpace, needBytes: number): boolean =>
  d.mediaType === 'SSD' && (d.capacityBytes === undefined || d.capacityBytes - d.freeBytes + needBytes <= SSD_FILL_FRACTION * d.capacityBytes);

export interface Replica {
  node: string;
  cvmIp: string;
  disk: string;
}

export function placeReplicas(disks: readonly DiskSpace[], localNode: string, rf: number, needBytes: number): Replica[] {
  const usable = disks.filter((d) => d.ok && d.freeBytes >= needBytes);
  const byNode = new Map<string, DiskSpace[]>();
  for (const d of usable) byNode.set(d.node, [...(byNode.get(d.node) ?? []), d]);
  const freestOf = (ds: DiskSpace[]): DiskSpace => ds.reduce((a, b) => (b.freeBytes > a.freeBytes || (b.freeBytes === a.freeBytes && b.serial < a.serial) ? b : a));
  const freest = (ds: DiskSpace[]): DiskSpace => {
    const ssd = ds.filter((d) => ssdWithRoom(d, needBytes));
    return freestOf(ssd.length > 0 ? ssd : ds);
  };
  const out: Replica[] = [];
  const local = byNode.get(localNode);
  if (local) {
    const d = freest(local);
    out.push({ node: d.node, cvmIp: d.cvmIp, disk: d.serial });
  }
  const others = [...byNode.entries()]
    .filter(([n]) => n !== localNode)
    .map(([n, ds]) => ({ n, d: freest(ds), total: ds.reduce((a, x) => a + x.freeBytes, 0) }))
    .sort((a, b) => b.total - a.total || a.n.localeCompare(b.n));
  for (const o of others) {
    if (out.length >= rf) break;
    out.push({ node: o.n, cvmIp: o.d.cvmIp, disk: o.d.serial });
  }
  if (out.length < rf) throw new UnavailableError(`cannot place ${rf} replicas on distinct nodes: only ${out.length} node(s) have a healthy disk with ${needBytes} bytes free`);
  return out;
}

/** The pool takes no new extent groups at 95 % full (the reference platform's read-only threshold). */
export const POOL_FULL_FRACTION = 0.95;

/** Refuses new data when the healthy pool is 95 % full, instead of filling disks to the brim. */
export function checkPoolSpace(disks: readonly DiskSpace[], capacityOf: (serial: string) => number): void {
  const healthy = disks.filter((d) => d.ok);
  const capacity = healthy.reduce((a, d) => a + capacityOf(d.serial), 0);
  const free = healthy.reduce((a, d) => a + d.freeBytes, 0);
  if (capacity > 0 && (capacity - free) / capacity >= POOL_FULL_FRACTION) throw new DiskFullError('storage pool', capacity);
}
