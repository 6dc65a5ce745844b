/**
 * @module
 * Capacity accounting (pure): what the pool holds, per disk, per node and per container.
 *
 *  - A disk's used bytes are what its DiskVolume holds (data and checksums of every replica on it,
 *    including replicas waiting for the sweep); free is capacity minus used; a failed disk counts
 *    toward capacity but offers nothing.
 *  - A container's logical bytes are the written 1 MiB blocks of its vdisks; its physical bytes are
 *    those blocks times their replicas (what the container costs the pool).
 */
import { BLOCK_BYTES, type Container, type Pool, type Vdisk } from './storage.ts';

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
}

/**
 * @param live   each disk's used bytes and health as its CVM reports it (absent = not known: 0, healthy)
 * @param blocks per vdisk uuid, the number of replicas of each written block
 */
export function usageOf(pool: Pool, live: ReadonlyMap<string, { usedBytes: number; ok: boolean }>, containers: readonly Container[], vdisks: readonly Vdisk[], blocks: ReadonlyMap<string, readonly number[]>): PoolUsage {
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
  return {
    capacityBytes: pool.capacityBytes,
    usedBytes: disks.reduce((a, d) => a + d.usedBytes, 0),
    freeBytes: healthy.reduce((a, d) => a + Math.max(0, d.capacityBytes - d.usedBytes), 0),
    healthyCapacityBytes: healthy.reduce((a, d) => a + d.capacityBytes, 0),
    disks,
    nodes: [...nodes.values()].sort((a, b) => a.node.localeCompare(b.node)),
    containers: containers.map((c) => {
      const mine = vdisks.filter((v) => v.container === c.name);
      const reps = mine.flatMap((v) => blocks.get(v.uuid) ?? []);
      return {
        name: c.name, replicationFactor: c.replicationFactor, vdisks: mine.length,
        provisionedBytes: mine.reduce((a, v) => a + v.sizeBytes, 0),
        logicalBytes: reps.length * BLOCK_BYTES,
        physicalBytes: reps.reduce((a, n) => a + n, 0) * BLOCK_BYTES,
      };
    }),
  };
}
