/**
 * @module
 * The repair loop of one CVM for storage engine v2 (ADR 015; Curator's role in the reference
 * platform): re-protection, rebalancing and a slow scrub, all done by vdisk owners
 * (core/engine/owner.ts), which copy under their extent groups' locks.
 *
 *  - Owners this CVM holds repair themselves when `needsRepair()` (a stale replica, fewer than RF
 *    in-sync, an in-sync replica on a node declared down): at once on a node-down event, then every
 *    pass (`intervalMs`) while work remains. No store read: each owner knows its records.
 *  - Vdisks that need repair and that NO CVM owns (nobody has them open) are taken by one CVM only:
 *    the leader, the lowest-serial member not declared down. It acquires the vdisk, repairs it and
 *    gives it back (`releaseIfIdle`). Finding them needs a scan of every record
 *    (`/converge/v2/egroups/`) and owner key (`/converge/v2/owners/`): on a liveness event, at start,
 *    every `scanEveryMs`, and again soon while the leader has such work it could not finish.
 *  - Rebalancing (core/engine/balance.ts) after a node returns or a member joins (and every
 *    `balanceEveryMs`), once no record needs repair: each CVM moves extent groups of the vdisks it
 *    holds; the leader also those of vdisks nobody owns. A moved replica's old files are dropped.
 *  - Scrub: every `scrubEveryMs`, one held vdisk (round robin) is repaired with `scrub: true`
 *    (every page of every in-sync replica verified), when nothing else is to do.
 *
 * Copies are paced by one CopyBudget per CVM, given to every owner as `copyThrottle`: a bandwidth
 * limit (`CONVERGE_REPAIR_MIBPS`, 8 MiB/s by default) and a duty cycle (0.5: after a copy that took
 * d ms the next waits at least d ms more), so client writes keep their share during
 * re-protection. With it the owner copies outside the extent group's exclusive lock (owner.ts).
 * A CVM that served no client I/O in the last second copies unthrottled, IDLE_WINDOW extents in
 * flight per copy (one while it serves clients).
 *
 * Every store or registry call has a timeout on the injected clock, so a pass always ends (an
 * owner's own calls have theirs); a failing pass is logged and the next one retries. stop() aborts
 * the copies in flight (before their next extent) and waits for the pass.
 */
import type { Clock, Disposable } from '../../shared/clock.ts';
import { TimeoutError, UnavailableError, errorMessage } from '../../shared/errors.ts';
import { movableShare, planBalance, type BalanceDisk, type BalanceRecord } from '../core/engine/balance.ts';
import { EGROUP_EXTENTS, KEYS, type EgroupRecord } from '../core/engine/layout.ts';
import type { RepairReport, VdiskOwner } from '../core/engine/owner.ts';
import type { LivenessEvent } from '../core/failure-detector.ts';
import type { HeldOwners } from './owners.ts';

/** Every extent-group record (KEYS.egroup(vdisk, n) = this + `<vdisk>/<n>`). */
export const EGROUPS_V2_PREFIX = '/converge/v2/egroups/';
export const OWNERS_V2_PREFIX = KEYS.owner('');

export interface CopyBudgetOptions {
  clock: Clock;
  /** MiB/s for all of this CVM's repair copies (default 8; 0 or Infinity: no limit). */
  mibPerSec?: number;
  /** The share of time spent copying, 0..1 (default 0.5; 1: no rest). */
  dutyCycle?: number;
  /**
   * Whether client I/O is being served now: when it is not, copies run unthrottled (a rebuild on
   * an idle cluster goes at disk speed); the budget applies again at the next copy once it is.
   */
  busy?: () => boolean;
}

/** Extents in flight per copy on an idle CVM: the source's read, the network and the target's write overlap. */
export const IDLE_WINDOW = 4;

/**
 * The copy budget of one CVM's repairs: `throttle` is the owners' `copyThrottle`. It is called
 * after each extent copied with the bytes copied, and returns when the next copy may start: the
 * bandwidth limit (a token bucket) and the duty cycle's rest, whichever is later.
 */
export class CopyBudget {
  private readyAt = 0;
  private lastEnd: number | null = null;
  private readonly abort = new AbortController();
  readonly stats = { bytes: 0, copies: 0, waitedMs: 0, unthrottled: 0 };

