/**
 * @module
 * The vdisk owners of one CVM (storage engine v2, docs/adr/015-storage-engine-v2.md).
 *
 *  - One configuration-store lease per CVM (EtcdMetaStore): every owner this CVM holds sits under
 *    it. When it is lost, every owner is abandoned at once (a newer owner may exist) and a new
 *    store is opened; I/O finds its owner again.
 *  - An NBD connection to a vdisk gets a handle (`open`); its I/O goes to the vdisk's owner: the
 *    VdiskOwner here if this CVM holds the vdisk, else forwarded to the owning CVM over the
 *    replication protocol (v3). Nobody owns it: this CVM acquires it. A forwarded request is
 *    served only by the owner (never forwarded on): a CVM that no longer owns the vdisk answers
 *    NotOwnerError and the sender finds the owner again.
 *  - Ownership follows the VM: a CVM whose own host (the link socket) uses a vdisk owned
 *    elsewhere asks the owner to hand it over (at most every HANDOFF_ASK_MS); the owner gives it up
 *    (drains, syncs, releases) unless its own host uses the vdisk too (a live migration: both
 *    hosts have it open), and the asker takes it.
 *  - Whichever connection wrote, every write goes through the one owner, so FLUSH on any
 *    connection covers every write acknowledged on any other: NBD_FLAG_CAN_MULTI_CONN holds.
 *  - A request that finds its owner gone (handed over, lease lost, CVM unreachable) is retried
 *    through the new owner within `retryMs`; a write sent twice writes the same bytes twice, which
 *    NBD allows for a write not yet acknowledged.
 */
import { crc32c } from '@node-rs/crc32';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../../shared/clock.ts';
import { ConflictError, NotFoundError, TimeoutError, UnavailableError, errorMessage } from '../../shared/errors.ts';
import type { NbdBackend } from '../../shared/nbd/backend.ts';
import type { LivenessEvent } from '../core/failure-detector.ts';
import { VdiskOwner } from '../core/engine/owner.ts';
import { HandoffRefusedError, NotOwnerError } from '../core/engine/ports.ts';
import type { Liveness, MetaStore, ReplicaIo, SpaceDisk } from '../core/engine/ports.ts';
import { egroupReserve } from '../core/engine/place.ts';
import * as R from '../core/replication-codec.ts';
import type { Vdisk } from '../core/storage.ts';
import { EtcdMetaStore } from './engine-meta.ts';
import type { ForwardedIo, ReplicationClient } from './replication.ts';

/** What the repair loop needs of the registry. */
export interface HeldOwners {
  /** This CVM's owner of a vdisk (by uuid), acquiring ownership if no CVM holds it; null when another CVM does or the vdisk is gone. */
  acquire(uuid: string): Promise<VdiskOwner | null>;
  /** The owners this CVM holds now. */
  held(): readonly VdiskOwner[];
  /** Gives up a vdisk this CVM holds only for repair (no client uses it); a no-op otherwise. */
  releaseIfIdle(uuid: string): Promise<void>;
}

export interface OwnerRegistryDeps {
  self: { node: string; cvmIp: string };
  etcd: Etcd3;
  clock: Clock;
  /** Replica I/O (node/engine-replicas.ts EngineReplicaIo). */
  io: ReplicaIo;
  /** To forward to other CVMs (protocol v3). */
  client: ReplicationClient;
  liveness: { isDown(node: string): boolean; on(fn: (e: LivenessEvent) => void): () => void };
  /**
   * The pool's disks with their free space for placement: capacity less what the recorded extent
   * groups may come to hold (refreshed every SPACE_REFRESH_MS), and when (clock.now()) the records
   * were read: this CVM's placements since then are charged on top.
   */
  space: () => Promise<{ disks: readonly SpaceDisk[]; asOf: number }>;
  /** A vdisk by uuid with its container's RF; undefined when it does not exist. */
  vdisk: (uuid: string) => Promise<{ vdisk: Vdisk; rf: number } | undefined>;
  log: (m: string) => void;
  /** The owner lease's TTL (s). */
  leaseTtlS?: number;
  /** How long a request keeps looking for an owner that can serve it (default 30 s). */
  retryMs?: number;
  /** Replica and store calls of the owners (default 2 s; a slower replica goes stale). */
  callTimeoutMs?: number;
  /** Paces the owners' repair copies (node/engine-repair.ts CopyBudget.throttle). */
  copyThrottle?: (bytes: number) => Promise<void>;
  /** An extent-group record call slower than this fails and the I/O is sent again (VdiskOwner storeTimeoutMs). */
  storeTimeoutMs?: number;
  /** Extents a repair copy may have in flight (CopyBudget.window). */
  copyWindow?: () => number;
}

