/**
 * @module
 * The simulated cluster: nodes with fake disks (replica-model.ts: a page cache lost at power loss
 * unless synced), a fake network (delay, drop, partition), a fake etcd (extent-group records,
 * owner keys under leases that expire on the fake clock) and the failure detector that declares a
 * node down once. Each node gets the ports of ports.ts bound to it, as the real CVM will.
 */
import { ConflictError, TimeoutError, UnavailableError } from '../../../../shared/errors.ts';
import { crc32c } from '../crc32c.ts';
import type { EgroupRecord, ReplicaLocation } from '../layout.ts';
import type { CasResult, Liveness, MetaStore, PlacementSpace, ReplicaIo, SpaceDisk, Versioned } from '../ports.ts';
import { ReplicaModel } from '../replica-model.ts';
import type { VdiskOwner } from '../owner.ts';
import type { SimClock } from './clock.ts';
import type { Rng } from './prng.ts';

export const ETCD = 'etcd';

export interface WorldConfig {
  nodes: number;
  leaseTtlMs: number;
  keepaliveMs: number;
  netDelayMs: [number, number];
  dropRate: number;
  /** A request with no answer fails after this (the transport's own timeout). */
  rpcTimeoutMs: number;
  diskBytes: number;
}

export class SimNode {
  /** The CVM process runs. */
  up = true;
  /** The node has power (false: its page cache is gone). */
  powered = true;
  incarnation = 0;
  leaseId = 0;
  leaseOkUntil = 0;
  readonly owners = new Map<string, VdiskOwner>();
  readonly subscribers = new Set<(node: string) => void>();
  readonly replica: ReplicaModel;

  constructor(readonly name: string, readonly cvmIp: string) {
    this.replica = new ReplicaModel(name, [{ serial: `${name}-ssd`, media: 'ssd' }, { serial: `${name}-hdd`, media: 'hdd' }], crc32c);
  }
}

interface Lease {
  node: string;
  expiresAt: number;
}

/** The fake etcd: one revision counter, leases on the fake clock. */
export class FakeEtcd {
  rev = 1;
  readonly egroups = new Map<string, Versioned<EgroupRecord>>();
  readonly owners = new Map<string, { node: string; cvmIp: string; epoch: number; lease: number }>();
  readonly leases = new Map<number, Lease>();
  /** `/converge/v2/down/<node>`: written once when a node's liveness key goes. */
  readonly down = new Set<string>();
  private nextLease = 1;
  onChange: ((what: string) => void) | null = null;

  constructor(private readonly clock: SimClock, private readonly ttl: number, private readonly onDeclaredDown: (node: string) => void) {}

  grant(node: string): number {
    const id = this.nextLease++;
    this.leases.set(id, { node, expiresAt: this.clock.now() + this.ttl });
    this.down.delete(node);
    return id;
  }

  keepalive(id: number): boolean {
    this.expire();
    const l = this.leases.get(id);
    if (!l) return false;
    l.expiresAt = this.clock.now() + this.ttl;
    return true;
  }

  /** Expired leases take their keys with them; a node whose every lease is gone is declared down once. */
  expire(): void {
    const now = this.clock.now();
    for (const [id, l] of [...this.leases]) {
      if (l.expiresAt > now) continue;
      this.leases.delete(id);
      for (const [v, o] of [...this.owners]) if (o.lease === id) this.owners.delete(v);
      const alive = [...this.leases.values()].some((x) => x.node === l.node);
      if (!alive && !this.down.has(l.node)) {
        this.down.add(l.node);
        this.onDeclaredDown(l.node);
      }
    }
  }

  private ownerEpoch(vdisk: string): number | null {
    this.expire();
    return this.owners.get(vdisk)?.epoch ?? null;
  }

  acquire(vdisk: string, node: string, cvmIp: string, lease: number): number {
    const held = this.ownerEpoch(vdisk) !== null ? this.owners.get(vdisk)! : null;
    // idempotent for the holder (an answer lost on the way must not lock the vdisk until the lease ends)
    if (held && held.node === node && held.lease === lease) return held.epoch;
    if (held) throw new ConflictError(`vdisk ${vdisk} is owned by ${this.owners.get(vdisk)!.node}`);
    if (!this.leases.has(lease)) throw new UnavailableError(`lease ${lease} expired`);
    const epoch = ++this.rev;
    this.owners.set(vdisk, { node, cvmIp, epoch, lease });
    return epoch;
  }

  release(vdisk: string, epoch: number): void {
    if (this.ownerEpoch(vdisk) === epoch) this.owners.delete(vdisk);
  }

