/**
 * @module
 * The local extent store (storage engine v2, ADR 015 "Checksums and atomicity", "Fast path"): the
 * 1 MiB extents of vdisks on this CVM's DiskVolumes (capacity and disk failures apply), one file
 * per extent: `extents/<vdisk uuid>/<extent index in the vdisk>`.
 *
 * File format (version 1; the v1 format of `egroups/<vdisk>/<block>` + `.crc` files is NOT
 * migrated: labs are rebuilt):
 * ```
 *   0      header copy A (HEADER_BYTES, padded to 4 KiB)   written by writes with an even seq
 *   4096   header copy B (HEADER_BYTES, padded to 4 KiB)   written by writes with an odd seq
 *   8192   data: 256 pages of 4 KiB (the file ends at the last page written: unwritten = sparse)
 *
 * Header (big endian):
 *   0  u32 magic 0x43565832 ("CVX2")   4  u16 version (1)   6  u16 0
 *   8  u64 epoch (the writer's ownership epoch; lower epochs are refused)
 *  16  u64 generation (per extent; +1 per write unless the caller names it)
 *  24  u64 seq (+1 per header written: the newest valid copy wins)
 *  32  32 bytes: bitmap, page is zero now     64  32 bytes: bitmap, page was zero before its last write
 *  96  256 × (u32 current CRC32C, u32 previous CRC32C) of the pages
 *  2144 u32 CRC32C of bytes 0..2143
 * ```
 * A write is one vectored write (`pwritev`) of its header copy and its pages when it starts at
 * page 0 (the header copies sit right before the data); otherwise the header copy and the pages
 * are two positioned writes issued together. After a crash the newest valid header copy wins and
 * a page is good if it matches its current or its previous checksum (or was zero before and reads
 * as zeros), so a write torn between its header and its pages reads as the old data or the new
 * when its header landed. Pages that landed without their header match neither and read as a
 * ChecksumError (never as wrong data): the write was not acknowledged, and the owner repairs the
 * page from another replica.
 *
 * Invariants:
 *  1. A page is never given a checksum of data that was not verified (or handed in by the caller
 *     with its checksum): a partial-page write reads and verifies the old page first.
 *  2. Operations on one extent are serialized; the cached header is the one on disk (this process
 *     is the disk's only user: the DiskVolume is claimed).
 *  3. A write whose epoch is lower than the extent's is refused (EpochError) and changes nothing.
 *  4. Zeroed pages are marked in the header, not written; an extent whose every page is zero keeps
 *     only its header (8 KiB: its epoch and generation stay for fencing and resync).
 *  5. No synchronous syscalls on the event loop; memory per operation is bounded by the extent size.
 *  7. Oplog (oplog.ts): a write of at most OPLOG_MAX_PAGES pages to an existing extent is appended
 *     to its disk's oplog and its pages kept in memory (read from there) until drained; the
 *     cached header of such an extent is newer than its file's and is never evicted. Drains run
 *     under the extent's lock (the pages written by the drain thread); an extent is deleted only
 *     after its disk's oplog is drained (checkpoint); a disk's oplog is replayed before the disk
 *     serves anything after a restart (replay()).
 *  6. The store knows which extents hold data past their header (a bit per extent, counted from the
 *     disks once, then kept by every write, zero and drop): vdiskBytes() answers per disk and vdisk
 *     without touching the disks (the CVM's status reports it; usage is computed from it).
 */
import { crc32c } from '@node-rs/crc32';
import { ConflictError, DiskIoError, InputError, NotFoundError } from '../../shared/errors.ts';
import type { DiskVolume } from '../../shared/disk-volume.ts';
import { isDiskFailed } from '../../shared/disk-volume.ts';
import { KeyedLock } from '../../shared/keyed-lock.ts';
import { mapLimit } from '../../shared/async.ts';
import { EGROUP_EXTENTS, EXTENT_BYTES, PAGE_BYTES } from '../core/engine/layout.ts';
import { SystemClock, type Clock, type Disposable } from '../../shared/clock.ts';
import { OplogSegment, encodeRecord, recordBytes } from './oplog.ts';
import { DrainWorker, type DrainJob } from './drain-worker.ts';

export const EXTENT_MAGIC = 0x43565832;
export const EXTENT_VERSION = 1;
export const HEADER_BYTES = 2148;
const SLOT = 4096;
/** Where the data starts in an extent file. */
export const DATA_AT = 2 * SLOT;
const CRC_AT = 96;
const BITMAP_NOW = 32;
const BITMAP_BEFORE = 64;
const HCRC_AT = HEADER_BYTES - 4;
const PAD = Buffer.alloc(SLOT - HEADER_BYTES);
const ZERO_PAGE = Buffer.alloc(PAGE_BYTES);
/** CRC32C of a page of zeros. */
export const ZERO_PAGE_CRC = crc32c(ZERO_PAGE);
/** Parsed headers kept (about 2.2 KiB each). */
const HEADER_CACHE = 4096;

/** A replica whose data does not match its checksums: read another, then repair this one. */
export class ChecksumError extends DiskIoError {}

/** A write from an owner whose epoch is older than the one the extent has seen: it lost ownership. */
export class EpochError extends ConflictError {
  constructor(readonly extent: string, readonly epoch: number, readonly stored: number) {
    super(`extent ${extent}: epoch ${epoch} is older than the extent's ${stored} (a newer owner wrote it)`);
  }
}

export interface ExtentRef {
  disk: string;
  vdisk: string;
  /** Extent index within the vdisk (byte offset / 1 MiB). */
  block: number;
}

export interface ExtentWrite {
  /** The writer's ownership epoch (0 = unfenced, v1). */
  epoch?: number;
  /** The extent's generation after the write; default: the stored one + 1. */
  generation?: number;
  /**
   * The CRC32C of every whole page the write covers, in order (pageCrcs()), computed once where the
   * data entered; stored as given. Pages only partly covered are checksummed here after the merge.
   */
  crcs?: Uint32Array;
  /** Durable before it resolves (FUA). */
  sync?: boolean;
}

export interface ExtentMeta {
  epoch: number;
  generation: number;
}

/** The whole pages a range of an extent covers: [first, first + count). */
export function wholePages(offset: number, length: number): { first: number; count: number } {
  const first = Math.ceil(offset / PAGE_BYTES);
  const end = Math.floor((offset + length) / PAGE_BYTES);
  return { first, count: Math.max(0, end - first) };
}

/** The chunks' bytes [from, to) as views (no copy). */
function range(chunks: readonly Uint8Array[], from: number, to: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (const c of chunks) {
    const end = at + c.byteLength;
    if (end > from && at < to) out.push(c.subarray(Math.max(0, from - at), Math.min(c.byteLength, to - at)));
    at = end;
    if (at >= to) break;
  }
  return out;
}

