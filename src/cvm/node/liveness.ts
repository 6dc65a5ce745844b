/**
 * @module
 * This CVM's part of the cluster's one failure detector (core/failure-detector.ts, ADR 015):
 *  - keeps `/converge/v2/alive/<node>` under its own etcd lease (TTL `ttlS`, renewed every ttlS/3;
 *    a lost lease is replaced and the key put again);
 *  - watches every alive and down key, and declares a node down when its alive key goes, or when a
 *    member has had none for the grace period (one transaction: only if no down key exists and the
 *    node's alive key is absent, so a view that lags cannot declare a live node down);
 *  - clears its own down key when it is alive again;
 *  - answers isDown(node) at once (no I/O), and tells listeners when a node goes down or comes back.
 *
 * The TTL bounds how long writes may stall on a dead node before it is declared down: with the
 * default 3 s, etcd deletes a dead CVM's alive key 3 to 4 s after its last renewal (longer if the
 * dead node led etcd: a new leader extends every lease once).
 */
import type { Etcd3, Lease, Watcher } from 'etcd3';
import type { Clock, Disposable } from '../../shared/clock.ts';
import { errorMessage } from '../../shared/errors.ts';
import { KEYS } from '../core/engine/layout.ts';
import { FailureDetector, type AliveRecord, type DetectorStep, type DownRecord, type LivenessEvent } from '../core/failure-detector.ts';

export const ALIVE_PREFIX = KEYS.alive('');
export const DOWN_PREFIX = KEYS.down('');
/** The default lease TTL of an alive key (seconds). */
export const LIVENESS_TTL_S = 3;

/** What a watch reports: a key put or deleted. */
export interface WatchHandlers {
  put: (key: string, value: string) => void;
  del: (key: string) => void;
  error: (e: unknown) => void;
}

/** How a down declaration went: made, already made by someone, or refused because the node's alive key is there. */
export type DeclareResult = 'declared' | 'exists' | 'alive';

/** The store operations liveness needs (etcd in production; a fake in unit tests). */
export interface LivenessStore {
  /** Puts key=value under a fresh lease of ttlS kept alive; onLost when the lease is lost. */
  putLeased(key: string, value: string, ttlS: number, onLost: (why: string) => void): Promise<{ revoke(): Promise<void> }>;
  /** Creates the down key unless it exists or the node's alive key does (one transaction). */
  declareDown(downKey: string, aliveKey: string, value: string): Promise<DeclareResult>;
  delete(key: string): Promise<void>;
  /**
   * Lists a prefix and watches it from the revision after the list: every change after the
   * snapshot is reported, none before it (a watch started before a list may report a put the
   * list, answered at an older revision, does not hold, and the snapshot would then erase it).
   */
  listAndWatch(prefix: string, on: WatchHandlers): Promise<{ snapshot: Record<string, string>; cancel(): Promise<void> }>;
}