/** A local user asks the remote owner to hand over at most this often. */
export const HANDOFF_ASK_MS = 3000;
const SPACE_REFRESH_MS = 3000;
/** Timeout of one forwarded request (the owner may wait on a replica's timeout first). */
const FORWARD_TIMEOUT_MS = 30_000;
const FLUSH_TIMEOUT_MS = 120_000;

type Peer = { node: string; cvmIp: string };
type Target = VdiskOwner | Peer;

interface Users {
  /** Handles opened through this node's host link (its own VMs). */
  local: number;
  /** Handles opened over the network. */
  remote: number;
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

export class OwnerRegistry implements HeldOwners, ForwardedIo {
  private store: EtcdMetaStore;
  private readonly owners = new Map<string, VdiskOwner>();
  private readonly opening = new Map<string, Promise<Target>>();
  /** Owners being closed (a handoff, a repair-only owner released): nobody acquires meanwhile. */
  private readonly closing = new Map<string, Promise<void>>();
  /** Client operations running on each held owner (a handoff waits for them). */
  private readonly running = new Map<string, Set<Promise<unknown>>>();
  private readonly remote = new Map<string, Peer>();
  private readonly users = new Map<string, Users>();
  private readonly repairOnly = new Set<string>();
  private readonly lastAsk = new Map<string, number>();
  private spaceView: readonly SpaceDisk[] = [];
  private charges: { disks: readonly string[]; bytes: number; at: number }[] = [];
  private spaceTimer: { dispose(): void } | undefined;
  private stopped = false;
  /** When client I/O last reached this registry (the repair budget relaxes when there is none). */
  private lastClientIo = -Infinity;
  private readonly retryMs: number;
  private readonly liveness: Liveness;

  constructor(private readonly d: OwnerRegistryDeps) {
    this.retryMs = d.retryMs ?? 30_000;
    this.store = this.newStore();
    this.liveness = {
      isDown: (node) => node !== d.self.node && d.liveness.isDown(node),
      subscribe: (onDown) => d.liveness.on((e) => {
        if (e.kind === 'down' && e.node !== d.self.node) onDown(e.node);
      }),
    };
  }

  private newStore(): EtcdMetaStore {
    const store: EtcdMetaStore = new EtcdMetaStore({ etcd: this.d.etcd, clock: this.d.clock, log: this.d.log, onLost: (why) => this.leaseLost(store, why), ...(this.d.leaseTtlS ? { ttlS: this.d.leaseTtlS } : {}) });
    return store;
  }

  /** Grants the lease and reads the pool's space once (before serving). */
  async start(): Promise<void> {
    await this.store.start();
    await this.refreshSpace();
  }

  private async refreshSpace(): Promise<void> {
    try {
      const { disks: fresh, asOf } = await this.d.space();
      // placements made after the view's listing of the records are not in it yet
      this.charges = this.charges.filter((c) => c.at >= asOf);
      this.spaceView = fresh.map((d) => ({ ...d, freeBytes: d.freeBytes - this.charges.filter((c) => c.disks.includes(d.serial)).reduce((a, c) => a + c.bytes, 0) }));
    } catch (e) {
      this.d.log(`owners: pool space: ${errorMessage(e)}`);
    }
    if (!this.stopped) this.spaceTimer = this.d.clock.setTimeout(() => void this.refreshSpace(), SPACE_REFRESH_MS);
  }

  private charge(disks: readonly string[], bytes: number): void {
    this.charges.push({ disks, bytes, at: this.d.clock.now() });
    this.spaceView = this.spaceView.map((d) => (disks.includes(d.serial) ? { ...d, freeBytes: d.freeBytes - bytes } : d));
  }

