/**
 * @module
 * The I/O redirector: the hypervisor serves every vdisk to its own clients over NBD on a Unix
 * socket of the host↔CVM link (only this host's processes reach it; ADR 013) and forwards each
 * request to the local CVM's stargate over the host↔CVM link; when the local CVM is down it switches
 * to a healthy remote CVM, and back when the local one returns. Requests caught in flight by a
 * failing CVM are sent again to the next one, so clients see a stall, never an I/O error (writes
 * resent are the same bytes at the same offset).
 *
 * It is a relay, not a backend called per request: after the handshake, requests are read off the
 * client's stream, checked at the edge (validate.ts), given a handle of the redirector's own and
 * written upstream with their payload pieces as they came (no copy); replies are read off the
 * upstream stream and written to the client whole once all their bytes are here (so a CVM dying
 * in the middle of a reply never leaves half a reply on the client's stream), with the client's
 * handle and, if it negotiated them, as structured replies. Upstream always speaks simple replies.
 *
 * ```
 *  client ──request──► [validate, id] ──► link to a CVM (local, else any) ──reply──► client
 *                                          │ link lost: every request in flight on it is resent
 *                                          └ local CVM back (checked every 2 s): new requests go
 *                                            there; the old link drains, then closes
 * ```
 */
import type { Duplex } from 'node:stream';
import { NbdServer } from '../shared/nbd/server.ts';
import type { NbdBackend, Transmission } from '../shared/nbd/backend.ts';
import { NbdClient, NbdRequestError, type NbdWire } from '../shared/nbd/client.ts';
import * as C from '../shared/nbd/constants.ts';
import * as codec from '../shared/nbd/codec.ts';
import { validateRequest } from '../shared/nbd/validate.ts';
import type { NbdClientTls } from '../shared/nbd/starttls.ts';
import { UnavailableError, errorMessage } from '../shared/errors.ts';

const CVM_NBD_PORT = 10809;
/** How long requests wait for some CVM to serve them before they fail. */
const STALL_LIMIT_MS = 60_000;
/** Requests of one client in flight at once (the next is read when one is answered). */
const MAX_INFLIGHT = 64;

export interface RedirectorDeps {
  localCvmIp: () => string;
  /** CVM addresses of the cluster, local first (cached by the caller while the local CVM is down). */
  cvms: () => string[];
  /** Names of the vdisks (asked of a CVM). */
  vdisks: () => Promise<string[]>;
  log: (m: string) => void;
  /** The host↔CVM link's NBD socket: the local CVM is reached through it, not over the network. */
  localLink?: () => string | undefined;
  /** The host's certificate from the cluster CA: how remote CVMs' stargates (NBD over TLS) admit it. */
  tls?: () => NbdClientTls | undefined;
}

/** Connects to a CVM's stargate: the local one over the host↔CVM link, others over TCP. */
function reach(deps: RedirectorDeps, ip: string, name: string, timeoutMs: number): Promise<NbdClient> {
  const link = ip === deps.localCvmIp() ? deps.localLink?.() : undefined;
  if (link) return NbdClient.connectPath(link, name, timeoutMs, { detached: true });
  const tls = deps.tls?.();
  if (!tls) return Promise.reject(new UnavailableError(`no cluster certificate to reach CVM ${ip} with`));
  return NbdClient.connect(ip, CVM_NBD_PORT, name, timeoutMs, { tls, detached: true });
}

/** One request on its way: sent on a link, resent on another if that one is lost, answered once. */
interface InFlight {
  id: bigint;
  type: number;
  flags: number;
  offset: bigint;
  length: number;
  payload: readonly Buffer[] | undefined;
  /** The answer: an NBD errno (0: fine) and, for a READ, its bytes. */
  answer: (errno: number, data: readonly Buffer[] | undefined) => void;
}

