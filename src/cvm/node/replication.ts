/**
 * @module
 * The replication protocol's server and client (codec: core/replication-codec.ts) on
 * cvmIp:REPLICATION_PORT. The server serves this CVM's extent groups to its peers; requests on a
 * connection run concurrently and are answered as they finish. The client keeps a few connections
 * per peer; when a connection breaks, every request in flight on it fails with UnavailableError
 * (the write path then retries or replaces the replica), and the next request reconnects.
 *
 * Both ends authenticate: TLS with the members' `cvm` certificates of the cluster CA (ADR 013);
 * a client without one never gets past the handshake.
 */
import type { Socket } from 'node:net';
import { createServer, connect, type Server, type TLSSocket } from 'node:tls';
import { peerOf, type Anchors, type Identity } from '../../shared/identity.ts';
import { ByteReader } from '../../shared/nbd/reader.ts';
import { DiskFullError, DiskIoError, InputError, PoolFullError, NotFoundError, TimeoutError, UnavailableError, errorMessage } from '../../shared/errors.ts';
import * as R from '../core/replication-codec.ts';
import { REPLICATION_PORT } from '../protocol/cluster.ts';
import type { EgroupRef, LocalEgroups } from './egroups.ts';
import { ChecksumError, ZERO_PAGE_CRC, crcsFor } from './extent-store.ts';
import { CorruptPageError, HandoffRefusedError, NotOwnerError, StaleEpochError, StaleGenerationError } from '../core/engine/ports.ts';
import type { ExtentImage, ExtentVersion, ReadRequest, ReadResult, WriteFrame } from '../core/engine/ports.ts';
import { EGROUP_EXTENTS } from '../core/engine/layout.ts';

/** The v2 replica side this server serves the engine's ops with (node/engine-replicas.ts: LocalReplicas). */
export interface EngineReplicas {
  write(disk: string, f: WriteFrame): Promise<void>;
  read(disk: string, r: ReadRequest): Promise<ReadResult>;
  extentGens(disk: string, vdisk: string, egroup: number, epoch: number): Promise<Map<number, ExtentVersion>>;
  readExtent(disk: string, vdisk: string, egroup: number, extent: number): Promise<ExtentImage | null>;
  writeExtent(disk: string, vdisk: string, egroup: number, extent: number, epoch: number, image: ExtentImage | null): Promise<void>;
  syncVdisk(vdisk: string): Promise<void>;
}

/**
 * The owner side of forwarding (protocol v3, node/owners.ts): served only for vdisks this CVM owns
 * (NotOwnerError otherwise; never forwarded on). Offsets are vdisk byte offsets.
 */
export interface ForwardedIo {
  read(vdisk: string, offset: number, length: number): Promise<Buffer>;
  write(vdisk: string, offset: number, data: Buffer): Promise<void>;
  zero(vdisk: string, offset: number, length: number): Promise<void>;
  flush(vdisk: string): Promise<void>;
  /** Gives the vdisk up so the asking CVM can take it (HandoffRefusedError while this CVM's host uses it). */
  handoff(vdisk: string): Promise<void>;
}


const ZEROS = Buffer.alloc(4096);

/** Whether a write's data is all zeros (its whole pages' checksums say so first: other data is rejected at once). */
function isZeros(data: Uint8Array, crcs: Uint32Array): boolean {
  if (data.byteLength === 0 || !crcs.every((c) => c === ZERO_PAGE_CRC)) return false;
  for (let at = 0; at < data.byteLength; at += ZEROS.length) {
    const part = data.subarray(at, Math.min(data.byteLength, at + ZEROS.length));
    if (!ZEROS.subarray(0, part.byteLength).equals(part)) return false;
  }
  return true;
}

