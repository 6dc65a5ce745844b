/**
 * @module
 * A small NBD client (fixed newstyle, NBD_OPT_GO, simple replies, pipelined requests matched by
 * handle), used by the hypervisor's redirector to reach CVMs and by tests. Any failure of the
 * connection fails every request in flight with NbdConnectionLost, so a caller can retry them
 * elsewhere.
 */
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ByteReader } from './reader.ts';
import * as codec from './codec.ts';
import * as C from './constants.ts';
import { startTlsClient, type NbdClientTls } from './starttls.ts';

export class NbdConnectionLost extends Error {}

/** An error the server answered for one request (the connection is fine). */
export class NbdRequestError extends Error {
  override readonly name = 'NbdRequestError';
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}

export interface NbdClientOptions {
  /**
   * TLS with a client certificate: NBD_OPT_STARTTLS first, then everything else over TLS; a
   * server that refuses STARTTLS, or whose certificate does not verify, is not spoken to.
   */
  tls?: NbdClientTls;
  /**
   * Stop after the handshake: no reply reader is started, and the caller takes the stream and its
   * reader with `wire()` (a proxy that relays replies itself; src/hypervisor/redirector.ts).
   */
  detached?: boolean;
}

/** A connected stream in the transmission phase, with the reader that frames what comes in. */
export interface NbdWire {
  sock: Duplex;
  reader: ByteReader;
  /** Ends the connection at once. */
  destroy(): void;
}

interface Pending {
  type: number;
  length: number;
  resolve: (b: Buffer | undefined) => void;
  reject: (e: Error) => void;
}

/** The stream the client speaks over: the socket, or TLS on top of it once STARTTLS succeeded. */
interface Link {
  raw: Socket;
  sock: Duplex;
}

export class NbdClient {
  private pending = new Map<bigint, Pending>();
  private nextHandle = 1n;
  private closed: Error | undefined;
  size = 0n;
  flags = 0;

  private constructor(private readonly link: Link, private readonly reader: ByteReader) {}

  static connect(host: string, port: number, exportName: string, timeoutMs = 5000, opts: NbdClientOptions = {}): Promise<NbdClient> {
    return NbdClient.open(connect({ host, port, noDelay: true }), `${host}:${port}`, host, exportName, timeoutMs, opts);
  }

  /** Connects over a Unix socket (the host↔CVM link). With TLS, `opts.tls.servername` names the server. */
  static connectPath(path: string, exportName: string, timeoutMs = 5000, opts: NbdClientOptions = {}): Promise<NbdClient> {
    return NbdClient.open(connect({ path }), path, undefined, exportName, timeoutMs, opts);
  }

