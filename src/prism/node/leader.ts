/**
 * @module
 * Prism's leadership: every Prism campaigns in the configuration store's election; the one elected
 * serves the cluster's virtual IP. Leadership rests on a lease of `ttlS` seconds, kept alive while
 * this process and its store connection live: when the leader's CVM dies the lease runs out and
 * the next campaigner is elected. Every Prism also observes who leads, to redirect to it.
 */
import type { Etcd3, Campaign, ElectionObserver } from 'etcd3';
import { errorMessage } from '../../shared/errors.ts';
import { PRISM_ELECTION } from '../protocol/prism.ts';

export interface LeadershipEvents {
  elected: () => Promise<void> | void;
  lost: () => Promise<void> | void;
}

export class Leadership {
  private campaign: Campaign | undefined;
  private observer: ElectionObserver | undefined;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  isLeader = false;
  /** The CVM address of the current leader, as last observed (null: none yet). */
  leader: string | null = null;

  constructor(private readonly etcd: Etcd3, private readonly self: string, private readonly ttlS: number, private readonly on: LeadershipEvents, private readonly log: (m: string) => void) {}

  start(): void {
    this.run();
    void this.observe();
  }

  private run(): void {
    if (this.stopped) return;
    const c = this.etcd.election(PRISM_ELECTION, this.ttlS).campaign(this.self);
    this.campaign = c;
    c.on('elected', () => {
      if (this.campaign !== c || this.stopped) return;
      this.isLeader = true;
      this.leader = this.self;
      this.log(`elected Prism leader (lease ${this.ttlS} s)`);
      void Promise.resolve(this.on.elected()).catch((e: unknown) => this.log(`taking leadership: ${errorMessage(e)}`));
    });
    c.on('error', (e: unknown) => {
      if (this.campaign !== c) return;
      this.campaign = undefined;
      const was = this.isLeader;
      this.isLeader = false;
      if (was) {
        this.log(`lost Prism leadership: ${errorMessage(e)}`);
        void Promise.resolve(this.on.lost()).catch(() => undefined);
      }
      if (!this.stopped) this.retry = setTimeout(() => this.run(), 1000);
    });
  }

  private async observe(): Promise<void> {
    if (this.stopped) return;
    try {
      const o = await this.etcd.election(PRISM_ELECTION, this.ttlS).observe();
      this.observer = o;
      this.leader = o.leader() ?? this.leader;
      o.on('change', (v: string | undefined) => {
        this.leader = v ?? null;
      });
      o.on('error', () => {
        void o.cancel().catch(() => undefined);
        if (!this.stopped) setTimeout(() => void this.observe(), 1000);
      });
    } catch {
      if (!this.stopped) setTimeout(() => void this.observe(), 1000);
    }
  }

  /** Steps down at once (a clean shutdown): the next leader need not wait for the lease. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    const c = this.campaign;
    this.campaign = undefined;
    if (this.isLeader) {
      this.isLeader = false;
      await Promise.resolve(this.on.lost()).catch(() => undefined);
    }
    await c?.resign().catch(() => undefined);
    await this.observer?.cancel().catch(() => undefined);
  }
}
