/**
 * @module
 * One NBD client connection, server side, over any duplex stream (STYLE.md C9):
 *
 * ```
 *  Handshake ──greeting, client flags──► Options ──GO / EXPORT_NAME──► Transmission ──DISC / EOF──► Closed
 *                                          │ INFO, LIST, STRUCTURED_REPLY: answered, stay
 *                                          └ ABORT / bad magic / EOF ─────────────────────────────► Closed
 * ```
 * Invariants:
 *  1. Every request is validated once, at the edge (validate.ts), before a backend sees it.
 *  2. A bad request gets an NBD error reply; only an unparseable stream (bad magic) closes the
 *     connection. Nothing a client sends can throw out of this class.
 *  3. Replies are written whole (header and data in one write), so concurrent requests never
 *     interleave on the wire.
 */
import type { Duplex } from 'node:stream';
import { DiskFullError, DiskIoError, InputError, errorMessage } from '../errors.ts';
import * as C from './constants.ts';
import * as codec from './codec.ts';
import type { NbdBackend } from './backend.ts';
import { ByteReader, StreamClosed } from './reader.ts';
import { validateRequest } from './validate.ts';

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

export class NbdConnection {
  phase: Phase = 'handshake';
  private reader: ByteReader;
  private structured = false;
  private noZeroes = false;
  private backend: NbdBackend | undefined;
  private exportName = '';
  private inflight = 0;
  private slot: (() => void) | undefined;
  readonly done: Promise<void>;

  constructor(private readonly stream: Duplex, private readonly exports: ExportProvider, private readonly log: (m: string) => void = () => undefined) {
    this.reader = new ByteReader(() => stream.pause(), () => stream.resume());
    stream.on('data', (c: Buffer) => this.reader.push(c));
    stream.on('end', () => this.reader.end());
    stream.on('close', () => this.reader.end());
    stream.on('error', () => this.reader.end('connection error'));
    this.done = this.run().catch((e: unknown) => {
      if (!(e instanceof StreamClosed)) this.log(`nbd: connection ended: ${errorMessage(e)}`);
    }).finally(() => this.close());
  }

  private write(b: Buffer): void {
    if (this.phase !== 'closed' && !this.stream.destroyed) this.stream.write(b);
  }

  private close(): void {
    this.phase = 'closed';
    void this.backend?.close().catch(() => undefined);
    this.backend = undefined;
    if (!this.stream.destroyed) this.stream.end();
  }

  private async run(): Promise<void> {
    this.write(codec.encodeServerGreeting());
    const cf = (await this.reader.read(4)).readUInt32BE(0);
    if ((cf & C.NBD_FLAG_C_FIXED_NEWSTYLE) === 0) {
      this.log('nbd: client does not speak fixed newstyle; closing');
      return;
    }
    if ((cf & ~(C.NBD_FLAG_C_FIXED_NEWSTYLE | C.NBD_FLAG_C_NO_ZEROES)) !== 0) return; // unknown client flags: must close [proto.md]
    this.noZeroes = (cf & C.NBD_FLAG_C_NO_ZEROES) !== 0;
    this.phase = 'options';
    if (!(await this.negotiate())) return;
    this.phase = 'transmission';
    await this.transmit();
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
      switch (h.option) {
        case C.NBD_OPT_ABORT:
          reply(C.NBD_REP_ACK);
          return false;
        case C.NBD_OPT_LIST:
          if (data.length !== 0) {
            err(C.NBD_REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
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
    let f = C.NBD_FLAG_HAS_FLAGS | C.NBD_FLAG_SEND_FLUSH | C.NBD_FLAG_CAN_MULTI_CONN;
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
        this.log(`nbd: bad request magic 0x${req.magic.toString(16)} on export ${this.exportName}; closing`);
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