  constructor(private readonly o: CopyBudgetOptions) {}

  get mibPerSec(): number {
    return this.o.mibPerSec ?? 8;
  }

  /** No client I/O is being served: copies are unthrottled, IDLE_WINDOW extents in flight. */
  private idle(): boolean {
    return this.o.busy !== undefined && !this.o.busy();
  }

  /** Extents a copy may have in flight: IDLE_WINDOW while the CVM serves no client I/O, else one. */
  readonly window = (): number => (this.idle() ? IDLE_WINDOW : 1);

  readonly throttle = async (bytes: number): Promise<void> => {
    if (this.abort.signal.aborted) throw new UnavailableError('the repair loop is stopping');
    const c = this.o.clock;
    const now = c.now();
    this.stats.bytes += bytes;
    this.stats.copies++;
    if (this.idle()) {
      this.stats.unthrottled++;
      this.readyAt = now;
      this.lastEnd = now;
      return;
    }
    // the copy just made started about when the previous one's wait ended (a gap of more than 1 s is idle time)
    const worked = this.lastEnd === null ? 0 : Math.min(Math.max(0, now - this.lastEnd), 1000);
    const rate = this.mibPerSec;
    let until = now;
    if (rate > 0 && Number.isFinite(rate)) {
      this.readyAt = Math.max(this.readyAt, now - worked) + (bytes / (rate * 1024 * 1024)) * 1000;
      until = Math.max(until, this.readyAt);
    }
    const duty = this.o.dutyCycle ?? 0.5;
    if (duty > 0 && duty < 1) until = Math.max(until, now + (worked * (1 - duty)) / duty);
    const wait = until - now;
    if (wait > 0) {
      this.stats.waitedMs += wait;
      await c.sleep(wait, this.abort.signal);
    }
    this.lastEnd = c.now();
  };

  /** Waits in progress and later calls reject: copies stop before their next extent. */
  stop(): void {
    this.abort.abort(new UnavailableError('the repair loop is stopping'));
  }
}

/** A pool disk (protocol/storage.ts PoolDisk: mediaType 'SSD' or 'HDD') as rebalancing counts it. */
export function balanceDiskOf(d: { serial: string; node: string; cvmIp: string; mediaType: string; capacityBytes: number }): BalanceDisk {
  return { serial: d.serial, node: d.node, cvmIp: d.cvmIp, capacityBytes: d.capacityBytes, media: d.mediaType.toLowerCase() === 'ssd' ? 'ssd' : 'hdd' };
}

export interface EngineRepairerDeps {
  clock: Clock;
  /** This CVM's node (its serial, as liveness names it). */
  node: string;
  owners: HeldOwners;
  liveness: { isDown(node: string): boolean; on(fn: (e: LivenessEvent) => void): () => void };
  /** The cluster's members (node serials): the leader is the lowest not declared down. */
  members: () => readonly string[];
  /** Every key and value under a prefix of the configuration store (`etcd.getAll().prefix(p).strings()`). */
  list: (prefix: string) => Promise<Record<string, string>>;
  /** The pool's healthy disks with their capacity and media (for rebalancing). */
  pool: () => Promise<readonly BalanceDisk[]>;
  /** The vdisks that exist, with their RF (records of other vdisks are left alone). */
  vdisks: () => Promise<readonly { uuid: string; rf: number }[]>;
  /** The budget given to every owner as copyThrottle. */
  budget: CopyBudget;
  log: (m: string) => void;
  /** Between passes (default 5 s). */
  intervalMs?: number;
  /** A scan of every record at least this often (default 5 min). */
  scanEveryMs?: number;
  /** The leader scans again this soon while unowned vdisks it tried are not repaired (default 30 s). */
  rescanMs?: number;
  /** A rebalancing plan at least this often (default 30 min). */
  balanceEveryMs?: number;
  /** One held vdisk scrubbed this often (default 10 min). */
  scrubEveryMs?: number;
  /** Timeout of a store call or of taking ownership (default 10 s). */
  callTimeoutMs?: number;
  /** Moves per rebalancing pass at most (default 32). */
  movesPerPass?: number;
  /**
   * This CVM's extent files (node/extent-store.ts ExtentStore: the files LocalReplicas writes,
   * block = egroup × 128 + extent). With it, every `sweepEveryMs` the files no record lists on this
   * node and disk (in sync or stale), older than `orphanAgeMs`, are deleted: replicas replaced while
   * their node was down, moves whose drop failed, deleted vdisks. Only once no first-cut (v1)
   * records share these files.
   */
  local?: {
    inventory(): Promise<{ disk: string; vdisk: string; blocks: { block: number; mtimeMs: number }[] }[]>;
    drop(r: { disk: string; vdisk: string; block: number }): Promise<void>;
  };
  /** Default 10 min. */
  sweepEveryMs?: number;
  /** How old an unreferenced extent file must be before it is deleted (default 30 min: copies in progress stay). */
  orphanAgeMs?: number;
}