  /** Every owner under the lost lease may have a successor: drop them all at once; a new lease serves the next I/O. */
  private leaseLost(store: EtcdMetaStore, why: string): void {
    if (store !== this.store || this.stopped) return;
    this.d.log(`owners: the owner lease was lost (${why}); dropping ${this.owners.size} vdisk(s), taking a new lease`);
    for (const o of this.owners.values()) o.abandon();
    this.owners.clear();
    this.running.clear();
    this.repairOnly.clear();
    this.store = this.newStore();
  }

  // ---- NBD handles ----

  /** A handle for one NBD connection to a vdisk; `local`: the connection came over this node's host link. */
  open(vd: Vdisk, opts: { local: boolean }): NbdBackend {
    const u = this.users.get(vd.uuid) ?? { local: 0, remote: 0 };
    if (opts.local) u.local++;
    else u.remote++;
    this.users.set(vd.uuid, u);
    let closed = false;
    const uuid = vd.uuid;
    const route = <T>(local: (o: VdiskOwner) => Promise<T>, remote: (p: Peer) => Promise<T>): Promise<T> => this.route(uuid, opts.local, local, remote);
    return {
      size: BigInt(vd.sizeBytes),
      readOnly: false,
      multiConn: true,
      pread: (offset, length) => route(async (o) => asBuffer(await o.pread(offset, length)), (p) => this.fwdRead(p, uuid, offset, length)),
      pwrite: async (offset, data, fua) => {
        await route((o) => o.pwrite(offset, data), (p) => this.fwdWrite(p, uuid, offset, data));
        if (fua) await route((o) => o.flush(), (p) => this.fwdFlush(p, uuid));
      },
      flush: () => route((o) => o.flush(), (p) => this.fwdFlush(p, uuid)),
      trim: (offset, length, fua) => this.zeroRange(route, uuid, offset, length, fua),
      zero: (offset, length, fua) => this.zeroRange(route, uuid, offset, length, fua),
      close: () => {
        if (closed) return Promise.resolve();
        closed = true;
        const now = this.users.get(uuid);
        if (now) {
          if (opts.local) now.local--;
          else now.remote--;
          if (now.local + now.remote === 0) this.users.delete(uuid);
        }
        return Promise.resolve();
      },
    };
  }

  private async zeroRange(route: <T>(l: (o: VdiskOwner) => Promise<T>, r: (p: Peer) => Promise<T>) => Promise<T>, uuid: string, offset: number, length: number, fua: boolean): Promise<void> {
    await route((o) => o.zero(offset, length), (p) => this.fwdZero(p, uuid, offset, length));
    if (fua) await route((o) => o.flush(), (p) => this.fwdFlush(p, uuid));
  }

  /** Whether this CVM served client I/O (its clients', or forwarded to its owners) within `ms`. */
  clientIoWithin(ms: number): boolean {
    return this.d.clock.now() - this.lastClientIo < ms;
  }

  /** Runs an operation at the vdisk's owner, finding it again (and retrying) while it moves. */
  private async route<T>(uuid: string, fromHost: boolean, local: (o: VdiskOwner) => Promise<T>, remote: (p: Peer) => Promise<T>): Promise<T> {
    this.lastClientIo = this.d.clock.now();
    const deadline = this.lastClientIo + this.retryMs;
    for (let attempt = 0; ; attempt++) {
      let at: Target | undefined;
      try {
        at = await this.resolve(uuid);
        if (at instanceof VdiskOwner) return await this.track(uuid, local(at));
        if (fromHost) this.askHandoff(uuid, at);
        return await remote(at);
      } catch (e) {
        if (!this.retryable(e, at)) throw e;
        if (at) this.forget(uuid, at);
        if (this.stopped || this.d.clock.now() >= deadline) throw new UnavailableError(`vdisk ${uuid}: no owner could serve the request within ${this.retryMs} ms (${errorMessage(e)})`);
        await this.d.clock.sleep(Math.min(25 * 2 ** attempt, 500));
      }
    }
  }

