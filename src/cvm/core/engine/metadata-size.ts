/**
 * @module
 * How big the configuration store (etcd) gets under storage engine v2's layout (ADR 015, layout.ts):
 * a metadata-only simulation. Every extent group a workload writes is placed as the engine places
 * it (place.ts: first replica on the writer's node, the others on the freest other nodes), its
 * record is encoded as it is stored (the key, and the JSON of its EgroupRecord), and keys and bytes
 * are summed, with the owner key of every vdisk and the liveness key of every node.
 *
 * Pure: no I/O, no clock. Random writes are counted by expectation (how many distinct extent groups
 * n uniform random writes touch), so 100 TiB is simulated without 100 TiB of requests.
 */
import { placeEgroup } from './place.ts';
import type { SpaceDisk } from './ports.ts';
import { EGROUP_BYTES, EXTENT_BYTES, KEYS, type EgroupRecord, type OwnerRecord, type ReplicaLocation } from './layout.ts';

export const GIB = 2 ** 30;
export const TIB = 2 ** 40;
/** etcd's default backend quota (`--quota-backend-bytes` unset). */
export const ETCD_DEFAULT_QUOTA_BYTES = 2 * GIB;
/** etcd's documented recommended maximum for the backend quota. */
export const ETCD_RECOMMENDED_MAX_BYTES = 8 * GIB;
/** Issue 12's goal for the configuration store: keys per TiB written. */
export const KEYS_PER_TIB_GOAL = 10_000;

export interface ClusterShape {
  nodes: number;
  disksPerNode: number;
  diskBytes: number;
  rf: number;
}

export interface Workload {
  /** Bytes the guests write in all (counted once, not per replica). */
  writtenBytes: number;
  /** Size of each vdisk. Vdisks are added, their writers' nodes round-robin, until writtenBytes is written. */
  vdiskBytes: number;
  /**
   * `sequential`: each vdisk is written from its start (every extent group full but the last);
   * `random`: requests of `ioBytes` at uniform random aligned offsets over the whole vdisk.
   */
  pattern: 'sequential' | 'random';
  /** Request size of the random pattern (default 4 KiB). */
  ioBytes?: number;
}

/** How nodes, disks and vdisks are named in the records (their lengths are what matter). */
export interface Naming {
  node(i: number): string;
  cvmIp(i: number): string;
  disk(node: number, disk: number): string;
  vdisk(i: number): string;
}

/** Names shaped like a lab cluster's: node and disk serials, CVM addresses, vdisk UUIDs. */
export const LAB_NAMING: Naming = {
  node: (i) => `CVG${String(i + 1).padStart(8, '0')}`,
  cvmIp: (i) => `10.${Math.floor(i / 250)}.1.${(i % 250) + 1}`,
  disk: (n, d) => `ZA${String(n * 100 + d).padStart(8, '0')}`,
  vdisk: (i) => `${i.toString(16).padStart(8, '0')}-0000-4000-8000-000000000000`,
};

export interface MetadataSize {
  vdisks: number;
  writtenBytes: number;
  egroupKeys: number;
  ownerKeys: number;
  livenessKeys: number;
  keys: number;
  /** Keys and values as stored (UTF-8 bytes), without etcd's own per-key overhead. */
  bytes: number;
  egroupBytes: number;
  keysPerTiB: number;
  bytesPerTiB: number;
  /** Extent-group replicas per disk, least and most loaded (placement's balance). */
  replicasPerDisk: { min: number; max: number };
  /** Bytes allocated on disks (all replicas), and the pool's raw capacity. */
  allocatedBytes: number;
  capacityBytes: number;
}

/** One key-value pair as stored: UTF-8 bytes of the key and of the JSON value. */
export function storedBytes(key: string, value: unknown): number {
  return Buffer.byteLength(key) + Buffer.byteLength(JSON.stringify(value));
}

/** Expected number of distinct cells among `cells` hit by `n` uniform random draws. */
export function expectedDistinct(cells: number, n: number): number {
  if (cells <= 0 || n <= 0) return 0;
  // cells * (1 - (1 - 1/cells)^n), in a form that stays accurate for huge cells
  return cells * -Math.expm1(n * Math.log1p(-1 / cells));
}