function statusOf(e: unknown): number {
  if (e instanceof StaleEpochError) return R.ST_STALE_EPOCH;
  if (e instanceof StaleGenerationError) return R.ST_STALE_GEN;
  if (e instanceof NotOwnerError) return R.ST_NOT_OWNER;
  if (e instanceof HandoffRefusedError) return R.ST_BUSY;
  if (e instanceof UnavailableError || e instanceof TimeoutError) return R.ST_UNAVAILABLE;
  if (e instanceof ChecksumError || e instanceof CorruptPageError) return R.ST_CHECKSUM;
  if (e instanceof DiskIoError) return R.ST_DISK_IO;
  if (e instanceof DiskFullError) return R.ST_NO_SPACE;
  if (e instanceof InputError) return R.ST_INPUT;
  if (e instanceof NotFoundError) return R.ST_NOT_FOUND;
  return R.ST_INTERNAL;
}

/** The TLS of a member: its `cvm` certificate, and the cluster CA it trusts. */
export interface MemberTls {
  identity: Pick<Identity, 'cert' | 'key'>;
  clusterCa: string;
}

export class ReplicationServer {
  private server: Server | undefined;
  private sockets = new Set<Socket>();

  /** `engine`: serves the v2 ops (protocol version 2); without it they are answered with an error. */
  /** The owner side of forwarding (set while the CVM serves vdisks); none: ST_NOT_OWNER. */
  forward: ForwardedIo | undefined;

  constructor(private readonly local: LocalEgroups, private readonly log: (m: string) => void, private readonly engine?: EngineReplicas) {}

