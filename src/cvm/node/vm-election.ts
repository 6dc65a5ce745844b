/**
 * @module
 * The VM service's leadership (Acropolis's master): every CVM campaigns in the cluster's etcd
 * election VM_ELECTION with its CVM address as the value; the campaign key created first leads.
 * Leadership rests on a lease of `ttlS` seconds kept alive by this process: when the leader's CVM
 * dies the lease runs out and the next campaigner is elected. Every CVM follows who leads, to
 * forward mutations to it.
 */
import type { Campaign, Etcd3, Watcher } from 'etcd3';
import { errorMessage } from '../../shared/errors.ts';
import { VM_ELECTION } from '../protocol/vms.ts';

const ELECTION_KEYS = `election/${VM_ELECTION}/`;

export interface LeadershipEvents {
  elected: () => void;
  lost: () => void;
}

export class VmLeadership {
  private campaign: Campaign | undefined;
  private watcher: Watcher | undefined;
  private stopped = false;
  private timers = new Set<NodeJS.Timeout>();
  isLeader = false;
  /** The leader's CVM address, as last observed (null: none). */
  leader: string | null = null;

  constructor(private readonly etcd: Etcd3, private readonly self: string, private readonly ttlS: number, private readonly on: LeadershipEvents, private readonly log: (m: string) => void) {}

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
    const c = this.etcd.election(VM_ELECTION, this.ttlS).campaign(this.self);
    this.campaign = c;
    c.on('elected', () => {
      if (this.campaign !== c || this.stopped) return;
      this.isLeader = true;
      this.leader = this.self;
      this.log(`VM service: elected leader (lease ${this.ttlS} s)`);
      this.on.elected();
    });
    c.on('error', (e: unknown) => {
      if (this.campaign !== c) return;
      this.campaign = undefined;
      const was = this.isLeader;
      this.isLeader = false;
      if (was) {
        this.log(`VM service: lost leadership: ${errorMessage(e)}`);
        this.on.lost();
      }
      this.later(() => this.run(), 1000);
    });
  }

  private async refresh(): Promise<void> {
    const r = await this.etcd.getAll().prefix(ELECTION_KEYS).sort('Create', 'Ascend').limit(1).exec();
    this.leader = r.kvs[0]?.value.toString() ?? null;
  }

  /** Re-reads the first campaign key whenever a key of the election changes (see prism/node/leader.ts on why not ElectionObserver). */
  private async observe(): Promise<void> {
    if (this.stopped) return;
    try {
      const w = await this.etcd.watch().prefix(ELECTION_KEYS).create();
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

  /** Steps down at once (the next leader need not wait for the lease). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const c = this.campaign;
    this.campaign = undefined;
    if (this.isLeader) {
      this.isLeader = false;
      this.on.lost();
    }
    await c?.resign().catch(() => undefined);
    await this.watcher?.cancel().catch(() => undefined);
  }
}
