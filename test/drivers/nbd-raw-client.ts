/**
 * @module
 * A deliberately small NBD client for tests that need to send what real clients never would:
 * fixed newstyle handshake, options one at a time (replies as they came), NBD_OPT_GO, then raw
 * requests with simple replies.
 */
import { connect, type Socket } from 'node:net';
import { ByteReader } from '../../src/shared/nbd/reader.ts';
import * as codec from '../../src/shared/nbd/codec.ts';
import * as C from '../../src/shared/nbd/constants.ts';

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

export class RawNbdClient {
  private greeted = false;

  private constructor(readonly sock: Socket, readonly reader: ByteReader) {}

  /** Connects; `localAddress` picks the client's own loopback address (per-address limits). */
  static async connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawNbdClient> {
    const sock = connect({ port, host, ...(localAddress ? { localAddress } : {}) });
    const reader = new ByteReader(() => sock.pause(), () => sock.resume());
    sock.on('data', (c: Buffer) => reader.push(c));
    sock.on('end', () => reader.end());
    sock.on('close', () => reader.end());
    sock.on('error', () => reader.end());
    await new Promise<void>((r, j) => {
      sock.once('connect', () => r());
      sock.once('error', j);
    });
    return new RawNbdClient(sock, reader);
  }

  /** Reads the greeting and sends the client flags (fixed newstyle, no zeroes); returns the handshake flags. */
  async hello(): Promise<number> {
    const g = await this.reader.read(18);
    if (g.readBigUInt64BE(0) !== C.NBDMAGIC || g.readBigUInt64BE(8) !== C.IHAVEOPT) throw new Error('not a newstyle greeting');
    const cf = Buffer.alloc(4);
    cf.writeUInt32BE(C.NBD_FLAG_C_FIXED_NEWSTYLE | C.NBD_FLAG_C_NO_ZEROES);
    this.sock.write(cf);
    this.greeted = true;
    return g.readUInt16BE(16);
  }

  /** Reads one option reply. */
  async reply(): Promise<OptionReply> {
    const h = await this.reader.read(20);
    if (h.readBigUInt64BE(0) !== C.NBD_REP_MAGIC) throw new Error('bad option reply magic');
    const len = h.readUInt32BE(16);
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: len ? await this.reader.read(len) : Buffer.alloc(0) };
  }

  /** Sends an option and reads its replies up to the final one (an ACK or an error). */
  async option(option: number, data: Buffer = Buffer.alloc(0)): Promise<OptionReply[]> {
    if (!this.greeted) await this.hello();
    this.sock.write(Buffer.concat([codec.encodeOptionHeader(option, data.length), data]));
    const out: OptionReply[] = [];
    for (;;) {
      const r = await this.reply();
      out.push(r);
      if (r.type === C.NBD_REP_ACK || r.type >= C.NBD_REP_FLAG_ERROR) return out;
    }
  }

  /** Resolves true when the server closes the connection within ms (and nothing more arrives). */
  closedWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      this.reader.read(1).then(() => false, () => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
    ]).finally(() => clearTimeout(timer));
  }

  /** Handshake and NBD_OPT_GO; returns the export size. */
  async go(name: string): Promise<bigint> {
    const n = Buffer.from(name);
    const data = Buffer.alloc(4 + n.length + 2);
    data.writeUInt32BE(n.length, 0);
    n.copy(data, 4);
    let size = -1n;
    for (const r of await this.option(C.NBD_OPT_GO, data)) {
      if (r.type === C.NBD_REP_INFO && r.data.readUInt16BE(0) === C.NBD_INFO_EXPORT) size = r.data.readBigUInt64BE(2);
      if (r.type >= C.NBD_REP_FLAG_ERROR) throw new Error(`GO refused: 0x${r.type.toString(16)} ${r.data.toString()}`);
    }
    return size;
  }

  /** Sends a request and reads its simple reply: the error, and the data for a successful READ. */
  async request(type: number, offset: bigint, length: number, payload?: Buffer, flags = 0): Promise<{ error: number; data?: Buffer }> {
    const handle = BigInt(Math.floor(Math.random() * 1e9));
    this.sock.write(payload ? Buffer.concat([codec.encodeRequest({ flags, type, handle, offset, length }), payload]) : codec.encodeRequest({ flags, type, handle, offset, length }));
    const r = await this.reader.read(16);
    if (r.readUInt32BE(0) !== C.NBD_SIMPLE_REPLY_MAGIC) throw new Error('not a simple reply');
    if (r.readBigUInt64BE(8) !== handle) throw new Error('handle mismatch');
    const error = r.readUInt32BE(4);
    if (error === 0 && type === C.NBD_CMD_READ) return { error, data: await this.reader.read(length) };
    return { error };
  }

  close(): void {
    this.sock.destroy();
  }
}
