/**
 * @module
 * A leadership elected in the cluster's etcd: every candidate campaigns in the election with its
 * address as the value; the campaign key created first leads. Leadership rests on a lease of
 * `ttlS` seconds kept alive while this process and its store connection live: when the leader
 * dies the lease runs out and the next campaigner is elected. Every candidate also follows who
 * leads (to redirect or forward to it). Prism's leader (the VIP) and the VM service's leader use it.
 */
import type { Campaign, Etcd3, Watcher } from 'etcd3';
import { errorMessage } from './errors.ts';

export interface LeadershipEvents {
  elected: () => Promise<void> | void;
  lost: () => Promise<void> | void;
}

export interface LeadershipOptions {
  /** The election's name (etcd3 keeps its campaign keys under election/<name>/). */
  election: string;
  /** This candidate's value: its address. */
  self: string;
  ttlS: number;
  /** What leads, in log lines ("Prism", "VM service"). */
  what: string;
  log: (m: string) => void;
}

export class Leadership {
  private campaign: Campaign | undefined;
  private watcher: Watcher | undefined;
  private stopped = false;
  private timers = new Set<NodeJS.Timeout>();
  private readonly keys: string;
  isLeader = false;
  /** The leader's address, as last observed (null: none yet). */
  leader: string | null = null;

  constructor(private readonly etcd: Etcd3, private readonly o: LeadershipOptions, private readonly on: LeadershipEvents) {
    this.keys = `election/${o.election}/`;
  }

  start(): void {
    this.run();
    void this.observe();
  }

  private later(fn: () => void, ms: number): void {
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private run(): void {
    if (this.stopped) return;
    const c = this.etcd.election(this.o.election, this.o.ttlS).campaign(this.o.self);
    this.campaign = c;
    c.on('elected', () => {
      if (this.campaign !== c || this.stopped) return;
      this.isLeader = true;
      this.leader = this.o.self;
      this.o.log(`${this.o.what}: elected leader (lease ${this.o.ttlS} s)`);
      void Promise.resolve(this.on.elected()).catch((e: unknown) => this.o.log(`${this.o.what}: taking leadership: ${errorMessage(e)}`));
    });
    c.on('error', (e: unknown) => {
      if (this.campaign !== c) return;
      this.campaign = undefined;
      const was = this.isLeader;
      this.isLeader = false;
      if (was) {
        this.o.log(`${this.o.what}: lost leadership: ${errorMessage(e)}`);
        void Promise.resolve(this.on.lost()).catch(() => undefined);
      }
      this.later(() => this.run(), 1000);
    });
  }

  /** The leader is the campaign key created first under the election's prefix. */
  private async refresh(): Promise<void> {
    const r = await this.etcd.getAll().prefix(this.keys).sort('Create', 'Ascend').limit(1).exec();
    this.leader = r.kvs[0]?.value.toString() ?? null;
  }

  /**
   * Follows who leads: re-reads the first campaign key whenever a key under the election changes.
   * (etcd3's ElectionObserver is not used: when several campaigns start in one watch batch it
   * takes the last one as the leader, and keeps that answer.)
   */
  private async observe(): Promise<void> {
    if (this.stopped) return;
    try {
      const w = await this.etcd.watch().prefix(this.keys).create();
      if (this.stopped) {
        await w.cancel();
        return;
      }
      this.watcher = w;
      const update = (): void => void this.refresh().catch(() => undefined);
      w.on('put', update);
      w.on('delete', update);
      w.on('error', () => {
        void w.cancel().catch(() => undefined);
        this.later(() => void this.observe(), 1000);
      });
      await this.refresh();
    } catch {
      this.later(() => void this.observe(), 1000);
    }
  }

  /** The leader now, read from the store (the watched value may lag a change by a moment). */
  async currentLeader(): Promise<string | null> {
    await this.refresh().catch(() => undefined);
    return this.leader;
  }

  /** Steps down at once (a clean shutdown): the next leader need not wait for the lease. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const c = this.campaign;
    this.campaign = undefined;
    if (this.isLeader) {
      this.isLeader = false;
      await Promise.resolve(this.on.lost()).catch(() => undefined);
    }
    await c?.resign().catch(() => undefined);
    await this.watcher?.cancel().catch(() => undefined);
  }
}