/** A connection to one CVM's stargate in the transmission phase, relaying replies as they complete. */
class Link {
  readonly pending = new Map<bigint, InFlight>();
  alive = true;
  /** No new requests come here: it closes once its last reply is in. */
  private retiring = false;
  private readonly wire: NbdWire;

  constructor(readonly ip: string, client: NbdClient, private readonly lost: (l: Link) => void, private readonly log: (m: string) => void) {
    this.wire = client.wire();
    void this.readReplies();
  }

  send(r: InFlight): void {
    this.pending.set(r.id, r);
    // DF asks for one data chunk; upstream replies are simple (one piece) anyway
    const flags = r.flags & ~C.NBD_CMD_FLAG_DF;
    const sock = this.wire.sock;
    corkForTick(sock);
    sock.write(codec.encodeRequest({ flags, type: r.type, handle: r.id, offset: r.offset, length: r.length }));
    for (const b of r.payload ?? []) sock.write(b);
  }

  /** Closes once the replies still due are in (another link takes the new requests). */
  retire(): void {
    this.retiring = true;
    if (this.pending.size === 0) this.close();
  }

  close(): void {
    if (!this.alive) return;
    this.alive = false;
    try {
      this.wire.sock.write(codec.encodeRequest({ flags: 0, type: C.NBD_CMD_DISC, handle: 0n, offset: 0n, length: 0 }));
    } catch {
      // already gone
    }
    this.wire.destroy();
  }

  private async readReplies(): Promise<void> {
    const reader = this.wire.reader;
    try {
      for (;;) {
        const h = await reader.read(16);
        if (h.readUInt32BE(0) !== C.NBD_SIMPLE_REPLY_MAGIC) throw new Error('unexpected reply magic');
        const errno = h.readUInt32BE(4);
        const id = h.readBigUInt64BE(8);
        const r = this.pending.get(id);
        if (!r) throw new Error(`reply for unknown handle ${id}`);
        // the whole reply before anything is relayed
        const data = errno === 0 && r.type === C.NBD_CMD_READ ? await reader.readv(r.length) : undefined;
        this.pending.delete(id);
        r.answer(errno, data);
        if (this.retiring && this.pending.size === 0) this.close();
      }
    } catch (e) {
      if (this.alive) this.log(`redirector: the connection to CVM ${this.ip} was lost: ${errorMessage(e)}`);
      this.alive = false;
      this.wire.destroy();
      this.lost(this);
    }
  }
}

class RedirectBackend implements NbdBackend {
  readonly readOnly = false;
  private current: Link | undefined;
  private connecting: Promise<Link> | undefined;
  private readonly links = new Set<Link>();
  private nextId = 1n;
  /** Requests sent and not yet answered, by id. */
  private readonly inflight = new Map<bigint, InFlight>();
  private readonly failbackTimer: NodeJS.Timeout;
  private closed = false;

  constructor(readonly name: string, readonly size: bigint, first: NbdClient, firstIp: string, private readonly deps: RedirectorDeps) {
    this.current = this.adopt(first, firstIp);
    // fail back to the local CVM when it returns
    this.failbackTimer = setInterval(() => void this.failback(), 2000);
    this.failbackTimer.unref();
  }

  private adopt(client: NbdClient, ip: string): Link {
    const l = new Link(ip, client, (x) => this.onLost(x), this.deps.log);
    this.links.add(l);
    return l;
  }