  /**
   * An operation not acknowledged may be sent again (NBD allows a write not yet acknowledged to land
   * twice): when the owner went away, or failed for a reason that passes (a replica or the store
   * slow to answer, every in-sync replica unreachable for now; the owner then checks the extent
   * group again before its next I/O), or its CVM did not answer (its lease decides who is next).
   */
  private retryable(e: unknown, at: Target | undefined): boolean {
    if (e instanceof NotOwnerError) return true;
    if (at === undefined) return false;
    if (at instanceof VdiskOwner && at.status !== 'open') return true;
    return e instanceof UnavailableError || e instanceof TimeoutError;
  }

  /**
   * After a failed attempt: a peer is found again. This CVM's owner stays: one still open serves the
   * retry (a new one at the same epoch would check every extent group again while the old one
   * lingered), and one no longer open is dropped by resolve() on the retry.
   */
  private forget(uuid: string, at: Target): void {
    if (!(at instanceof VdiskOwner) && this.remote.get(uuid) === at) this.remote.delete(uuid);
  }

  private track<T>(uuid: string, p: Promise<T>): Promise<T> {
    let s = this.running.get(uuid);
    if (!s) this.running.set(uuid, (s = new Set()));
    const set = s;
    set.add(p);
    void p.then(() => set.delete(p), () => set.delete(p));
    return p;
  }

  /** The owner of a vdisk: this CVM's (acquired if nobody holds it) or the CVM holding it. */
  private async resolve(uuid: string): Promise<Target> {
    if (this.stopped) throw new UnavailableError('this CVM no longer serves vdisks');
    const own = this.owners.get(uuid);
    if (own?.status === 'open') return own;
    if (own) {
      this.owners.delete(uuid);
      own.abandon();
    }
    const peer = this.remote.get(uuid);
    if (peer && !this.d.liveness.isDown(peer.node)) return peer;
    let p = this.opening.get(uuid);
    if (!p) {
      p = this.acquireOrFind(uuid).finally(() => this.opening.delete(uuid));
      this.opening.set(uuid, p);
    }
    return p;
  }

  private async acquireOrFind(uuid: string): Promise<Target> {
    await this.closing.get(uuid);
    const found = await this.d.vdisk(uuid);
    if (!found) throw new NotFoundError('vdisk', uuid);
    const store = this.store;
    // a new extent group's replicas count against this CVM's view of free space until the next refresh
    const meta: MetaStore = {
      getEgroup: (v, e) => store.getEgroup(v, e),
      listEgroups: (v) => store.listEgroups(v),
      createEgroup: async (v, e, epoch, rec) => {
        const r = await store.createEgroup(v, e, epoch, rec);
        if (r.ok) this.charge(rec.replicas.map((l) => l.disk), egroupReserve(found.vdisk.sizeBytes, e));
        return r;
      },
      casEgroup: (v, e, epoch, version, rec) => store.casEgroup(v, e, epoch, version, rec),
      acquireOwner: (v, owner) => store.acquireOwner(v, owner),
      releaseOwner: (v, epoch) => store.releaseOwner(v, epoch),
      leaseValid: () => store.leaseValid(),
    };
    try {
      const o = await VdiskOwner.open({
        vdisk: uuid, node: this.d.self.node, cvmIp: this.d.self.cvmIp, rf: found.rf, io: this.d.io, meta, liveness: this.liveness, clock: this.d.clock, sizeBytes: found.vdisk.sizeBytes,
        space: { disks: () => this.spaceView }, checksum: (page) => crc32c(page), ...(this.d.callTimeoutMs ? { callTimeoutMs: this.d.callTimeoutMs } : {}), ...(this.d.storeTimeoutMs ? { storeTimeoutMs: this.d.storeTimeoutMs } : {}), ...(this.d.copyThrottle ? { copyThrottle: this.d.copyThrottle } : {}), ...(this.d.copyWindow ? { copyWindow: this.d.copyWindow } : {}),
      });
      if (store !== this.store || this.stopped) {
        o.abandon();
        throw new NotOwnerError(`vdisk ${uuid}: the lease it was acquired under is gone`);
      }
      this.owners.set(uuid, o);
      this.remote.delete(uuid);
      this.d.log(`owners: this CVM owns vdisk ${uuid} (epoch ${o.epoch})`);
      return o;
    } catch (e) {
      if (!(e instanceof ConflictError) || e instanceof NotOwnerError) throw e;
    }
    const holder = await store.ownerOf(uuid);
    // released meanwhile, or this CVM's own key from a lease that is ending (a restart): look again
    if (!holder || holder.node === this.d.self.node) throw new NotOwnerError(`vdisk ${uuid}: its owner key ${holder ? 'is from an ending lease of this CVM' : 'was just released'}`);
    const peer = { node: holder.node, cvmIp: holder.cvmIp };
    this.remote.set(uuid, peer);
    return peer;
  }