  create(vdisk: string, egroup: number, epoch: number, record: EgroupRecord): CasResult {
    if (this.ownerEpoch(vdisk) !== epoch) return { ok: false, reason: 'epoch' };
    const k = `${vdisk}/${egroup}`;
    if (this.egroups.has(k)) return { ok: false, reason: 'exists' };
    const v = { value: structuredClone(record), version: ++this.rev };
    this.egroups.set(k, v);
    return { ok: true, record: structuredClone(v) };
  }

  cas(vdisk: string, egroup: number, epoch: number, version: number, record: EgroupRecord): CasResult {
    if (this.ownerEpoch(vdisk) !== epoch) return { ok: false, reason: 'epoch' };
    const k = `${vdisk}/${egroup}`;
    if (this.egroups.get(k)?.version !== version) return { ok: false, reason: 'version' };
    const v = { value: structuredClone(record), version: ++this.rev };
    this.egroups.set(k, v);
    this.onChange?.(`${k} epoch ${epoch}: in-sync ${record.replicas.map((l) => l.disk).join(',')} stale ${record.stale.map((l) => l.disk).join(',')}`);
    return { ok: true, record: structuredClone(v) };
  }

  get(vdisk: string, egroup: number): Versioned<EgroupRecord> | null {
    const v = this.egroups.get(`${vdisk}/${egroup}`);
    return v ? structuredClone(v) : null;
  }

  list(vdisk: string): Map<number, Versioned<EgroupRecord>> {
    const out = new Map<number, Versioned<EgroupRecord>>();
    for (const [k, v] of this.egroups) if (k.startsWith(`${vdisk}/`)) out.set(Number(k.slice(vdisk.length + 1)), structuredClone(v));
    return out;
  }
}

export class World {
  readonly nodes = new Map<string, SimNode>();
  readonly etcd: FakeEtcd;
  /** Nodes cut off from everyone (etcd included). */
  readonly isolated = new Set<string>();
  /** When a frame was last dropped (its sender times out and may mark a replica stale up to an RPC timeout later). */
  lastDropAt = -Infinity;

