/**
 * @module
 * Capacity accounting (pure): what the pool holds, per disk, per node and per container.
 *
 *  - A disk's used bytes are what its DiskVolume holds (data and checksums of every replica on it,
 *    including replicas waiting for the sweep); free is capacity minus used; a failed disk counts
 *    toward capacity but offers nothing.
 *  - A container's physical bytes are what its vdisks' extents take on the healthy disks, as each
 *    CVM reports per disk and vdisk (extents holding data × 1 MiB: an extent counts whole however
 *    little of it was written): what the container costs the pool. Its logical bytes are physical
 *    / its RF: what the vdisks hold once, exact while every extent group is at its RF (during a
 *    re-protection a missing replica lowers it, an extra one being built raises it). The extent-
 *    group records say where data is, not how much: they change only when replicas move.
 */
import type { Container, Pool, Vdisk } from './storage.ts';

export interface DiskUse {
  serial: string;
  node: string;
  cvmIp: string;
  capacityBytes: number;
  usedBytes: number;
  ok: boolean;
}

export interface NodeUse {
  node: string;
  cvmIp: string;
  capacityBytes: number;
  usedBytes: number;
  disks: number;
  failedDisks: number;
}

export interface ContainerUse {
  name: string;
  replicationFactor: number;
  vdisks: number;
  provisionedBytes: number;
  logicalBytes: number;
  physicalBytes: number;
}

export interface PoolUsage {
  capacityBytes: number;
  usedBytes: number;
  /** Free space on healthy disks. */
  freeBytes: number;
  /** Capacity of healthy disks. */
  healthyCapacityBytes: number;
  disks: DiskUse[];
  nodes: NodeUse[];
  containers: ContainerUse[];
  /** Healthy disks whose bytes per vdisk are not known (their CVM did not answer or has not counted yet): containers' bytes leave them out. */
  uncountedDisks: string[];
}

/** A disk as its CVM reports it (CvmStatus.disks). */
export interface LiveDisk {
  usedBytes: number;
  ok: boolean;
  /** Bytes per vdisk uuid on the disk (absent: not known). */
  vdiskBytes?: Readonly<Record<string, number>>;
}

/**
 * @param live each disk's used bytes, health and bytes per vdisk as its CVM reports it (absent = not
 *             known: 0, healthy, uncounted)
 */
export function usageOf(pool: Pool, live: ReadonlyMap<string, LiveDisk>, containers: readonly Container[], vdisks: readonly Vdisk[]): PoolUsage {
  const disks = pool.disks.map((d) => ({ serial: d.serial, node: d.node, cvmIp: d.cvmIp, capacityBytes: d.capacityBytes, usedBytes: live.get(d.serial)?.usedBytes ?? 0, ok: live.get(d.serial)?.ok ?? true }));
  const nodes = new Map<string, NodeUse>();
  for (const d of disks) {
    const n = nodes.get(d.node) ?? { node: d.node, cvmIp: d.cvmIp, capacityBytes: 0, usedBytes: 0, disks: 0, failedDisks: 0 };
    n.capacityBytes += d.capacityBytes;
    n.usedBytes += d.usedBytes;
    n.disks++;
    if (!d.ok) n.failedDisks++;
    nodes.set(d.node, n);
  }
  const healthy = disks.filter((d) => d.ok);
  const counts = healthy.map((d) => live.get(d.serial)?.vdiskBytes);
  const bytesOf = (uuid: string): number => counts.reduce((a, c) => a + (c?.[uuid] ?? 0), 0);
  return {
    capacityBytes: pool.capacityBytes,
    usedBytes: disks.reduce((a, d) => a + d.usedBytes, 0),
    freeBytes: healthy.reduce((a, d) => a + Math.max(0, d.capacityBytes - d.usedBytes), 0),
    healthyCapacityBytes: healthy.reduce((a, d) => a + d.capacityBytes, 0),
    disks,
    nodes: [...nodes.values()].sort((a, b) => a.node.localeCompare(b.node)),
    containers: containers.map((c) => {
      const mine = vdisks.filter((v) => v.container === c.name);
      const physicalBytes = mine.reduce((a, v) => a + bytesOf(v.uuid), 0);
      return {
        name: c.name, replicationFactor: c.replicationFactor, vdisks: mine.length,
        provisionedBytes: mine.reduce((a, v) => a + v.sizeBytes, 0),
        logicalBytes: Math.floor(physicalBytes / c.replicationFactor),
        physicalBytes,
      };
    }),
    uncountedDisks: healthy.filter((_, i) => counts[i] === undefined).map((d) => d.serial),
  };
}