  /** Ownership follows the VM: ask the owning CVM to hand the vdisk over (not more than every HANDOFF_ASK_MS). */
  private askHandoff(uuid: string, peer: Peer): void {
    const now = this.d.clock.now();
    if (now - (this.lastAsk.get(uuid) ?? -Infinity) < HANDOFF_ASK_MS) return;
    this.lastAsk.set(uuid, now);
    this.d.client.request(peer.cvmIp, R.OP_HANDOFF, { disk: '-', vdisk: uuid, block: 0 }, 0, 0, [], FORWARD_TIMEOUT_MS).then(() => {
      if (this.remote.get(uuid) === peer) this.remote.delete(uuid);
      this.d.log(`owners: ${peer.node} handed vdisk ${uuid} over; taking it`);
    }, (e: unknown) => {
      if (!(e instanceof HandoffRefusedError) && !(e instanceof NotOwnerError)) this.d.log(`owners: asking ${peer.node} to hand vdisk ${uuid} over: ${errorMessage(e)}`);
    });
  }

  // ---- forwarding, the sending side ----

  private fwd(p: Peer, op: number, uuid: string, offset: number, length: number, payload: readonly Uint8Array[] = [], timeoutMs = FORWARD_TIMEOUT_MS): Promise<Buffer> {
    return this.d.client.request(p.cvmIp, op, { disk: '-', vdisk: uuid, block: Math.floor(offset / R.FWD_UNIT) }, offset % R.FWD_UNIT, length, payload, timeoutMs);
  }

  /** [offset, offset+length) cut at FWD_UNIT boundaries. */
  private static pieces(offset: number, length: number, unit: number): { at: number; offset: number; length: number }[] {
    const out: { at: number; offset: number; length: number }[] = [];
    for (let pos = offset; pos < offset + length;) {
      const n = Math.min(unit - (pos % unit), offset + length - pos);
      out.push({ at: pos - offset, offset: pos, length: n });
      pos += n;
    }
    return out;
  }

  private async fwdRead(p: Peer, uuid: string, offset: number, length: number): Promise<Buffer> {
    const parts = OwnerRegistry.pieces(offset, length, R.FWD_UNIT);
    const got = await Promise.all(parts.map((x) => this.fwd(p, R.OP_FWD_READ, uuid, x.offset, x.length)));
    if (got.some((b, i) => b.length !== parts[i]!.length)) throw new UnavailableError(`vdisk ${uuid}: the owner ${p.node} answered a read short`);
    return got.length === 1 ? got[0]! : Buffer.concat(got);
  }

  private async fwdWrite(p: Peer, uuid: string, offset: number, data: Buffer): Promise<void> {
    await Promise.all(OwnerRegistry.pieces(offset, data.length, R.FWD_UNIT).map((x) => this.fwd(p, R.OP_FWD_WRITE, uuid, x.offset, x.length, [data.subarray(x.at, x.at + x.length)])));
  }

  private async fwdZero(p: Peer, uuid: string, offset: number, length: number): Promise<void> {
    await Promise.all(OwnerRegistry.pieces(offset, length, R.FWD_ZERO_MAX).map((x) => this.fwd(p, R.OP_FWD_ZERO, uuid, x.offset, x.length)));
  }

  private async fwdFlush(p: Peer, uuid: string): Promise<void> {
    await this.fwd(p, R.OP_FWD_FLUSH, uuid, 0, 0, [], FLUSH_TIMEOUT_MS);
  }

  // ---- forwarding, the owner's side (ForwardedIo) ----

