/**
 * @module
 * The oplog of one disk (ADR 015 "Oplog"; Stargate's oplog, BlueStore's deferred writes, a
 * FileStore journal): small writes to extents on the disk are appended here, many per vectored
 * write (group commit), and acknowledged; the extent store keeps their pages in memory and drains
 * them to the extent files in the background. Two segment files, `oplog/0` and `oplog/1`: appends go
 * to the active one; when it is full it is drained (its extents' pages written to their files, the
 * files made durable) and then emptied, while appends go to the other.
 *
 * Record (big endian):
 * ```
 *   0  u32 magic 0x43564f4c ("CVOL")      4  u32 length of the whole record (with its checksum)
 *   8  u32 extent index in the vdisk     12  u16 first page   14  u16 page count
 *  16  u16 vdisk id length (≤ 108)       18  the vdisk id (UTF-8), zero padded to byte 128
 * 128  the extent's header after the write (the extent store's HEADER_BYTES)
 *      the pages written (page count × 4 KiB)
 * end-4  u32 CRC32C of every byte before it
 * ```
 * A segment is read from its start up to the first record that does not check (a torn append:
 * never acknowledged as durable, since FLUSH syncs the segment after its appends complete).
 *
 * Invariants:
 *  1. An append resolves only when its bytes are in the segment file (page cache; durable at
 *     sync()); appends to one segment land in the order they were made, at offsets reserved then.
 *  2. A failed append breaks its segment: nothing more is appended to it (a hole would hide every
 *     later record from the reader) until it is emptied.
 *  3. Memory is bounded by the segment size (the caller asks room() before appending).
 */
import { crc32c } from '@node-rs/crc32';
import type { DiskVolume } from '../../shared/disk-volume.ts';
import { PAGE_BYTES } from '../core/engine/layout.ts';

export const OPLOG_MAGIC = 0x43564f4c;
export const RECORD_PREFIX = 128;
const VDISK_MAX = RECORD_PREFIX - 20;
const SLAB_BYTES = 1 << 20;
/** iovecs per vectored write (Linux IOV_MAX is 1024). */
const IOV_MAX = 1000;

export interface OplogRecord {
  vdisk: string;
  block: number;
  first: number;
  /** The extent's header after the write. */
  header: Buffer;
  /** The pages written, in order from `first`. */
  pages: Buffer[];
}

/** The bytes of a record, as pieces (the pages are not copied). `alloc` gives the prefix's and checksum's bytes. */
export function encodeRecord(vdisk: string, block: number, first: number, header: Uint8Array, pages: readonly Uint8Array[], alloc: (n: number) => Buffer = (n) => Buffer.alloc(n)): Uint8Array[] {
  const id = Buffer.from(vdisk, 'utf8');
  if (id.length > VDISK_MAX) throw new RangeError(`vdisk id longer than ${VDISK_MAX} bytes`);
  const prefix = alloc(RECORD_PREFIX).fill(0);
  const length = RECORD_PREFIX + header.byteLength + pages.length * PAGE_BYTES + 4;
  prefix.writeUInt32BE(OPLOG_MAGIC, 0);
  prefix.writeUInt32BE(length, 4);
  prefix.writeUInt32BE(block, 8);
  prefix.writeUInt16BE(first, 12);
  prefix.writeUInt16BE(pages.length, 14);
  prefix.writeUInt16BE(id.length, 16);
  id.copy(prefix, 18);
  let crc = crc32c(header, crc32c(prefix));
  for (const p of pages) {
    if (p.byteLength !== PAGE_BYTES) throw new RangeError('oplog pages are whole pages');
    crc = crc32c(p, crc);
  }
  const tail = alloc(4);
  tail.writeUInt32BE(crc >>> 0, 0);
  return [prefix, header, ...pages, tail];
}

/** The records of a segment's bytes, from its start to the first one that does not check. */
export function decodeRecords(buf: Buffer, headerBytes: number): OplogRecord[] {
  const out: OplogRecord[] = [];
  let at = 0;
  while (at + RECORD_PREFIX + headerBytes + 4 <= buf.length) {
    if (buf.readUInt32BE(at) !== OPLOG_MAGIC) break;
    const length = buf.readUInt32BE(at + 4);
    const count = buf.readUInt16BE(at + 14);
    const idLen = buf.readUInt16BE(at + 16);
    if (length !== RECORD_PREFIX + headerBytes + count * PAGE_BYTES + 4 || idLen > VDISK_MAX || at + length > buf.length) break;
    if (crc32c(buf.subarray(at, at + length - 4)) >>> 0 !== buf.readUInt32BE(at + length - 4)) break;
    const h = at + RECORD_PREFIX;
    const pages: Buffer[] = [];
    for (let i = 0; i < count; i++) pages.push(buf.subarray(h + headerBytes + i * PAGE_BYTES, h + headerBytes + (i + 1) * PAGE_BYTES));
    out.push({
      vdisk: buf.toString('utf8', at + 18, at + 18 + idLen),
      block: buf.readUInt32BE(at + 8),
      first: buf.readUInt16BE(at + 12),
      header: buf.subarray(h, h + headerBytes),
      pages,
    });
    at += length;
  }
  return out;
}