/** Extent groups and extents (1 MiB) that writing `bytes` of one vdisk touches. */
export function touched(vdiskBytes: number, bytes: number, pattern: Workload['pattern'], ioBytes = 4096): { egroups: number; extents: number } {
  if (pattern === 'sequential') {
    const b = Math.min(bytes, vdiskBytes);
    return { egroups: Math.ceil(b / EGROUP_BYTES), extents: Math.ceil(b / EXTENT_BYTES) };
  }
  const n = bytes / ioBytes;
  return {
    egroups: Math.round(expectedDistinct(Math.ceil(vdiskBytes / EGROUP_BYTES), n)),
    extents: Math.round(expectedDistinct(Math.ceil(vdiskBytes / EXTENT_BYTES), n)),
  };
}

/**
 * Places every extent group `w` writes on `c` and sums the records the configuration store keeps.
 * Throws (placement's UnavailableError or DiskFullError) if the cluster cannot hold the data.
 * `sink`, if given, sees every key and value as it would be stored (e.g. to load them into a real etcd).
 */
export function simulateMetadata(c: ClusterShape, w: Workload, naming: Naming = LAB_NAMING, sink?: (key: string, value: string) => void): MetadataSize {
  const disks: SpaceDisk[] = [];
  for (let n = 0; n < c.nodes; n++) {
    for (let d = 0; d < c.disksPerNode; d++) disks.push({ serial: naming.disk(n, d), node: naming.node(n), cvmIp: naming.cvmIp(n), freeBytes: c.diskBytes, ok: true, media: 'hdd' });
  }
  const bySerial = new Map(disks.map((d) => [d.serial, d]));
  const count = new Map<string, number>(disks.map((d) => [d.serial, 0]));
  let egroupKeys = 0;
  let egroupBytes = 0;
  let ownerBytes = 0;
  let allocated = 0;
  let vdisks = 0;
  for (let left = w.writtenBytes; left > 0; vdisks++) {
    // each vdisk takes up to its size in writes (sequential: filled from its start; random: spread over all of it)
    const bytes = Math.min(left, w.vdiskBytes);
    left -= bytes;
    const writer = vdisks % c.nodes;
    const vdisk = naming.vdisk(vdisks);
    const t = touched(w.vdiskBytes, bytes, w.pattern, w.ioBytes);
    // bytes each extent group allocates on each of its replicas (whole extents)
    const perEgroup = t.egroups > 0 ? (t.extents * EXTENT_BYTES) / t.egroups : 0;
    for (let g = 0; g < t.egroups; g++) {
      const replicas: ReplicaLocation[] = placeEgroup(disks, naming.node(writer), c.rf, perEgroup);
      for (const r of replicas) {
        const d = bySerial.get(r.disk);
        if (d) d.freeBytes -= perEgroup;
        count.set(r.disk, (count.get(r.disk) ?? 0) + 1);
      }
      allocated += perEgroup * replicas.length;
      const rec: EgroupRecord = { replicas, stale: [] };
      egroupKeys++;
      egroupBytes += storedBytes(KEYS.egroup(vdisk, g), rec);
      sink?.(KEYS.egroup(vdisk, g), JSON.stringify(rec));
    }
    const owner: OwnerRecord = { node: naming.node(writer), cvmIp: naming.cvmIp(writer) };
    ownerBytes += storedBytes(KEYS.owner(vdisk), owner);
    sink?.(KEYS.owner(vdisk), JSON.stringify(owner));
  }
  let livenessBytes = 0;
  for (let n = 0; n < c.nodes; n++) {
    const alive = { node: naming.node(n), cvmIp: naming.cvmIp(n) };
    livenessBytes += storedBytes(KEYS.alive(naming.node(n)), alive);
    sink?.(KEYS.alive(naming.node(n)), JSON.stringify(alive));
  }
  const keys = egroupKeys + vdisks + c.nodes;
  const bytes = egroupBytes + ownerBytes + livenessBytes;
  const tib = w.writtenBytes / TIB;
  const per = [...count.values()];
  return {
    vdisks, writtenBytes: w.writtenBytes, egroupKeys, ownerKeys: vdisks, livenessKeys: c.nodes, keys, bytes, egroupBytes,
    keysPerTiB: keys / tib, bytesPerTiB: bytes / tib,
    replicasPerDisk: { min: Math.min(...per), max: Math.max(...per) },
    allocatedBytes: Math.round(allocated), capacityBytes: c.nodes * c.disksPerNode * c.diskBytes,
  };
}