  /** Serves the cluster's members (and nobody else) on ip:port. */
  listen(ip: string, tls: MemberTls, port = REPLICATION_PORT): Promise<void> {
    const anchors: Anchors = { cluster: tls.clusterCa };
    const server = createServer({ cert: tls.identity.cert, key: tls.identity.key, ca: [tls.clusterCa], requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' }, (s: TLSSocket) => {
      if (peerOf(s, anchors)?.role !== 'cvm') s.destroy();
      else this.serve(s);
    });
    server.on('tlsClientError', () => undefined); // a stranger's failed handshake: nothing to serve
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, ip, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  get listening(): boolean {
    return this.server?.listening === true;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    if (server?.listening) await new Promise<void>((r) => server.close(() => r()));
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    sock.setNoDelay(true);
    const reader = new ByteReader(() => sock.pause(), () => sock.resume(), 16 << 20);
    sock.on('data', (c: Buffer) => reader.push(c));
    sock.on('end', () => reader.end());
    sock.on('close', () => {
      reader.end();
      this.sockets.delete(sock);
    });
    sock.on('error', () => reader.end('connection error'));
    const reply = (id: number, version: number, status: number, body?: Buffer): void => {
      if (sock.destroyed) return;
      sock.cork();
      sock.write(R.encodeReply(id, status, body?.length ?? 0, version));
      if (body?.length) sock.write(body);
      process.nextTick(() => sock.uncork());
    };
    void (async () => {
      try {
        for (;;) {
          const h = R.decodeRequestHeader(await reader.read(R.REQ_HEADER));
          const bad = R.frameError(h);
          if (bad) {
            // its payload's size is unknown or out of bounds: answer, then close (nothing more can be framed)
            reply(h.id, Math.min(h.version, R.PROTOCOL_VERSION), R.ST_INPUT, Buffer.from(bad));
            this.log(`replication: ${bad}; closing the connection`);
            process.nextTick(() => sock.end());
            return;
          }
          const disk = (await reader.read(h.diskLength)).toString('latin1');
          const size = R.payloadBytes(h);
          const payload = size > 0 ? await reader.read(size) : undefined;
          const req = { ...h, disk };
          void this.execute(req, payload).then((out) => reply(req.id, h.version, R.ST_OK, out), (e: unknown) => reply(req.id, h.version, statusOf(e), e instanceof StaleEpochError ? Buffer.concat([R.encodeU64(e.seen), R.encodeU64(e.sent)]) : Buffer.from(errorMessage(e))));
        }
      } catch (e) {
        if (!sock.destroyed && !(e instanceof Error && /closed|connection error/.test(e.message))) this.log(`replication: ${errorMessage(e)}; closing the connection`);
        sock.destroy();
      }
    })();
  }

  private async execute(req: R.ReplicationRequest, payload: Buffer | undefined): Promise<Buffer | undefined> {
    R.validateRequest(req);
    if (R.versionFor(req.op) >= 3) return this.executeForwarded(req, payload ?? Buffer.alloc(0));
    if (R.versionFor(req.op) >= 2) return this.executeV2(req, payload ?? Buffer.alloc(0));
    const ref: EgroupRef = { disk: req.disk, vdisk: req.vdisk, block: req.block };
    switch (req.op) {
      case R.OP_WRITE:
      case R.OP_WRITE_SYNC: {
        const body = payload ?? Buffer.alloc(0);
        // v1: the page checksums the writing CVM computed, stored as they are
        const n = (req.version ?? 0) >= 1 ? 4 * R.wholePageCount(req.offset, req.length) : 0;
        const crcs = n > 0 ? R.decodeCrcs(body.subarray(0, n)) : undefined;
        await this.local.write(ref, req.offset, body.subarray(n), req.op === R.OP_WRITE_SYNC, crcs);
        return undefined;
      }
      case R.OP_READ:
        return this.local.read(ref, req.offset, req.length);
      case R.OP_ZERO:
      case R.OP_ZERO_SYNC:
        await this.local.zero(ref, req.offset, req.length, req.op === R.OP_ZERO_SYNC);
        return undefined;
      case R.OP_SYNC_MANY:
        await this.local.syncMany(R.decodeSyncMany(payload ?? Buffer.alloc(0)).map((e) => ({ ...e, vdisk: req.vdisk })));
        return undefined;
      default:
        await this.local.sync(ref);
        return undefined;
    }
  }

  /** The engine's ops (protocol version 2): `block` is the extent's index in the vdisk (EXTENT_GENS: the extent group). */
  private async executeForwarded(req: R.ReplicationRequest, payload: Buffer): Promise<Buffer | undefined> {
    const f = this.forward;
    if (!f) throw new NotOwnerError(`this CVM serves no vdisks now`);
    const offset = req.block * R.FWD_UNIT + req.offset;
    switch (req.op) {
      case R.OP_FWD_READ:
        return f.read(req.vdisk, offset, req.length);
      case R.OP_FWD_WRITE:
        await f.write(req.vdisk, offset, payload);
        return undefined;
      case R.OP_FWD_ZERO:
        await f.zero(req.vdisk, offset, req.length);
        return undefined;
      case R.OP_FWD_FLUSH:
        await f.flush(req.vdisk);
        return undefined;
      default:
        await f.handoff(req.vdisk);
        return undefined;
    }
  }

  private async executeV2(req: R.ReplicationRequest, payload: Buffer): Promise<Buffer | undefined> {
    const e = this.engine;
    if (!e) throw new InputError('op', `operation ${req.op}: this CVM does not serve storage engine v2`);
    const egroup = Math.floor(req.block / EGROUP_EXTENTS);
    const extent = req.block % EGROUP_EXTENTS;
    switch (req.op) {
      case R.OP_WRITE_V2:
      case R.OP_ZERO_V2: {
        const v = R.decodeVersion(payload);
        const zero = req.op === R.OP_ZERO_V2;
        const n = zero ? 0 : req.length / 4096;
        const crcs = zero ? [] : [...R.decodeCrcs(payload.subarray(16, 16 + 4 * n))];
        const data = zero ? null : payload.subarray(16 + 4 * n);
        await e.write(req.disk, { vdisk: req.vdisk, egroup, extent, epoch: v.epoch, gen: v.gen, inner: req.offset, length: req.length, zero, data, crcs });
        return undefined;
      }
      case R.OP_EXTENT_GENS:
        return R.encodeGens(await e.extentGens(req.disk, req.vdisk, req.block, R.decodeU64(payload, 'epoch')));
      case R.OP_READ_EXTENT: {
        const img = await e.readExtent(req.disk, req.vdisk, egroup, extent);
        return img ? Buffer.concat(R.encodeImage(img)) : undefined;
      }
      case R.OP_WRITE_EXTENT: {
        const epoch = R.decodeU64(payload, 'epoch');
        await e.writeExtent(req.disk, req.vdisk, egroup, extent, epoch, payload.length > 8 ? R.decodeImage(payload.subarray(8)) : null);
        return undefined;
      }
      default:
        await e.syncVdisk(req.vdisk);
        return undefined;
    }
  }
}

function replyError(ip: string, status: number, body: Buffer, msg: string): Error {
  switch (status) {
    case R.ST_INPUT:
      return new InputError('replication', msg);
    case R.ST_STALE_EPOCH:
      return body.length === 16 ? new StaleEpochError(R.decodeU64(body, 'seen'), R.decodeU64(body, 'sent', 8)) : new DiskIoError(ip, msg);
    case R.ST_STALE_GEN:
      return new StaleGenerationError(msg);
    case R.ST_NOT_OWNER:
      return new NotOwnerError(msg);
    case R.ST_BUSY:
      return new HandoffRefusedError(msg);
    case R.ST_UNAVAILABLE:
      return new UnavailableError(`CVM ${ip}: ${msg}`);
    case R.ST_CHECKSUM:
      return new ChecksumError(ip, msg);
    case R.ST_NO_SPACE:
      return new PoolFullError(msg);
    default:
      return new DiskIoError(ip, msg);
  }
}

interface Pending {
  op: number;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** One connection to a peer, requests pipelined on it. */
class Link {
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: Error | undefined;
  private ready: Promise<void>;

