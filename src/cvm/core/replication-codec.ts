/**
 * @module
 * The replication protocol between CVMs (pure codec): length-prefixed binary frames on one TCP
 * connection, requests pipelined and matched to replies by id (ADR 010). It carries what the
 * write and read paths send to the CVM holding a replica: write (optionally durable), read, sync,
 * sync of many extents (a FLUSH).
 *
 * Request (40-byte header, then the disk serial, then the payload):
 * ```
 *   0  u32 magic 0x43564731 ("CVG1")   4  u8 op   5  u8 disk serial length   6  u8 version   7  u8 0
 *   8  u32 id                         12  u32 block                          16  u32 offset in the block
 *  20  u32 length                     24  16 bytes vdisk uuid
 * ```
 * Versions: 0 (the first cut: byte 6 was 0), 1 and 2 (PROTOCOL_VERSION). A server answers a request
 * in the request's version; it serves them all.
 *  - WRITE, WRITE_SYNC: payload (v1) = the CRC32C of every whole 4 KiB page the write covers
 *    (wholePageCount(offset, length) × u32), computed once where the data entered, then `length`
 *    bytes of data; (v0) the data only.
 *  - ZERO, ZERO_SYNC (v1 only): the range [offset, offset+length) reads as zeros (a write of zeros,
 *    sent without them); no payload.
 *  - SYNC_MANY (v1 only): `length` bytes of entries (u8 disk serial length, disk serial, u32 block),
 *    extents of the header's vdisk; the header's disk and block are those of the first entry.
 *
 * Version 2 (storage engine v2, ADR 015) adds the ops of the ReplicaIo port (core/engine/ports.ts);
 * their `block` is the extent's index in the vdisk (egroup × EGROUP_EXTENTS + extent), except
 * EXTENT_GENS whose `block` is the extent group. Every u64 is big endian.
 *  - WRITE_V2: payload = u64 epoch, u64 generation, then one CRC32C per page (length / 4096 × u32),
 *    then `length` bytes; offset and length page aligned, inside the 1 MiB extent.
 *  - ZERO_V2: payload = u64 epoch, u64 generation; the pages [offset, offset+length) read as zeros.
 *  - EXTENT_GENS: payload = u64 epoch (raises the extent group's epoch floor); reply = per existing
 *    extent (u32 extent index within the group, u64 epoch, u64 generation).
 *  - READ_EXTENT: no payload; reply = an extent image (encodeImage), empty when the replica has none.
 *  - WRITE_EXTENT: `length` bytes of payload = u64 epoch (checked against the floor), then an extent
 *    image, or nothing (the extent is deleted). At most WRITE_EXTENT_MAX bytes.
 *  - SYNC_VDISK: no payload; every dirty extent of the vdisk on that CVM is made durable (the disk
 *    serial is ignored; clients send "-").
 * Errors of v2 ops: ST_STALE_EPOCH (body u64 seen, u64 sent), ST_STALE_GEN (message).
 *
 * Version 3 adds forwarding to a vdisk's owner (ADR 015): a CVM that is not a vdisk's owner sends
 * its NBD clients' I/O to the owner. The disk serial is "-"; the vdisk byte offset is
 * block × 2^20 + offset (offset < 2^20).
 *  - FWD_READ: no payload; reply = `length` bytes (at most 1 MiB).
 *  - FWD_WRITE: payload = `length` bytes (at most 1 MiB).
 *  - FWD_ZERO: no payload; [offset, offset+length) reads as zeros (length up to FWD_ZERO_MAX).
 *  - FWD_FLUSH: no payload; every write acknowledged for the vdisk is durable on its replicas.
 *  - HANDOFF: no payload; asks the owner to give the vdisk up (ownership follows the VM); the owner
 *    refuses (ST_BUSY) while its own host uses the vdisk.
 * A CVM that does not own the vdisk answers ST_NOT_OWNER: the sender finds the owner again.
 * A frame whose size is out of bounds is answered with ST_INPUT and the connection is closed (its
 * payload cannot be skipped safely); a payload that does not parse is answered with ST_INPUT.
 *
 * Reply (16-byte header, then `length` bytes: the data of a read, or an error message):
 * ```
 *   0  u32 magic 0x43564752 ("CVGR")   4  u32 id   8  u8 version   9  u24 status (0 = ok)   12  u32 length
 * ```
 */
