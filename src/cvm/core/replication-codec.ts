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
 * Versions: 0 (the first cut: byte 6 was 0) and 1 (PROTOCOL_VERSION). A server answers a request
 * in the request's version; it serves both.
 *  - WRITE, WRITE_SYNC: payload (v1) = the CRC32C of every whole 4 KiB page the write covers
 *    (wholePageCount(offset, length) × u32), computed once where the data entered, then `length`
 *    bytes of data; (v0) the data only.
 *  - ZERO, ZERO_SYNC (v1 only): the range [offset, offset+length) reads as zeros (a write of zeros,
 *    sent without them); no payload.
 *  - SYNC_MANY (v1 only): `length` bytes of entries (u8 disk serial length, disk serial, u32 block),
 *    extents of the header's vdisk; the header's disk and block are those of the first entry.
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
export const PROTOCOL_VERSION = 1;
const PAGE = 4096;

export const OP_WRITE = 1;
export const OP_WRITE_SYNC = 2;
export const OP_READ = 3;
export const OP_SYNC = 4;
export const OP_SYNC_MANY = 5;
/** WRITE_ZEROES of [offset, offset+length) of an extent (v1): no payload; _SYNC: durable before the reply. */
export const OP_ZERO = 6;
export const OP_ZERO_SYNC = 7;
/** Extents named by one SYNC_MANY frame at most. */
export const SYNC_MANY_MAX = 4096;

export const ST_OK = 0;
export const ST_INPUT = 1;
export const ST_DISK_IO = 2;
export const ST_NOT_FOUND = 3;
export const ST_CHECKSUM = 4;
export const ST_INTERNAL = 5;

export interface ReplicationRequest {
  /** PROTOCOL_VERSION unless said. */
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
  b.writeUInt8(r.version ?? PROTOCOL_VERSION, 6);
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
  if (![OP_WRITE, OP_WRITE_SYNC, OP_READ, OP_SYNC, OP_SYNC_MANY, OP_ZERO, OP_ZERO_SYNC].includes(r.op)) throw new InputError('op', `unknown operation ${r.op}`);
  if (r.op >= OP_SYNC_MANY && (r.version ?? PROTOCOL_VERSION) < 1) throw new InputError('op', `operation ${r.op} needs protocol version 1`);
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
  return h.op === OP_SYNC_MANY ? h.length : 0;
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

export function encodeReply(id: number, status: number, length: number, version = PROTOCOL_VERSION): Buffer {
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
