/**
 * @module
 * One NBD client connection, server side, over any duplex stream (STYLE.md C9):
 *
 * ```
 *  Handshake ──greeting, client flags──► Options ──GO / EXPORT_NAME──► Transmission ──DISC / EOF──► Closed
 *                                          │ INFO, LIST, STRUCTURED_REPLY: answered, stay
 *                                          │ STARTTLS: ACK, then the stream becomes TLS; stay
 *                                          └ ABORT / bad magic / EOF / handshake timeout ────────► Closed
 * ```
 * Invariants:
 *  1. Every request is validated once, at the edge (validate.ts), before a backend sees it.
 *  2. A bad request gets an NBD error reply; only an unparseable stream (bad magic) closes the
 *     connection. Nothing a client sends can throw out of this class.
 *  3. Replies are written whole (header and data in one write), so concurrent requests never
 *     interleave on the wire.
 *  4. With TLS required (FORCEDTLS), nothing but NBD_OPT_STARTTLS and NBD_OPT_ABORT is acted on
 *     before TLS is up: every other option is answered NBD_REP_ERR_TLS_REQD, and
 *     NBD_OPT_EXPORT_NAME, which cannot be answered with an error, closes [proto.md "FORCEDTLS
 *     mode"]. So a client without a certificate learns nothing, not even the export list.
 *  5. A connection that has not reached transmission within the handshake timeout is dropped.
 */
import type { Duplex } from 'node:stream';
import { DiskFullError, DiskIoError, InputError, errorMessage } from '../errors.ts';
import { SystemClock, type Clock, type Disposable } from '../clock.ts';
import * as C from './constants.ts';
import * as codec from './codec.ts';
import type { NbdBackend } from './backend.ts';
import { ByteReader, StreamClosed } from './reader.ts';
import { validateRequest } from './validate.ts';
import { remoteOf, type NbdPeer, type TlsUpgrader } from './starttls.ts';

export interface ExportProvider {
  list(): string[] | Promise<string[]>;
  /** Opens an export by name; undefined when there is none. */
  open(name: string): Promise<NbdBackend | undefined>;
  description?(name: string): string;
}

export type Phase = 'handshake' | 'options' | 'transmission' | 'closed';

/** The one mapping of domain errors to NBD errnos (STYLE.md C6). */
export function nbdErrorOf(e: unknown): number {
  // an error that already carries an NBD errno (an upstream server's answer, relayed)
  const errno = (e as { errno?: unknown } | null)?.errno;
  if (typeof errno === 'number' && errno > 0 && errno < 256 && e instanceof Error && e.name === 'NbdRequestError') return errno;
  if (e instanceof DiskFullError) return C.NBD_ENOSPC;
  if (e instanceof DiskIoError) return C.NBD_EIO;
  if (e instanceof InputError) return C.NBD_EINVAL;
  return C.NBD_EIO;
}

const MAX_INFLIGHT = 64;

/** How a connection treats its client (NbdServer fills these in from its options). */
export interface ConnectionOptions {
  /** Offers NBD_OPT_STARTTLS (and with `require`, insists on it). Without it: no TLS (NOTLS mode). */
  tls?: TlsUpgrader;
  /** Decides whether a client whose certificate verified may go on; refused clients get NBD_REP_ERR_POLICY. */
  authorize?: (peer: NbdPeer) => boolean | Promise<boolean>;
  /** false: NBD_OPT_LIST is refused with NBD_REP_ERR_POLICY. Default true. */
  listExports?: boolean;
  /** The client must reach transmission (GO / EXPORT_NAME) within this; default 10 s. */
  handshakeTimeoutMs?: number;
  clock?: Clock;
}

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

export class NbdConnection {
  phase: Phase = 'handshake';
  /** The stream spoken over: the one given, or the TLS socket on top of it after NBD_OPT_STARTTLS. */
  private stream: Duplex;
  private reader: ByteReader;
  private structured = false;
  private noZeroes = false;
  private backend: NbdBackend | undefined;
  private exportName = '';
  private inflight = 0;
  private slot: (() => void) | undefined;
  /** TLS is up on this connection. */
  private secure = false;
  /** Why options are refused after TLS (the authorize hook said no), if they are. */
  private refused: string | undefined;
  private handshakeTimer: Disposable | undefined;
  /** The handshake timeout ended this connection. */
  timedOut = false;
  readonly remote: string;
  readonly done: Promise<void>;
  private readonly onData = (c: Buffer): void => this.reader.push(c);
  private readonly onEnd = (): void => this.reader.end();
  private readonly onError = (): void => this.reader.end('connection error');

