/**
 * @module
 * Encoding and decoding of NBD messages, server side. Big-endian everywhere [proto.md
 * "Conventions"]. Pure functions over Buffers; the connection (connection.ts) does the
 * I/O.
 */
import {
  IHAVEOPT, NBDMAGIC, NBD_FLAG_FIXED_NEWSTYLE, NBD_FLAG_NO_ZEROES, NBD_REP_MAGIC, NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC, NBD_STRUCTURED_REPLY_MAGIC, NBD_INFO_EXPORT, NBD_INFO_BLOCK_SIZE,
  NBD_REPLY_TYPE_ERROR, NBD_REPLY_TYPE_OFFSET_DATA, NBD_REPLY_TYPE_NONE, NBD_REPLY_FLAG_DONE,
  NBD_REP_ACK, NBD_REP_SERVER, NBD_REP_INFO, NBD_REP_ERR_UNSUP, NBD_REP_ERR_POLICY, NBD_REP_ERR_INVALID,
  NBD_REP_ERR_PLATFORM, NBD_REP_ERR_TLS_REQD, NBD_REP_ERR_UNKNOWN, NBD_REP_ERR_SHUTDOWN, NBD_REP_ERR_BLOCK_SIZE_REQD, NBD_REP_ERR_TOO_BIG,
} from './constants.ts';

/** S: the first 18 bytes of the fixed newstyle handshake. */
export function encodeServerGreeting(): Buffer {
  const b = Buffer.alloc(18);
  b.writeBigUInt64BE(NBDMAGIC, 0);
  b.writeBigUInt64BE(IHAVEOPT, 8);
  b.writeUInt16BE(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES, 16);
  return b;
}

export interface OptionHeader {
  magic: bigint;
  option: number;
  length: number;
}

/** C: IHAVEOPT (64), option (32), length (32). */
export function decodeOptionHeader(b: Buffer): OptionHeader {
  return { magic: b.readBigUInt64BE(0), option: b.readUInt32BE(8), length: b.readUInt32BE(12) };
}

export function encodeOptionHeader(option: number, length: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(IHAVEOPT, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(length, 12);
  return b;
}

/** S: option reply: magic (64), option (32), reply type (32), length (32), data. */
export function encodeOptionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(20 + data.length);
  b.writeBigUInt64BE(NBD_REP_MAGIC, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(type >>> 0, 12);
  b.writeUInt32BE(data.length, 16);
  data.copy(b, 20);
  return b;
}

/** NBD_REP_SERVER payload: name length (32), name, details. */
export function encodeRepServer(name: string, description = ''): Buffer {
  const n = Buffer.from(name, 'utf8');
  const d = Buffer.from(description, 'utf8');
  const b = Buffer.alloc(4 + n.length + d.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  d.copy(b, 4 + n.length);
  return b;
}

export function encodeInfoExport(size: bigint, flags: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(NBD_INFO_EXPORT, 0);
  b.writeBigUInt64BE(size, 2);
  b.writeUInt16BE(flags, 10);
  return b;
}

export function encodeInfoBlockSize(min: number, preferred: number, max: number): Buffer {
  const b = Buffer.alloc(14);
  b.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 0);
  b.writeUInt32BE(min, 2);
  b.writeUInt32BE(preferred, 6);
  b.writeUInt32BE(max, 10);
  return b;
}

export function encodeInfoString(type: number, s: string): Buffer {
  const v = Buffer.from(s, 'utf8');
  const b = Buffer.alloc(2 + v.length);
  b.writeUInt16BE(type, 0);
  v.copy(b, 2);
  return b;
}

/** NBD_OPT_EXPORT_NAME's reply: size (64), flags (16), no zero padding (NO_ZEROES was agreed or is sent as 124 zeros). */
export function encodeExportNameReply(size: bigint, flags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(noZeroes ? 10 : 134);
  b.writeBigUInt64BE(size, 0);
  b.writeUInt16BE(flags, 8);
  return b;
}

/** Parses NBD_OPT_INFO/GO data: name length (32), name, number of info requests (16), requests (16 each). */
export function decodeInfoRequest(data: Buffer): { name: string; requests: number[] } | null {
  if (data.length < 6) return null;
  const nameLen = data.readUInt32BE(0);
  if (nameLen > data.length - 6) return null;
  const name = data.subarray(4, 4 + nameLen).toString('utf8');
  const count = data.readUInt16BE(4 + nameLen);
  if (data.length !== 6 + nameLen + count * 2) return null;
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(data.readUInt16BE(6 + nameLen + i * 2));
  return { name, requests };
}

export interface Request {
  magic: number;
  flags: number;
  type: number;
  handle: bigint;
  offset: bigint;
  length: number;
}

/** C: request magic (32), flags (16), type (16), handle (64), offset (64), length (32). */
export function decodeRequest(b: Buffer): Request {
  return { magic: b.readUInt32BE(0), flags: b.readUInt16BE(4), type: b.readUInt16BE(6), handle: b.readBigUInt64BE(8), offset: b.readBigUInt64BE(16), length: b.readUInt32BE(24) };
}

export function encodeRequest(r: Omit<Request, 'magic'>): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  b.writeUInt16BE(r.flags, 4);
  b.writeUInt16BE(r.type, 6);
  b.writeBigUInt64BE(r.handle, 8);
  b.writeBigUInt64BE(r.offset, 16);
  b.writeUInt32BE(r.length, 24);
  return b;
}

