/**
 * @module
 * The repair loop of one CVM (Curator's role in the reference platform, here inside stargate).
 *
 * With the cluster's failure detector (`liveness`, node/liveness.ts) a node is lost once it is
 * declared down, for every CVM at once; without it (unit tests, older wiring) a node is lost when
 * it has not answered this CVM for the grace period. Every few seconds the loop asks its peers
 * for their disks' health. It scans the extent-group records when something may need work: a node
 * declared down or back (events, with a pass at once), a write that dropped a replica
 * (`degraded()`), a failed disk, work left from the last scan, and every `fullScanEvery` passes.
 * It restores to RF the records whose first good replica is on this node (core/repair.ts),
 * `parallel` copies at a time within `mibPerSec` (client I/O keeps its share), and when nothing
 * needs restoring it rebalances (core/repair-balance.ts) after a node returns, and now and then.
 * Every few passes it also removes replica files that no record points at any more (a replaced or
 * moved replica, a deleted vdisk).
 *
 * Every call to the store or a peer has a timeout, so a pass always ends; stop() waits for it.
 */
import type { Clock } from '../../shared/clock.ts';
import { errorMessage } from '../../shared/errors.ts';
import { within, mapLimit } from '../../shared/async.ts';
import { anythingLost, planRepairs, type EgroupRecord, type PeerView, type RepairWork } from '../core/repair.ts';
import { planRebalance, type BalanceDisk } from '../core/repair-balance.ts';
import type { Replica } from '../core/placement.ts';
import { BLOCK_BYTES } from '../core/storage.ts';
import type { LivenessEvent } from '../core/failure-detector.ts';
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
  backend: (vdiskUuid: string) => Promise<(Pick<VdiskBackend, 'restore'> & Partial<Pick<VdiskBackend, 'move' | 'rf'>>) | undefined>;
  /** The cluster's failure detector: nodes declared down are lost at once. */
  liveness?: {
    isDown(node: string): boolean;
    downNodes(): readonly { node: string; at: string }[];
    on(fn: (e: LivenessEvent) => void): () => void;
  };
  /**
   * Compare-and-swap of many records at once (key: from → to, each compared on its value); returns
   * which succeeded. Used to take replicas on a node declared down out of the records in batches
   * (one store write per batch, not one per record on the client's write path).
   */
  swapMany?: (items: readonly { key: string; from: string; to: string }[]) => Promise<boolean[]>;
  /** The pool's disks (for rebalancing); none: no rebalancing. */
  pool?: () => Promise<readonly BalanceDisk[]>;
  /** Copies (restores, moves) in flight at once (default 2). */
  parallel?: number;
  /** Copy bandwidth of this CVM's repair loop, MiB/s (default: unlimited). */
  mibPerSec?: number;
  /**
   * The share of time each copy slot may spend copying (0..1, default 1): after a copy that took
   * d ms the slot rests d × (1 − duty) / duty ms. On a CPU-bound CVM the bandwidth limit alone
   * does not leave client I/O its share (the copies get slower, not fewer); this does.
   */
  dutyCycle?: number;
  /** A full scan every this many passes even when nothing asks for one (default 10). */
  fullScanEvery?: number;
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
  /** Something asked for a scan (a node down or back, a dropped replica, work left over). */
  private wanted = true;
  /** A node returned (or it is time): rebalance once nothing needs restoring. */
  private wantBalance = false;
  private unsubscribe: (() => void) | undefined;
  /** When the copy budget is next free (ms, injected clock). */
  private budgetAt = 0;
  readonly stats: RepairStats = { passes: 0, lastPassAt: null, restored: 0, pending: 0, stranded: 0, orphansRemoved: 0, lastError: null };
  /** Replicas moved by rebalancing since start. */
  moved = 0;

  constructor(private readonly d: RepairerDeps) {}

  /** A write dropped a replica of this extent group: scan at the next pass. */
  degraded(_vdisk: string, _block: number): void {
    this.wanted = true;
  }

  private get interval(): number {
    return this.d.intervalMs ?? 3000;
  }

  private get grace(): number {
    return this.d.graceMs ?? 60_000;
  }

  start(): void {
    this.unsubscribe = this.d.liveness?.on((e) => {
      this.wanted = true;
      if (e.kind === 'up') this.wantBalance = true;
      this.kick();
    });
    this.schedule();
  }

  /** A pass soon (after the one running, if any). */
  private kick(): void {
    if (this.stopped || this.running) return;
    this.timer?.dispose();
    this.schedule(200);
  }

  private schedule(ms = this.interval): void {
    if (this.stopped) return;
    this.timer = this.d.clock.setTimeout(() => {
      this.running = this.pass().catch((e: unknown) => {
        this.stats.lastError = errorMessage(e);
      }).finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, ms);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.timer?.dispose();
    await this.running;
  }

  /** What this CVM knows of its peers now. */
  view(): PeerView {
    const lv = this.d.liveness;
    if (!lv) return { downSince: this.downSince, failedDisks: this.failedDisks };
    const now = this.d.clock.now();
    return { downSince: new Map(lv.downNodes().map((x) => [x.node, Math.min(Date.parse(x.at) || now, now)])), failedDisks: this.failedDisks };
  }

  private get graceNow(): number {
    return this.d.liveness ? 0 : this.grace;
  }

  /** One copy within the limits: the bandwidth budget before, the duty cycle's rest after. */
  private async paced<T>(f: () => Promise<T>): Promise<T> {
    await this.throttle(BLOCK_BYTES);
    const t0 = this.d.clock.now();
    try {
      return await f();
    } finally {
      const duty = this.d.dutyCycle ?? 1;
      const took = this.d.clock.now() - t0;
      if (duty > 0 && duty < 1 && took > 0 && !this.stopped) await this.d.clock.sleep(Math.min((took * (1 - duty)) / duty, 5000));
    }
  }

  /** Waits until the copy budget allows `bytes` more (mibPerSec). */
  private async throttle(bytes: number): Promise<void> {
    const rate = this.d.mibPerSec;
    if (!rate || !Number.isFinite(rate)) return;
    const now = this.d.clock.now();
    const start = Math.max(this.budgetAt, now);
    this.budgetAt = start + (bytes / (rate * 1024 * 1024)) * 1000;
    if (start > now) await this.d.clock.sleep(start - now);
  }

  private async refresh(): Promise<void> {
    const now = this.d.clock.now();
    const failed = new Set<string>();
    const lv = this.d.liveness;
    await Promise.all(this.d.members().filter((m) => !lv?.isDown(m.serial)).map(async (m) => {
      try {
        const s = await within(this.d.statusOf(m.cvmIp), 2500, `CVM ${m.cvmIp}`);
        for (const disk of s.disks) if (!disk.ok) failed.add(disk.serial);
        if (this.downSince.delete(m.serial)) this.d.log(`repair: CVM ${m.cvmIp} (${m.serial}) answers again`);
      } catch {
        if (lv) return; // the failure detector says who is down
        if (!this.downSince.has(m.serial)) {
          this.downSince.set(m.serial, now);
          this.d.log(`repair: CVM ${m.cvmIp} (${m.serial}) does not answer; its replicas count as lost after ${Math.round(this.grace / 1000)} s`);
        }
      }
    }));
    for (const f of failed) {
      if (this.failedDisks.has(f)) continue;
      this.d.log(`repair: disk ${f} has failed; restoring its extent groups elsewhere`);
      this.wanted = true;
    }
    this.failedDisks = failed;
  }

  /** The RF of each vdisk of these records (undefined: the vdisk is gone). */
  private async withRf(recs: EgroupRecord[]): Promise<EgroupRecord[]> {
    const rfs = new Map<string, number | undefined>();
    for (const r of recs) if (!rfs.has(r.vdisk)) rfs.set(r.vdisk, (await this.d.backend(r.vdisk))?.rf);
    return recs.map((r) => {
      const rf = rfs.get(r.vdisk);
      return rf === undefined ? r : { ...r, rf };
    });
  }

  private async records(prefix = EGROUPS_PREFIX): Promise<EgroupRecord[]> {
    const all = await within(this.d.list(prefix), 10_000, 'the configuration store');
    return Object.entries(all).map(([key, v]) => {
      const [vdisk = '', block = '0'] = key.slice(EGROUPS_PREFIX.length).split('/');
      return { key, vdisk, block: Number(block), replicas: JSON.parse(v) as Replica[] };
    });
  }

  /** One pass: refresh the view, restore what this CVM owns, rebalance, and now and then sweep orphans. */
  async pass(): Promise<void> {
    await this.refresh();
    const now = this.d.clock.now();
    this.stats.passes++;
    this.stats.lastPassAt = new Date(now).toISOString();
    if (this.stats.passes % 10 === 0) await this.sweep();
    const periodic = this.stats.passes % (this.d.fullScanEvery ?? 10) === 0;
    if (periodic && this.stats.passes % (2 * (this.d.fullScanEvery ?? 10)) === 0) this.wantBalance = true;
    const lost = anythingLost(this.view(), now, this.graceNow);
    if (!this.wanted && !periodic && !lost && !this.wantBalance) return;
    // with the failure detector, a node down alone asks for no scan per pass: its events and the writes that drop replicas do
    if (!this.wanted && !periodic && !this.wantBalance && this.d.liveness && this.failedDisks.size === 0) return;
    this.wanted = false;
    const records = await this.withRf(await this.records());
    const plan = planRepairs(records, this.view(), this.d.localNode, now, this.graceNow);
    this.stats.pending = plan.mine.length + plan.others;
    this.stats.stranded = plan.stranded.length;
    if (plan.stranded.length > 0) this.d.log(`repair: ${plan.stranded.length} extent group(s) have no good replica left (first: ${plan.stranded[0]?.key ?? ''})`);
    if (this.stats.pending > 0 || plan.waiting > 0 || plan.stranded.length > 0) this.wanted = true; // look again next pass
    let restored = 0;
    const work = plan.mine.slice(0, this.d.perPass ?? 512);
    await this.dropDown(work);
    await mapLimit(work, this.d.parallel ?? 2, async (w) => {
      if (this.stopped) return;
      const be = await this.d.backend(w.vdisk);
      if (!be) return;
      try {
        if ((await this.paced(() => within(be.restore(w.block, w.replicas, w.lost), 60_000, `restoring ${w.key}`))) === 'restored') restored++;
      } catch (e) {
        this.stats.lastError = `${w.key}: ${errorMessage(e)}`;
        this.d.log(`repair: cannot restore ${w.key} yet: ${errorMessage(e)}`);
      }
    });
    this.stats.restored += restored;
    if (restored > 0 || plan.mine.length > 0) this.d.log(`repair: restored ${restored} extent group(s) to RF; ${plan.mine.length - restored} left here, ${plan.others} for other CVMs`);
    if (plan.mine.length === 0 && plan.others === 0 && plan.stranded.length === 0 && plan.waiting === 0 && this.wantBalance) await this.rebalance(records);
  }

  /**
   * Replicas on nodes declared down leave the records at once, in batches (their extent groups are
   * then listed below RF until restored): a client write to such an extent group then finds a
   * record without them and does not have to change it itself.
   */
  private async dropDown(work: RepairWork[]): Promise<void> {
    const lv = this.d.liveness;
    const swap = this.d.swapMany;
    if (!lv || !swap) return;
    const drop = work.filter((w) => w.lost.length > 0 && w.good.length > 0 && w.lost.every((l) => lv.isDown(l.node) && !this.failedDisks.has(l.disk)));
    if (drop.length === 0) return;
    try {
      const ok = await within(swap(drop.map((w) => ({ key: w.key, from: JSON.stringify(w.replicas), to: JSON.stringify(w.good) }))), 15_000, 'the configuration store');
      let n = 0;
      drop.forEach((w, i) => {
        if (!ok[i]) return;
        n++;
        w.replicas = w.good;
        w.lost = [];
      });
      this.d.log(`repair: took ${n} replica(s) on nodes declared down out of their records; restoring them elsewhere`);
    } catch (e) {
      this.d.log(`repair: cannot take replicas on nodes declared down out of their records yet: ${errorMessage(e)}`);
    }
  }

  /** Moves replicas onto under-used disks of nodes that are up (core/repair-balance.ts). */
  private async rebalance(records: readonly EgroupRecord[]): Promise<void> {
    const pool = this.d.pool;
    if (!pool) return;
    const lv = this.d.liveness;
    const disks = (await within(pool(), 10_000, 'the pool record')).filter((x) => !lv?.isDown(x.node) && !this.failedDisks.has(x.serial) && !this.downSince.has(x.node));
    const moves = planRebalance(records, disks, this.d.localNode, { unitBytes: BLOCK_BYTES, maxMoves: this.d.perPass ?? 512 });
    if (moves.length === 0) {
      this.wantBalance = false;
      return;
    }
    let moved = 0;
    await mapLimit(moves, this.d.parallel ?? 2, async (m) => {
      if (this.stopped || this.wanted) return; // a repair came up: it goes first
      const be = await this.d.backend(m.vdisk);
      if (!be?.move) return;
      try {
        const mv = be.move.bind(be);
        if ((await this.paced(() => within(mv(m.block, m.replicas, m.from, m.to), 60_000, `moving ${m.key}`))) === 'moved') moved++;
      } catch (e) {
        this.stats.lastError = `${m.key}: ${errorMessage(e)}`;
        this.d.log(`repair: cannot move ${m.key} to ${m.to.node}/${m.to.disk}: ${errorMessage(e)}`);
      }
    });
    this.moved += moved;
    this.d.log(`repair: rebalancing moved ${moved} of ${moves.length} planned replica(s)`);
    this.wanted = true; // plan again with the new records
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
