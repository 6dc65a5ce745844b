/**
 * @module
 * A small NBD client (fixed newstyle, NBD_OPT_GO, simple replies, pipelined requests matched by
 * handle), used by the hypervisor's redirector to reach CVMs and by tests. Any failure of the
 * connection fails every request in flight with NbdConnectionLost, so a caller can retry them
 * elsewhere.
 */
import { connect, type Socket } from 'node:net';
import { ByteReader } from './reader.ts';
import * as codec from './codec.ts';
import * as C from './constants.ts';

export class NbdConnectionLost extends Error {}

/** An error the server answered for one request (the connection is fine). */
export class NbdRequestError extends Error {
  override readonly name = 'NbdRequestError';
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}

interface Pending {
  type: number;
  length: number;
  resolve: (b: Buffer | undefined) => void;
  reject: (e: Error) => void;
}

export class NbdClient {
  private pending = new Map<bigint, Pending>();
  private nextHandle = 1n;
  private closed: Error | undefined;
  size = 0n;
  flags = 0;

  private constructor(private readonly sock: Socket, private readonly reader: ByteReader) {}

  static connect(host: string, port: number, exportName: string, timeoutMs = 5000): Promise<NbdClient> {
    return NbdClient.open(connect({ host, port, noDelay: true }), `${host}:${port}`, exportName, timeoutMs);
  }

  /** Connects over a Unix socket (the host↔CVM link). */
  static connectPath(path: string, exportName: string, timeoutMs = 5000): Promise<NbdClient> {
    return NbdClient.open(connect({ path }), path, exportName, timeoutMs);
  }

  private static async open(sock: Socket, where: string, exportName: string, timeoutMs: number): Promise<NbdClient> {
    const reader = new ByteReader(() => sock.pause(), () => sock.resume());
    sock.on('data', (c: Buffer) => reader.push(c));
    sock.on('end', () => reader.end());
    sock.on('close', () => reader.end());
    sock.on('error', () => reader.end('connection error'));
    const timer = setTimeout(() => sock.destroy(new Error(`NBD handshake with ${where} timed out`)), timeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once('connect', () => resolve());
        sock.once('error', reject);
      });
      const c = new NbdClient(sock, reader);
      await c.handshake(exportName);
      c.readLoop();
      return c;
    } catch (e) {
      sock.destroy();
      throw new NbdConnectionLost(`${where}: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private async handshake(name: string): Promise<void> {
    const g = await this.reader.read(18);
    if (g.readBigUInt64BE(0) !== C.NBDMAGIC || g.readBigUInt64BE(8) !== C.IHAVEOPT) throw new Error('not an NBD newstyle server');
    const cf = Buffer.alloc(4);
    cf.writeUInt32BE(C.NBD_FLAG_C_FIXED_NEWSTYLE | C.NBD_FLAG_C_NO_ZEROES);
    const n = Buffer.from(name, 'utf8');
    const data = Buffer.alloc(4 + n.length + 2);
    data.writeUInt32BE(n.length, 0);
    n.copy(data, 4);
    this.sock.write(Buffer.concat([cf, codec.encodeOptionHeader(C.NBD_OPT_GO, data.length), data]));
    for (;;) {
      const h = await this.reader.read(20);
      const type = h.readUInt32BE(12);
      const len = h.readUInt32BE(16);
      const body = len ? await this.reader.read(len) : Buffer.alloc(0);
      if (type === C.NBD_REP_INFO && body.readUInt16BE(0) === C.NBD_INFO_EXPORT) {
        this.size = body.readBigUInt64BE(2);
        this.flags = body.readUInt16BE(10);
      } else if (type === C.NBD_REP_ACK) {
        return;
      } else if (type >= C.NBD_REP_FLAG_ERROR) {
        throw new Error(`export "${name}" refused: ${body.toString('utf8') || `0x${type.toString(16)}`}`);
      }
    }
  }

  private readLoop(): void {
    void (async () => {
      try {
        for (;;) {
          const r = await this.reader.read(16);
          if (r.readUInt32BE(0) !== C.NBD_SIMPLE_REPLY_MAGIC) throw new Error('unexpected reply magic');
          const handle = r.readBigUInt64BE(8);
          const err = r.readUInt32BE(4);
          const p = this.pending.get(handle);
          if (!p) throw new Error(`reply for unknown handle ${handle}`);
          this.pending.delete(handle);
          if (err !== 0) p.reject(new NbdRequestError(err, `NBD error ${err}`));
          else if (p.type === C.NBD_CMD_READ) p.resolve(await this.reader.read(p.length));
          else p.resolve(undefined);
        }
      } catch (e) {
        this.fail(e instanceof Error ? e.message : String(e));
      }
    })();
  }

  private fail(reason: string): void {
    if (this.closed) return;
    this.closed = new NbdConnectionLost(reason);
    for (const p of this.pending.values()) p.reject(this.closed);
    this.pending.clear();
    this.sock.destroy();
  }

  get alive(): boolean {
    return this.closed === undefined;
  }

  /** Sends a request; resolves with the data of a READ. */
  request(type: number, offset: bigint, length: number, payload?: Buffer, flags = 0): Promise<Buffer | undefined> {
    if (this.closed) return Promise.reject(this.closed);
    const handle = this.nextHandle++;
    return new Promise((resolve, reject) => {
      this.pending.set(handle, { type, length, resolve, reject });
      const head = codec.encodeRequest({ flags, type, handle, offset, length });
      this.sock.write(payload ? Buffer.concat([head, payload]) : head);
    });
  }

  close(): void {
    if (this.closed) return;
    try {
      this.sock.write(codec.encodeRequest({ flags: 0, type: C.NBD_CMD_DISC, handle: 0n, offset: 0n, length: 0 }));
    } catch {
      // already gone
    }
    this.fail('closed');
  }
}