/** Bytes a record of `pages` pages takes. */
export const recordBytes = (headerBytes: number, pages: number): number => RECORD_PREFIX + headerBytes + pages * PAGE_BYTES + 4;

interface Pending {
  parts: Uint8Array[];
  at: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class OplogSegment {
  /** Where the next record goes (reserved when an append is made). */
  end = 0;
  /** Appends made and not yet in the file. */
  private queue: Pending[] = [];
  private writing: Promise<void> | undefined;
  /** A failed append: nothing more goes here until empty(). */
  broken: Error | undefined = undefined;
  /** Records appended since the last sync. */
  unsynced = false;
  /** The extents with records here (by the extent store's key), to drain before empty(). */
  readonly extents = new Set<string>();
  /**
   * Memory for what is appended here (the pages kept until drained, the records' small pieces),
   * carved from 1 MiB slabs dropped when the segment is emptied: a fresh 4 KiB buffer per page
   * cost several µs here (a new backing store and its page faults each).
   */
  private slab: Buffer | undefined;
  private slabAt = 0;

  constructor(private readonly v: DiskVolume, readonly file: string) {}

  /** n bytes (uninitialised) that live as long as the records appended here. */
  alloc(n: number): Buffer {
    if (!this.slab || this.slabAt + n > this.slab.length) {
      this.slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, n));
      this.slabAt = 0;
    }
    const b = this.slab.subarray(this.slabAt, this.slabAt + n);
    this.slabAt += (n + 7) & ~7;
    return b;
  }

  append(parts: Uint8Array[], bytes: number): Promise<void> {
    if (this.broken !== undefined) return Promise.reject(this.broken);
    const at = this.end;
    this.end += bytes;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ parts, at, resolve, reject });
      this.writing ??= this.writeQueued();
    });
  }

  /** Writes what is queued, as many records per vectored write as fit (group commit). */
  private async writeQueued(): Promise<void> {
    while (this.queue.length > 0) {
      const batch: Pending[] = [];
      const iov: Uint8Array[] = [];
      while (this.queue.length > 0 && iov.length + (this.queue[0]?.parts.length ?? 0) <= IOV_MAX) {
        const p = this.queue.shift()!;
        batch.push(p);
        iov.push(...p.parts);
      }
      if (batch.length === 0) {
        const p = this.queue.shift()!; // one record of more than IOV_MAX pieces
        batch.push(p);
        iov.push(...p.parts);
      }
      try {
        if (this.broken !== undefined) throw this.broken;
        await this.v.pwritev(this.file, iov, batch[0]!.at, false);
        this.unsynced = true;
        for (const p of batch) p.resolve();
      } catch (e) {
        this.broken ??= e instanceof Error ? e : new Error(String(e));
        for (const p of batch) p.reject(e);
      }
    }
    this.writing = undefined;
  }

  /** Resolves when every append made so far has landed or failed. */
  async settled(): Promise<void> {
    while (this.writing) await this.writing;
  }

  /** fdatasync, if anything was appended since the last one. */
  async sync(): Promise<void> {
    if (!this.unsynced) return;
    this.unsynced = false;
    try {
      await this.v.datasync(this.file);
    } catch (e) {
      this.unsynced = true;
      throw e;
    }
  }

  /** Empties the segment (durably: an old record must not be read again after a crash). Its extents must be drained and synced. */
  async empty(): Promise<void> {
    await this.settled();
    if ((await this.v.stat(this.file))?.size) {
      await this.v.truncate(this.file, 0);
      await this.v.datasync(this.file);
    }
    this.end = 0;
    this.unsynced = false;
    this.broken = undefined;
    this.extents.clear();
    this.slab = undefined;
  }

  /** The records in the segment file (at start-up, before any append). */
  async read(headerBytes: number): Promise<OplogRecord[]> {
    const st = await this.v.stat(this.file);
    if (!st || st.size === 0) return [];
    const buf = await this.v.readAt(this.file, st.size, 0);
    return buf ? decodeRecords(buf, headerBytes) : [];
  }
}