  constructor(private readonly ip: string, private readonly sock: Socket) {
    const reader = new ByteReader(() => sock.pause(), () => sock.resume(), 16 << 20);
    sock.setNoDelay(true);
    sock.on('data', (c: Buffer) => reader.push(c));
    sock.on('close', () => this.fail('the connection closed'));
    sock.on('error', (e) => this.fail(e.message));
    this.ready = new Promise((resolve, reject) => {
      sock.once('secureConnect', resolve);
      sock.once('error', reject);
    });
    this.ready.catch(() => undefined);
    void (async () => {
      try {
        for (;;) {
          const h = R.decodeReply(await reader.read(R.REPLY_HEADER));
          if (h.magic !== R.REPLY_MAGIC) throw new Error('bad reply magic');
          const body = h.length > 0 ? await reader.read(h.length) : Buffer.alloc(0);
          const p = this.pending.get(h.id);
          if (!p) continue; // timed out meanwhile
          this.pending.delete(h.id);
          clearTimeout(p.timer);
          if (h.status === R.ST_OK) p.resolve(body);
          else {
            const msg = `peer ${ip}: ${body.toString('utf8')}`;
            p.reject(replyError(ip, h.status, body, msg));
          }
        }
      } catch (e) {
        this.fail(errorMessage(e));
      }
    })();
  }

  get alive(): boolean {
    return this.dead === undefined;
  }

  get load(): number {
    return this.pending.size;
  }

  private fail(reason: string): void {
    if (this.dead) return;
    this.dead = new UnavailableError(`CVM ${this.ip} does not answer (${reason})`);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(this.dead);
    }
    this.pending.clear();
    this.sock.destroy();
  }