import { InputError } from '../../shared/errors.ts';
import { BLOCK_BYTES } from './storage.ts';

export const REQ_MAGIC = 0x43564731;
export const REPLY_MAGIC = 0x43564752;
export const REQ_HEADER = 40;
export const REPLY_HEADER = 16;
/** The version this side speaks. */
export const PROTOCOL_VERSION = 3;
const PAGE = 4096;
/** Pages per extent (1 MiB / 4 KiB). */
const EXTENT_PAGES = 256;
const EXTENT_BYTES = EXTENT_PAGES * PAGE;

export const OP_WRITE = 1;
export const OP_WRITE_SYNC = 2;
export const OP_READ = 3;
export const OP_SYNC = 4;
export const OP_SYNC_MANY = 5;
/** WRITE_ZEROES of [offset, offset+length) of an extent (v1): no payload; _SYNC: durable before the reply. */
export const OP_ZERO = 6;
export const OP_ZERO_SYNC = 7;
/** v2 (engine): a fenced, versioned write of whole pages of an extent. */
export const OP_WRITE_V2 = 8;
export const OP_ZERO_V2 = 9;
export const OP_EXTENT_GENS = 10;
export const OP_READ_EXTENT = 11;
export const OP_WRITE_EXTENT = 12;
export const OP_SYNC_VDISK = 13;
export const OP_FWD_READ = 14;
export const OP_FWD_WRITE = 15;
export const OP_FWD_ZERO = 16;
export const OP_FWD_FLUSH = 17;
export const OP_HANDOFF = 18;
const V2_OPS = [OP_WRITE_V2, OP_ZERO_V2, OP_EXTENT_GENS, OP_READ_EXTENT, OP_WRITE_EXTENT, OP_SYNC_VDISK];
export const FWD_OPS = [OP_FWD_READ, OP_FWD_WRITE, OP_FWD_ZERO, OP_FWD_FLUSH, OP_HANDOFF];
/** The largest range one FWD_ZERO frame zeroes. */
export const FWD_ZERO_MAX = 1 << 30;
/** The unit of a forwarded offset's `block` (vdisk offset = block × FWD_UNIT + offset). */
export const FWD_UNIT = 1 << 20;
/** The smallest protocol version that has an operation (a client sends each frame in it: older servers keep serving v1 ops). */
export const versionFor = (op: number): number => (FWD_OPS.includes(op) ? 3 : V2_OPS.includes(op) ? 2 : 1);
/** An extent image on the wire: u64 epoch, u64 gen, u32 n, n × (u16 page, u32 crc), n × 4096 bytes. */
export const IMAGE_MAX = 20 + EXTENT_PAGES * (6 + PAGE);
export const WRITE_EXTENT_MAX = 8 + IMAGE_MAX;
/** Extents named by one SYNC_MANY frame at most. */
export const SYNC_MANY_MAX = 4096;

export const ST_OK = 0;
export const ST_INPUT = 1;
export const ST_DISK_IO = 2;
export const ST_NOT_FOUND = 3;
export const ST_CHECKSUM = 4;
export const ST_INTERNAL = 5;
/** v2: the replica has seen a newer epoch for the extent group; body = u64 seen, u64 sent. */
export const ST_STALE_EPOCH = 6;
/** v2: the write's (epoch, generation) is not above the extent's. */
export const ST_STALE_GEN = 7;
/** This CVM does not own the vdisk (forwarding, v3): find the owner again. */
export const ST_NOT_OWNER = 8;
/** The owner refuses a HANDOFF: its own host uses the vdisk. */
export const ST_BUSY = 9;
/** A transient failure (a replica or the configuration store did not answer in time): the request may be sent again. */
export const ST_UNAVAILABLE = 10;
/** No room: a disk or the pool is full (NBD: ENOSPC). A peer that predates it reads an internal error. */
export const ST_NO_SPACE = 11;

export interface ReplicationRequest {
  /** versionFor(op) unless said. */
  version?: number;
  op: number;
  id: number;
  disk: string;
  vdisk: string;
  block: number;
  offset: number;
  length: number;
}