export interface EngineRepairStats {
  passes: number;
  lastPassAt: string | null;
  lastPassMs: number;
  lastScanAt: string | null;
  /** Whether this CVM was the leader at the last pass. */
  leader: boolean;
  /** Vdisks with a record needing repair at the last scan, and how many of them nobody owned. */
  pending: number;
  unowned: number;
  /** Extent groups with no in-sync replica on a node that is up, at the last scan (unreadable until one returns). */
  stranded: number;
  /** Extents of replicas dropped after a move, and extent files deleted by the sweep, since start. */
  orphansRemoved: number;
  /** Replicas resynced or replaced since start. */
  restored: number;
  /** Extent groups moved by rebalancing since start. */
  moved: number;
  /** A rebalancing plan is due (a node returned or joined) and waits for repairs, or is running. */
  balancing: boolean;
  /** Extents repaired by scrubs since start. */
  scrubbed: number;
  lastScrubAt: string | null;
  /** Failures (an extent group not restored, a move or a call that failed) since start. */
  failures: number;
  lastError: string | null;
  /** What the last pass restored, per vdisk, and what failed (the first few). */
  lastPass: { restored: Record<string, number>; failed: string[] };
  /** The last few things restored, moved or failed, newest last, each with its time. */
  recent: string[];
  /** Vdisks whose repair made no progress, waiting before the next try (until a liveness event). */
  backingOff: number;
  /** Bytes copied through the budget since start. */
  copiedBytes: number;
}