export function etcdLivenessStore(etcd: Etcd3): LivenessStore {
  return {
    async putLeased(key, value, ttlS, onLost) {
      const lease: Lease = etcd.lease(ttlS);
      lease.on('lost', (e: unknown) => onLost(errorMessage(e)));
      await lease.put(key).value(value);
      return { revoke: async () => void (await lease.revoke().catch(() => undefined)) };
    },
    async declareDown(downKey, aliveKey, value) {
      const r = await etcd.if(downKey, 'Create', '==', 0).and(aliveKey, 'Create', '==', 0).then(etcd.put(downKey).value(value)).commit();
      if (r.succeeded) return 'declared';
      return (await etcd.get(downKey).string()) !== null ? 'exists' : 'alive';
    },
    async delete(key) {
      await etcd.delete().key(key);
    },
    async listAndWatch(prefix, on) {
      const r = await etcd.getAll().prefix(prefix).exec();
      const snapshot = Object.fromEntries(r.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
      const w: Watcher = await etcd.watch().prefix(prefix).startRevision(String(BigInt(r.header.revision) + 1n)).create();
      w.on('put', (kv) => on.put(kv.key.toString(), kv.value.toString()));
      w.on('delete', (kv) => on.del(kv.key.toString()));
      w.on('error', on.error);
      return { snapshot, cancel: () => w.cancel() };
    },
  };
}

export interface LivenessDeps {
  store: LivenessStore;
  clock: Clock;
  self: { node: string; cvmIp: string };
  /** The cluster's members' nodes. */
  members: () => readonly string[];
  log: (m: string) => void;
  ttlS?: number;
  /** How long a member with no alive key at all waits before it is declared down (default 3 × TTL). */
  graceMs?: number;
}

export class Liveness {
  private readonly fd: FailureDetector;
  private listeners = new Set<(e: LivenessEvent) => void>();
  private lease: { revoke(): Promise<void> } | undefined;
  private watches: { cancel(): Promise<void> }[] = [];
  private ticker: Disposable | undefined;
  private stopped = false;
  private renewing = false;

  constructor(private readonly d: LivenessDeps) {
    this.fd = new FailureDetector({ self: d.self.node, graceMs: d.graceMs ?? 3 * 1000 * this.ttl }, () => d.clock.now());
  }

  get ttl(): number {
    return this.d.ttlS ?? LIVENESS_TTL_S;
  }

  /** Whether the node is declared down now (the store's down key, as last seen). */
  isDown(node: string): boolean {
    return this.fd.isDown(node);
  }

  downNodes(): DownRecord[] {
    return this.fd.downNodes();
  }

  /** Calls fn on every down / up event; returns how to stop. */
  on(fn: (e: LivenessEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  async start(): Promise<void> {
    const s = this.d.store;
    const node = (key: string, prefix: string): string => key.slice(prefix.length);
    const error = (e: unknown): void => this.d.log(`liveness: watch: ${errorMessage(e)}`);
    // changes seen before both snapshots are applied wait for them (they are newer than their snapshot)
    let held: (() => void)[] | null = [];
    const later = (f: () => void): void => void (held ? held.push(f) : f());
    const alive = await s.listAndWatch(ALIVE_PREFIX, {
      put: (k) => later(() => this.apply(this.fd.alivePut(node(k, ALIVE_PREFIX)))),
      del: (k) => later(() => this.apply(this.fd.aliveGone(node(k, ALIVE_PREFIX)))),
      error,
    });
    this.watches.push(alive);
    const down = await s.listAndWatch(DOWN_PREFIX, {
      put: (_k, v) => later(() => {
        const r = parseDown(v);
        if (r) this.apply(this.fd.downPut(r));
      }),
      del: (k) => later(() => this.apply(this.fd.downGone(node(k, DOWN_PREFIX)))),
      error,
    });
    this.watches.push(down);
    this.apply(this.fd.snapshot(Object.keys(alive.snapshot).map((k) => node(k, ALIVE_PREFIX)), Object.values(down.snapshot).map(parseDown).filter((r): r is DownRecord => r !== undefined)));
    const queued = held;
    held = null;
    for (const f of queued) f();
    await this.putAlive();
    this.apply(this.fd.setMembers(this.d.members()));
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.ticker = this.d.clock.setTimeout(() => {
      this.apply(this.fd.setMembers(this.d.members()));
      this.schedule();
    }, 1000);
  }

  private async putAlive(): Promise<void> {
    const rec: AliveRecord = { node: this.d.self.node, cvmIp: this.d.self.cvmIp, since: new Date(this.d.clock.now()).toISOString() };
    this.lease = await this.d.store.putLeased(KEYS.alive(this.d.self.node), JSON.stringify(rec), this.ttl, (why) => void this.renew(why));
  }

  /** The lease was lost (etcd unreachable past the TTL): take a new one as soon as the store answers. */
  private async renew(why: string): Promise<void> {
    if (this.stopped || this.renewing) return;
    this.renewing = true;
    this.d.log(`liveness: lost this CVM's liveness lease (${why}); taking a new one`);
    try {
      for (let wait = 200; !this.stopped; wait = Math.min(wait * 2, 2000)) {
        try {
          await this.putAlive();
          return;
        } catch (e) {
          this.d.log(`liveness: cannot renew yet: ${errorMessage(e)}`);
          await this.d.clock.sleep(wait);
        }
      }
    } finally {
      this.renewing = false;
    }
  }

  private apply(step: DetectorStep): void {
    for (const a of step.actions) {
      if (a.kind === 'declare-down') {
        const n = a.record.node;
        this.d.store.declareDown(KEYS.down(n), KEYS.alive(n), JSON.stringify(a.record)).then(
          (r) => {
            if (r === 'declared') this.d.log(`liveness: declared node ${n} down (${a.record.reason})`);
            // its alive key is there after all (this CVM's view lagged): it is alive
            if (r === 'alive') this.apply(this.fd.alivePut(n));
          },
          (e: unknown) => this.d.log(`liveness: cannot declare ${a.record.node} down: ${errorMessage(e)}`),
        );
      } else {
        this.d.store.delete(KEYS.down(a.node)).then(
          () => this.d.log(`liveness: this node (${a.node}) is alive again: its down declaration is cleared`),
          (e: unknown) => this.d.log(`liveness: cannot clear this node's down declaration: ${errorMessage(e)}`),
        );
      }
    }
    for (const e of step.events) {
      if (e.kind === 'down') this.d.log(`liveness: node ${e.node} is down (declared by ${e.record.by} at ${e.record.at}: ${e.record.reason})`);
      else this.d.log(`liveness: node ${e.node} is back`);
      for (const l of this.listeners) {
        try {
          l(e);
        } catch (err) {
          this.d.log(`liveness: a listener failed: ${errorMessage(err)}`);
        }
      }
    }
  }

  /** Stops watching and gives the lease back (the alive key goes at once: a clean stop is seen as down). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.ticker?.dispose();
    await Promise.all(this.watches.map((w) => w.cancel().catch(() => undefined)));
    this.watches = [];
    await this.lease?.revoke();
    this.lease = undefined;
  }
}

function parseDown(v: string): DownRecord | undefined {
  try {
    const r = JSON.parse(v) as Partial<DownRecord>;
    return typeof r.node === 'string' ? { node: r.node, by: String(r.by ?? ''), at: String(r.at ?? ''), reason: String(r.reason ?? '') } : undefined;
  } catch {
    return undefined;
  }
}
