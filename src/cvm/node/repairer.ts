/**
 * @module
 * The repair loop of one CVM (Curator's role in the reference platform, here inside stargate):
 * every few seconds it asks its peers how they are, and when a disk has failed or a node has been
 * gone past the grace period it scans the extent-group records and restores to RF those whose
 * first good replica is on this node (core/repair.ts). Every few passes it also removes replica
 * files that no record points at any more (a replaced replica, a deleted vdisk).
 *
 * Every call to the store or a peer has a timeout, so a pass always ends; stop() waits for it.
 */
import type { Clock } from '../../shared/clock.ts';
import { errorMessage } from '../../shared/errors.ts';
import { within } from '../../shared/async.ts';
import { anythingLost, planRepairs, type EgroupRecord, type PeerView } from '../core/repair.ts';
import type { Replica } from '../core/placement.ts';
import type { CvmStatus } from '../protocol/cluster.ts';
import type { LocalEgroups } from './egroups.ts';
import type { VdiskBackend } from './vdisk-backend.ts';

export const EGROUPS_PREFIX = '/converge/egroups/';

export interface RepairerDeps {
  clock: Clock;
  /** Every key and value under a prefix of the configuration store. */
  list: (prefix: string) => Promise<Record<string, string>>;
  local: LocalEgroups;
  localNode: string;
  members: () => readonly { serial: string; cvmIp: string }[];
  /** A member's status (this CVM's own without a call); rejects when it does not answer. */
  statusOf: (cvmIp: string) => Promise<CvmStatus>;
  /** The backend of a vdisk by uuid, or undefined if the vdisk no longer exists. */
  backend: (vdiskUuid: string) => Promise<Pick<VdiskBackend, 'restore'> | undefined>;
  log: (m: string) => void;
  intervalMs?: number;
  /** How long a node may be unreachable before its replicas count as lost. */
  graceMs?: number;
  /** How old an unreferenced replica file must be before it is removed. */
  orphanAgeMs?: number;
  /** Extent groups restored per pass at most (the rest wait for the next pass). */
  perPass?: number;
}

export type RepairStats = NonNullable<CvmStatus['repair']>;

export class Repairer {
  private downSince = new Map<string, number>();
  private failedDisks = new Set<string>();
  private timer: { dispose(): void } | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  readonly stats: RepairStats = { passes: 0, lastPassAt: null, restored: 0, pending: 0, stranded: 0, orphansRemoved: 0, lastError: null };

  constructor(private readonly d: RepairerDeps) {}

  private get interval(): number {
    return this.d.intervalMs ?? 3000;
  }

  private get grace(): number {
    return this.d.graceMs ?? 60_000;
  }

  start(): void {
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.d.clock.setTimeout(() => {
      this.running = this.pass().catch((e: unknown) => {
        this.stats.lastError = errorMessage(e);
      }).finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, this.interval);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.dispose();
    await this.running;
  }

  /** What this CVM knows of its peers now. */
  view(): PeerView {
    return { downSince: this.downSince, failedDisks: this.failedDisks };
  }

  private async refresh(): Promise<void> {
    const now = this.d.clock.now();
    const failed = new Set<string>();
    await Promise.all(this.d.members().map(async (m) => {
      try {
        const s = await within(this.d.statusOf(m.cvmIp), 2500, `CVM ${m.cvmIp}`);
        for (const disk of s.disks) if (!disk.ok) failed.add(disk.serial);
        if (this.downSince.delete(m.serial)) this.d.log(`repair: CVM ${m.cvmIp} (${m.serial}) answers again`);
      } catch {
        if (!this.downSince.has(m.serial)) {
          this.downSince.set(m.serial, now);
          this.d.log(`repair: CVM ${m.cvmIp} (${m.serial}) does not answer; its replicas count as lost after ${Math.round(this.grace / 1000)} s`);
        }
      }
    }));
    for (const f of failed) if (!this.failedDisks.has(f)) this.d.log(`repair: disk ${f} has failed; restoring its extent groups elsewhere`);
    this.failedDisks = failed;
  }

  private async records(prefix = EGROUPS_PREFIX): Promise<EgroupRecord[]> {
    const all = await within(this.d.list(prefix), 10_000, 'the configuration store');
    return Object.entries(all).map(([key, v]) => {
      const [vdisk = '', block = '0'] = key.slice(EGROUPS_PREFIX.length).split('/');
      return { key, vdisk, block: Number(block), replicas: JSON.parse(v) as Replica[] };
    });
  }

  /** One pass: refresh the view, restore what this CVM owns, and now and then sweep orphans. */
  async pass(): Promise<void> {
    await this.refresh();
    const now = this.d.clock.now();
    this.stats.passes++;
    this.stats.lastPassAt = new Date(now).toISOString();
    if (this.stats.passes % 10 === 0) await this.sweep();
    if (!anythingLost(this.view(), now, this.grace)) {
      this.stats.pending = 0;
      this.stats.stranded = 0;
      return;
    }
    const plan = planRepairs(await this.records(), this.view(), this.d.localNode, now, this.grace);
    this.stats.pending = plan.mine.length + plan.others;
    this.stats.stranded = plan.stranded.length;
    if (plan.stranded.length > 0) this.d.log(`repair: ${plan.stranded.length} extent group(s) have no good replica left (first: ${plan.stranded[0]?.key ?? ''})`);
    let restored = 0;
    for (const w of plan.mine.slice(0, this.d.perPass ?? 64)) {
      if (this.stopped) break;
      const be = await this.d.backend(w.vdisk);
      if (!be) continue;
      try {
        if ((await within(be.restore(w.block, w.replicas, w.lost), 60_000, `restoring ${w.key}`)) === 'restored') restored++;
      } catch (e) {
        this.stats.lastError = `${w.key}: ${errorMessage(e)}`;
        this.d.log(`repair: cannot restore ${w.key} yet: ${errorMessage(e)}`);
      }
    }
    this.stats.restored += restored;
    if (restored > 0 || plan.mine.length > 0) this.d.log(`repair: restored ${restored} extent group(s) to RF; ${plan.mine.length - restored} left here, ${plan.others} for other CVMs`);
  }

  /** Removes local replica files no record points at (older than orphanAgeMs, so copies in progress stay). */
  async sweep(): Promise<void> {
    const now = this.d.clock.now();
    const minAge = this.d.orphanAgeMs ?? 120_000;
    for (const { disk, vdisk, blocks } of await this.d.local.inventory()) {
      const recs = new Map((await this.records(`${EGROUPS_PREFIX}${vdisk}/`)).map((r) => [r.block, r.replicas]));
      for (const b of blocks) {
        const reps = recs.get(b.block);
        if (reps?.some((r) => r.node === this.d.localNode && r.disk === disk)) continue;
        if (now - b.mtimeMs < minAge) continue;
        await this.d.local.drop({ disk, vdisk, block: b.block });
        this.stats.orphansRemoved++;
      }
    }
  }
}