const DISK = /^[\w.-]{1,80}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function encodeRequest(r: ReplicationRequest): Buffer {
  const disk = Buffer.from(r.disk, 'latin1');
  const b = Buffer.alloc(REQ_HEADER + disk.length);
  b.writeUInt32BE(REQ_MAGIC, 0);
  b.writeUInt8(r.op, 4);
  b.writeUInt8(disk.length, 5);
  b.writeUInt8(r.version ?? versionFor(r.op), 6);
  b.writeUInt32BE(r.id, 8);
  b.writeUInt32BE(r.block, 12);
  b.writeUInt32BE(r.offset, 16);
  b.writeUInt32BE(r.length, 20);
  Buffer.from(r.vdisk.replace(/-/g, ''), 'hex').copy(b, 24);
  disk.copy(b, REQ_HEADER);
  return b;
}

/** The fixed header; the disk serial (diskLength bytes) follows it on the wire. */
export function decodeRequestHeader(b: Buffer): Omit<ReplicationRequest, 'disk'> & { magic: number; diskLength: number; version: number } {
  const hex = b.subarray(24, 40).toString('hex');
  return {
    magic: b.readUInt32BE(0), op: b.readUInt8(4), diskLength: b.readUInt8(5), version: b.readUInt8(6), id: b.readUInt32BE(8),
    block: b.readUInt32BE(12), offset: b.readUInt32BE(16), length: b.readUInt32BE(20),
    vdisk: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
  };
}

/** Checks a decoded request once, at the edge; names the field that is wrong. */
export function validateRequest(r: ReplicationRequest): void {
  if ((r.version ?? PROTOCOL_VERSION) > PROTOCOL_VERSION) throw new InputError('version', `protocol version ${r.version} is newer than this CVM's ${PROTOCOL_VERSION}`);
  if (![OP_WRITE, OP_WRITE_SYNC, OP_READ, OP_SYNC, OP_SYNC_MANY, OP_ZERO, OP_ZERO_SYNC, ...V2_OPS, ...FWD_OPS].includes(r.op)) throw new InputError('op', `unknown operation ${r.op}`);
  if (r.op >= OP_SYNC_MANY && (r.version ?? PROTOCOL_VERSION) < 1) throw new InputError('op', `operation ${r.op} needs protocol version 1`);
  if (FWD_OPS.includes(r.op)) {
    if ((r.version ?? PROTOCOL_VERSION) < 3) throw new InputError('op', `operation ${r.op} needs protocol version 3`);
    if (!UUID.test(r.vdisk)) throw new InputError('vdisk', 'a vdisk uuid');
    if (r.offset >= FWD_UNIT) throw new InputError('offset', `below ${FWD_UNIT} (the rest is in block)`);
    if ((r.op === OP_FWD_READ || r.op === OP_FWD_WRITE) && (r.length === 0 || r.length > FWD_UNIT)) throw new InputError('length', `1 to ${FWD_UNIT} bytes`);
    if (r.op === OP_FWD_ZERO && (r.length === 0 || r.length > FWD_ZERO_MAX)) throw new InputError('length', `1 to ${FWD_ZERO_MAX} bytes`);
    return;
  }
  if (V2_OPS.includes(r.op)) {
    if ((r.version ?? PROTOCOL_VERSION) < 2) throw new InputError('op', `operation ${r.op} needs protocol version 2`);
    if (!UUID.test(r.vdisk)) throw new InputError('vdisk', 'a vdisk uuid');
    if (r.op === OP_SYNC_VDISK) return;
    if (!DISK.test(r.disk)) throw new InputError('disk', 'a disk serial');
    if (r.op === OP_WRITE_V2 || r.op === OP_ZERO_V2) {
      if (r.offset % PAGE !== 0 || r.length % PAGE !== 0 || r.length === 0 || r.offset + r.length > EXTENT_BYTES) throw new InputError('length', `whole pages inside the ${EXTENT_BYTES}-byte extent`);
    }
    if (r.op === OP_WRITE_EXTENT && r.length > WRITE_EXTENT_MAX) throw new InputError('length', `at most ${WRITE_EXTENT_MAX} bytes`);
    return;
  }
  if (!DISK.test(r.disk)) throw new InputError('disk', 'a disk serial');
  if (!UUID.test(r.vdisk)) throw new InputError('vdisk', 'a vdisk uuid');
  if (r.op !== OP_SYNC_MANY && r.offset + r.length > BLOCK_BYTES) throw new InputError('length', `offset + length must stay inside the ${BLOCK_BYTES}-byte extent group`);
  if (r.op === OP_SYNC_MANY && r.length > SYNC_MANY_MAX * 86) throw new InputError('length', `at most ${SYNC_MANY_MAX} extents per SYNC_MANY`);
}

