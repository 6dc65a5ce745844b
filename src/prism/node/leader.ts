/**
 * @module
 * Prism's leadership: every Prism campaigns in the configuration store's election; the one elected
 * serves the cluster's virtual IP. Leadership rests on a lease of `ttlS` seconds, kept alive while
 * this process and its store connection live: when the leader's CVM dies the lease runs out and
 * the next campaigner is elected. Every Prism also follows who leads, to redirect to it.
 */
import type { Etcd3, Campaign, Watcher } from 'etcd3';
import { errorMessage } from '../../shared/errors.ts';
import { PRISM_ELECTION } from '../protocol/prism.ts';

/** Where etcd3's Election keeps the campaign keys of an election (its layout: election/<name>/<lease>). */
const ELECTION_KEYS = `election/${PRISM_ELECTION}/`;

export interface LeadershipEvents {
  elected: () => Promise<void> | void;
  lost: () => Promise<void> | void;
}

export class Leadership {
  private campaign: Campaign | undefined;
  private watcher: Watcher | undefined;
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

  /** The leader is the campaign key created first under the election's prefix. */
  private async refresh(): Promise<void> {
    const r = await this.etcd.getAll().prefix(ELECTION_KEYS).sort('Create', 'Ascend').limit(1).exec();
    this.leader = r.kvs[0]?.value.toString() ?? null;
  }

  /**
   * Follows who leads: re-reads the first campaign key whenever a key under the election changes.
   * (etcd3's ElectionObserver is not used: when several campaigns start in one watch batch it
   * takes the last one as the leader, and keeps that answer.)
   */
  private async observe(): Promise<void> {
    if (this.stopped) return;
    const again = (): void => {
      if (!this.stopped) setTimeout(() => void this.observe(), 1000);
    };
    try {
      const w = await this.etcd.watch().prefix(ELECTION_KEYS).create();
      this.watcher = w;
      const update = (): void => void this.refresh().catch(() => undefined);
      w.on('put', update);
      w.on('delete', update);
      w.on('error', () => {
        void w.cancel().catch(() => undefined);
        again();
      });
      await this.refresh();
    } catch {
      again();
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
    await this.watcher?.cancel().catch(() => undefined);
  }
}