interface Scan {
  records: BalanceRecord[];
  owned: Set<string>;
  rf: Map<string, number>;
  /** Vdisks with a record needing repair. */
  needing: Set<string>;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export class EngineRepairer {
  private timer: Disposable | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly abort = new AbortController();
  private unsubscribe: (() => void) | undefined;
  private wantScan = true;
  private wantBalance = true;
  private nextScanAt = 0;
  private nextBalanceAt = 0;
  private nextScrubAt = 0;
  private nextSweepAt = 0;
  private scrubCursor = 0;
  private again = false;
  private knownMembers = new Set<string>();
  /** Vdisks whose repairs made no progress: not retried before `at` (cleared by a liveness event). */
  private readonly backoff = new Map<string, { at: number; delay: number }>();
  readonly stats: EngineRepairStats = {
    passes: 0, lastPassAt: null, lastPassMs: 0, lastScanAt: null, leader: false, pending: 0, unowned: 0, stranded: 0, orphansRemoved: 0,
    restored: 0, moved: 0, balancing: true, scrubbed: 0, lastScrubAt: null, failures: 0, lastError: null, lastPass: { restored: {}, failed: [] }, recent: [], backingOff: 0, copiedBytes: 0,
  };

  constructor(private readonly d: EngineRepairerDeps) {
    const now = d.clock.now();
    this.nextScrubAt = now + this.scrubEvery;
    this.nextSweepAt = now + (d.sweepEveryMs ?? 600_000);
    this.nextBalanceAt = now + this.balanceEvery;
  }

  private get interval(): number {
    return this.d.intervalMs ?? 5000;
  }
  private get scanEvery(): number {
    return this.d.scanEveryMs ?? 300_000;
  }
  private get balanceEvery(): number {
    return this.d.balanceEveryMs ?? 1_800_000;
  }
  private get scrubEvery(): number {
    return this.d.scrubEveryMs ?? 600_000;
  }
  private get callTimeout(): number {
    return this.d.callTimeoutMs ?? 10_000;
  }

  start(): void {
    this.knownMembers = new Set(this.d.members());
    this.unsubscribe = this.d.liveness.on((e) => {
      this.wantScan = true;
      this.backoff.clear();
      if (e.kind === 'up') this.wantBalance = true;
      this.kick();
    });
    this.schedule(0);
  }

  /** A disk failed or came back: work that could not progress may now (a scan, no back-off, a pass now). */
  poolChanged(): void {
    this.wantScan = true;
    this.backoff.clear();
    this.kick();
  }

  /** A pass now (or right after the one running). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.timer?.dispose();
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.d.clock.setTimeout(() => {
      this.timer = undefined;
      this.running = this.pass().catch((e: unknown) => {
        this.fail(`pass: ${errorMessage(e)}`);
      }).finally(() => {
        this.running = undefined;
        const again = this.again;
        this.again = false;
        this.schedule(again ? 0 : this.interval);
      });
    }, ms);
  }

  /** Stops: copies in flight stop before their next extent; waits for the pass. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.timer?.dispose();
    this.abort.abort();
    this.d.budget.stop();
    await this.running;
  }

  /** The lowest-serial member not declared down. */
  leader(): string | undefined {
    return [...this.d.members()].filter((m) => m === this.d.node || !this.d.liveness.isDown(m)).sort()[0];
  }

  private fail(what: string): void {
    this.stats.failures++;
    this.stats.lastError = what;
    if (this.stats.lastPass.failed.length < 10) this.stats.lastPass.failed.push(what);
    this.note(`failed: ${what}`);
    this.d.log(`repair: ${what}`);
  }

  private note(what: string): void {
    this.stats.recent.push(`${iso(this.d.clock.now())} ${what}`);
    if (this.stats.recent.length > 20) this.stats.recent.shift();
  }

  /** Whether a vdisk whose last repairs made no progress is still waiting. */
  private waiting(vdisk: string): boolean {
    const b = this.backoff.get(vdisk);
    return !!b && this.d.clock.now() < b.at;
  }

  /** After a repair: progress clears the wait; none doubles it (interval up to 5 min). */
  private settled(vdisk: string, progress: boolean, workLeft: boolean): void {
    if (progress || !workLeft) {
      this.backoff.delete(vdisk);
      return;
    }
    const delay = Math.min(2 * (this.backoff.get(vdisk)?.delay ?? this.interval / 2), 300_000);
    this.backoff.set(vdisk, { at: this.d.clock.now() + delay, delay });
  }

  private timed<T>(p: Promise<T>, what: string, ms = this.callTimeout): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const t = this.d.clock.setTimeout(() => reject(new TimeoutError(`${what}: no answer in ${ms} ms`)), ms);
      p.then((v) => {
        t.dispose();
        resolve(v);
      }, (e: unknown) => {
        t.dispose();
        reject(e instanceof Error ? e : new Error(String(e)));
      });
    });
  }

  /** One pass: held owners first, then (when due) a scan for unowned work and rebalancing, then a scrub. */
  async pass(): Promise<void> {
    const started = this.d.clock.now();
    this.stats.passes++;
    this.stats.lastPassAt = iso(started);
    this.stats.lastPass = { restored: {}, failed: [] };
    this.stats.leader = this.leader() === this.d.node;
    const members = new Set(this.d.members());
    if ([...members].some((m) => !this.knownMembers.has(m))) {
      this.wantBalance = true;
      this.wantScan = true;
    }
    this.knownMembers = members;
    if (started >= this.nextBalanceAt) {
      this.wantBalance = true;
      this.nextBalanceAt = started + this.balanceEvery;
    }
    try {
      let busy = false;
      for (const o of this.d.owners.held()) {
        if (this.stopped) return;
        // a vdisk waiting after repairs that made no progress does not hold up the scrub and the sweep
        if (o.status !== 'open' || !o.needsRepair() || this.waiting(o.vdisk)) continue;
        busy = true;
        await this.repairOwner(o);
      }
      if (this.stopped) return;
      if (this.wantScan || started >= this.nextScanAt) {
        this.wantScan = false;
        this.nextScanAt = started + this.scanEvery;
        let scan: Scan;
        try {
          scan = await this.scan();
        } catch (e) {
          // tried again soon, not at every pass
          this.nextScanAt = this.d.clock.now() + (this.d.rescanMs ?? 30_000);
          throw e;
        }
        if (this.stopped) return;
        if (scan.needing.size > 0) busy = true;
        else if (this.wantBalance && !busy) await this.rebalance(scan);
      }
      if (!busy && !this.stopped && this.d.clock.now() >= this.nextScrubAt) await this.scrubOne();
      if (!busy && !this.stopped && this.d.local && this.d.clock.now() >= this.nextSweepAt) {
        this.nextSweepAt = this.d.clock.now() + (this.d.sweepEveryMs ?? 600_000);
        await this.sweep();
      }
    } finally {
      this.stats.balancing = this.wantBalance;
      this.stats.backingOff = [...this.backoff.values()].filter((b) => this.d.clock.now() < b.at).length;
      this.stats.copiedBytes = this.d.budget.stats.bytes;
      this.stats.lastPassMs = this.d.clock.now() - started;
    }
  }

  private async repairOwner(o: VdiskOwner, opts: { scrub?: boolean } = {}): Promise<RepairReport | null> {
    try {
      const r = await o.repair({ ...opts, needed: !opts.scrub, signal: this.abort.signal });
      const n = r.resynced + r.replaced + r.dropped;
      this.stats.restored += n;
      this.stats.scrubbed += r.scrubbed;
      // work deferred to the next pass (the record changed during the prefill) is no reason to wait
      if (!opts.scrub) this.settled(o.vdisk, n > 0 || r.deferred > 0, o.status === 'open' && o.needsRepair());
      if (n) this.stats.lastPass.restored[o.vdisk] = (this.stats.lastPass.restored[o.vdisk] ?? 0) + n;
      if (n || r.scrubbed) {
        const what = `vdisk ${o.vdisk}: ${r.resynced} replica(s) resynced, ${r.replaced} placed anew${r.dropped ? `, ${r.dropped} stale one(s) forgotten (RF met without them)` : ''}${r.scrubbed ? `, ${r.scrubbed} corrupt extent(s) repaired` : ''}; exclusive lock held ≤ ${r.heldMs} ms, ${r.lockedCopies} extent(s) copied under it`;
        this.note(what);
        this.d.log(`repair: ${what}`);
      }
      if (r.failed.length) this.fail(`vdisk ${o.vdisk}: ${r.failed[0]!}${r.failed.length > 1 ? ` (and ${r.failed.length - 1} more)` : ''}`);
      this.stats.failures += Math.max(0, r.failed.length - 1);
      return r;
    } catch (e) {
      if (!this.stopped) this.fail(`vdisk ${o.vdisk}: ${errorMessage(e)}`);
      if (!opts.scrub) this.settled(o.vdisk, false, true);
      return null;
    }
  }

  /** This CVM's owner of a vdisk nobody owned (null: another CVM has it now). */
  private async take(uuid: string): Promise<VdiskOwner | null> {
    const p = this.d.owners.acquire(uuid);
    try {
      return await this.timed(p, `taking vdisk ${uuid}`);
    } catch (e) {
      // it may still come: give it back then
      void p.then((o) => (o ? this.d.owners.releaseIfIdle(uuid) : undefined)).catch(() => undefined);
      throw e;
    }
  }

  private async giveBack(uuid: string): Promise<void> {
    try {
      await this.timed(this.d.owners.releaseIfIdle(uuid), `releasing vdisk ${uuid}`);
    } catch (e) {
      this.fail(`vdisk ${uuid}: ${errorMessage(e)}`);
    }
  }

  /** Every record and owner key; the leader repairs the vdisks that need it and nobody owns. */
  private async scan(): Promise<Scan> {
    const now = this.d.clock.now();
    this.stats.lastScanAt = iso(now);
    const [recs, owners, vdisks, pool] = await Promise.all([
      this.timed(this.d.list(EGROUPS_V2_PREFIX), 'listing extent-group records'),
      this.timed(this.d.list(OWNERS_V2_PREFIX), 'listing vdisk owners'),
      this.timed(this.d.vdisks(), 'listing vdisks'),
      this.timed(this.d.pool(), 'reading the pool'),
    ]);
    // a replica on a disk that is not among the healthy ones (failed) needs replacing too
    const healthy = new Set(pool.map((d) => d.serial));
    const rf = new Map(vdisks.map((v) => [v.uuid, v.rf]));
    const owned = new Set(Object.keys(owners).map((k) => k.slice(OWNERS_V2_PREFIX.length)));
    const records: BalanceRecord[] = [];
    const needing = new Set<string>();
    let stranded = 0;
    for (const [key, value] of Object.entries(recs)) {
      const rest = key.slice(EGROUPS_V2_PREFIX.length);
      const slash = rest.lastIndexOf('/');
      const vdisk = rest.slice(0, slash);
      const egroup = rest.slice(slash + 1);
      const want = rf.get(vdisk);
      if (slash <= 0 || !/^\d+$/.test(egroup) || want === undefined) continue;
      let record: EgroupRecord;
      try {
        record = JSON.parse(value) as EgroupRecord;
      } catch {
        continue;
      }
      if (!Array.isArray(record.replicas) || !Array.isArray(record.stale)) continue;
      records.push({ vdisk, egroup: Number(egroup), record });
      if (!record.replicas.some((l) => !this.d.liveness.isDown(l.node))) stranded++;
      if (record.stale.length > 0 || record.replicas.length < want || record.replicas.some((l) => this.d.liveness.isDown(l.node) || !healthy.has(l.disk))) needing.add(vdisk);
    }
    const unowned = [...needing].filter((v) => !owned.has(v));
    this.stats.pending = needing.size;
    this.stats.stranded = stranded;
    this.stats.unowned = unowned.length;
    if (unowned.length && this.leader() === this.d.node) {
      const left: string[] = [];
      for (const v of unowned.sort()) {
        if (this.stopped) break;
        if (this.waiting(v)) {
          left.push(v);
          continue;
        }
        let o: VdiskOwner | null;
        try {
          o = await this.take(v);
        } catch (e) {
          this.fail(`vdisk ${v}: cannot take it for repair: ${errorMessage(e)}`);
          this.settled(v, false, true);
          left.push(v);
          continue;
        }
        if (!o) continue; // another CVM has it now: it repairs it
        try {
          await this.repairOwner(o);
          if (o.status === 'open' && o.needsRepair()) left.push(v);
        } finally {
          await this.giveBack(v);
        }
      }
      // the work left is tried again soon (when its wait ends), not only at the next periodic scan
      if (left.length) {
        const rescan = this.d.clock.now() + (this.d.rescanMs ?? 30_000);
        const soonest = Math.min(...left.map((v) => Math.max(rescan, this.backoff.get(v)?.at ?? rescan)));
        this.nextScanAt = Math.min(this.nextScanAt, soonest);
      }
    }
    return { records, owned, rf, needing };
  }

  /** Moves extent groups of the vdisks this CVM holds (the leader: also of those nobody owns). */
  private async rebalance(scan: Scan): Promise<void> {
    const disks = (await this.timed(this.d.pool(), 'reading the pool')).filter((d) => !this.d.liveness.isDown(d.node));
    const held = new Map(this.d.owners.held().filter((o) => o.status === 'open').map((o) => [o.vdisk, o]));
    const leader = this.leader() === this.d.node;
    const movable = (v: string): boolean => held.has(v) || (leader && !scan.owned.has(v));
    // every CVM plans at once against the same usage: each fills its share of a disk's shortfall
    const moves = planBalance(scan.records, disks, { movable, maxMoves: this.d.movesPerPass ?? 32, share: movableShare(scan.records, movable) });
    if (!moves.length) {
      this.wantBalance = false;
      return;
    }
    const byVdisk = new Map<string, typeof moves>();
    for (const m of moves) byVdisk.set(m.vdisk, [...(byVdisk.get(m.vdisk) ?? []), m]);
    let moved = 0;
    for (const [v, ms] of byVdisk) {
      if (this.stopped) break;
      let o = held.get(v);
      let taken = false;
      if (!o) {
        try {
          o = (await this.take(v)) ?? undefined;
          taken = !!o;
        } catch (e) {
          this.fail(`vdisk ${v}: cannot take it to rebalance: ${errorMessage(e)}`);
        }
        if (!o) continue;
      }
      try {
        for (const m of ms) {
          if (this.stopped || o.status !== 'open' || o.needsRepair()) break; // repair goes first
          try {
            if (!(await o.move(m.egroup, m.from, m.to, { signal: this.abort.signal }))) continue;
            moved++;
            this.stats.moved++;
            this.stats.orphansRemoved += await o.dropReplica(m.egroup, m.from).catch((e: unknown) => {
              this.d.log(`repair: vdisk ${v} egroup ${m.egroup}: the old replica on ${m.from.node}/${m.from.disk} stays for now: ${errorMessage(e)}`);
              return 0;
            });
            this.note(`vdisk ${v} egroup ${m.egroup}: moved ${m.from.node}/${m.from.disk} to ${m.to.node}/${m.to.disk}`);
          } catch (e) {
            if (!this.stopped) this.fail(`vdisk ${v} egroup ${m.egroup}: cannot move ${m.from.node}/${m.from.disk} to ${m.to.node}/${m.to.disk}: ${errorMessage(e)}`);
          }
        }
      } finally {
        if (taken) await this.giveBack(v);
      }
    }
    this.d.log(`repair: rebalancing moved ${moved} of ${moves.length} planned extent group(s)`);
    // plan again with the new records
    this.wantScan = true;
  }

  /**
   * Deletes this CVM's extent files that no record lists on this node and disk (older than
   * orphanAgeMs). A vdisk that no longer exists loses all its files; one whose records cannot be
   * read keeps them.
   */
  async sweep(): Promise<number> {
    const local = this.d.local;
    if (!local) return 0;
    const minAge = this.d.orphanAgeMs ?? 1_800_000;
    const [inv, vdisks] = await Promise.all([this.timed(local.inventory(), 'listing local extent files', 60_000), this.timed(this.d.vdisks(), 'listing vdisks')]);
    const exists = new Set(vdisks.map((v) => v.uuid));
    const records = new Map<string, Map<number, EgroupRecord> | null>();
    let dropped = 0;
    for (const { disk, vdisk, blocks } of inv) {
      if (this.stopped) break;
      let recs = records.get(vdisk);
      if (recs === undefined) {
        recs = null;
        try {
          const raw = await this.timed(this.d.list(KEYS.egroupsOf(vdisk)), `listing the records of vdisk ${vdisk}`);
          recs = new Map();
          for (const [k, v] of Object.entries(raw)) {
            const eg = k.slice(KEYS.egroupsOf(vdisk).length);
            if (/^\d+$/.test(eg)) recs.set(Number(eg), JSON.parse(v) as EgroupRecord);
          }
        } catch (e) {
          this.d.log(`repair: sweep: the records of vdisk ${vdisk} cannot be read; its files stay: ${errorMessage(e)}`);
        }
        records.set(vdisk, recs);
      }
      if (!recs) continue;
      const now = this.d.clock.now();
      for (const b of blocks) {
        if (now - b.mtimeMs < minAge) continue;
        const rec = recs.get(Math.floor(b.block / EGROUP_EXTENTS));
        if (rec && [...rec.replicas, ...rec.stale].some((l) => l.node === this.d.node && l.disk === disk)) continue;
        // an existing vdisk with no v2 record at all keeps its files (a first-cut vdisk's, or a listing that raced its first record)
        if (!rec && exists.has(vdisk) && recs.size === 0) continue;
        try {
          await this.timed(local.drop({ disk, vdisk, block: b.block }), `deleting extent ${disk}/${vdisk}/${b.block}`);
          dropped++;
        } catch (e) {
          this.d.log(`repair: sweep: cannot delete extent ${disk}/${vdisk}/${b.block}: ${errorMessage(e)}`);
        }
      }
    }
    this.stats.orphansRemoved += dropped;
    if (dropped) {
      this.note(`sweep: ${dropped} unreferenced extent file(s) deleted`);
      this.d.log(`repair: sweep: deleted ${dropped} extent file(s) no record lists`);
    }
    return dropped;
  }

  /** One held vdisk (round robin) repaired with every page of every in-sync replica verified. */
  private async scrubOne(): Promise<void> {
    this.nextScrubAt = this.d.clock.now() + this.scrubEvery;
    const open = this.d.owners.held().filter((o) => o.status === 'open').sort((a, b) => a.vdisk.localeCompare(b.vdisk));
    if (!open.length) return;
    const o = open[this.scrubCursor++ % open.length]!;
    this.stats.lastScrubAt = iso(this.d.clock.now());
    await this.repairOwner(o, { scrub: true });
  }
}