  constructor(private readonly raw: Duplex, private readonly exports: ExportProvider, private readonly log: (m: string) => void = () => undefined, private readonly opts: ConnectionOptions = {}) {
    this.stream = raw;
    this.remote = remoteOf(raw);
    this.reader = new ByteReader(() => this.stream.pause(), () => this.stream.resume());
    this.listen(raw);
    const clock = opts.clock ?? new SystemClock();
    const ms = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.handshakeTimer = clock.setTimeout(() => this.expire(ms), ms);
    this.done = this.run().catch((e: unknown) => {
      if (!(e instanceof StreamClosed)) this.log(`nbd: ${this.remote}: connection ended: ${errorMessage(e)}`);
    }).finally(() => this.close());
  }

  private listen(s: Duplex): void {
    s.on('data', this.onData);
    s.on('end', this.onEnd);
    s.on('close', this.onEnd);
    s.on('error', this.onError);
  }

  private expire(ms: number): void {
    this.handshakeTimer = undefined;
    if (this.phase === 'transmission' || this.phase === 'closed') return;
    this.timedOut = true;
    this.log(`nbd: ${this.remote}: no export chosen within ${ms} ms; closing`);
    this.hangUp();
  }

  /** Drops the connection at once (a hard disconnect). */
  hangUp(): void {
    this.stream.destroy();
    this.raw.destroy();
  }

  /** The connection has ended or is ending. */
  private get gone(): boolean {
    return this.phase === 'closed' || this.stream.destroyed || this.raw.destroyed;
  }

  private write(b: Buffer): void {
    if (this.phase !== 'closed' && !this.stream.destroyed) this.stream.write(b);
  }

  /** Ends the connection; resolves once its export is closed. */
  private async close(): Promise<void> {
    this.phase = 'closed';
    this.handshakeTimer?.dispose();
    this.handshakeTimer = undefined;
    // TLS: end() sends close_notify before the FIN [proto.md "Terminating the transmission phase"]
    if (!this.stream.destroyed) this.stream.end();
    else if (!this.raw.destroyed) this.raw.destroy();
    const be = this.backend;
    this.backend = undefined;
    await be?.close().catch((e: unknown) => this.log(`nbd: ${this.remote}: closing export ${this.exportName}: ${errorMessage(e)}`));
  }

  private async run(): Promise<void> {
    this.write(codec.encodeServerGreeting());
    const cf = (await this.reader.read(4)).readUInt32BE(0);
    if ((cf & C.NBD_FLAG_C_FIXED_NEWSTYLE) === 0) {
      this.log(`nbd: ${this.remote}: client does not speak fixed newstyle; closing`);
      return;
    }
    if ((cf & ~(C.NBD_FLAG_C_FIXED_NEWSTYLE | C.NBD_FLAG_C_NO_ZEROES)) !== 0) return; // unknown client flags: must close [proto.md]
    this.noZeroes = (cf & C.NBD_FLAG_C_NO_ZEROES) !== 0;
    this.phase = 'options';
    if (!(await this.negotiate())) return;
    this.phase = 'transmission';
    this.handshakeTimer?.dispose();
    this.handshakeTimer = undefined;
    const be = this.backend;
    if (be?.serve) await be.serve({ reader: this.reader, stream: this.stream, structured: this.structured, remote: this.remote });
    else await this.transmit();
  }

  /**
   * NBD_OPT_STARTTLS [proto.md "NBD_OPT_STARTTLS", "FORCEDTLS mode"]: ACK, then the stream is TLS
   * (no way back). False when the connection must close (the handshake failed after the ACK).
   */
  private async startTls(tls: TlsUpgrader): Promise<boolean> {
    if (this.reader.pending > 0) {
      // the client sent more before our ACK: those bytes can be neither NBD nor TLS
      this.log(`nbd: ${this.remote}: data after NBD_OPT_STARTTLS before its reply; closing`);
      return false;
    }
    this.write(codec.encodeOptionReply(C.NBD_OPT_STARTTLS, C.NBD_REP_ACK));
    this.raw.off('data', this.onData); // from here the TLS layer reads the raw stream
    this.raw.off('end', this.onEnd);
    let sock;
    try {
      sock = await tls.upgrade(this.raw);
    } catch (e) {
      this.log(`nbd: ${this.remote}: ${errorMessage(e)}; closing`);
      return false;
    }
    this.stream = sock;
    this.secure = true;
    this.listen(sock);
    const certificate = sock.getPeerX509Certificate();
    if (!certificate) {
      this.refused = 'no client certificate';
      return true;
    }
    if (this.opts.authorize) {
      const peer: NbdPeer = { certificate, remote: this.remote };
      let ok = false;
      try {
        ok = await this.opts.authorize(peer);
      } catch (e) {
        this.log(`nbd: ${this.remote}: authorize failed: ${errorMessage(e)}`);
      }
      if (!ok) {
        this.refused = `client certificate "${certificate.subject.replace(/\n/g, ', ')}" is not authorized on this server`;
        this.log(`nbd: ${this.remote}: ${this.refused}`);
      }
    }
    return true;
  }