function crcOfParts(parts: readonly Uint8Array[]): number {
  let c = 0;
  for (const p of parts) c = crc32c(p, c);
  return c;
}

/**
 * CRC32C of every whole page of a write of `chunks` at `offset` of an extent (see wholePages), in
 * one pass over the data, without joining the chunks.
 */
export function pageCrcs(offset: number, chunks: readonly Uint8Array[]): Uint32Array {
  const length = chunks.reduce((n, c) => n + c.byteLength, 0);
  const { first, count } = wholePages(offset, length);
  const out = new Uint32Array(count);
  const c0 = chunks.length === 1 ? chunks[0] : undefined;
  for (let i = 0; i < count; i++) {
    const from = (first + i) * PAGE_BYTES - offset;
    out[i] = c0 ? crc32c(c0.subarray(from, from + PAGE_BYTES)) : crcOfParts(range(chunks, from, from + PAGE_BYTES));
  }
  return out;
}

/** Page checksums of recently written buffers, by buffer: computed once for every replica of a write. */
const crcMemo = new WeakMap<Uint8Array, { offset: number; crcs: Uint32Array }>();

/** The CRC32C of every whole 4 KiB page of a write of `data` at `offset` of an extent, computed once per buffer. */
export function crcsFor(data: Uint8Array, offset: number): Uint32Array {
  const m = crcMemo.get(data);
  if (m && m.offset === offset) return m.crcs;
  const crcs = pageCrcs(offset, [data]);
  crcMemo.set(data, { offset, crcs });
  return crcs;
}

const bit = (b: Buffer, at: number, page: number): boolean => ((b[at + (page >> 3)] ?? 0) & (1 << (page & 7))) !== 0;
function setBit(b: Buffer, at: number, page: number, on: boolean): void {
  const i = at + (page >> 3);
  b[i] = on ? (b[i] ?? 0) | (1 << (page & 7)) : (b[i] ?? 0) & ~(1 << (page & 7));
}
const u64 = (b: Buffer, at: number): number => b.readUInt32BE(at) * 2 ** 32 + b.readUInt32BE(at + 4);
function setU64(b: Buffer, at: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / 2 ** 32), at);
  b.writeUInt32BE(v >>> 0, at + 4);
}

/** An extent's header as kept in memory: the newest valid copy, serialized. */
interface Header {
  /** The file exists (else: never written, or dropped; reads as zeros). */
  exists: boolean;
  /** No valid header copy on a file that had one: every read fails until a whole-extent write. */
  corrupt: boolean;
  /** The newest copy (HEADER_BYTES), in slot seq % 2; the other slot holds an older one. */
  cur: Buffer;
}

const seqOf = (h: Buffer): number => u64(h, 24);

function freshHeader(): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeUInt32BE(EXTENT_MAGIC, 0);
  h.writeUInt16BE(EXTENT_VERSION, 4);
  h.fill(0xff, BITMAP_NOW, BITMAP_NOW + 32);
  h.fill(0xff, BITMAP_BEFORE, BITMAP_BEFORE + 32);
  return h;
}

function validCopy(b: Buffer): boolean {
  return b.length >= HEADER_BYTES && b.readUInt32BE(0) === EXTENT_MAGIC && b.readUInt16BE(4) === EXTENT_VERSION && crc32c(b.subarray(0, HCRC_AT)) === b.readUInt32BE(HCRC_AT);
}

/** Picks the newest valid header copy of the first DATA_AT bytes of an extent file. */
export function parseHeaders(head: Buffer): Pick<Header, 'corrupt' | 'cur'> {
  const slot = (i: number): Buffer => {
    const b = Buffer.alloc(HEADER_BYTES);
    if (head.length > i * SLOT) head.copy(b, 0, i * SLOT, Math.min(head.length, i * SLOT + HEADER_BYTES));
    return b;
  };
  const a = slot(0);
  const b = slot(1);
  const va = validCopy(a);
  const vb = validCopy(b);
  if (va && vb) return { corrupt: false, cur: seqOf(a) > seqOf(b) ? a : b };
  if (va) return { corrupt: false, cur: a };
  if (vb) return { corrupt: false, cur: b };
  // No valid copy. The first write (seq 1) goes to slot B while slot A is still empty: a crash
  // that tore it leaves slot A zero. Then nothing was acknowledged: the extent is still empty.
  return { corrupt: !a.every((x) => x === 0), cur: freshHeader() };
}

/** The oplog's size per disk at most (the pages it holds are also kept in memory until drained). */
export const OPLOG_DEFAULT_BYTES = 64 * 1024 * 1024;
/** Extents drained per message to the drain thread (their client I/O waits for it meanwhile). */
const DRAIN_BATCH = 32;
/** Writes of at most this many pages go through the oplog; larger ones straight to the extent file. */
export const OPLOG_MAX_PAGES = 16;

/** One disk's oplog: two segments, appends to the active one while the other is drained or empty. */
interface DiskLog {
  segs: [OplogSegment, OplogSegment];
  active: 0 | 1;
  segBytes: number;
  /** Replay of what the segments held at start-up (every operation on the disk waits for it). */
  ready: Promise<void>;
  draining: Promise<void> | undefined;
  /** Appends go straight to the extent files while > 0 (a checkpoint). */
  paused: number;
  lastAppend: number;
  idle: Disposable | undefined;
  /** The last drain's failure (the segment stays full: writes go straight to the extent files). */
  error: unknown;
}

/** DiskVolume charges whole 4 KiB blocks per file. */
const roundUp4k = (n: number): number => Math.ceil(n / 4096) * 4096;

/**
 * Which extents hold data past their header, per disk and vdisk: one bit per extent (16 bytes per
 * extent group), and a count per vdisk. Setting a bit is idempotent, so the scan at start and the
 * writes that run meanwhile agree on the result whatever their order.
 */
class HeldExtents {
  private readonly disks = new Map<string, Map<string, { count: number; egroups: Map<number, Uint8Array> }>>();