/** The whole 4 KiB pages a write of `length` bytes at `offset` of an extent covers (one CRC each in a v1 WRITE). */
export function wholePageCount(offset: number, length: number): number {
  return Math.max(0, Math.floor((offset + length) / PAGE) - Math.ceil(offset / PAGE));
}

/** Bytes after the disk serial: a write's page CRCs (v1) and data, a SYNC_MANY's entries, else none. */
export function payloadBytes(h: { op: number; version?: number; offset: number; length: number }): number {
  if (h.op === OP_WRITE || h.op === OP_WRITE_SYNC) return h.length + ((h.version ?? PROTOCOL_VERSION) >= 1 ? 4 * wholePageCount(h.offset, h.length) : 0);
  if (h.op === OP_WRITE_V2) return 16 + 4 * wholePageCount(h.offset, h.length) + h.length;
  if (h.op === OP_ZERO_V2) return 16;
  if (h.op === OP_EXTENT_GENS) return 8;
  if (h.op === OP_FWD_WRITE) return h.length;
  return h.op === OP_SYNC_MANY || h.op === OP_WRITE_EXTENT ? h.length : 0;
}

/**
 * Why a request header cannot be framed (its payload's size is unknown or out of bounds), or
 * undefined. Checked before any payload is read: the server answers ST_INPUT and closes.
 */
export function frameError(h: { magic: number; op: number; version: number; diskLength: number; length: number }): string | undefined {
  if (h.magic !== REQ_MAGIC) return `bad request magic 0x${h.magic.toString(16)}`;
  if (h.version > PROTOCOL_VERSION) return `protocol version ${h.version} is newer than ${PROTOCOL_VERSION}`;
  if (h.diskLength === 0) return 'no disk serial';
  const max = h.op === OP_WRITE_EXTENT ? WRITE_EXTENT_MAX : h.op === OP_SYNC_MANY ? SYNC_MANY_MAX * 86 : h.op === OP_FWD_ZERO ? FWD_ZERO_MAX : 1 << 20;
  if (h.length > max) return `length ${h.length} is over the ${max} bytes of operation ${h.op}`;
  return undefined;
}

/** The epoch and generation a v2 write carries (16 bytes). */
export function encodeVersion(epoch: number, gen: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(BigInt(epoch), 0);
  b.writeBigUInt64BE(BigInt(gen), 8);
  return b;
}

function u64(b: Buffer, at: number, field: string): number {
  if (at + 8 > b.length) throw new InputError(field, 'cut short');
  const v = b.readBigUInt64BE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new InputError(field, 'too large');
  return Number(v);
}

export function decodeVersion(b: Buffer, at = 0): { epoch: number; gen: number } {
  return { epoch: u64(b, at, 'epoch'), gen: u64(b, at + 8, 'generation') };
}

export function encodeU64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
}

export function decodeU64(b: Buffer, field: string, at = 0): number {
  return u64(b, at, field);
}

/** EXTENT_GENS reply: per extent (index within the group), its version. */
export function encodeGens(gens: ReadonlyMap<number, { epoch: number; gen: number }>): Buffer {
  const b = Buffer.alloc(gens.size * 20);
  let at = 0;
  for (const [x, v] of gens) {
    b.writeUInt32BE(x, at);
    encodeVersion(v.epoch, v.gen).copy(b, at + 4);
    at += 20;
  }
  return b;
}

export function decodeGens(b: Buffer): Map<number, { epoch: number; gen: number }> {
  if (b.length % 20 !== 0 || b.length > EXTENT_PAGES * 20) throw new InputError('extentGens', `a reply of ${b.length} bytes`);
  const out = new Map<number, { epoch: number; gen: number }>();
  for (let at = 0; at < b.length; at += 20) out.set(b.readUInt32BE(at), decodeVersion(b, at + 4));
  return out;
}

export interface WireImage {
  version: { epoch: number; gen: number };
  pages: Map<number, { data: Uint8Array; crc: number }>;
}