/** S: simple reply header: magic (32), error (32), handle (64); READ data follows on success. */
export function encodeSimpleReply(handle: bigint, error: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error, 4);
  b.writeBigUInt64BE(handle, 8);
  return b;
}

/** S: structured reply chunk header: magic (32), flags (16), type (16), handle (64), length (32). */
export function encodeChunkHeader(handle: bigint, type: number, flags: number, length: number): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(handle, 8);
  b.writeUInt32BE(length, 16);
  return b;
}

/** A final OFFSET_DATA chunk header (offset (64) precedes the data). */
export function encodeOffsetDataHeader(handle: bigint, offset: bigint, dataLength: number): Buffer {
  const h = encodeChunkHeader(handle, NBD_REPLY_TYPE_OFFSET_DATA, NBD_REPLY_FLAG_DONE, 8 + dataLength);
  const o = Buffer.alloc(8);
  o.writeBigUInt64BE(offset, 0);
  return Buffer.concat([h, o]);
}

/** A final NONE chunk: the command succeeded with nothing to send. */
export function encodeChunkDone(handle: bigint): Buffer {
  return encodeChunkHeader(handle, NBD_REPLY_TYPE_NONE, NBD_REPLY_FLAG_DONE, 0);
}

/** A final ERROR chunk: error (32), message length (16), message. */
export function encodeChunkError(handle: bigint, error: number, message: string): Buffer {
  const m = Buffer.from(message.slice(0, 1024), 'utf8');
  const h = encodeChunkHeader(handle, NBD_REPLY_TYPE_ERROR, NBD_REPLY_FLAG_DONE, 6 + m.length);
  const p = Buffer.alloc(6);
  p.writeUInt32BE(error, 0);
  p.writeUInt16BE(m.length, 4);
  return Buffer.concat([h, p, m]);
}

const REPLY_NAMES: Record<number, string> = {
  [NBD_REP_ACK]: 'NBD_REP_ACK', [NBD_REP_SERVER]: 'NBD_REP_SERVER', [NBD_REP_INFO]: 'NBD_REP_INFO',
  [NBD_REP_ERR_UNSUP]: 'NBD_REP_ERR_UNSUP', [NBD_REP_ERR_POLICY]: 'NBD_REP_ERR_POLICY', [NBD_REP_ERR_INVALID]: 'NBD_REP_ERR_INVALID',
  [NBD_REP_ERR_PLATFORM]: 'NBD_REP_ERR_PLATFORM', [NBD_REP_ERR_TLS_REQD]: 'NBD_REP_ERR_TLS_REQD', [NBD_REP_ERR_UNKNOWN]: 'NBD_REP_ERR_UNKNOWN',
  [NBD_REP_ERR_SHUTDOWN]: 'NBD_REP_ERR_SHUTDOWN', [NBD_REP_ERR_BLOCK_SIZE_REQD]: 'NBD_REP_ERR_BLOCK_SIZE_REQD', [NBD_REP_ERR_TOO_BIG]: 'NBD_REP_ERR_TOO_BIG',
};

/** The spec's name of an option reply type, for messages [proto.md "Option reply types"]. */
export function optionReplyName(type: number): string {
  return REPLY_NAMES[type >>> 0] ?? `option reply 0x${(type >>> 0).toString(16)}`;
}