  async call(req: Omit<R.ReplicationRequest, 'id'>, payload: readonly Uint8Array[], timeoutMs: number): Promise<Buffer> {
    await this.ready.catch((e: unknown) => this.fail(errorMessage(e)));
    if (this.dead) throw this.dead;
    const id = this.nextId;
    this.nextId = (this.nextId + 1) >>> 0 || 1;
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new UnavailableError(`CVM ${this.ip} did not answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { op: req.op, resolve, reject, timer });
      this.sock.cork();
      this.sock.write(R.encodeRequest({ ...req, id, version: req.version ?? R.versionFor(req.op) }));
      for (const p of payload) if (p.byteLength > 0) this.sock.write(p);
      process.nextTick(() => this.sock.uncork());
    });
  }

  close(): void {
    this.fail('closed');
  }
}

/** Reads and writes extent groups on other CVMs: a few pipelined connections per peer. */
export class ReplicationClient {
  private links = new Map<string, Link[]>();

  /** `tls`: this member's certificate and the cluster CA, when it is in a cluster. */
  constructor(private readonly tls: () => MemberTls | undefined, private readonly perPeer = 4, private readonly port = REPLICATION_PORT) {}

  private link(ip: string): Link {
    let ls = this.links.get(ip);
    if (!ls) this.links.set(ip, (ls = []));
    for (let i = ls.length - 1; i >= 0; i--) if (!ls[i]?.alive) ls.splice(i, 1);
    const idle = ls.find((l) => l.load === 0);
    if (idle) return idle;
    if (ls.length < this.perPeer) {
      const t = this.tls();
      if (!t) throw new UnavailableError(`no cluster certificate to reach CVM ${ip} with (this CVM is in no cluster)`);
      const l = new Link(ip, connect({ host: ip, port: this.port, cert: t.identity.cert, key: t.identity.key, ca: [t.clusterCa], minVersion: 'TLSv1.2' }));
      ls.push(l);
      return l;
    }
    return ls.reduce((a, b) => (b.load < a.load ? b : a));
  }

  /** Sends one frame of any operation (the engine's ports: node/engine-replicas.ts). */
  request(ip: string, op: number, r: EgroupRef, offset: number, length: number, payload: readonly Uint8Array[] = [], timeoutMs = 15_000): Promise<Buffer> {
    return this.call(ip, op, r, offset, length, payload, timeoutMs);
  }

  private call(ip: string, op: number, r: EgroupRef, offset: number, length: number, payload: readonly Uint8Array[] = [], timeoutMs = 15_000): Promise<Buffer> {
    return this.link(ip).call({ op, disk: r.disk, vdisk: r.vdisk, block: r.block, offset, length }, payload, timeoutMs);
  }

  /** Writes to a replica; `crcs`: the CRC32C of the whole pages written (computed here if not given, once per buffer). */
  async write(ip: string, r: EgroupRef, offset: number, data: Uint8Array, sync: boolean, crcs?: Uint32Array): Promise<void> {
    const sums = crcs ?? crcsFor(data, offset);
    // zeros (a TRIM, WRITE_ZEROES, a copy of an unwritten extent) go as a range, not as bytes
    if (isZeros(data, sums)) await this.call(ip, sync ? R.OP_ZERO_SYNC : R.OP_ZERO, r, offset, data.byteLength);
    else await this.call(ip, sync ? R.OP_WRITE_SYNC : R.OP_WRITE, r, offset, data.byteLength, [R.encodeCrcs(sums), data]);
  }

  /** Makes extents on a peer durable: one SYNC_MANY per vdisk and SYNC_MANY_MAX extents. */
  async syncMany(ip: string, refs: readonly EgroupRef[], timeoutMs = 120_000): Promise<void> {
    const byVdisk = new Map<string, EgroupRef[]>();
    for (const r of refs) {
      let l = byVdisk.get(r.vdisk);
      if (!l) byVdisk.set(r.vdisk, (l = []));
      l.push(r);
    }
    const frames: Promise<Buffer>[] = [];
    for (const l of byVdisk.values()) {
      for (let i = 0; i < l.length; i += R.SYNC_MANY_MAX) {
        const part = l.slice(i, i + R.SYNC_MANY_MAX);
        const body = R.encodeSyncMany(part);
        const first = part[0];
        if (first) frames.push(this.call(ip, R.OP_SYNC_MANY, first, 0, body.length, [body], timeoutMs));
      }
    }
    await Promise.all(frames);
  }

  read(ip: string, r: EgroupRef, offset: number, length: number): Promise<Buffer> {
    return this.call(ip, R.OP_READ, r, offset, length);
  }

  async sync(ip: string, r: EgroupRef): Promise<void> {
    await this.call(ip, R.OP_SYNC, r, 0, 0);
  }

  close(): void {
    for (const ls of this.links.values()) for (const l of ls) l.close();
    this.links.clear();
  }
}