  set(r: ExtentRef, on: boolean): void {
    let vd = this.disks.get(r.disk);
    if (!vd) this.disks.set(r.disk, (vd = new Map<string, { count: number; egroups: Map<number, Uint8Array> }>()));
    let v = vd.get(r.vdisk);
    if (!v) {
      if (!on) return;
      vd.set(r.vdisk, (v = { count: 0, egroups: new Map() }));
    }
    const eg = Math.floor(r.block / EGROUP_EXTENTS);
    const i = r.block - eg * EGROUP_EXTENTS;
    let bits = v.egroups.get(eg);
    if (!bits) {
      if (!on) return;
      v.egroups.set(eg, (bits = new Uint8Array(EGROUP_EXTENTS / 8)));
    }
    const mask = 1 << (i & 7);
    const was = ((bits[i >> 3] ?? 0) & mask) !== 0;
    if (was === on) return;
    bits[i >> 3] = on ? (bits[i >> 3] ?? 0) | mask : (bits[i >> 3] ?? 0) & ~mask;
    v.count += on ? 1 : -1;
    if (!on && bits.every((b) => b === 0)) v.egroups.delete(eg);
    if (v.count === 0) vd.delete(r.vdisk);
  }

  /** A vdisk's extents on a disk are all gone. */
  forget(disk: string, vdisk: string): void {
    this.disks.get(disk)?.delete(vdisk);
  }

  /** Per disk, the extents holding data per vdisk. */
  counts(): Map<string, Map<string, number>> {
    return new Map([...this.disks].map(([disk, vd]) => [disk, new Map([...vd].map(([vdisk, v]) => [vdisk, v.count]))]));
  }
}

/** Simulated crash for tests: the write puts only its header copy, or only its pages, on disk, then fails. */
export type TearWrite = 'header-only' | 'data-only';

export interface ExtentStoreOptions {
  /** Fault injection (tests): how to tear a write to an extent, if at all (such a store writes no oplog). */
  tear?: (ref: ExtentRef) => TearWrite | undefined;
  /**
   * Bytes of oplog per disk (two segments of half each); 0: small writes go straight to their
   * extent files. Default: a sixteenth of the disk, at most 64 MiB (OPLOG_DEFAULT_BYTES).
   */
  oplogBytes?: number;
  /** A disk's oplog is drained once no write was appended to it for this long (default 1000 ms). */
  oplogIdleMs?: number;
  clock?: Clock;
  /** Extent files made durable at once by syncVdisk. */
  syncParallel?: number;
}

/**
 * The extents on a set of disk volumes (the CVM's claimed disks). Every method may throw
 * NotFoundError (no such disk here), DiskIoError (failed disk), ChecksumError (a page does not
 * match its checksums), DiskFullError, EpochError (write fenced), InputError (out of range).
 */
export class ExtentStore {
  private locks = new KeyedLock();
  private headers = new Map<string, Header>();
  /** Pages written through the oplog and not yet drained to their extent file, by extent key. */
  private readonly overlays = new Map<string, Map<number, { data: Buffer; seg: OplogSegment }>>();
  /** Extents whose cached header is newer than their file's (written through the oplog): never evicted. */
  private readonly unwritten = new Set<string>();
  private readonly logs = new Map<string, DiskLog>();
  /** Disks whose oplog took writes of a vdisk since its last FLUSH, by vdisk. */
  private readonly logDirty = new Map<string, Set<string>>();
  private readonly clock: Clock;
  /** Writes drained pages with synchronous syscalls off the event loop. */
  private readonly drainer = new DrainWorker();
  /** Extents written since their last datasync, by vdisk: `disk\0block`. */
  private dirty = new Map<string, Set<string>>();
  /** Which extents hold data (kept by every write, zero and drop; counted from the disks once, at first use). */
  private readonly held = new HeldExtents();
  private counting: Promise<void> | undefined;
  private counted = false;

  constructor(private readonly vols: ReadonlyMap<string, DiskVolume>, private readonly opts: ExtentStoreOptions = {}) {
    this.clock = opts.clock ?? new SystemClock();
  }

  private vol(disk: string): DiskVolume {
    const v = this.vols.get(disk);
    if (!v) throw new NotFoundError('disk on this CVM', disk);
    return v;
  }

  /** The disk, once what its oplog held at start-up is in the extent files. */
  private async ready(disk: string): Promise<DiskVolume> {
    const v = this.vol(disk);
    await this.logOf(v).ready;
    return v;
  }

  private logOf(v: DiskVolume): DiskLog {
    let log = this.logs.get(v.serial);
    if (!log) {
      const bytes = this.opts.tear ? 0 : (this.opts.oplogBytes ?? Math.min(OPLOG_DEFAULT_BYTES, Math.floor(v.capacityBytes / 16)));
      const segs: [OplogSegment, OplogSegment] = [new OplogSegment(v, 'oplog/0'), new OplogSegment(v, 'oplog/1')];
      log = { segs, active: 0, segBytes: Math.floor(bytes / 2), ready: Promise.resolve(), draining: undefined, paused: 0, lastAppend: 0, idle: undefined, error: undefined };
      const l = log;
      l.ready = this.replay(v, l).catch((e: unknown) => {
        if (this.logs.get(v.serial) === l) this.logs.delete(v.serial); // a failed disk: tried again at next use
        throw e;
      });
      this.logs.set(v.serial, log);
    }
    return log;
  }

  static fileOf(r: ExtentRef): string {
    return `extents/${r.vdisk}/${r.block}`;
  }

  private key(r: ExtentRef): string {
    return `${r.disk}/${r.vdisk}/${r.block}`;
  }

  private name(r: ExtentRef): string {
    return `${r.vdisk}/${r.block} on ${r.disk}`;
  }

  /** The cached header of an extent, read from its file on a miss (absent file: a fresh one, remembered). */
  private async header(v: DiskVolume, r: ExtentRef): Promise<Header> {
    const k = this.key(r);
    const cached = this.headers.get(k);
    if (cached) {
      this.headers.delete(k); // most recently used goes last
      this.headers.set(k, cached);
      return cached;
    }
    const head = await v.readAt(ExtentStore.fileOf(r), DATA_AT, 0);
    const h: Header = head ? { exists: true, ...parseHeaders(head) } : { exists: false, corrupt: false, cur: freshHeader() };
    this.headers.set(k, h);
    // an evicted header in use stays valid for its user (held by reference); the next one rereads it
    if (this.headers.size > HEADER_CACHE) {
      for (const old of this.headers.keys()) {
        if (this.unwritten.has(old) || this.overlays.has(old)) continue; // newer than its file: kept until drained
        this.headers.delete(old);
        break;
      }
    }
    return h;
  }