  private static async open(sock: Socket, where: string, host: string | undefined, exportName: string, timeoutMs: number, opts: NbdClientOptions): Promise<NbdClient> {
    const link: Link = { raw: sock, sock };
    const reader = new ByteReader(() => link.sock.pause(), () => link.sock.resume());
    listen(sock, reader);
    const timer = setTimeout(() => sock.destroy(new Error(`NBD handshake with ${where} timed out`)), timeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once('connect', () => resolve());
        sock.once('error', reject);
      });
      const c = new NbdClient(link, reader);
      await c.handshake(exportName, host, opts.tls);
      if (!opts.detached) c.readLoop();
      return c;
    } catch (e) {
      link.sock.destroy();
      sock.destroy();
      throw new NbdConnectionLost(`${where}: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads one option reply: header and data. */
  private async optionReply(): Promise<{ option: number; type: number; body: Buffer }> {
    const h = await this.reader.read(20);
    if (h.readBigUInt64BE(0) !== C.NBD_REP_MAGIC) throw new Error('bad option reply magic');
    const len = h.readUInt32BE(16);
    if (len > C.MAX_OPTION_LENGTH) throw new Error(`option reply of ${len} bytes is too long`);
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), body: len ? await this.reader.read(len) : Buffer.alloc(0) };
  }

  /**
   * NBD_OPT_STARTTLS as the first option [proto.md "Client-side requirements"], then the TLS
   * handshake on the same socket. Any refusal ends the session: this client does not fall back
   * to plain text.
   */
  private async startTls(tls: NbdClientTls, host: string | undefined): Promise<void> {
    this.link.sock.write(codec.encodeOptionHeader(C.NBD_OPT_STARTTLS, 0));
    const r = await this.optionReply();
    if (r.type !== C.NBD_REP_ACK || r.body.length !== 0) {
      this.link.sock.write(codec.encodeOptionHeader(C.NBD_OPT_ABORT, 0)); // soft disconnect [proto.md]
      throw new Error(`the server refused TLS: ${codec.optionReplyName(r.type)}${r.body.length ? ` (${r.body.toString('utf8')})` : ''}`);
    }
    if (this.reader.pending > 0) throw new Error('the server sent data after accepting NBD_OPT_STARTTLS');
    const raw = this.link.raw;
    raw.removeAllListeners('data'); // from here the TLS layer reads the socket
    raw.removeAllListeners('end');
    const secure = await startTlsClient(raw, tls, host);
    this.link.sock = secure;
    listen(secure, this.reader);
  }

  private async handshake(name: string, host: string | undefined, tls: NbdClientTls | undefined): Promise<void> {
    const g = await this.reader.read(18);
    if (g.readBigUInt64BE(0) !== C.NBDMAGIC || g.readBigUInt64BE(8) !== C.IHAVEOPT) throw new Error('not an NBD newstyle server');
    const cf = Buffer.alloc(4);
    cf.writeUInt32BE(C.NBD_FLAG_C_FIXED_NEWSTYLE | C.NBD_FLAG_C_NO_ZEROES);
    this.link.sock.write(cf);
    if (tls) {
      // TLS requires fixed newstyle [proto.md "Certificates, authentication and authorisation"]
      if ((g.readUInt16BE(16) & C.NBD_FLAG_FIXED_NEWSTYLE) === 0) throw new Error('the server does not speak fixed newstyle, so it cannot do TLS');
      await this.startTls(tls, host);
    }
    const n = Buffer.from(name, 'utf8');
    const data = Buffer.alloc(4 + n.length + 2);
    data.writeUInt32BE(n.length, 0);
    n.copy(data, 4);
    this.link.sock.write(Buffer.concat([codec.encodeOptionHeader(C.NBD_OPT_GO, data.length), data]));
    for (;;) {
      const { type, body } = await this.optionReply();
      if (type === C.NBD_REP_INFO && body.length >= 12 && body.readUInt16BE(0) === C.NBD_INFO_EXPORT) {
        this.size = body.readBigUInt64BE(2);
        this.flags = body.readUInt16BE(10);
      } else if (type === C.NBD_REP_ACK) {
        return;
      } else if (type >= C.NBD_REP_FLAG_ERROR) {
        throw new Error(`export "${name}" refused: ${codec.optionReplyName(type)}${body.length ? ` (${body.toString('utf8')})` : ''}`);
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
    this.link.sock.destroy();
    this.link.raw.destroy();
  }

  /** The stream and its reader, for a client opened `detached` (nothing else reads them then). */
  wire(): NbdWire {
    return { sock: this.link.sock, reader: this.reader, destroy: () => this.fail('closed') };
  }

  get alive(): boolean {
    return this.closed === undefined;
  }

  /** Sends a request; resolves with the data of a READ. */
  request(type: number, offset: bigint, length: number, payload?: Buffer | readonly Buffer[], flags = 0): Promise<Buffer | undefined> {
    if (this.closed) return Promise.reject(this.closed);
    const handle = this.nextHandle++;
    return new Promise((resolve, reject) => {
      this.pending.set(handle, { type, length, resolve, reject });
      writeRequest(this.link.sock, codec.encodeRequest({ flags, type, handle, offset, length }), payload);
    });
  }

  close(): void {
    if (this.closed) return;
    try {
      this.link.sock.write(codec.encodeRequest({ flags: 0, type: C.NBD_CMD_DISC, handle: 0n, offset: 0n, length: 0 }));
    } catch {
      // already gone
    }
    this.fail('closed');
  }
}

/** A request header and its payload (whole or in pieces) as one write: no copy of the payload. */
function writeRequest(sock: Duplex, head: Buffer, payload?: Buffer | readonly Buffer[]): void {
  if (!payload) {
    sock.write(head);
    return;
  }
  sock.cork();
  sock.write(head);
  for (const b of Buffer.isBuffer(payload) ? [payload] : payload) sock.write(b);
  sock.uncork();
}

function listen(s: Duplex, reader: ByteReader): void {
  s.on('data', (c: Buffer) => reader.push(c));
  s.on('end', () => reader.end());
  s.on('close', () => reader.end());
  s.on('error', (e: Error) => reader.end(`connection error: ${e.message}`));
}
