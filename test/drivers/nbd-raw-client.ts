/**
 * @module
 * A deliberately small NBD client for tests that need to send what real clients never would:
 * fixed newstyle handshake, NBD_OPT_GO, then raw requests with simple replies.
 */
import { connect, type Socket } from 'node:net';
import { ByteReader } from '../../src/shared/nbd/reader.ts';
import * as codec from '../../src/shared/nbd/codec.ts';
import * as C from '../../src/shared/nbd/constants.ts';

export class RawNbdClient {
  private constructor(readonly sock: Socket, readonly reader: ByteReader) {}

  static async connect(port: number, host = '127.0.0.1'): Promise<RawNbdClient> {
    const sock = connect({ port, host });
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

  /** Handshake and NBD_OPT_GO; returns the export size. */
  async go(name: string): Promise<bigint> {
    await this.reader.read(18);
    const cf = Buffer.alloc(4);
    cf.writeUInt32BE(C.NBD_FLAG_C_FIXED_NEWSTYLE | C.NBD_FLAG_C_NO_ZEROES);
    this.sock.write(cf);
    const n = Buffer.from(name);
    const data = Buffer.alloc(4 + n.length + 2);
    data.writeUInt32BE(n.length, 0);
    n.copy(data, 4);
    this.sock.write(Buffer.concat([codec.encodeOptionHeader(C.NBD_OPT_GO, data.length), data]));
    let size = -1n;
    for (;;) {
      const h = await this.reader.read(20);
      const type = h.readUInt32BE(12);
      const len = h.readUInt32BE(16);
      const body = len ? await this.reader.read(len) : Buffer.alloc(0);
      if (type === C.NBD_REP_INFO && body.readUInt16BE(0) === C.NBD_INFO_EXPORT) size = body.readBigUInt64BE(2);
      if (type === C.NBD_REP_ACK) return size;
      if (type >= C.NBD_REP_FLAG_ERROR) throw new Error(`GO refused: 0x${type.toString(16)} ${body.toString()}`);
    }
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