  private checkRange(offset: number, length: number): void {
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > EXTENT_BYTES) {
      throw new InputError('offset', `an I/O must stay inside its ${EXTENT_BYTES}-byte extent`);
    }
  }

  /**
   * The good bytes of pages [first, first+count) under header `h`: zeros for zero pages, the data
   * for pages matching their current or previous checksum; ChecksumError for any other.
   */
  private async readPages(v: DiskVolume, r: ExtentRef, h: Header, first: number, count: number, settled?: Map<number, number | 'zero'>): Promise<Buffer> {
    if (h.corrupt) throw new ChecksumError(r.disk, `extent ${this.name(r)}: no valid header`);
    let allZero = true;
    for (let p = first; p < first + count && allZero; p++) allZero = bit(h.cur, BITMAP_NOW, p);
    if (!h.exists || allZero) return Buffer.alloc(count * PAGE_BYTES);
    const ov = this.overlays.get(this.key(r));
    let fromFile = !ov;
    for (let p = first; p < first + count && !fromFile; p++) fromFile = !bit(h.cur, BITMAP_NOW, p) && !ov?.has(p);
    const got = fromFile ? ((await v.readAt(ExtentStore.fileOf(r), count * PAGE_BYTES, DATA_AT + first * PAGE_BYTES)) ?? Buffer.alloc(0)) : Buffer.alloc(0);
    const buf = got.length === count * PAGE_BYTES ? got : Buffer.concat([got, Buffer.alloc(count * PAGE_BYTES - got.length)]); // past the end: a sparse tail
    for (let i = 0; i < count; i++) {
      const p = first + i;
      const page = buf.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES);
      if (bit(h.cur, BITMAP_NOW, p)) {
        page.fill(0);
        continue;
      }
      const logged = ov?.get(p);
      if (logged) {
        page.set(logged.data); // its checksum is the header's (it came with it)
        continue;
      }
      const m = this.matchOf(h, p, page);
      if (m === undefined) throw new ChecksumError(r.disk, `checksum mismatch in extent ${this.name(r)} at page ${p}`);
      if (m === 'zero' || m !== h.cur.readUInt32BE(CRC_AT + p * 8)) settled?.set(p, m);
    }
    return buf;
  }

  /** Which of its checksums a page's bytes match: the CRC to keep as its previous one, 'zero', or undefined (corrupt). */
  private matchOf(h: Header, p: number, page: Uint8Array): number | 'zero' | undefined {
    const c = crc32c(page);
    const cur = h.cur.readUInt32BE(CRC_AT + p * 8);
    if (c === cur) return c;
    if (bit(h.cur, BITMAP_BEFORE, p)) return c === ZERO_PAGE_CRC && ZERO_PAGE.equals(page) ? 'zero' : undefined;
    return c === h.cur.readUInt32BE(CRC_AT + p * 8 + 4) ? c : undefined;
  }

  async read(r: ExtentRef, offset: number, length: number): Promise<Buffer> {
    this.checkRange(offset, length);
    if (length === 0) return Buffer.alloc(0);
    const v = await this.ready(r.disk);
    return this.locks.run(this.key(r), async () => {
      const h = await this.header(v, r);
      const first = Math.floor(offset / PAGE_BYTES);
      const last = Math.floor((offset + length - 1) / PAGE_BYTES);
      const settled = new Map<number, number | 'zero'>();
      const pages = await this.readPages(v, r, h, first, last - first + 1, settled);
      if (settled.size > 0) await this.settle(v, r, h, settled);
      return pages.subarray(offset - first * PAGE_BYTES, offset - first * PAGE_BYTES + length);
    });
  }

  /**
   * Pages that hold what they held before their last write (torn by a crash: its header landed,
   * its pages did not) get that as their current checksum: a header copy is written (same epoch
   * and generation), so a later write of the page keeps the right previous checksum.
   */
  private async settle(v: DiskVolume, r: ExtentRef, h: Header, settled: ReadonlyMap<number, number | 'zero'>): Promise<void> {
    const next = Buffer.from(h.cur);
    for (const [p, m] of settled) {
      next.writeUInt32BE(m === 'zero' ? 0 : m, CRC_AT + p * 8);
      setBit(next, BITMAP_NOW, p, m === 'zero');
    }
    try {
      await this.commit(v, r, h, next, 0, [], { epoch: u64(h.cur, 8), generation: u64(h.cur, 16) });
    } catch (e) {
      this.headers.delete(this.key(r));
      await this.recount(v, r);
      throw e;
    }
  }

  /** The epoch and generation of an extent (0, 0 if never written). */
  async meta(r: ExtentRef): Promise<ExtentMeta & { exists: boolean }> {
    const v = await this.ready(r.disk);
    return this.locks.run(this.key(r), async () => {
      const h = await this.header(v, r);
      return { exists: h.exists, epoch: u64(h.cur, 8), generation: u64(h.cur, 16) };
    });
  }

  /**
   * Writes `data` (one buffer or chunks, never joined) at `offset` of an extent. Returns the
   * extent's generation after the write.
   */
  async write(r: ExtentRef, offset: number, data: Uint8Array | readonly Uint8Array[], w: ExtentWrite = {}): Promise<number> {
    const chunks = data instanceof Uint8Array ? [data] : data;
    const length = chunks.reduce((n, c) => n + c.byteLength, 0);
    this.checkRange(offset, length);
    const whole = wholePages(offset, length);
    if (w.crcs && w.crcs.length !== whole.count) throw new InputError('crcs', `one checksum per whole page written (${whole.count}), not ${w.crcs.length}`);
    const v = await this.ready(r.disk);
    return this.locks.run(this.key(r), async () => {
      const h = await this.header(v, r);
      this.fence(r, h, w.epoch);
      if (length === 0) return u64(h.cur, 16);
      if (h.corrupt && !(offset === 0 && length === EXTENT_BYTES)) throw new ChecksumError(r.disk, `extent ${this.name(r)}: no valid header (only a whole-extent write replaces it)`);
      const first = Math.floor(offset / PAGE_BYTES);
      const last = Math.floor((offset + length - 1) / PAGE_BYTES);
      const next = Buffer.from(h.corrupt ? freshHeader() : h.cur);
      const crcs = w.crcs ?? pageCrcs(offset, chunks);
      const iov: Uint8Array[] = [];
      // a page partly written: the old page, verified, with the new bytes merged in
      const merged = async (p: number): Promise<Uint8Array> => {
        const old = await this.readPages(v, r, h, p, 1);
        const prev = bit(h.cur, BITMAP_NOW, p) ? 'zero' : (this.matchOf(h, p, old) ?? 'zero');
        const from = Math.max(offset, p * PAGE_BYTES);
        const to = Math.min(offset + length, (p + 1) * PAGE_BYTES);
        let at = from - p * PAGE_BYTES;
        for (const c of range(chunks, from - offset, to - offset)) {
          old.set(c, at);
          at += c.byteLength;
        }
        this.setPage(next, h, p, crc32c(old), false, prev);
        return old;
      };
      const headPartial = offset % PAGE_BYTES !== 0 || length < PAGE_BYTES;
      const tailPartial = (offset + length) % PAGE_BYTES !== 0 && (last !== first || !headPartial);
      let zeros = true;
      for (let i = 0; i < whole.count; i++) {
        const c = crcs[i] ?? 0;
        const p = whole.first + i;
        const isZero = c === ZERO_PAGE_CRC && range(chunks, p * PAGE_BYTES - offset, (p + 1) * PAGE_BYTES - offset).every((x) => ZERO_PAGE.subarray(0, x.byteLength).equals(x));
        zeros &&= isZero;
        this.setPage(next, h, p, c, isZero);
      }
      const head = headPartial ? await merged(first) : undefined;
      const tail = tailPartial ? await merged(last) : undefined;
      if (head) iov.push(head);
      if (whole.count > 0) iov.push(...range(chunks, whole.first * PAGE_BYTES - offset, (whole.first + whole.count) * PAGE_BYTES - offset));
      if (tail) iov.push(tail);
      if (zeros && !head && !tail) iov.length = 0; // zeros are marked, not written
      const log = this.appendable(v, h, next, w, iov.length > 0 ? last - first + 1 : 0);
      if (log) return this.commitLogged(log, r, h, next, first, iov, w);
      try {
        const gen = await this.commit(v, r, h, next, first, iov, w);
        this.unlog(r, first, last - first + 1);
        return gen;
      } catch (e) {
        if (!this.unwritten.has(this.key(r))) {
          this.headers.delete(this.key(r)); // the disk may hold the new header copy: read it again
          await this.recount(v, r); // and its pages
        }
        throw e;
      }
    });
  }

  /**
   * The oplog a write may be appended to, or undefined (straight to the extent file): a small write
   * of pages to an extent whose file exists (its first write creates it), not FUA, not emptying the
   * extent, while the active segment has room (when it has none and the other is empty, they swap
   * and the full one is drained).
   */
  private appendable(v: DiskVolume, h: Header, next: Buffer, w: ExtentWrite, pages: number): DiskLog | undefined {
    const log = this.logs.get(v.serial);
    if (!log || log.segBytes === 0 || log.paused > 0 || pages === 0 || pages > OPLOG_MAX_PAGES || w.sync || !h.exists || h.corrupt) return undefined;
    if (allZero(next)) return undefined;
    const bytes = recordBytes(HEADER_BYTES, pages);
    if (bytes > log.segBytes) return undefined;
    const seg = log.segs[log.active];
    if (seg.end + bytes > log.segBytes || seg.broken !== undefined) return this.swapSegments(v, log) ? log : undefined;
    return log;
  }

  /** The other (empty) segment takes the appends and the active one is drained; false while the other is not free yet. */
  private swapSegments(v: DiskVolume, log: DiskLog): boolean {
    const other = log.segs[log.active === 0 ? 1 : 0];
    if (log.draining || other.end > 0 || other.broken !== undefined) return false;
    const full = log.segs[log.active];
    log.active = log.active === 0 ? 1 : 0;
    this.startDrain(v, log, full);
    return true;
  }

  /** A write appended to the disk's oplog; its pages kept in memory until drained. */
  private async commitLogged(log: DiskLog, r: ExtentRef, h: Header, next: Buffer, first: number, iov: readonly Uint8Array[], w: ExtentWrite): Promise<number> {
    const generation = this.finishHeader(h, next, w);
    const count = iov.reduce((n, c) => n + c.byteLength, 0) / PAGE_BYTES;
    const seg = log.segs[log.active];
    const copy = seg.alloc(count * PAGE_BYTES); // the caller's buffers are not kept
    let at = 0;
    for (const c of iov) {
      copy.set(c, at);
      at += c.byteLength;
    }
    const pages = Array.from({ length: count }, (_, i) => copy.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES));
    const k = this.key(r);
    seg.extents.add(k);
    await seg.append(encodeRecord(r.vdisk, r.block, first, next, pages, (n) => seg.alloc(n)), recordBytes(HEADER_BYTES, count));
    h.cur = next;
    this.unwritten.add(k);
    let ov = this.overlays.get(k);
    if (!ov) this.overlays.set(k, (ov = new Map<number, { data: Buffer; seg: OplogSegment }>()));
    for (let i = 0; i < count; i++) {
      if (bit(next, BITMAP_NOW, first + i)) ov.delete(first + i);
      else ov.set(first + i, { data: pages[i]!, seg });
    }
    this.held.set(r, true);
    let disks = this.logDirty.get(r.vdisk);
    if (!disks) this.logDirty.set(r.vdisk, (disks = new Set()));
    disks.add(r.disk);
    log.lastAppend = this.clock.now();
    this.armIdle(this.vol(r.disk), log);
    return generation;
  }

  /** Pages written straight to the extent file: what the oplog held of them is superseded. */
  private unlog(r: ExtentRef, first: number, count: number): void {
    const ov = this.overlays.get(this.key(r));
    if (!ov) return;
    for (let p = first; p < first + count; p++) ov.delete(p);
    if (ov.size === 0) this.overlays.delete(this.key(r));
  }

  /** Drains the active segment once the disk had no append for oplogIdleMs. */
  private armIdle(v: DiskVolume, log: DiskLog): void {
    if (log.idle) return;
    const idleMs = this.opts.oplogIdleMs ?? 1000;
    const check = (): void => {
      log.idle = undefined;
      const quiet = this.clock.now() - log.lastAppend;
      if (quiet < idleMs) {
        log.idle = this.clock.setTimeout(check, idleMs - quiet);
        return;
      }
      if (log.segs[log.active].end === 0) return;
      if (!this.swapSegments(v, log)) log.idle = this.clock.setTimeout(check, idleMs); // the other segment first
    };
    log.idle = this.clock.setTimeout(check, idleMs);
  }

  private startDrain(v: DiskVolume, log: DiskLog, seg: OplogSegment): void {
    log.draining = this.drainSegment(v, seg)
      .then(() => { log.error = undefined; }, (e: unknown) => { log.error = e; })
      .finally(() => { log.draining = undefined; });
  }

  /**
   * Writes every extent with records in `seg` from memory to its file (its pages and its header),
   * makes those files durable, then empties the segment. Each extent under its lock.
   */
  private async drainSegment(v: DiskVolume, seg: OplogSegment): Promise<void> {
    await seg.settled();
    const keys = [...seg.extents].sort();
    const drained: ExtentRef[] = [];
    for (let i = 0; i < keys.length; i += DRAIN_BATCH) {
      const batch = keys.slice(i, i + DRAIN_BATCH);
      await this.withLocks(batch, async () => {
        await v.healthy();
        const jobs: DrainJob[] = [];
        const pieces: Buffer[] = [];
        let at = 0;
        const refs: { k: string; r: ExtentRef; ov: Map<number, { data: Buffer; seg: OplogSegment }> | undefined }[] = [];
        for (const k of batch) {
          const ov = this.overlays.get(k);
          if (!ov && !this.unwritten.has(k)) continue;
          const r = refOf(k);
          const h = await this.header(v, r);
          const writes: DrainJob['writes'] = [];
          const put = (pos: number, b: Buffer): void => {
            writes.push([pos, at, b.length]);
            pieces.push(b);
            at += b.length;
          };
          put(seqOf(h.cur) % 2 * SLOT, h.cur);
          for (const p of [...(ov?.keys() ?? [])].sort((a, b) => a - b)) put(DATA_AT + p * PAGE_BYTES, ov!.get(p)!.data);
          jobs.push({ path: v.pathOf(ExtentStore.fileOf(r)), writes });
          refs.push({ k, r, ov });
        }
        if (jobs.length === 0) return;
        const packed = Buffer.allocUnsafeSlow(at);
        let off = 0;
        for (const b of pieces) off += b.copy(packed, off);
        const { sizes, error } = await this.drainer.run(v.serial, jobs, packed, false);
        sizes.forEach(([before, after], j) => v.noteWritten(ExtentStore.fileOf(refs[j]!.r), before, after));
        if (error) throw error;
        for (const { k, r, ov } of refs) {
          this.unwritten.delete(k);
          if (ov) {
            for (const [p, e] of ov) if (e.seg === seg) ov.delete(p);
            if (ov.size === 0) this.overlays.delete(k);
          }
          drained.push(r);
        }
      });
    }
    for (let i = 0; i < drained.length; i += DRAIN_BATCH * 4) {
      const jobs = drained.slice(i, i + DRAIN_BATCH * 4).map((r) => ({ path: v.pathOf(ExtentStore.fileOf(r)), writes: [] }));
      const { error } = await this.drainer.run(v.serial, jobs, undefined, true);
      if (error) throw error;
    }
    await seg.empty();
  }

  /** fn under the locks of every key (taken in the order given: callers sort them). */
  private withLocks<T>(keys: readonly string[], fn: () => Promise<T>): Promise<T> {
    const [k, ...rest] = keys;
    return k === undefined ? fn() : this.locks.run(k, () => this.withLocks(rest, fn));
  }

  /**
   * Drains both segments of a disk's oplog (appends go to the extent files meanwhile): before an
   * extent with records in it is deleted, so no record can bring it back after a crash.
   */
  private async checkpoint(v: DiskVolume, logged: (key: string) => boolean): Promise<void> {
    const log = this.logs.get(v.serial);
    if (!log || !log.segs.some((s) => [...s.extents].some(logged))) return;
    log.paused++;
    try {
      while (log.draining) await log.draining;
      for (const seg of [log.segs[log.active === 0 ? 1 : 0], log.segs[log.active]]) if (seg.end > 0) await this.drainSegment(v, seg);
    } finally {
      log.paused--;
    }
  }

  /** Drains every disk's oplog into the extent files (a CVM shutting down; tests). */
  async drainOplogs(): Promise<void> {
    for (const v of this.vols.values()) {
      await this.logOf(v).ready;
      await this.checkpoint(v, () => true);
    }
  }

  /** Bytes of pages the oplogs hold in memory (not yet drained), and the oplog bytes appended per disk. */
  oplogUsage(): { memoryBytes: number; disks: Map<string, number> } {
    let memoryBytes = 0;
    for (const ov of this.overlays.values()) memoryBytes += ov.size * PAGE_BYTES;
    return { memoryBytes, disks: new Map([...this.logs].map(([d, l]) => [d, l.segs[0].end + l.segs[1].end])) };
  }

  /**
   * What the disk's oplog segments held at start-up, put in the extent files: per extent, the
   * newest header (the file's or a record's, by sequence number) and, for each page a record
   * holds, the newest copy whose checksum is that header's current one for the page. So a drain
   * torn by the crash (its header landed, some pages not) is completed, and a record older than
   * what the file holds writes nothing that differs from it. Records of extents without a file
   * (deleted after a checkpoint) are ignored. The files are synced, then the segments emptied.
   */
  private async replay(v: DiskVolume, log: DiskLog): Promise<void> {
    const records = [...(await log.segs[0].read(HEADER_BYTES)), ...(await log.segs[1].read(HEADER_BYTES))];
    const byExtent = new Map<string, typeof records>();
    for (const rec of records) {
      if (!validCopy(rec.header)) continue;
      const k = this.key({ disk: v.serial, vdisk: rec.vdisk, block: rec.block });
      let list = byExtent.get(k);
      if (!list) byExtent.set(k, (list = []));
      list.push(rec);
    }
    for (const [k, list] of byExtent) {
      const r = refOf(k);
      const file = ExtentStore.fileOf(r);
      const head = await v.readAt(file, DATA_AT, 0);
      if (!head) continue;
      const onFile = parseHeaders(head);
      let newest = onFile.corrupt ? undefined : onFile.cur;
      for (const rec of list) if (!newest || seqOf(rec.header) > seqOf(newest)) newest = Buffer.from(rec.header);
      if (!newest) continue;
      const pages = new Map<number, Buffer>();
      for (const rec of list) {
        rec.pages.forEach((page, i) => {
          const p = rec.first + i;
          if (!bit(newest, BITMAP_NOW, p) && crc32c(page) === newest.readUInt32BE(CRC_AT + p * 8)) pages.set(p, page);
        });
      }
      const writes: Promise<void>[] = [];
      if (newest !== onFile.cur) writes.push(v.pwritev(file, [newest], seqOf(newest) % 2 * SLOT, false));
      for (const [p, page] of pages) writes.push(v.pwritev(file, [page], DATA_AT + p * PAGE_BYTES, false));
      await Promise.all(writes);
      if (writes.length > 0) await v.datasync(file);
    }
    await log.segs[0].empty();
    await log.segs[1].empty();
  }

  /** A write with an older epoch than the extent's is refused. */
  private fence(r: ExtentRef, h: Header, epoch: number | undefined): void {
    const stored = u64(h.cur, 8);
    if ((epoch ?? 0) < stored) throw new EpochError(this.name(r), epoch ?? 0, stored);
  }

  /**
   * Page p of the next header: checksum c (or zero); the previous one: what the page holds now
   * (`prev`, when it was read), else its current checksum.
   */
  private setPage(next: Buffer, h: Header, p: number, c: number, zero: boolean, prev?: number | 'zero'): void {
    const was = prev ?? (h.corrupt || bit(h.cur, BITMAP_NOW, p) ? 'zero' : h.cur.readUInt32BE(CRC_AT + p * 8));
    setBit(next, BITMAP_BEFORE, p, was === 'zero');
    next.writeUInt32BE(was === 'zero' ? 0 : was, CRC_AT + p * 8 + 4);
    next.writeUInt32BE(zero ? 0 : c, CRC_AT + p * 8);
    setBit(next, BITMAP_NOW, p, zero);
  }

  /**
   * Puts the next header copy (and the pages in `iov`, from page `first`) on disk. An extent whose
   * every page is now zero keeps only its headers: the header is made durable, then the data cut.
   */
  private async commit(v: DiskVolume, r: ExtentRef, h: Header, next: Buffer, first: number, iov: Uint8Array[], w: ExtentWrite): Promise<number> {
    const generation = this.finishHeader(h, next, w);
    const slot = seqOf(next) % 2;
    const file = ExtentStore.fileOf(r);
    const tear = this.opts.tear?.(r);
    const emptied = allZero(next);
    const sync = (w.sync ?? false) || (emptied && h.exists);
    const other = h.cur; // in slot 1 (its seq is odd) when this one goes to slot 0
    if (tear === 'data-only') {
      if (iov.length > 0) await v.pwritev(file, iov, DATA_AT + first * PAGE_BYTES, false);
      throw new DiskIoError(r.disk, 'simulated crash (data written, header not)');
    }
    if (tear === 'header-only') {
      await v.pwritev(file, [next], slot * SLOT, false);
      throw new DiskIoError(r.disk, 'simulated crash (header written, data not)');
    }
    if (iov.length > 0 && first === 0) {
      // one vectored write: [copy A, pad, copy B, pad, pages] or [copy B, pad, pages]
      const hdrs = slot === 0 ? [next, PAD, other, PAD] : [next, PAD];
      await v.pwritev(file, [...hdrs, ...iov], slot * SLOT, sync);
    } else if (iov.length > 0) {
      await Promise.all([v.pwritev(file, [next], slot * SLOT, false), v.pwritev(file, iov, DATA_AT + first * PAGE_BYTES, false)]);
      if (sync) await v.datasync(file);
    } else {
      await v.pwritev(file, [next], slot * SLOT, sync);
    }
    h.cur = next;
    h.exists = true;
    h.corrupt = false;
    this.unwritten.delete(this.key(r)); // its newest header is in the file now
    if (emptied) await v.truncate(file, DATA_AT);
    if (emptied) this.overlays.delete(this.key(r));
    if (emptied) this.held.set(r, false);
    else if (iov.length > 0) this.held.set(r, true);
    if (sync) this.clean(r);
    else this.markDirty(r);
    return generation;
  }

  /** Epoch, generation, sequence number and checksum of the next header; answers the generation. */
  private finishHeader(h: Header, next: Buffer, w: ExtentWrite): number {
    const generation = w.generation ?? u64(h.cur, 16) + 1;
    setU64(next, 8, Math.max(w.epoch ?? 0, u64(h.cur, 8)));
    setU64(next, 16, generation);
    setU64(next, 24, seqOf(h.cur) + 1);
    next.writeUInt32BE(crc32c(next.subarray(0, HCRC_AT)), HCRC_AT);
    return generation;
  }

  /**
   * TRIM / WRITE_ZEROES of a range of an extent: whole pages are marked zero in the header (no data
   * written; an extent all zero keeps only its header, its data space returns), partial pages are
   * written as zeros (read, verified, merged). Never-written extents stay absent.
   */
  async zero(r: ExtentRef, offset: number, length: number, w: Omit<ExtentWrite, 'crcs'> = {}): Promise<void> {
    this.checkRange(offset, length);
    const v = await this.ready(r.disk);
    const h = await this.locks.run(this.key(r), () => this.header(v, r));
    if (!h.exists || length === 0) return; // never written: zeros already
    await this.write(r, offset, zeroChunks(offset, length), w);
  }

  private markDirty(r: ExtentRef): void {
    let s = this.dirty.get(r.vdisk);
    if (!s) this.dirty.set(r.vdisk, (s = new Set()));
    s.add(`${r.disk}\0${r.block}`);
  }

  private clean(r: ExtentRef): void {
    this.dirty.get(r.vdisk)?.delete(`${r.disk}\0${r.block}`);
  }

  /** Makes one extent's writes durable (nothing to do if it has none since its last sync). */
  async sync(r: ExtentRef): Promise<void> {
    if (this.overlays.has(this.key(r)) || this.unwritten.has(this.key(r))) await this.syncLog(r.disk);
    const k = `${r.disk}\0${r.block}`;
    const s = this.dirty.get(r.vdisk);
    if (!s?.has(k)) return;
    const v = this.vol(r.disk);
    s.delete(k);
    try {
      await v.datasync(ExtentStore.fileOf(r));
    } catch (e) {
      this.markDirty(r); // still not durable
      throw e;
    }
  }

  /** Makes a disk's oplog durable (what was appended to it before this call). */
  private async syncLog(disk: string): Promise<void> {
    const log = this.logs.get(disk);
    if (log) await Promise.all(log.segs.map((seg) => seg.sync()));
  }

  /** FLUSH of a vdisk: every extent of it written since its last sync is made durable (fdatasync). */
  async syncVdisk(vdisk: string): Promise<void> {
    const logged = this.logDirty.get(vdisk);
    if (logged) {
      this.logDirty.delete(vdisk);
      try {
        await Promise.all([...logged].map((disk) => this.syncLog(disk)));
      } catch (e) {
        const again = this.logDirty.get(vdisk) ?? new Set<string>();
        for (const d of logged) again.add(d);
        this.logDirty.set(vdisk, again); // still not durable
        throw e;
      }
    }
    const s = this.dirty.get(vdisk);
    if (!s) return;
    const refs = [...s].map((k) => {
      const [disk = '', block = '0'] = k.split('\0');
      return { disk, vdisk, block: Number(block) };
    });
    await mapLimit(refs, this.opts.syncParallel ?? 16, (r) => this.sync(r));
  }

  /** Removes an extent's file (its space returns to the disk); it then reads as never written. */
  async drop(r: ExtentRef): Promise<void> {
    await this.dropFile(r);
  }

  /** drop(), answering the bytes the file took on the disk. */
  private async dropFile(r: ExtentRef): Promise<number> {
    const v = await this.ready(r.disk);
    const k = this.key(r);
    await this.checkpoint(v, (key) => key === k);
    return this.locks.run(k, async () => {
      const file = ExtentStore.fileOf(r);
      const size = (await v.stat(file))?.size;
      await v.remove(file);
      this.overlays.delete(k);
      this.unwritten.delete(k);
      this.headers.set(this.key(r), { exists: false, corrupt: false, cur: freshHeader() });
      this.clean(r);
      this.held.set(r, false);
      return size === undefined ? 0 : roundUp4k(size);
    });
  }

  /** Whether an extent's file holds data past its header, from the disk (after a failed write; at the count). */
  private async recount(v: DiskVolume, r: ExtentRef): Promise<void> {
    try {
      const b = await v.readAt(ExtentStore.fileOf(r), 1, DATA_AT);
      this.held.set(r, b !== undefined && b.length > 0);
    } catch {
      // a failed disk: its count no longer matters (it holds no usable replica)
    }
  }

  /**
   * Bytes of extents per vdisk on each disk: extents holding data (more than their header) × 1 MiB
   * (EXTENT_BYTES), whatever part of the extent was written. Undefined until the extents on the
   * disks were counted once (started by the first call: one listing of the disks, then kept by
   * every write, zero and drop, so a call costs nothing); vdisks with none are left out.
   */
  vdiskBytes(): Map<string, Map<string, number>> | undefined {
    if (!this.counted) {
      void this.countExtents().catch(() => undefined);
      return undefined;
    }
    const out = this.held.counts();
    for (const vd of out.values()) for (const [vdisk, n] of vd) vd.set(vdisk, n * EXTENT_BYTES);
    return out;
  }

  /**
   * Counts the extents holding data on the healthy disks (once; again after a failure): each under
   * its extent's lock, so a write or drop of it runs wholly before or after.
   */
  countExtents(): Promise<void> {
    this.counting ??= (async () => {
      for (const v of this.vols.values()) {
        if (isDiskFailed(v.dir)) continue;
        for (const vdisk of await v.list('extents')) {
          const blocks = (await v.list(`extents/${vdisk}`)).filter((n) => /^\d+$/.test(n)).map(Number);
          await mapLimit(blocks, 16, (block) => {
            const r = { disk: v.serial, vdisk, block };
            return this.locks.run(this.key(r), () => this.recount(v, r));
          });
        }
      }
      this.counted = true;
    })().catch((e: unknown) => {
      this.counting = undefined;
      throw e;
    });
    return this.counting;
  }

  /**
   * Removes every extent of a vdisk on a disk (`extents/<vdisk>/`): the vdisk no longer exists.
   * Answers the bytes freed. Its extents must not be in use (nothing cached of them survives).
   */
  async dropVdisk(disk: string, vdisk: string): Promise<number> {
    const v = await this.ready(disk);
    const prefix = `${disk}/${vdisk}/`;
    await this.checkpoint(v, (key) => key.startsWith(prefix));
    const dir = `extents/${vdisk}`;
    let bytes = 0;
    for (const name of await v.list(dir)) bytes += roundUp4k((await v.stat(`${dir}/${name}`))?.size ?? 0);
    await v.remove(dir);
    for (const k of [...this.headers.keys()]) if (k.startsWith(prefix)) this.headers.delete(k);
    for (const k of [...this.overlays.keys()]) if (k.startsWith(prefix)) this.overlays.delete(k);
    for (const k of [...this.unwritten]) if (k.startsWith(prefix)) this.unwritten.delete(k);
    const dirty = this.dirty.get(vdisk);
    if (dirty) for (const k of [...dirty]) if (k.startsWith(`${disk}\0`)) dirty.delete(k);
    if (dirty?.size === 0) this.dirty.delete(vdisk);
    this.held.forget(disk, vdisk);
    return bytes;
  }

  /** Removes the extents of one extent group of a vdisk on a disk (each under its lock); answers the bytes freed. */
  async dropEgroup(disk: string, vdisk: string, egroup: number): Promise<number> {
    const v = await this.ready(disk);
    const first = egroup * EGROUP_EXTENTS;
    const blocks = (await v.list(`extents/${vdisk}`)).filter((n) => /^\d+$/.test(n)).map(Number).filter((b) => b >= first && b < first + EGROUP_EXTENTS);
    let bytes = 0;
    for (const block of blocks) bytes += await this.dropFile({ disk, vdisk, block });
    return bytes;
  }

  /**
   * The epoch and generation of every extent of a vdisk on a disk with index in [first, first +
   * count) that exists (for resync: compare them across replicas).
   */
  async extentGens(disk: string, vdisk: string, first: number, count = 1): Promise<Map<number, ExtentMeta>> {
    const v = await this.ready(disk);
    const out = new Map<number, ExtentMeta>();
    const names = await v.list(`extents/${vdisk}`);
    const blocks = names.filter((n) => /^\d+$/.test(n)).map(Number).filter((b) => b >= first && b < first + count).sort((a, b) => a - b);
    await mapLimit(blocks, 16, async (block) => {
      const m = await this.meta({ disk, vdisk, block });
      if (m.exists) out.set(block, { epoch: m.epoch, generation: m.generation });
    });
    return out;
  }

  /** Every extent file on the healthy disks, by disk and vdisk. */
  async inventory(): Promise<{ disk: string; vdisk: string; blocks: { block: number; mtimeMs: number }[] }[]> {
    const out: { disk: string; vdisk: string; blocks: { block: number; mtimeMs: number }[] }[] = [];
    for (const v of this.vols.values()) {
      if (isDiskFailed(v.dir)) continue;
      for (const vdisk of await v.list('extents')) {
        const blocks: { block: number; mtimeMs: number }[] = [];
        for (const name of await v.list(`extents/${vdisk}`)) {
          if (!/^\d+$/.test(name)) continue;
          const st = await v.stat(`extents/${vdisk}/${name}`);
          if (st) blocks.push({ block: Number(name), mtimeMs: st.mtimeMs });
        }
        out.push({ disk: v.serial, vdisk, blocks });
      }
    }
    return out;
  }
}

/** Every page of the header's extent reads as zeros (its data can go). */
function allZero(h: Buffer): boolean {
  for (let i = 0; i < 32; i++) if (h[BITMAP_NOW + i] !== 0xff) return false;
  return true;
}

/** The extent of a key (`disk/vdisk/block`; neither a disk serial nor a vdisk id holds a slash). */
function refOf(k: string): ExtentRef {
  const [disk = '', vdisk = '', block = '0'] = k.split('/');
  return { disk, vdisk, block: Number(block) };
}

/** Zeros for [offset, offset+length) of an extent, as views of one shared page (one per page it touches). */
function zeroChunks(offset: number, length: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = offset;
  const end = offset + length;
  while (at < end) {
    const n = Math.min(PAGE_BYTES - (at % PAGE_BYTES), end - at);
    out.push(ZERO_PAGE.subarray(0, n));
    at += n;
  }
  return out;
}
