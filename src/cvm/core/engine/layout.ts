/**
 * @module
 * The data layout of storage engine v2 (docs/adr/015-storage-engine-v2.md): the units every part of
 * the engine agrees on, and the records kept in the configuration store. Pure; no I/O.
 *
 *   vdisk ──cut into── extent groups: aligned 128 MiB regions of one vdisk, each replicated RF times
 *                      (every extent of an extent group lives on the same RF disks)
 *         └─cut into── extents: 1 MiB, the unit of allocation, of a file on a disk, of resync
 *                      └─ pages: 4 KiB, the unit of checksums (CRC32C)
 */

/** Checksum unit. */
export const PAGE_BYTES = 4096;
/** Allocation, file and resync unit. */
export const EXTENT_BYTES = 1 << 20;
export const PAGES_PER_EXTENT = EXTENT_BYTES / PAGE_BYTES;
/** Extents per extent group. */
export const EGROUP_EXTENTS = 128;
/** Replication and metadata unit: one configuration-store record per written 128 MiB of a vdisk. */
export const EGROUP_BYTES = EXTENT_BYTES * EGROUP_EXTENTS;

/** The extent store's two 4 KiB header slots before an extent's data (node/extent-store.ts DATA_AT). */
export const EXTENT_HEADER_BYTES = 8192;

/** Where a byte offset of a vdisk lies. */
export interface Position {
  /** Extent group index within the vdisk. */
  egroup: number;
  /** Extent index within the extent group (0..EGROUP_EXTENTS-1). */
  extent: number;
  /** Byte offset within the extent. */
  inner: number;
}

export function positionOf(offset: number): Position {
  const egroup = Math.floor(offset / EGROUP_BYTES);
  const inEgroup = offset - egroup * EGROUP_BYTES;
  const extent = Math.floor(inEgroup / EXTENT_BYTES);
  return { egroup, extent, inner: inEgroup - extent * EXTENT_BYTES };
}

/** One piece of a request that stays inside one extent. */
export interface ExtentSlice extends Position {
  /** Offset of the slice within the request. */
  at: number;
  length: number;
}

/** Cuts [offset, offset+length) into per-extent slices, in order. */
export function slices(offset: number, length: number): ExtentSlice[] {
  const out: ExtentSlice[] = [];
  for (let pos = offset; pos < offset + length;) {
    const p = positionOf(pos);
    const n = Math.min(EXTENT_BYTES - p.inner, offset + length - pos);
    out.push({ ...p, at: pos - offset, length: n });
    pos += n;
  }
  return out;
}

/** A replica's home: a disk of a node (the CVM at cvmIp serves it). */
export interface ReplicaLocation {
  node: string;
  cvmIp: string;
  disk: string;
}

/**
 * The configuration-store record of one extent group (`/converge/v2/egroups/<vdisk>/<egroup>`).
 * It changes only when the replica set changes (placement, a replica dropped, a new one added),
 * never on a data write: generations live with the replicas, not here.
 *  - `replicas`: the in-sync set: each holds every acknowledged write.
 *  - `stale`: replicas that missed a write (or are being rebuilt); never read, resynced or dropped.
 */
export interface EgroupRecord {
  replicas: ReplicaLocation[];
  stale: ReplicaLocation[];
}

/** `/converge/v2/owners/<vdisk>`, put under the owner CVM's lease; `epoch` is the key's create revision. */
export interface OwnerRecord {
  node: string;
  cvmIp: string;
}

export const KEYS = {
  egroup: (vdisk: string, egroup: number): string => `/converge/v2/egroups/${vdisk}/${egroup}`,
  egroupsOf: (vdisk: string): string => `/converge/v2/egroups/${vdisk}/`,
  owner: (vdisk: string): string => `/converge/v2/owners/${vdisk}`,
  /** A CVM's liveness, under its lease. */
  alive: (node: string): string => `/converge/v2/alive/${node}`,
  /** A node declared down (once, by whoever saw its liveness key go first). */
  down: (node: string): string => `/converge/v2/down/${node}`,
} as const;
