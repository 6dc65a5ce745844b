/**
 * @module
 * The replication protocol between CVMs (pure codec): length-prefixed binary frames on one TCP
 * connection, requests pipelined and matched to replies by id (ADR 010). It carries what the
 * write and read paths send to the CVM holding a replica: write (optionally durable), read, sync.
 *
 * Request (40-byte header, then the disk serial, then the payload of a write):
 * ```
 *   0  u32 magic 0x43564731 ("CVG1")   4  u8 op   5  u8 disk serial length   6  u16 0
 *   8  u32 id                         12  u32 block                          16  u32 offset in the block
 *  20  u32 length                     24  16 bytes vdisk uuid
 * ```
 * Reply (16-byte header, then `length` bytes: the data of a read, or an error message):
 * ```
 *   0  u32 magic 0x43564752 ("CVGR")   4  u32 id   8  u32 status (0 = ok)   12  u32 length
 * ```
 */
import { InputError } from '../../shared/errors.ts';
import { BLOCK_BYTES } from './storage.ts';

export const REQ_MAGIC = 0x43564731;
export const REPLY_MAGIC = 0x43564752;
export const REQ_HEADER = 40;
export const REPLY_HEADER = 16;

export const OP_WRITE = 1;
export const OP_WRITE_SYNC = 2;
export const OP_READ = 3;
export const OP_SYNC = 4;

export const ST_OK = 0;
export const ST_INPUT = 1;
export const ST_DISK_IO = 2;
export const ST_NOT_FOUND = 3;
export const ST_CHECKSUM = 4;
export const ST_INTERNAL = 5;

export interface ReplicationRequest {
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
  b.writeUInt32BE(r.id, 8);
  b.writeUInt32BE(r.block, 12);
  b.writeUInt32BE(r.offset, 16);
  b.writeUInt32BE(r.length, 20);
  Buffer.from(r.vdisk.replace(/-/g, ''), 'hex').copy(b, 24);
  disk.copy(b, REQ_HEADER);
  return b;
}

/** The fixed header; the disk serial (diskLength bytes) follows it on the wire. */
export function decodeRequestHeader(b: Buffer): Omit<ReplicationRequest, 'disk'> & { magic: number; diskLength: number } {
  const hex = b.subarray(24, 40).toString('hex');
  return {
    magic: b.readUInt32BE(0), op: b.readUInt8(4), diskLength: b.readUInt8(5), id: b.readUInt32BE(8),
    block: b.readUInt32BE(12), offset: b.readUInt32BE(16), length: b.readUInt32BE(20),
    vdisk: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
  };
}

/** Checks a decoded request once, at the edge; names the field that is wrong. */
export function validateRequest(r: ReplicationRequest): void {
  if (![OP_WRITE, OP_WRITE_SYNC, OP_READ, OP_SYNC].includes(r.op)) throw new InputError('op', `unknown operation ${r.op}`);
  if (!DISK.test(r.disk)) throw new InputError('disk', 'a disk serial');
  if (!UUID.test(r.vdisk)) throw new InputError('vdisk', 'a vdisk uuid');
  if (r.offset + r.length > BLOCK_BYTES) throw new InputError('length', `offset + length must stay inside the ${BLOCK_BYTES}-byte extent group`);
}

export function encodeReply(id: number, status: number, length: number): Buffer {
  const b = Buffer.alloc(REPLY_HEADER);
  b.writeUInt32BE(REPLY_MAGIC, 0);
  b.writeUInt32BE(id, 4);
  b.writeUInt32BE(status, 8);
  b.writeUInt32BE(length, 12);
  return b;
}

export function decodeReply(b: Buffer): { magic: number; id: number; status: number; length: number } {
  return { magic: b.readUInt32BE(0), id: b.readUInt32BE(4), status: b.readUInt32BE(8), length: b.readUInt32BE(12) };
}

/** Whether a request carries a payload of `length` bytes. */
export const hasPayload = (op: number): boolean => op === OP_WRITE || op === OP_WRITE_SYNC;