  constructor(readonly clock: SimClock, readonly rng: Rng, readonly cfg: WorldConfig) {
    this.etcd = new FakeEtcd(clock, cfg.leaseTtlMs, (node) => this.declaredDown(node));
    for (let i = 1; i <= cfg.nodes; i++) this.nodes.set(`n${i}`, new SimNode(`n${i}`, `10.0.0.${i}`));
    // the etcd lease sweep
    const sweep = (): void => {
      this.etcd.expire();
      clock.setTimeout(sweep, 100);
    };
    clock.setTimeout(sweep, 100);
    for (const n of this.nodes.values()) this.register(n);
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  reachable(a: string, b: string): boolean {
    return a === b || (!this.isolated.has(a) && !this.isolated.has(b));
  }

  private serving(name: string): boolean {
    return name === ETCD || this.node(name).up;
  }

  /**
   * One request and its answer over the fake network. The handler runs at the target after the
   * request's delay (if the path is open and the target serves); the answer comes back after
   * another delay to the same incarnation of the caller. A lost request or answer fails after
   * rpcTimeoutMs, as a connection would.
   */
  rpc<T>(from: string, to: string, handler: () => T): Promise<T> {
    const caller = from === ETCD ? null : this.node(from);
    const inc = caller?.incarnation ?? 0;
    const [lo, hi] = this.cfg.netDelayMs;
    const local = from === to;
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const timer = this.clock.setTimeout(() => {
        if (!done) {
          done = true;
          reject(new TimeoutError(`${from} → ${to}: no answer`));
        }
      }, this.cfg.rpcTimeoutMs);
      if (caller && !caller.up) return;
      const drop = (): boolean => !local && this.rng.chance(this.cfg.dropRate);
      if (drop()) {
        this.lastDropAt = this.clock.now();
        return;
      }
      this.clock.setTimeout(() => {
        if (!this.reachable(from, to) || !this.serving(to)) return;
        let ok = true;
        let value: T | undefined;
        let error: unknown;
        try {
          value = handler();
        } catch (e) {
          ok = false;
          error = e;
        }
        if (drop()) return;
        this.clock.setTimeout(() => {
          if (done || !this.reachable(to, from) || (caller && (caller.incarnation !== inc || !caller.up))) return;
          done = true;
          timer.dispose();
          if (ok) resolve(value as T);
          else reject(error instanceof Error ? error : new Error(String(error)));
        }, local ? 0 : this.rng.int(lo, hi));
      }, local ? 1 : this.rng.int(lo, hi));
    });
  }

  /** A CVM (re)starts: a new lease and keep-alives. Its registration clears its down key. */
  register(n: SimNode): void {
    n.leaseId = this.etcd.grant(n.name);
    n.leaseOkUntil = this.clock.now() + this.cfg.leaseTtlMs - 100;
    const inc = n.incarnation;
    const tick = (): void => {
      if (!n.up || n.incarnation !== inc) return;
      const sentAt = this.clock.now();
      const id = n.leaseId;
      this.rpc(n.name, ETCD, () => this.etcd.keepalive(id)).then((alive) => {
        if (n.incarnation !== inc || n.leaseId !== id) return;
        if (alive) {
          n.leaseOkUntil = Math.max(n.leaseOkUntil, sentAt + this.cfg.leaseTtlMs - 100);
          return;
        }
        // the lease expired (cut off too long): stop owning anything, register again
        for (const o of n.owners.values()) o.abandon();
        n.owners.clear();
        this.rpc(n.name, ETCD, () => this.etcd.grant(n.name)).then((nid) => {
          if (n.incarnation === inc) {
            n.leaseId = nid;
            n.leaseOkUntil = this.clock.now() + this.cfg.leaseTtlMs - 200;
          }
        }, () => undefined);
      }, () => undefined);
      this.clock.setTimeout(tick, this.cfg.keepaliveMs);
    };
    this.clock.setTimeout(tick, this.cfg.keepaliveMs);
  }

  private declaredDown(node: string): void {
    for (const n of this.nodes.values()) {
      if (!n.up || !this.reachable(n.name, ETCD)) continue;
      this.clock.setTimeout(() => {
        if (n.up) for (const s of [...n.subscribers]) s(node);
      }, this.rng.int(1, 10));
    }
  }

  /** The CVM process dies (the page cache survives unless power is lost too). */
  crash(name: string): void {
    const n = this.node(name);
    n.up = false;
    n.incarnation++;
    for (const o of n.owners.values()) o.abandon();
    n.owners.clear();
    n.subscribers.clear();
  }

  /** Power loss: the CVM dies and each dirty extent survives only if the cache wrote it back. */
  powerLoss(name: string): void {
    this.crash(name);
    const n = this.node(name);
    n.powered = false;
    n.replica.powerLoss(() => this.rng.chance(0.3));
  }

  /** Restarts a CVM: syncs its disks before serving, registers. */
  restart(name: string): void {
    const n = this.node(name);
    n.powered = true;
    n.replica.syncAll();
    n.up = true;
    n.incarnation++;
    this.register(n);
  }

  // ---- the ports, bound to one node ----

  replicaIo(from: string): ReplicaIo {
    const at = (l: ReplicaLocation): ReplicaModel => this.node(l.node).replica;
    return {
      write: (l, f) => this.rpc(from, l.node, () => at(l).write(l.disk, f)),
      read: (l, r) => this.rpc(from, l.node, () => at(l).read(l.disk, r)),
      extentGens: (l, v, e, epoch) => this.rpc(from, l.node, () => at(l).extentGens(l.disk, v, e, epoch)),
      readExtent: (l, v, e, x) => this.rpc(from, l.node, () => at(l).readExtent(l.disk, v, e, x)),
      writeExtent: (l, v, e, x, epoch, img) => this.rpc(from, l.node, () => at(l).writeExtent(l.disk, v, e, x, epoch, img)),
      sync: (c, v) => this.rpc(from, c.node, () => this.node(c.node).replica.sync(v)),
    };
  }

  meta(from: string): MetaStore {
    const n = this.node(from);
    const call = <T>(fn: () => T): Promise<T> => this.rpc(from, ETCD, fn);
    return {
      getEgroup: (v, e) => call(() => this.etcd.get(v, e)),
      listEgroups: (v) => call(() => this.etcd.list(v)),
      createEgroup: (v, e, epoch, r) => call(() => this.etcd.create(v, e, epoch, r)),
      casEgroup: (v, e, epoch, ver, r) => call(() => this.etcd.cas(v, e, epoch, ver, r)),
      acquireOwner: (v, o) => {
        const lease = n.leaseId;
        return call(() => ({ epoch: this.etcd.acquire(v, o.node, o.cvmIp, lease) }));
      },
      releaseOwner: (v, epoch) => call(() => this.etcd.release(v, epoch)),
      leaseValid: () => n.up && this.clock.now() < n.leaseOkUntil,
    };
  }

  liveness(from: string): Liveness {
    const n = this.node(from);
    return {
      isDown: (node) => this.etcd.down.has(node),
      subscribe: (fn) => {
        n.subscribers.add(fn);
        return () => n.subscribers.delete(fn);
      },
    };
  }

  space(): PlacementSpace {
    return {
      disks: (): SpaceDisk[] => [...this.nodes.values()].flatMap((n) => [...n.replica.disks.values()].map((d) => ({
        serial: d.serial, node: n.name, cvmIp: n.cvmIp, media: d.media, ok: !d.failed && n.up,
        freeBytes: this.cfg.diskBytes - d.usedPages() * 4096,
      }))),
    };
  }
}
