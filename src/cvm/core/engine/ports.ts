/**
 * @module
 * The interfaces the v2 data path (owner.ts) runs over (docs/adr/015-storage-engine-v2.md). The
 * owner is pure decision code: every replica frame, configuration-store call, liveness signal and
 * timer goes through one of these ports. The simulator (sim/) implements them with fakes; the CVM
 * implements them with extent files, the binary replication protocol and etcd.
 */
import type { Clock } from '../../../shared/clock.ts';
import { ConflictError, DiskIoError } from '../../../shared/errors.ts';
import type { EgroupRecord, ReplicaLocation } from './layout.ts';

export type { Clock };

/** A write frame to one replica: whole pages (the owner merges partial pages first). */
export interface WriteFrame {
  vdisk: string;
  egroup: number;
  /** The owner's epoch (its ownership key's create revision). */
  epoch: number;
  /** The extent group's generation for this write (strictly increasing per extent group within an epoch). */
  gen: number;
  extent: number;
  /** Byte offset within the extent, page aligned. */
  inner: number;
  /** Page-multiple payload; absent for `zero`. */
  data: Uint8Array | null;
  /** Number of bytes covered (page multiple). */
  length: number;
  /** true: the pages read as zeros from now on (TRIM / WRITE_ZEROES); no data is sent. */
  zero: boolean;
  /** CRC32C of each page of `data` (computed once where the data entered); empty for `zero`. */
  crcs: number[];
}

export interface ReadRequest {
  vdisk: string;
  egroup: number;
  extent: number;
  inner: number;
  length: number;
}

/** Pages read by a replica. */
export interface ReadResult {
  data: Uint8Array;
  /**
   * The pages' stored checksums, when the replica leaves the check to the owner (the simulator's
   * model). Absent: the replica verified every page against its stored checksums itself (the
   * extent store does on every read, and a checksum recomputed from bytes just received proves
   * nothing more), and a bad page came back as CorruptPageError.
   */
  crcs?: number[];
}

/** Where an extent stands on one replica: the epoch and generation of the last write it applied. */
export interface ExtentVersion {
  epoch: number;
  gen: number;
}

/** A whole extent, for copies (resync, read repair, re-replication). Pages absent read as zeros. */
export interface ExtentImage {
  version: ExtentVersion;
  pages: Map<number, { data: Uint8Array; crc: number }>;
}

/** A replica refused a frame: it has seen a higher epoch for the extent group (a newer owner). */
export class StaleEpochError extends ConflictError {
  constructor(readonly seen: number, readonly sent: number) {
    super(`stale epoch ${sent}: the replica has seen epoch ${seen}`);
  }
}

/** A replica refused a write whose generation is not above the extent's (a late or replayed frame). */
export class StaleGenerationError extends ConflictError {}

/** The CVM asked does not own the vdisk (any more): the sender finds the owner again. */
export class NotOwnerError extends ConflictError {}

/** The owner refused to hand a vdisk over: its own host uses it. */
export class HandoffRefusedError extends ConflictError {}

/** Pages whose data matches neither stored checksum. */
export class CorruptPageError extends DiskIoError {
  constructor(disk: string, readonly pages: number[]) {
    super(disk, `checksum mismatch on page(s) ${pages.join(', ')}`);
  }
}

/** Replica I/O: one call = one frame of the replication protocol (or a local extent-store call). */
export interface ReplicaIo {
  write(loc: ReplicaLocation, frame: WriteFrame): Promise<void>;
  read(loc: ReplicaLocation, req: ReadRequest): Promise<ReadResult>;
  /** Per extent, its version; raises the replica's epoch floor for the extent group to `epoch` (fences older owners). */
  extentGens(loc: ReplicaLocation, vdisk: string, egroup: number, epoch: number): Promise<Map<number, ExtentVersion>>;
  /** A whole extent, every page verified (throws CorruptPageError); null when the replica has none. */
  readExtent(loc: ReplicaLocation, vdisk: string, egroup: number, extent: number): Promise<ExtentImage | null>;
  /** Replaces an extent (null: deletes it) with a copy; refused below the epoch floor. */
  writeExtent(loc: ReplicaLocation, vdisk: string, egroup: number, extent: number, epoch: number, image: ExtentImage | null): Promise<void>;
  /** SYNC(vdisk): the CVM fdatasyncs every file of the vdisk in its dirty set. */
  sync(cvm: { node: string; cvmIp: string }, vdisk: string): Promise<void>;
}

export interface Versioned<T> {
  value: T;
  /** The key's mod revision (compare-and-swap token). */
  version: number;
}

export type CasResult = { ok: true; record: Versioned<EgroupRecord> } | { ok: false; reason: 'version' | 'epoch' | 'exists' };

/** The configuration store (etcd): extent-group records and vdisk ownership. */
export interface MetaStore {
  getEgroup(vdisk: string, egroup: number): Promise<Versioned<EgroupRecord> | null>;
  listEgroups(vdisk: string): Promise<Map<number, Versioned<EgroupRecord>>>;
  /** Creates a record if absent, only while `epoch` still owns the vdisk (one etcd transaction). */
  createEgroup(vdisk: string, egroup: number, epoch: number, record: EgroupRecord): Promise<CasResult>;
  /** Replaces a record if its version is `version` and `epoch` still owns the vdisk. */
  casEgroup(vdisk: string, egroup: number, epoch: number, version: number, record: EgroupRecord): Promise<CasResult>;
  /**
   * Puts the owner key under this CVM's lease; the epoch is its create revision. ConflictError when
   * another CVM holds it; idempotent when this CVM (same lease) already does (a lost answer must
   * not lock the vdisk until the lease ends): the CVM keeps one owner per vdisk.
   */
  acquireOwner(vdisk: string, owner: { node: string; cvmIp: string }): Promise<{ epoch: number }>;
  releaseOwner(vdisk: string, epoch: number): Promise<void>;
  /** Local, no I/O: true while this CVM's lease surely holds (last keep-alive sent + TTL not passed). */
  leaseValid(): boolean;
}

/** The one failure detector: a node is declared down once (`/converge/v2/down/<node>`). */
export interface Liveness {
  isDown(node: string): boolean;
  /** Called when a node is declared down; returns an unsubscribe. */
  subscribe(onDown: (node: string) => void): () => void;
}

export type Media = 'ssd' | 'hdd';

export interface SpaceDisk {
  serial: string;
  node: string;
  cvmIp: string;
  freeBytes: number;
  ok: boolean;
  media: Media;
}

/** Where new replicas may go. */
export interface PlacementSpace {
  disks(): readonly SpaceDisk[];
}

/** CRC32C of one page (native SIMD in the CVM, pure JS in the simulator). */
export type Checksum = (page: Uint8Array) => number;

/** Switches that put back known v1 bugs (the simulator must catch each). Off in production. */
export interface Bugs {
  /** FLUSH syncs only the owner's own CVM (v1: FLUSH after a failover reached a CVM that never saw the writes). */
  flushOnlyLocal?: boolean;
  /** Read repair copies the good extent without the extent group's write lock (v1: raced client writes). */
  readRepairWithoutLock?: boolean;
}

export const locKey = (l: ReplicaLocation): string => `${l.node}/${l.disk}`;
export const sameLoc = (a: ReplicaLocation, b: ReplicaLocation): boolean => a.node === b.node && a.disk === b.disk;