  private served(uuid: string): VdiskOwner {
    const o = this.owners.get(uuid);
    if (!o || o.status !== 'open') throw new NotOwnerError(`${this.d.self.node} does not own vdisk ${uuid}`);
    return o;
  }

  /** An owner's failure while serving a forwarded request: NotOwner when the owner went away meanwhile (the sender retries). */
  private async serve<T>(uuid: string, fn: (o: VdiskOwner) => Promise<T>): Promise<T> {
    this.lastClientIo = this.d.clock.now();
    const o = this.served(uuid);
    try {
      return await this.track(uuid, fn(o));
    } catch (e) {
      if (o.status !== 'open') throw new NotOwnerError(`${this.d.self.node} gave vdisk ${uuid} up during the request (${errorMessage(e)})`);
      throw e;
    }
  }

  read(uuid: string, offset: number, length: number): Promise<Buffer> {
    return this.serve(uuid, async (o) => asBuffer(await o.pread(offset, length)));
  }

  write(uuid: string, offset: number, data: Buffer): Promise<void> {
    return this.serve(uuid, (o) => o.pwrite(offset, data));
  }

  zero(uuid: string, offset: number, length: number): Promise<void> {
    return this.serve(uuid, (o) => o.zero(offset, length));
  }

  flush(uuid: string): Promise<void> {
    return this.serve(uuid, (o) => o.flush());
  }

  async handoff(uuid: string): Promise<void> {
    this.served(uuid);
    if ((this.users.get(uuid)?.local ?? 0) > 0) throw new HandoffRefusedError(`${this.d.self.node}'s own host uses vdisk ${uuid}`);
    await this.give(uuid, 'handed over');
  }

  /** Stops routing to the owner, lets its running operations finish, then closes it (sync, release). */
  private give(uuid: string, why: string): Promise<void> {
    const o = this.owners.get(uuid);
    if (!o) return this.closing.get(uuid) ?? Promise.resolve();
    this.owners.delete(uuid);
    this.repairOnly.delete(uuid);
    const done = (async () => {
      await Promise.allSettled([...(this.running.get(uuid) ?? [])]);
      try {
        await o.close();
        this.d.log(`owners: vdisk ${uuid} ${why} (epoch ${o.epoch})`);
      } catch (e) {
        this.d.log(`owners: closing vdisk ${uuid}: ${errorMessage(e)} (its key ends with the lease)`);
      }
    })().finally(() => this.closing.delete(uuid));
    this.closing.set(uuid, done);
    return done;
  }

  // ---- HeldOwners (the repair loop) ----

  async acquire(uuid: string): Promise<VdiskOwner | null> {
    const had = this.owners.has(uuid);
    try {
      const at = await this.resolve(uuid);
      if (!(at instanceof VdiskOwner)) return null;
      if (!had && !this.users.has(uuid)) this.repairOnly.add(uuid);
      return at;
    } catch (e) {
      if (e instanceof NotFoundError || e instanceof NotOwnerError) return null;
      throw e;
    }
  }

  held(): readonly VdiskOwner[] {
    return [...this.owners.values()].filter((o) => o.status === 'open');
  }

  async releaseIfIdle(uuid: string): Promise<void> {
    if (!this.repairOnly.has(uuid) || this.users.has(uuid)) return;
    await this.give(uuid, 'released after repair');
  }

  /** Who owns what, for status. */
  view(): { held: { vdisk: string; epoch: number; users: Users }[]; forwarding: { vdisk: string; owner: string }[] } {
    return {
      held: [...this.owners.values()].map((o) => ({ vdisk: o.vdisk, epoch: o.epoch, users: this.users.get(o.vdisk) ?? { local: 0, remote: 0 } })),
      forwarding: [...this.remote].map(([vdisk, p]) => ({ vdisk, owner: p.node })),
    };
  }

  /** Closes every owner (drain, sync, release) and the lease. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.spaceTimer?.dispose();
    await Promise.allSettled([...this.owners.keys()].map((uuid) => this.give(uuid, 'released (the CVM stops serving)')));
    await Promise.allSettled([...this.closing.values()]);
    await this.store.close();
  }
}