/** An extent image (whole pages, each with its CRC32C); pages absent read as zeros. */
export function encodeImage(img: WireImage): Buffer[] {
  const idx = [...img.pages.keys()].sort((a, b) => a - b);
  const head = Buffer.alloc(20 + idx.length * 6);
  encodeVersion(img.version.epoch, img.version.gen).copy(head, 0);
  head.writeUInt32BE(idx.length, 16);
  const data: Buffer[] = [];
  idx.forEach((p, i) => {
    const e = img.pages.get(p)!;
    if (e.data.byteLength !== PAGE) throw new InputError(`pages[${p}]`, `a page is ${PAGE} bytes`);
    head.writeUInt16BE(p, 20 + i * 6);
    head.writeUInt32BE(e.crc >>> 0, 22 + i * 6);
    data.push(Buffer.from(e.data.buffer, e.data.byteOffset, PAGE));
  });
  return [head, ...data];
}

/** Decodes and checks an extent image: page indexes in range, ascending, the size exact. */
export function decodeImage(b: Buffer): WireImage {
  if (b.length < 20) throw new InputError('image', 'cut short');
  const version = decodeVersion(b);
  const n = b.readUInt32BE(16);
  if (n > EXTENT_PAGES) throw new InputError('image.pages', `at most ${EXTENT_PAGES} pages`);
  if (b.length !== 20 + n * (6 + PAGE)) throw new InputError('image', `${b.length} bytes for ${n} pages`);
  const pages = new Map<number, { data: Uint8Array; crc: number }>();
  let last = -1;
  for (let i = 0; i < n; i++) {
    const p = b.readUInt16BE(20 + i * 6);
    if (p >= EXTENT_PAGES || p <= last) throw new InputError(`image.pages[${i}]`, 'page indexes ascending, below 256');
    last = p;
    const at = 20 + n * 6 + i * PAGE;
    pages.set(p, { data: b.subarray(at, at + PAGE), crc: b.readUInt32BE(22 + i * 6) });
  }
  return { version, pages };
}

export function encodeCrcs(crcs: Uint32Array): Buffer {
  const b = Buffer.allocUnsafe(crcs.length * 4);
  for (let i = 0; i < crcs.length; i++) b.writeUInt32BE(crcs[i] ?? 0, i * 4);
  return b;
}

export function decodeCrcs(b: Buffer): Uint32Array {
  const out = new Uint32Array(b.length >> 2);
  for (let i = 0; i < out.length; i++) out[i] = b.readUInt32BE(i * 4);
  return out;
}

/** A SYNC_MANY's entries (extents of one vdisk). */
export function encodeSyncMany(refs: readonly { disk: string; block: number }[]): Buffer {
  const parts = refs.map((r) => {
    const disk = Buffer.from(r.disk, 'latin1');
    const e = Buffer.allocUnsafe(1 + disk.length + 4);
    e.writeUInt8(disk.length, 0);
    disk.copy(e, 1);
    e.writeUInt32BE(r.block, 1 + disk.length);
    return e;
  });
  return Buffer.concat(parts);
}

/** Decodes and checks a SYNC_MANY's entries; names the entry that is wrong. */
export function decodeSyncMany(b: Buffer): { disk: string; block: number }[] {
  const out: { disk: string; block: number }[] = [];
  for (let at = 0; at < b.length;) {
    const n = b.readUInt8(at);
    if (at + 1 + n + 4 > b.length) throw new InputError(`entries[${out.length}]`, 'cut short');
    const disk = b.toString('latin1', at + 1, at + 1 + n);
    if (!DISK.test(disk)) throw new InputError(`entries[${out.length}].disk`, 'a disk serial');
    out.push({ disk, block: b.readUInt32BE(at + 1 + n) });
    at += 1 + n + 4;
  }
  return out;
}

/** `version`: the request's (a server answers in it); 1 unless said. */
export function encodeReply(id: number, status: number, length: number, version = 1): Buffer {
  const b = Buffer.alloc(REPLY_HEADER);
  b.writeUInt32BE(REPLY_MAGIC, 0);
  b.writeUInt32BE(id, 4);
  b.writeUInt32BE(status, 8); // status < 2^24
  b.writeUInt8(version, 8);
  b.writeUInt32BE(length, 12);
  return b;
}

export function decodeReply(b: Buffer): { magic: number; id: number; version: number; status: number; length: number } {
  return { magic: b.readUInt32BE(0), id: b.readUInt32BE(4), version: b.readUInt8(8), status: b.readUIntBE(9, 3), length: b.readUInt32BE(12) };
}