  /** A link is gone: every request still in flight on it goes again, through a link that works. */
  private onLost(l: Link): void {
    this.links.delete(l);
    if (this.current === l) this.current = undefined;
    const again = [...l.pending.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    l.pending.clear();
    for (const r of again) if (this.inflight.has(r.id)) void this.dispatch(r);
  }

  private async failback(): Promise<void> {
    const local = this.deps.localCvmIp();
    if (this.closed || this.current?.ip === local || this.connecting) return;
    try {
      const c = await reach(this.deps, local, this.name, 1000);
      if (this.closed) return c.close();
      const old = this.current;
      this.current = this.adopt(c, local);
      this.deps.log(`redirector: ${this.name} back on the local CVM ${local}`);
      old?.retire();
    } catch {
      // still down
    }
  }

  /** The link new requests go to: the current one, or a new one to the first CVM that answers. */
  private link(): Promise<Link> {
    if (this.current?.alive) return Promise.resolve(this.current);
    this.connecting ??= (async () => {
      const deadline = Date.now() + STALL_LIMIT_MS;
      for (let wait = 100; ; wait = Math.min(wait * 2, 1000)) {
        if (this.closed) throw new UnavailableError(`${this.name}: the client is gone`);
        for (const ip of this.deps.cvms()) {
          try {
            const c = await reach(this.deps, ip, this.name, 2000);
            if (ip !== this.current?.ip) this.deps.log(`redirector: ${this.name} now through CVM ${ip}${ip === this.deps.localCvmIp() ? ' (local)' : ' (the local CVM is down)'}`);
            this.current = this.adopt(c, ip);
            return this.current;
          } catch {
            // next CVM
          }
        }
        if (Date.now() > deadline) throw new UnavailableError(`no CVM serves ${this.name}`);
        await new Promise((r) => setTimeout(r, wait));
      }
    })().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /** Sends a request through the link that works; if none comes within the stall limit, it fails with EIO. */
  private async dispatch(r: InFlight): Promise<void> {
    try {
      const l = this.current?.alive ? this.current : await this.link();
      l.send(r);
    } catch (e) {
      if (!this.inflight.delete(r.id)) return;
      this.deps.log(`redirector: ${this.name}: request failed: ${errorMessage(e)}`);
      r.answer(C.NBD_EIO, undefined);
    }
  }

  /** Starts a request; `answer` is called once, with the result from whichever CVM served it. */
  private start(type: number, flags: number, offset: bigint, length: number, payload: readonly Buffer[] | undefined, answer: InFlight['answer']): void {
    const r: InFlight = {
      id: this.nextId++, type, flags, offset, length, payload,
      answer: (errno, data) => {
        if (this.inflight.delete(r.id)) answer(errno, data);
      },
    };
    this.inflight.set(r.id, r);
    void this.dispatch(r);
  }

  /** The relay for one client connection (NbdConnection hands its transmission phase over). */
  async serve(t: Transmission): Promise<void> {
    let inflight = 0;
    let slot: (() => void) | undefined;
    const freed = (): void => {
      inflight--;
      const s = slot;
      slot = undefined;
      s?.();
    };
    const out = t.stream;
    // replies that complete in one tick leave in one writev
    const send = (head: Buffer, data?: readonly Buffer[]): void => {
      if (out.destroyed) return;
      corkForTick(out);
      out.write(head);
      for (const b of data ?? []) out.write(b);
    };
    const reply = (handle: bigint, offset: bigint, errno: number, data: readonly Buffer[] | undefined): void => {
      if (errno !== 0) send(t.structured ? codec.encodeChunkError(handle, errno, `NBD error ${errno} from the CVM`) : codec.encodeSimpleReply(handle, errno));
      else if (!data) send(t.structured ? codec.encodeChunkDone(handle) : codec.encodeSimpleReply(handle, 0));
      else send(t.structured ? codec.encodeOffsetDataHeader(handle, offset, data.reduce((n, b) => n + b.length, 0)) : codec.encodeSimpleReply(handle, 0), data);
    };
    const refuse = (handle: bigint, errno: number, message: string): void => send(t.structured ? codec.encodeChunkError(handle, errno, message) : codec.encodeSimpleReply(handle, errno));
    for (;;) {
      const req = codec.decodeRequest(await t.reader.read(C.NBD_REQUEST_SIZE));
      if (req.magic !== C.NBD_REQUEST_MAGIC) {
        this.deps.log(`redirector: ${t.remote}: bad request magic 0x${req.magic.toString(16)} on ${this.name}; closing`);
        return;
      }
      let payload: Buffer[] | undefined;
      if (req.type === C.NBD_CMD_WRITE) {
        if (req.length > C.MAX_PAYLOAD * 2) {
          refuse(req.handle, C.NBD_EOVERFLOW, 'write payload too large; closing');
          return;
        }
        payload = await t.reader.readv(req.length);
      }
      if (req.type === C.NBD_CMD_DISC) {
        while (inflight > 0) await new Promise<void>((r) => (slot = r));
        return;
      }
      const bad = validateRequest(req, this.size, false, t.structured);
      if (bad) {
        refuse(req.handle, bad.error, bad.message);
        continue;
      }
      if (req.type === C.NBD_CMD_CACHE) {
        reply(req.handle, req.offset, 0, undefined); // a hint: nothing to do
        continue;
      }
      while (inflight >= MAX_INFLIGHT) await new Promise<void>((r) => (slot = r));
      inflight++;
      const { handle, offset } = req;
      this.start(req.type, req.flags, offset, req.length, payload, (errno, data) => {
        reply(handle, offset, errno, data);
        freed();
      });
    }
  }

  /** One request as a call (the NbdBackend methods; the relay above is what clients use). */
  private call(type: number, offset: number, length: number, payload?: Buffer, flags = 0): Promise<Buffer | undefined> {
    return new Promise((resolve, reject) => {
      this.start(type, flags, BigInt(offset), length, payload ? [payload] : undefined, (errno, data) => {
        if (errno !== 0) reject(new NbdRequestError(errno, `NBD error ${errno}`));
        else resolve(data ? Buffer.concat(data) : undefined);
      });
    });
  }

  async pread(offset: number, length: number): Promise<Buffer> {
    return (await this.call(C.NBD_CMD_READ, offset, length)) ?? Buffer.alloc(length);
  }
  async pwrite(offset: number, data: Buffer, fua: boolean): Promise<void> {
    await this.call(C.NBD_CMD_WRITE, offset, data.length, data, fua ? C.NBD_CMD_FLAG_FUA : 0);
  }
  async flush(): Promise<void> {
    await this.call(C.NBD_CMD_FLUSH, 0, 0);
  }
  async trim(offset: number, length: number, fua: boolean): Promise<void> {
    await this.call(C.NBD_CMD_TRIM, offset, length, undefined, fua ? C.NBD_CMD_FLAG_FUA : 0);
  }
  async zero(offset: number, length: number, fua: boolean): Promise<void> {
    await this.call(C.NBD_CMD_WRITE_ZEROES, offset, length, undefined, fua ? C.NBD_CMD_FLAG_FUA : 0);
  }

  close(): Promise<void> {
    this.closed = true;
    clearInterval(this.failbackTimer);
    for (const l of this.links) l.close();
    this.links.clear();
    this.current = undefined;
    return Promise.resolve();
  }
}

const corked = new WeakSet<Duplex>();

/** Holds a stream's writes until the end of this tick, so what is written meanwhile leaves in one writev (no copy). */
function corkForTick(s: Duplex): void {
  if (corked.has(s)) return;
  corked.add(s);
  s.cork();
  process.nextTick(() => {
    corked.delete(s);
    s.uncork();
  });
}

export class Redirector {
  private server: NbdServer;

  constructor(deps: RedirectorDeps) {
    this.server = new NbdServer({
      list: () => deps.vdisks(),
      open: async (name) => {
        for (const ip of deps.cvms()) {
          try {
            const c = await reach(deps, ip, name, 2000);
            return new RedirectBackend(name, c.size, c, ip, deps);
          } catch (e) {
            deps.log(`redirector: ${name} via ${ip}: ${errorMessage(e)}`);
          }
        }
        return undefined;
      },
    }, deps.log);
  }

  /** Serves this host's clients on the Unix socket at `path`. */
  listen(path: string): Promise<void> {
    return this.server.listenPath(path);
  }

  close(): Promise<void> {
    return this.server.close();
  }
}