  /** Option haggling; true when transmission starts. */
  private async negotiate(): Promise<boolean> {
    for (;;) {
      const h = codec.decodeOptionHeader(await this.reader.read(16));
      if (h.magic !== C.IHAVEOPT) return false;
      if (h.length > C.MAX_OPTION_LENGTH) {
        // too big to hold: refuse and drop the connection, as the data cannot be skipped cheaply
        this.write(codec.encodeOptionReply(h.option, C.NBD_REP_ERR_TOO_BIG));
        return false;
      }
      const data = h.length > 0 ? await this.reader.read(h.length) : Buffer.alloc(0);
      const reply = (type: number, payload?: Buffer): void => this.write(codec.encodeOptionReply(h.option, type, payload));
      const err = (type: number, message: string): void => reply(type, Buffer.from(message, 'utf8'));
      const tls = this.opts.tls;
      if (h.option === C.NBD_OPT_ABORT) {
        reply(C.NBD_REP_ACK);
        return false;
      }
      if (h.option === C.NBD_OPT_STARTTLS) {
        // [proto.md "NOTLS mode"]: ERR_POLICY; [proto.md "FORCEDTLS mode"]: INVALID once TLS is up
        if (!tls) err(C.NBD_REP_ERR_POLICY, 'TLS is not enabled on this server');
        else if (this.secure) err(C.NBD_REP_ERR_INVALID, 'TLS is already up');
        else if (data.length !== 0) err(C.NBD_REP_ERR_INVALID, 'NBD_OPT_STARTTLS takes no data');
        else if (!(await this.startTls(tls))) return false;
        continue;
      }
      if (tls?.require && !this.secure) {
        // [proto.md "FORCEDTLS mode"]: EXPORT_NAME cannot be refused with an error: terminate
        if (h.option === C.NBD_OPT_EXPORT_NAME) return false;
        err(C.NBD_REP_ERR_TLS_REQD, 'TLS is required: send NBD_OPT_STARTTLS with a client certificate');
        continue;
      }
      if (this.refused !== undefined) {
        if (h.option === C.NBD_OPT_EXPORT_NAME) return false;
        err(C.NBD_REP_ERR_POLICY, this.refused);
        continue;
      }
      switch (h.option) {
        case C.NBD_OPT_LIST:
          if (data.length !== 0) {
            err(C.NBD_REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
            break;
          }
          if (this.opts.listExports === false) {
            err(C.NBD_REP_ERR_POLICY, 'this server does not list its exports');
            break;
          }
          for (const name of await this.exports.list()) reply(C.NBD_REP_SERVER, codec.encodeRepServer(name));
          reply(C.NBD_REP_ACK);
          break;
        case C.NBD_OPT_STRUCTURED_REPLY:
          if (data.length !== 0) {
            err(C.NBD_REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
            break;
          }
          this.structured = true;
          reply(C.NBD_REP_ACK);
          break;
        case C.NBD_OPT_INFO:
        case C.NBD_OPT_GO: {
          const req = codec.decodeInfoRequest(data);
          if (!req) {
            err(C.NBD_REP_ERR_INVALID, 'malformed NBD_OPT_INFO/GO data');
            break;
          }
          if (Buffer.byteLength(req.name) > C.MAX_STRING) {
            err(C.NBD_REP_ERR_INVALID, 'export name too long');
            break;
          }
          const be = await this.exports.open(req.name);
          if (!be) {
            err(C.NBD_REP_ERR_UNKNOWN, `no export named "${req.name}"`);
            break;
          }
          if (this.gone) {
            await be.close(); // the connection ended (handshake timeout, server shutdown) while the export opened
            return false;
          }
          reply(C.NBD_REP_INFO, codec.encodeInfoExport(be.size, this.transmissionFlags(be)));
          reply(C.NBD_REP_INFO, codec.encodeInfoBlockSize(C.MIN_BLOCK, C.PREFERRED_BLOCK, C.MAX_PAYLOAD));
          if (req.requests.includes(C.NBD_INFO_NAME)) reply(C.NBD_REP_INFO, codec.encodeInfoString(C.NBD_INFO_NAME, req.name));
          if (req.requests.includes(C.NBD_INFO_DESCRIPTION) && this.exports.description) reply(C.NBD_REP_INFO, codec.encodeInfoString(C.NBD_INFO_DESCRIPTION, this.exports.description(req.name)));
          reply(C.NBD_REP_ACK);
          if (h.option === C.NBD_OPT_GO) {
            this.backend = be;
            this.exportName = req.name;
            return true;
          }
          await be.close();
          break;
        }
        case C.NBD_OPT_EXPORT_NAME: {
          const name = data.toString('utf8');
          const be = await this.exports.open(name);
          if (!be) return false; // no way to report an error to EXPORT_NAME [proto.md]: close
          if (this.gone) {
            await be.close();
            return false;
          }
          this.write(codec.encodeExportNameReply(be.size, this.transmissionFlags(be), this.noZeroes));
          this.backend = be;
          this.exportName = name;
          return true;
        }
        default:
          err(C.NBD_REP_ERR_UNSUP, `option ${h.option} is not supported`);
      }
    }
  }

  private transmissionFlags(be: NbdBackend): number {
    let f = C.NBD_FLAG_HAS_FLAGS | C.NBD_FLAG_SEND_FLUSH;
    if (be.multiConn === true) f |= C.NBD_FLAG_CAN_MULTI_CONN;
    f |= be.readOnly ? C.NBD_FLAG_READ_ONLY : C.NBD_FLAG_SEND_FUA | C.NBD_FLAG_SEND_TRIM | C.NBD_FLAG_SEND_WRITE_ZEROES;
    if (this.structured) f |= C.NBD_FLAG_SEND_DF;
    return f;
  }

  private replyError(handle: bigint, error: number, message: string): void {
    this.write(this.structured ? codec.encodeChunkError(handle, error, message) : codec.encodeSimpleReply(handle, error));
  }

  private replyOk(handle: bigint): void {
    this.write(this.structured ? codec.encodeChunkDone(handle) : codec.encodeSimpleReply(handle, 0));
  }

  private replyData(handle: bigint, offset: bigint, data: Buffer): void {
    const head = this.structured ? codec.encodeOffsetDataHeader(handle, offset, data.length) : codec.encodeSimpleReply(handle, 0);
    this.stream.cork();
    this.write(head);
    this.write(data);
    process.nextTick(() => this.stream.uncork());
  }

  private async transmit(): Promise<void> {
    const be = this.backend;
    if (!be) return;
    for (;;) {
      const req = codec.decodeRequest(await this.reader.read(C.NBD_REQUEST_SIZE));
      if (req.magic !== C.NBD_REQUEST_MAGIC) {
        this.log(`nbd: ${this.remote}: bad request magic 0x${req.magic.toString(16)} on export ${this.exportName}; closing`);
        return;
      }
      let payload: Buffer[] | undefined;
      if (req.type === C.NBD_CMD_WRITE) {
        if (req.length > C.MAX_PAYLOAD * 2) {
          this.replyError(req.handle, C.NBD_EOVERFLOW, 'write payload too large; closing');
          return;
        }
        payload = await this.reader.readv(req.length);
      }
      if (req.type === C.NBD_CMD_DISC) {
        await this.idle();
        return;
      }
      const bad = validateRequest(req, be.size, be.readOnly, this.structured);
      if (bad) {
        this.replyError(req.handle, bad.error, bad.message);
        continue;
      }
      if (this.inflight >= MAX_INFLIGHT) await new Promise<void>((r) => (this.slot = r));
      this.inflight++;
      void this.execute(be, req, payload).finally(() => {
        this.inflight--;
        const s = this.slot;
        this.slot = undefined;
        s?.();
      });
    }
  }

  private async idle(): Promise<void> {
    while (this.inflight > 0) await new Promise<void>((r) => (this.slot = r));
  }

  private async execute(be: NbdBackend, req: codec.Request, payload: Buffer[] | undefined): Promise<void> {
    const off = Number(req.offset);
    const fua = (req.flags & C.NBD_CMD_FLAG_FUA) !== 0;
    try {
      switch (req.type) {
        case C.NBD_CMD_READ:
          this.replyData(req.handle, req.offset, await be.pread(off, req.length));
          return;
        case C.NBD_CMD_WRITE: {
          const data = payload ?? [];
          if (be.pwritev) await be.pwritev(off, data, fua);
          else await be.pwrite(off, data.length === 1 ? (data[0] as Buffer) : Buffer.concat(data), fua);
          break;
        }
        case C.NBD_CMD_FLUSH:
          await be.flush();
          break;
        case C.NBD_CMD_TRIM:
          await be.trim(off, req.length, fua);
          break;
        case C.NBD_CMD_WRITE_ZEROES:
          await be.zero(off, req.length, fua);
          break;
        case C.NBD_CMD_CACHE:
          break;
        default:
          this.replyError(req.handle, C.NBD_EINVAL, `unknown command ${req.type}`);
          return;
      }
      this.replyOk(req.handle);
    } catch (e) {
      this.replyError(req.handle, nbdErrorOf(e), errorMessage(e));
    }
  }
}
