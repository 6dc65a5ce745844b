/**
 * @module
 * The owner of one vdisk (ADR 015, Stargate's vdisk controller): the only writer of the vdisk, at
 * the CVM holding `/converge/v2/owners/<vdisk>`. Pure decision code over ports.ts.
 *
 * Rules:
 *  - The epoch comes from acquiring ownership; every frame carries it.
 *  - Each write to an extent group gets the extent group's next generation; it goes with the epoch
 *    and the page checksums to every in-sync replica; it is acknowledged only when every in-sync
 *    replica has it. A replica that fails (error, node declared down, timeout) is moved to `stale`
 *    by compare-and-swap BEFORE the acknowledgement; a write with no in-sync replica left fails.
 *  - Writes to one extent are serialized (a mutex per extent), so replicas apply them in order.
 *  - A new extent group is placed (SSD first, one replica local) and recorded before its first ack;
 *    extent groups with no record read as zeros without any I/O (negative cache: the owner is the
 *    only writer, so its view is authoritative).
 *  - Reads go to the local in-sync replica first, are verified end to end (the page checksums), and
 *    fall back to the others; a replica that returned a bad page is repaired in the background.
 *  - Read repair, resync of stale replicas, re-replication and takeover hold the extent group's
 *    exclusive lock (client I/O holds it shared): no client write interleaves with a copy.
 *  - With a copy budget (copyThrottle, the repair loop's), resync, re-replication and move() first
 *    fill the new replica outside that lock, extent by extent under the shared lock and the
 *    extent's mutex, the replica getting every write meanwhile (never read, not acknowledged on);
 *    the pass under the exclusive lock then compares versions and copies what is still missing
 *    before the record changes. Client I/O goes on during a throttled copy.
 *  - Takeover: before the first I/O on an extent group, the in-sync replicas are asked for their
 *    extent versions (which fences older owners); extents that differ are copied from the highest.
 *  - FLUSH sends SYNC(vdisk) to every CVM holding an in-sync replica of the vdisk.
 *  - Reads are served only while the owner's lease surely holds (no stale read after a partition).
 */
import { TimeoutError, UnavailableError } from '../../../shared/errors.ts';
import { EXTENT_BYTES, PAGE_BYTES, slices } from './layout.ts';
import type { EgroupRecord, ExtentSlice, ReplicaLocation } from './layout.ts';
import { Mutex, RwLock } from './locks.ts';
import { egroupReserve, placeEgroup } from './place.ts';
import { CorruptPageError, StaleEpochError, locKey, sameLoc } from './ports.ts';
import type { Bugs, Checksum, Clock, ExtentImage, ExtentVersion, Liveness, MetaStore, PlacementSpace, ReplicaIo, Versioned, WriteFrame } from './ports.ts';
import { versionAbove } from './replica-model.ts';

export interface OwnerOptions {
  vdisk: string;
  node: string;
  cvmIp: string;
  rf: number;
  io: ReplicaIo;
  meta: MetaStore;
  liveness: Liveness;
  clock: Clock;
  space: PlacementSpace;
  checksum: Checksum;
  /** A replica or configuration-store call slower than this fails (the replica goes stale). */
  callTimeoutMs?: number;
  /**
   * An extent-group record read, create or swap slower than this fails (default callTimeoutMs).
   * Not acknowledged, the I/O is sent again and the extent group checked first. A swap sent as the
   * store's leader died went unanswered for the whole 5 s call timeout (likely held until etcd's
   * own request timeout); one sent again answers once a new leader is elected (about a second).
   */
  storeTimeoutMs?: number;
  /** The vdisk's size: a new replica goes only where its extent group's full size fits (place.ts egroupReserve); none: where 1 MiB fits. */
  sizeBytes?: number;
  /** The same for SYNC (fdatasync of a vdisk's dirty files: seconds on a loaded disk); default 60 s. */
  syncTimeoutMs?: number;
  bugs?: Bugs;
  /**
   * The repair loop's copy budget: awaited after each extent copied by repair (resync,
   * re-replication, scrub) or move(), with the bytes copied (the next copy waits for it); after each
   * scrubbed extent group with the bytes read. Never for client I/O, takeover or read repair.
   * With it, copies into a replica run first outside the extent group's exclusive lock (each
   * extent under the shared lock and that extent's mutex, so no write to it interleaves), and the
   * exclusive lock is held only for the final pass (what changed meanwhile) and the record's swap:
   * client I/O to the extent group is not stopped for the length of a throttled copy.
   */
  copyThrottle?: (bytes: number) => Promise<void>;
  /**
   * How many extents a copy outside the lock may have in flight, asked before each next extent
   * (default 1): one extent at a time leaves the source's read, the network and the target's
   * write each idle two thirds of the time. A window that shrinks ends the extra copies.
   */
  copyWindow?: () => number;
}

/** Options of repair() and move(). */
export interface RepairOptions {
  /** Also read every page of every in-sync replica and repair corrupt extents. */
  scrub?: boolean;
  /** Stops before the next extent group (or the next prefilled extent) once aborted. */
  signal?: AbortSignal;
  /** Only the extent groups that need it (needsRepair's test; no takeover check of the others). Ignored with scrub. */
  needed?: boolean;
}

interface EgroupState {
  index: number;
  /** null: never written (reads are zeros). */
  record: Versioned<EgroupRecord> | null;
  /** The takeover check ran (or the extent group is new). */
  ready: boolean;
  /** The last generation given out. */
  gen: number;
  lock: RwLock;
  recordLock: Mutex;
  extentLocks: Map<number, Mutex>;
  /** In-sync replicas on nodes declared down, not yet moved to stale: neither read nor written. */
  suspect: Set<string>;
  /**
   * Replicas being filled outside the exclusive lock (prefill): every write goes to them too (the
   * acknowledgement does not depend on them; one that fails leaves the set), so the pass under the
   * lock finds (almost) nothing left to copy. Never read. By locKey, with a count of prefills.
   */
  catchUp: Map<string, { loc: ReplicaLocation; refs: number; pending: Set<number> | null }>;
}

export interface RepairReport {
  resynced: number;
  replaced: number;
  /** Extent copies that replaced a replica's corrupt pages (scrub). */
  scrubbed: number;
  failed: string[];
  /** The longest an extent group's exclusive lock was held (client I/O to it waits meanwhile), ms. */
  heldMs: number;
  /** Extents copied under an exclusive lock (what the prefill outside it did not do). */
  lockedCopies: number;
  /**
   * Replicas left for the next pass because the record changed between the prefill and the lock
   * (a replica went stale meanwhile): with copyThrottle, nothing is copied whole under the lock.
   */
  deferred: number;
  /** Stale replicas forgotten because the extent group has RF in-sync replicas without them. */
  dropped: number;
}

const ZERO_VERSION: ExtentVersion = { epoch: 0, gen: 0 };

/** What repair filled outside the lock: new replicas, stale ones it could not reach, stale ones it filled; the record version it saw. */
interface Prefilled {
  fresh: ReplicaLocation[];
  unreachable: ReplicaLocation[];
  filled: ReplicaLocation[];
  version?: number;
  /** New replicas were wanted and no disk had room for them. */
  noPlace?: boolean;
}
const NO_PREFILL: Prefilled = { fresh: [], unreachable: [], filled: [] };
const sameVersion = (a: ExtentVersion, b: ExtentVersion): boolean => a.epoch === b.epoch && a.gen === b.gen;

export class VdiskOwner {
  private readonly egroups = new Map<number, EgroupState>();
  private readonly tasks = new Set<Promise<void>>();
  /** In-flight replica writes per node, failed at once when the node is declared down. */
  private readonly downWaiters = new Map<string, Set<() => void>>();
  private state: 'open' | 'closing' | 'closed' | 'lost' = 'open';
  /** When the lease was first seen unconfirmed (leaseHeld); null while it is confirmed. */
  private leaseDoubtSince: number | null = null;
  /** Why the owner stopped serving, when it did on its own. */
  why = '';
  private readonly unsubscribe: () => void;
  private readonly timeoutMs: number;
  private readonly storeTimeoutMs: number;
  private readonly syncTimeoutMs: number;
  private readonly bugs: Bugs;
  /** Counters, for tests and the simulator. */
  readonly counters = { writes: 0, reads: 0, readRepairs: 0, staleMarked: 0, takeovers: 0, takeoverCopies: 0, moves: 0, prefilled: 0, lockedCopies: 0 };

  /** Acquires ownership (the epoch) and loads the vdisk's extent-group records. */
  static async open(o: OwnerOptions): Promise<VdiskOwner> {
    const { epoch } = await o.meta.acquireOwner(o.vdisk, { node: o.node, cvmIp: o.cvmIp });
    let records: Map<number, Versioned<EgroupRecord>>;
    try {
      records = await o.meta.listEgroups(o.vdisk);
    } catch (e) {
      await o.meta.releaseOwner(o.vdisk, epoch).catch(() => undefined);
      throw e;
    }
    return new VdiskOwner(o, epoch, records);
  }

  private constructor(private readonly o: OwnerOptions, readonly epoch: number, records: Map<number, Versioned<EgroupRecord>>) {
    this.timeoutMs = o.callTimeoutMs ?? 2000;
    this.storeTimeoutMs = o.storeTimeoutMs ?? this.timeoutMs;
    this.syncTimeoutMs = o.syncTimeoutMs ?? 60_000;
    this.bugs = o.bugs ?? {};
    for (const [i, r] of records) this.egroupState(i).record = r;
    this.unsubscribe = o.liveness.subscribe((node) => this.onDown(node));
  }

  get vdisk(): string {
    return this.o.vdisk;
  }

  get node(): string {
    return this.o.node;
  }

  get status(): 'open' | 'closing' | 'closed' | 'lost' {
    return this.state;
  }

  /** The records as this owner knows them (authoritative while it owns the vdisk). */
  records(): Map<number, EgroupRecord> {
    const out = new Map<number, EgroupRecord>();
    for (const [i, s] of this.egroups) if (s.record) out.set(i, s.record.value);
    return out;
  }

  async pwrite(offset: number, data: Uint8Array): Promise<void> {
    this.check();
    for (const s of slices(offset, data.length)) await this.writeSlice(s, data.subarray(s.at, s.at + s.length));
  }

  /**
   * TRIM / WRITE_ZEROES: the range reads as zeros; whole pages are marked zero without data. Extent
   * groups never written already read as zeros: nothing is placed, recorded or sent for them.
   */
  async zero(offset: number, length: number): Promise<void> {
    this.check();
    for (const s of slices(offset, length)) {
      if (!this.egroups.get(s.egroup)?.record) continue;
      await this.writeSlice(s, null);
    }
  }

  async pread(offset: number, length: number): Promise<Uint8Array> {
    this.check();
    const parts = slices(offset, length);
    // the common case, whole pages of one extent: the replica's buffer is the answer (no copy)
    const only = parts.length === 1 ? parts[0]! : null;
    if (only && only.inner % PAGE_BYTES === 0 && length % PAGE_BYTES === 0) {
      const st = await this.ready(only.egroup, false);
      if (!st) return new Uint8Array(length);
      const release = await st.lock.shared();
      let data: Uint8Array;
      try {
        data = await this.readPages(st, only.extent, only.inner, length);
      } finally {
        release();
      }
      this.leaseHeld();
      return data;
    }
    const out = new Uint8Array(length);
    for (const s of parts) {
      const st = await this.ready(s.egroup, false);
      if (!st) continue;
      const start = Math.floor(s.inner / PAGE_BYTES) * PAGE_BYTES;
      const end = Math.ceil((s.inner + s.length) / PAGE_BYTES) * PAGE_BYTES;
      const release = await st.lock.shared();
      try {
        const data = await this.readPages(st, s.extent, start, end - start);
        out.set(data.subarray(s.inner - start, s.inner - start + s.length), s.at);
      } finally {
        release();
      }
    }
    // served only if no newer owner can have written meanwhile
    this.leaseHeld();
    return out;
  }

  /** FLUSH: SYNC(vdisk) to every CVM holding an in-sync replica of the vdisk. */
  async flush(): Promise<void> {
    this.check();
    const cvms = new Map<string, { node: string; cvmIp: string }>();
    if (this.bugs.flushOnlyLocal) cvms.set(this.o.node, { node: this.o.node, cvmIp: this.o.cvmIp });
    else for (const st of this.egroups.values()) for (const l of st.record?.value.replicas ?? []) cvms.set(l.node, { node: l.node, cvmIp: l.cvmIp });
    const targets = [...cvms.values()];
    const results = await Promise.allSettled(targets.map((c) => this.timed(this.o.io.sync(c, this.o.vdisk), this.syncTimeoutMs)));
    const failedNodes = new Set(targets.filter((_, i) => results[i]!.status === 'rejected').map((c) => c.node));
    if (failedNodes.size === 0) return;
    // a CVM that could not sync no longer counts as holding the acknowledged writes
    for (const st of this.egroups.values()) {
      const bad = st.record?.value.replicas.filter((l) => failedNodes.has(l.node)) ?? [];
      await this.markStale(st, bad);
    }
  }

  /**
   * Re-protection: for each extent group, under its exclusive lock, runs the takeover check,
   * resyncs stale replicas whose node is up, replaces those that cannot be resynced, and adds
   * replicas up to RF. With `scrub`, also reads every extent of every in-sync replica (verifying
   * every page) and repairs the corrupt ones from a good replica.
   */
  async repair(opts: RepairOptions = {}): Promise<RepairReport> {
    this.check();
    const report: RepairReport = { resynced: 0, replaced: 0, scrubbed: 0, failed: [], heldMs: 0, lockedCopies: 0, deferred: 0, dropped: 0 };
    for (const st of [...this.egroups.values()]) {
      if (!st.record) continue;
      if (opts.signal?.aborted) break;
      if (opts.needed && !opts.scrub && !this.egroupNeedsRepair(st)) continue;
      const caught: ReplicaLocation[] = [];
      // with copyThrottle, replicas are filled outside the lock first, and the locked pass only tops them up
      const outside = !!this.o.copyThrottle;
      const pre = outside ? await this.prefillRepair(st, opts.signal, caught) : NO_PREFILL;
      const prefilled = pre.fresh;
      if (opts.signal?.aborted) {
        this.releaseCatchUp(st, caught);
        await this.dropUnused(st, prefilled);
        break;
      }
      this.scrubRead = 0;
      const release = await st.lock.exclusive();
      const heldFrom = this.o.clock.now();
      const copiesBefore = this.counters.lockedCopies;
      // no write is in flight under the exclusive lock: the prefilled replicas stop getting writes, the pass below copies what they lack
      this.releaseCatchUp(st, caught);
      try {
        this.check();
        if (!st.ready) await this.takeover(st);
        await this.dropSuspects(st);
        // what the prefill could not know of (a replica that went stale after it) waits for the next pass's
        const changed = pre.version !== undefined && st.record.version !== pre.version;
        const missing = (what: string): void => void (changed ? report.deferred++ : report.failed.push(`egroup ${st.index}: ${what}`));
        const among = (ls: readonly ReplicaLocation[], l: ReplicaLocation): boolean => ls.some((x) => sameLoc(x, l));
        for (const l of [...st.record.value.stale]) {
          const up = !this.o.liveness.isDown(l.node);
          if (up && outside && !among(pre.filled, l) && !among(pre.unreachable, l)) {
            missing(`stale replica ${locKey(l)} not filled outside the lock`);
            continue;
          }
          if (up && !among(pre.unreachable, l)) {
            try {
              await this.resyncInto(st, l);
              await this.updateRecord(st, (r) => ({ replicas: [...r.replicas, l], stale: r.stale.filter((x) => !sameLoc(x, l)) }));
              report.resynced++;
              continue;
            } catch (e) {
              if (e instanceof StaleEpochError) this.lose('fenced by a newer owner');
              report.failed.push(`egroup ${st.index}: resync of ${locKey(l)}: ${(e as Error).message}`);
            }
          }
          if (outside && st.record.value.replicas.length >= this.o.rf) {
            // enough in-sync replicas without it (it cannot be filled: its disk fails, its node does not answer)
            await this.updateRecord(st, (r) => ({ replicas: r.replicas, stale: r.stale.filter((x) => !sameLoc(x, l)) }));
            report.dropped++;
            continue;
          }
          const fresh = await this.addReplica(st, [l.node], l, prefilled, outside);
          if (fresh) report.replaced++;
          else if (outside && !pre.noPlace) missing(`no replica filled outside the lock to replace ${locKey(l)}`);
          else report.failed.push(`egroup ${st.index}: no place for a replica to replace ${locKey(l)}`);
        }
        while (st.record.value.replicas.length < this.o.rf) {
          const fresh = await this.addReplica(st, [], null, prefilled, outside);
          if (!fresh) {
            if (outside && !st.record.value.stale.length) missing(pre.noPlace ? 'no place for a new replica' : 'no replica filled outside the lock to add');
            break;
          }
          report.replaced++;
        }
        if (opts.scrub) report.scrubbed += await this.scrub(st);
      } catch (e) {
        report.failed.push(`egroup ${st.index}: ${(e as Error).message}`);
        if (this.state === 'lost') throw e;
      } finally {
        release();
        report.heldMs = Math.max(report.heldMs, this.o.clock.now() - heldFrom);
        report.lockedCopies += this.counters.lockedCopies - copiesBefore;
      }
      await this.dropUnused(st, prefilled);
      if (opts.scrub && this.o.copyThrottle && this.scrubRead > 0) await this.o.copyThrottle(this.scrubRead).catch(() => undefined);
    }
    return report;
  }

  /**
   * Whether repair() has work: some extent group with a stale replica, fewer than RF in-sync
   * replicas, or an in-sync replica on a node declared down. No I/O (the owner's view of its records).
   */
  needsRepair(): boolean {
    if (this.state !== 'open') return false;
    for (const st of this.egroups.values()) if (this.egroupNeedsRepair(st)) return true;
    return false;
  }

  private egroupNeedsRepair(st: EgroupState): boolean {
    const r = st.record?.value;
    return !!r && (r.stale.length > 0 || r.replicas.length < this.o.rf || r.replicas.some((l) => !this.usable(st, l)));
  }

  /** The extent groups this owner has a record of (written), in index order. */
  egroupIndexes(): number[] {
    return [...this.egroups.values()].filter((s) => s.record).map((s) => s.index).sort((a, b) => a - b);
  }

  /**
   * Rebalancing: moves the in-sync replica `from` of an extent group to `to`. Under the extent
   * group's exclusive lock (after a throttled prefill outside it when copyThrottle is set) `to` is
   * resynced, then the record lists `to` in `from`'s place (compare-and-swap). `from`'s files stay:
   * the caller drops them (dropReplica). false, with nothing changed, when `from` is not an in-sync
   * replica any more or `to`'s node already holds another replica of the extent group.
   */
  async move(egroup: number, from: ReplicaLocation, to: ReplicaLocation, opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    this.check();
    const st = this.egroups.get(egroup);
    if (!st?.record) return false;
    const valid = (r: EgroupRecord): boolean => r.replicas.some((x) => sameLoc(x, from)) && !sameLoc(from, to)
      && ![...r.replicas, ...r.stale].some((x) => !sameLoc(x, from) && (x.node === to.node || sameLoc(x, to)));
    if (!valid(st.record.value)) return false;
    const caught: ReplicaLocation[] = [];
    const prefilled = this.o.copyThrottle && (await this.readyForPrefill(st));
    if (prefilled) await this.prefill(st, to, opts.signal, caught).catch((e: unknown) => this.fencedOr(e));
    const dropTo = async (): Promise<void> => (prefilled ? this.dropUnused(st, [to]) : undefined);
    if (opts.signal?.aborted) {
      this.releaseCatchUp(st, caught);
      await dropTo();
      return false;
    }
    let moved = false;
    const release = await st.lock.exclusive();
    this.releaseCatchUp(st, caught);
    try {
      this.check();
      if (!st.ready) await this.takeover(st);
      await this.dropSuspects(st);
      if (!valid(st.record.value)) return false;
      await this.resyncInto(st, to);
      await this.updateRecord(st, (r) => {
        moved = valid(r);
        return moved ? { replicas: r.replicas.map((x) => (sameLoc(x, from) ? to : x)), stale: r.stale } : null;
      });
      if (moved) this.counters.moves++;
      return moved;
    } catch (e) {
      this.fencedOr(e);
      throw e;
    } finally {
      release();
      if (!moved) await dropTo();
    }
  }

  /**
   * Deletes the extents of a replica of an extent group that its record no longer lists (after a
   * move, or a stale replica replaced elsewhere); returns how many. Nothing when the record still
   * lists it (in-sync or stale). Under the extent group's exclusive lock.
   */
  async dropReplica(egroup: number, loc: ReplicaLocation): Promise<number> {
    this.check();
    const st = this.egroupState(egroup);
    const release = await st.lock.exclusive();
    try {
      this.check();
      const r = st.record?.value;
      if (r && [...r.replicas, ...r.stale].some((x) => sameLoc(x, loc))) return 0;
      const gens = await this.timed(this.o.io.extentGens(loc, this.o.vdisk, egroup, this.epoch));
      for (const e of gens.keys()) await this.timed(this.o.io.writeExtent(loc, this.o.vdisk, egroup, e, this.epoch, null));
      return gens.size;
    } catch (e) {
      this.fencedOr(e);
      throw e;
    } finally {
      release();
    }
  }

  /**
   * Drains, syncs and releases ownership. A sync that fails does not keep the vdisk (the next
   * owner's FLUSH reaches every replica); a release that fails leaves the key to its lease.
   */
  async close(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'closing';
    try {
      while (this.tasks.size) await Promise.allSettled([...this.tasks]);
      this.state = 'open';
      await this.flush().catch(() => undefined);
      this.state = 'closing';
      for (let attempt = 0; ; attempt++) {
        try {
          await this.timed(this.o.meta.releaseOwner(this.o.vdisk, this.epoch));
          break;
        } catch (e) {
          if (attempt >= 2) throw e;
        }
      }
    } finally {
      this.state = 'closed';
      this.unsubscribe();
    }
  }

  /** Stops serving at once (the CVM lost its lease or is shutting down hard). */
  abandon(): void {
    if (this.state === 'open' || this.state === 'closing') this.state = 'lost';
    this.unsubscribe();
  }

  /** Background work (read repair, stale marking) in flight; for tests and close. */
  async idle(): Promise<void> {
    while (this.tasks.size) await Promise.allSettled([...this.tasks]);
  }

  // ---- internals ----

  /** Bytes read by the last scrub of an extent group (for copyThrottle). */
  private scrubRead = 0;

  /** Best effort: the extents of prefilled locations that the record did not take are deleted. */
  private async dropUnused(st: EgroupState, locs: readonly ReplicaLocation[]): Promise<void> {
    for (const l of locs) {
      if (this.state !== 'open') return;
      const r = st.record?.value;
      if (r && [...r.replicas, ...r.stale].some((x) => sameLoc(x, l))) continue;
      await this.dropReplica(st.index, l).catch(() => undefined);
    }
  }

  private fencedOr(e: unknown): void {
    if (e instanceof StaleEpochError) this.lose('fenced by a newer owner');
  }

  /**
   * Before repair takes an extent group's exclusive lock: fills, outside it, the stale replicas it
   * will resync and the new replicas it will add. A stale replica that cannot be filled (its node
   * does not answer, its disk fails) is replaced: a new replica is placed and filled instead, and
   * the locked pass does not try it again (a resync that waits on an unreachable node, or a whole
   * extent group copied into a new replica, would hold client writes under the exclusive lock).
   * Returns the new replicas' locations (addReplica prefers them) and the stale ones given up.
   * A failure here changes nothing: the locked pass copies what is missing.
   */
  private async prefillRepair(st: EgroupState, signal: AbortSignal | undefined, caught: ReplicaLocation[]): Promise<Prefilled> {
    if (!(await this.readyForPrefill(st)) || !st.record) return NO_PREFILL;
    const version = st.record.version;
    const rec = st.record.value;
    const resync = rec.stale.filter((l) => !this.o.liveness.isDown(l.node));
    const unreachable: ReplicaLocation[] = [];
    const filled: ReplicaLocation[] = [];
    for (const l of resync) {
      if (signal?.aborted) return { fresh: [], unreachable, filled, version };
      try {
        if (await this.prefill(st, l, signal, caught)) filled.push(l);
      } catch (e) {
        this.fencedOr(e);
        unreachable.push(l);
      }
    }
    const want = Math.max(0, this.o.rf - rec.replicas.filter((l) => this.usable(st, l)).length - (resync.length - unreachable.length));
    let fresh: ReplicaLocation[] = [];
    let noPlace = false;
    if (want > 0) {
      const exclude = [...rec.replicas, ...resync].map((l) => l.node);
      const disks = this.o.space.disks().filter((d) => !this.o.liveness.isDown(d.node));
      try {
        fresh = placeEgroup(disks, '', want, this.needBytes(st.index), exclude);
      } catch {
        noPlace = true;
      }
    }
    const done: ReplicaLocation[] = [];
    for (const l of fresh) {
      if (signal?.aborted) break;
      try {
        if (await this.prefill(st, l, signal, caught)) done.push(l);
      } catch (e) {
        this.fencedOr(e);
      }
    }
    // a new replica not filled here is not added under the lock (it would be copied whole there); its files go
    await this.dropUnused(st, fresh.filter((l) => !done.includes(l)));
    return { fresh: done, unreachable, filled, version, noPlace };
  }

  /** The takeover check done (under the exclusive lock, briefly) so a prefill may run; false if it failed. */
  private async readyForPrefill(st: EgroupState): Promise<boolean> {
    if (st.ready) return true;
    const release = await st.lock.exclusive();
    try {
      this.check();
      if (!st.ready && st.record) await this.takeover(st);
      return st.ready;
    } catch (e) {
      this.fencedOr(e);
      if (this.state === 'lost') throw e;
      return false;
    } finally {
      release();
    }
  }

  /** Drops this pass's hold on the catch-up entries of `locs` (under the exclusive lock). */
  private releaseCatchUp(st: EgroupState, locs: readonly ReplicaLocation[]): void {
    for (const l of locs) {
      const c = st.catchUp.get(locKey(l));
      if (c && --c.refs <= 0) st.catchUp.delete(locKey(l));
    }
  }

  /**
   * Copies to `target`, extent by extent, every extent whose version differs from an in-sync
   * source, without the extent group's exclusive lock: each extent under the shared lock and its
   * own mutex (no write to that extent interleaves), copyThrottle awaited after each copy with no
   * lock held. The locked resync that follows copies only what was written meanwhile. `caught`:
   * gets `target` once it is in the catch-up set (the caller releases it under the exclusive lock).
   * true once `target` holds every extent (synced); false when it stopped early (aborted, not
   * ready, no source).
   */
  private async prefill(st: EgroupState, target: ReplicaLocation, signal: AbortSignal | undefined, caught: ReplicaLocation[]): Promise<boolean> {
    const throttle = this.o.copyThrottle;
    if (!throttle || !st.record) return false;
    const sources = st.record.value.replicas.filter((l) => this.usable(st, l));
    if (!sources.length) return false;
    const theirs = await this.timed(this.o.io.extentGens(target, this.o.vdisk, st.index, this.epoch));
    // from now on (the epoch floor is raised) the target gets every write too, until the caller's locked pass
    // it gets the writes of an extent only once that extent matches the source's (pending: not yet
    // copied; null: not known yet, so none): a page written onto an extent that lags would give it
    // the source's version without the source's other pages, and the locked pass would skip it
    const k = locKey(target);
    let entry = st.catchUp.get(k);
    if (entry) {
      entry.refs++;
      entry.pending = null;
    } else {
      entry = { loc: target, refs: 1, pending: null };
      st.catchUp.set(k, entry);
    }
    caught.push(target);
    const ours = await this.timed(this.o.io.extentGens(sources[0]!, this.o.vdisk, st.index, this.epoch));
    const extents = [...new Set([...theirs.keys(), ...ours.keys()])].sort((a, b) => a - b);
    const differ = extents.filter((e) => {
      const a = ours.get(e);
      const b = theirs.get(e);
      return !(a && b && sameVersion(a, b));
    });
    entry.pending = new Set(differ);
    const pending = entry.pending;
    const queue = [...differ];
    const windowNow = (): number => this.o.copyWindow?.() ?? 1;
    let stopped = false;
    /** Copies one extent under the shared lock and the extent's mutex: 'again' when the extent group needs its takeover check first. */
    const copy = async (e: number): Promise<'copied' | 'again' | 'stop'> => {
      let bytes = 0;
      const release = await st.lock.shared();
      try {
        const unlock = await this.extentLock(st, e).acquire();
        try {
          this.check();
          if (!st.ready) return 'again';
          const srcs = st.record!.value.replicas.filter((l) => this.usable(st, l));
          if (!srcs.length) return 'stop';
          const image = await this.readImage(st, e, srcs);
          await this.timed(this.o.io.writeExtent(target, this.o.vdisk, st.index, e, this.epoch, image));
          pending.delete(e); // under the extent's mutex: the next write to it goes to the target too
          bytes = image ? image.pages.size * PAGE_BYTES : 0;
          this.counters.prefilled++;
        } finally {
          unlock();
        }
      } finally {
        release();
      }
      await throttle(bytes);
      return 'copied';
    };
    const worker = async (k: number): Promise<void> => {
      while (!stopped && (k === 0 || k < windowNow())) {
        const e = queue.shift();
        if (e === undefined) return;
        // the extent group needs its takeover check again (a record swap that may or may not have
        // happened): run it and go on, rather than leave the rest to the locked pass (client writes
        // wait for everything copied under the exclusive lock)
        if (signal?.aborted || this.state !== 'open' || (!st.ready && !(await this.readyForPrefill(st)))) {
          stopped = true;
          return;
        }
        const r = await copy(e);
        if (r === 'again') queue.unshift(e);
        else if (r === 'stop') stopped = true;
      }
    };
    const window = Math.max(1, Math.min(queue.length, windowNow()));
    // a copy that throws ends the others before their next extent (stopped), then the error goes up
    const results = await Promise.allSettled(Array.from({ length: window }, (_x, k) => worker(k).catch((e: unknown) => {
      stopped = true;
      throw e;
    })));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    if (stopped || queue.length > 0) return false;
    // durable now, outside the lock: the locked pass's sync of the target then has little left to write
    // (128 MiB made durable under the exclusive lock stopped client writes to the extent group for seconds)
    await this.timed(this.o.io.sync(target, this.o.vdisk), this.syncTimeoutMs);
    return true;
  }

  private check(): void {
    if (this.state !== 'open') throw new UnavailableError(`vdisk ${this.o.vdisk}: owner at ${this.o.node} is ${this.state} (epoch ${this.epoch})`);
    this.leaseHeld();
  }

  /**
   * Whether the lease surely holds. A lease not confirmed lately (keep-alives unanswered while the
   * configuration store elects a leader, a second or two) is doubt, not loss: the operation is
   * refused with a transient error and nothing is served, and the owner stays (a new owner would
   * check every extent group again). Doubt that lasts the call timeout is loss.
   */
  private leaseHeld(): void {
    if (this.o.meta.leaseValid()) {
      this.leaseDoubtSince = null;
      return;
    }
    const now = this.o.clock.now();
    this.leaseDoubtSince ??= now;
    if (now - this.leaseDoubtSince >= this.timeoutMs) this.lose(`the lease is not known to hold (unconfirmed for ${now - this.leaseDoubtSince} ms)`);
    throw new UnavailableError(`vdisk ${this.o.vdisk}: the owner lease at ${this.o.node} is not confirmed (the configuration store does not answer); try again`);
  }

  private lose(why: string): never {
    if (this.state === 'open' || this.state === 'closing') {
      this.state = 'lost';
      this.why = why;
    }
    throw new UnavailableError(`vdisk ${this.o.vdisk}: ownership at ${this.o.node} lost (epoch ${this.epoch}): ${why}`);
  }

  private timed<T>(p: Promise<T>, ms = this.timeoutMs): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = this.o.clock.setTimeout(() => reject(new TimeoutError(`no answer in ${ms} ms`)), ms);
      p.then((v) => {
        timer.dispose();
        resolve(v);
      }, (e: unknown) => {
        timer.dispose();
        reject(e instanceof Error ? e : new Error(String(e)));
      });
    });
  }

  private background(p: Promise<void>): void {
    const t = p.catch(() => undefined).finally(() => this.tasks.delete(t));
    this.tasks.add(t);
  }

  private egroupState(i: number): EgroupState {
    let s = this.egroups.get(i);
    if (!s) {
      s = { index: i, record: null, ready: false, gen: 0, lock: new RwLock(), recordLock: new Mutex(), extentLocks: new Map(), suspect: new Set(), catchUp: new Map() };
      this.egroups.set(i, s);
    }
    return s;
  }

  private extentLock(st: EgroupState, extent: number): Mutex {
    let m = st.extentLocks.get(extent);
    if (!m) {
      m = new Mutex();
      st.extentLocks.set(extent, m);
    }
    return m;
  }

  /** Free space a disk needs for a new replica of an extent group. */
  private needBytes(egroup: number): number {
    return this.o.sizeBytes === undefined ? EXTENT_BYTES : egroupReserve(this.o.sizeBytes, egroup);
  }

  private usable(st: EgroupState, l: ReplicaLocation): boolean {
    if (this.o.liveness.isDown(l.node)) return false;
    // a disk known to have failed is neither read nor written (its replicas go stale, then are replaced)
    if (this.o.space.disks().some((d) => d.serial === l.disk && d.node === l.node && !d.ok)) return false;
    // a suspect whose node is back and that could not be moved to stale (the only in-sync replica)
    // missed nothing acknowledged: a write it did not take was not acknowledged
    st.suspect.delete(locKey(l));
    return true;
  }

  /** The extent group ready for I/O: created (for a write) and taken over. null: unwritten, read as zeros. */
  private async ready(index: number, forWrite: boolean): Promise<(EgroupState & { record: Versioned<EgroupRecord> }) | null> {
    const st = this.egroupState(index);
    if (st.record && st.ready) return st as EgroupState & { record: Versioned<EgroupRecord> };
    if (!st.record && !forWrite) return null;
    const release = await st.lock.exclusive();
    try {
      this.check();
      if (!st.record) {
        if (!forWrite) return null;
        await this.create(st);
      } else if (!st.ready) {
        await this.takeover(st);
      }
    } finally {
      release();
    }
    return st as EgroupState & { record: Versioned<EgroupRecord> };
  }

  private async create(st: EgroupState): Promise<void> {
    const disks = this.o.space.disks().filter((d) => !this.o.liveness.isDown(d.node));
    const replicas = placeEgroup(disks, this.o.node, this.o.rf, this.needBytes(st.index));
    const r = await this.timed(this.o.meta.createEgroup(this.o.vdisk, st.index, this.epoch, { replicas, stale: [] }), this.storeTimeoutMs);
    if (!r.ok) {
      if (r.reason === 'epoch') this.lose('the configuration store has a newer owner');
      const now = await this.timed(this.o.meta.getEgroup(this.o.vdisk, st.index), this.storeTimeoutMs);
      if (!now) throw new UnavailableError(`egroup ${st.index}: record creation conflicted`);
      st.record = now;
      await this.takeover(st);
      return;
    }
    st.record = r.record;
    st.ready = true;
    st.gen = 0;
  }

  /** Under the exclusive lock: fence the in-sync replicas, learn their versions, copy differing extents from the highest. */
  private async takeover(st: EgroupState): Promise<void> {
    const fresh = await this.timed(this.o.meta.getEgroup(this.o.vdisk, st.index), this.storeTimeoutMs);
    if (!fresh) this.lose(`the record of extent group ${st.index} vanished`);
    st.record = fresh;
    await this.dropSuspects(st);
    const rec = st.record.value;
    const live = rec.replicas;
    const replies = await Promise.allSettled(live.map((l) => this.timed(this.o.io.extentGens(l, this.o.vdisk, st.index, this.epoch))));
    const failed: ReplicaLocation[] = [];
    const got: { loc: ReplicaLocation; gens: Map<number, ExtentVersion> }[] = [];
    replies.forEach((r, i) => {
      if (r.status === 'fulfilled') got.push({ loc: live[i]!, gens: r.value });
      else if (r.reason instanceof StaleEpochError) this.lose('fenced by a newer owner');
      else failed.push(live[i]!);
    });
    await this.markStale(st, failed);
    const extents = new Set<number>();
    for (const g of got) for (const [e, v] of g.gens) {
      extents.add(e);
      st.gen = Math.max(st.gen, v.gen);
    }
    const broken: ReplicaLocation[] = [];
    const copiedTo = new Map<string, ReplicaLocation>();
    for (const e of [...extents].sort((a, b) => a - b)) {
      const vs = got.map((g) => ({ loc: g.loc, v: g.gens.get(e) ?? ZERO_VERSION }));
      if (vs.every((x) => sameVersion(x.v, vs[0]!.v))) continue;
      vs.sort((a, b) => (versionAbove(a.v, b.v) ? -1 : versionAbove(b.v, a.v) ? 1 : 0));
      const image = await this.readImage(st, e, vs.map((x) => x.loc));
      for (const x of vs) {
        if (image && sameVersion(x.v, image.version)) continue;
        try {
          await this.timed(this.o.io.writeExtent(x.loc, this.o.vdisk, st.index, e, this.epoch, image));
          copiedTo.set(locKey(x.loc), x.loc);
        } catch (err) {
          if (err instanceof StaleEpochError) this.lose('fenced by a newer owner');
          broken.push(x.loc);
        }
      }
    }
    for (const l of copiedTo.values()) {
      try {
        await this.timed(this.o.io.sync(l, this.o.vdisk), this.syncTimeoutMs);
      } catch {
        broken.push(l);
      }
    }
    await this.markStale(st, broken);
    st.ready = true;
  }

  /** An extent's image from the first of `from` that reads it cleanly (null: none has it). */
  private async readImage(st: EgroupState, extent: number, from: readonly ReplicaLocation[]): Promise<ExtentImage | null> {
    let last: unknown = null;
    for (const l of from) {
      try {
        return await this.timed(this.o.io.readExtent(l, this.o.vdisk, st.index, extent));
      } catch (e) {
        last = e;
      }
    }
    throw new UnavailableError(`egroup ${st.index} extent ${extent}: no replica could be read (${(last as Error | null)?.message ?? 'none'})`);
  }

  private async writeSlice(s: ExtentSlice, data: Uint8Array | null): Promise<void> {
    const st = await this.ready(s.egroup, true);
    const release = await st!.lock.shared();
    try {
      const unlock = await this.extentLock(st!, s.extent).acquire();
      try {
        this.check();
        const start = Math.floor(s.inner / PAGE_BYTES) * PAGE_BYTES;
        const end = Math.ceil((s.inner + s.length) / PAGE_BYTES) * PAGE_BYTES;
        const aligned = start === s.inner && end === s.inner + s.length;
        let payload: Uint8Array | null = null;
        if (!aligned) {
          // a partial page: read and verify the old page(s) first, then merge (a corrupt byte never gets a fresh checksum)
          payload = await this.readPages(st!, s.extent, start, end - start);
          if (data) payload.set(data, s.inner - start);
          else payload.fill(0, s.inner - start, s.inner - start + s.length);
        } else if (data) {
          payload = data;
        }
        const crcs: number[] = [];
        if (payload) for (let p = 0; p < payload.length; p += PAGE_BYTES) crcs.push(this.o.checksum(payload.subarray(p, p + PAGE_BYTES)));
        const frame: WriteFrame = { vdisk: this.o.vdisk, egroup: s.egroup, epoch: this.epoch, gen: ++st!.gen, extent: s.extent, inner: start, data: payload, length: end - start, zero: payload === null, crcs };
        await this.fanOut(st!, frame);
      } finally {
        unlock();
      }
    } finally {
      release();
    }
  }

  /** Sends a frame to every in-sync replica; those that fail go stale before this returns. */
  private async fanOut(st: EgroupState, frame: WriteFrame): Promise<void> {
    const targets = st.record!.value.replicas;
    const extra = [...st.catchUp.values()].filter((x) => x.pending !== null && !x.pending.has(frame.extent)).map((x) => x.loc).filter((l) => !targets.some((t) => sameLoc(t, l)));
    const [results] = await Promise.all([
      Promise.allSettled(targets.map((l) => (this.usable(st, l) ? this.writeTo(l, frame) : Promise.reject(new UnavailableError(`${l.node} is down`))))),
      // a replica being filled misses no write that lands after its copy; if it fails one, the locked pass copies that extent again
      Promise.all(extra.map((l) => this.timed(this.o.io.write(l, frame)).catch(() => void st.catchUp.delete(locKey(l))))),
    ]);
    const failed: ReplicaLocation[] = [];
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      if (r.reason instanceof StaleEpochError) this.lose('fenced by a newer owner');
      failed.push(targets[i]!);
    });
    try {
      await this.markStale(st, failed);
    } catch (e) {
      // not acknowledged, and some replicas may have it while others do not: the extent group is
      // checked again (versions compared, differences copied from the highest) before its next I/O
      st.ready = false;
      throw e;
    }
  }

  /** Reads whole pages: local in-sync replica first, end-to-end verified, then the others. */
  private async readPages(st: EgroupState, extent: number, inner: number, length: number): Promise<Uint8Array> {
    const cands = st.record!.value.replicas.filter((l) => this.usable(st, l)).sort((a, b) => Number(b.node === this.o.node) - Number(a.node === this.o.node));
    const bad: ReplicaLocation[] = [];
    for (const l of cands) {
      try {
        const r = await this.timed(this.o.io.read(l, { vdisk: this.o.vdisk, egroup: st.index, extent, inner, length }));
        const badPages: number[] = [];
        if (r.crcs) for (let p = 0; p * PAGE_BYTES < length; p++) if (this.o.checksum(r.data.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES)) !== r.crcs[p]) badPages.push(inner / PAGE_BYTES + p);
        if (badPages.length) throw new CorruptPageError(l.disk, badPages);
        if (bad.length) this.background(this.readRepair(st, extent, bad, l));
        return r.data;
      } catch (e) {
        if (e instanceof StaleEpochError) this.lose('fenced by a newer owner');
        if (e instanceof CorruptPageError) bad.push(l);
      }
    }
    throw new UnavailableError(`vdisk ${this.o.vdisk} egroup ${st.index} extent ${extent}: no in-sync replica could serve the read`);
  }

  /** Copies a good replica's extent over the bad ones, under the exclusive lock (unless the bug switch is on). */
  private async readRepair(st: EgroupState, extent: number, bad: ReplicaLocation[], good: ReplicaLocation): Promise<void> {
    this.counters.readRepairs++;
    const release = this.bugs.readRepairWithoutLock ? () => undefined : await st.lock.exclusive();
    try {
      if (this.state !== 'open') return;
      const inSync = (l: ReplicaLocation): boolean => st.record!.value.replicas.some((x) => sameLoc(x, l));
      if (!inSync(good)) return;
      const image = await this.timed(this.o.io.readExtent(good, this.o.vdisk, st.index, extent));
      const failed: ReplicaLocation[] = [];
      for (const b of bad.filter(inSync)) {
        try {
          await this.timed(this.o.io.writeExtent(b, this.o.vdisk, st.index, extent, this.epoch, image));
        } catch {
          failed.push(b);
        }
      }
      await this.markStale(st, failed);
    } finally {
      release();
    }
  }

  /** Under the exclusive lock: every page of every in-sync replica verified; corrupt extents copied from a good replica. */
  private async scrub(st: EgroupState): Promise<number> {
    const broken: ReplicaLocation[] = [];
    const replicas: ReplicaLocation[] = [];
    const extents = new Set<number>();
    const gens = await Promise.allSettled(st.record!.value.replicas.map((l) => this.timed(this.o.io.extentGens(l, this.o.vdisk, st.index, this.epoch))));
    gens.forEach((g, i) => {
      const l = st.record!.value.replicas[i]!;
      if (g.status === 'rejected') {
        if (g.reason instanceof StaleEpochError) this.lose('fenced by a newer owner');
        broken.push(l);
        return;
      }
      replicas.push(l);
      for (const e of g.value.keys()) extents.add(e);
    });
    let copies = 0;
    for (const e of [...extents].sort((a, b) => a - b)) {
      const got = await Promise.allSettled(replicas.map((l) => this.timed(this.o.io.readExtent(l, this.o.vdisk, st.index, e))));
      for (const g of got) if (g.status === 'fulfilled' && g.value) this.scrubRead += g.value.pages.size * PAGE_BYTES;
      const good = got.find((g) => g.status === 'fulfilled');
      if (!good || good.status !== 'fulfilled') continue;
      for (const [i, g] of got.entries()) {
        if (g.status === 'fulfilled') continue;
        const l = replicas[i]!;
        if (!(g.reason instanceof CorruptPageError)) {
          broken.push(l);
          continue;
        }
        try {
          await this.timed(this.o.io.writeExtent(l, this.o.vdisk, st.index, e, this.epoch, good.value));
          await this.timed(this.o.io.sync(l, this.o.vdisk), this.syncTimeoutMs);
          copies++;
        } catch {
          broken.push(l);
        }
      }
    }
    await this.markStale(st, broken);
    return copies;
  }

  /** Copies to `target` every extent whose version differs from an in-sync source. */
  private async resyncInto(st: EgroupState, target: ReplicaLocation): Promise<void> {
    const sources = st.record!.value.replicas.filter((l) => this.usable(st, l));
    if (!sources.length) throw new UnavailableError(`egroup ${st.index}: no in-sync replica to copy from`);
    const theirs = await this.timed(this.o.io.extentGens(target, this.o.vdisk, st.index, this.epoch));
    const ours = await this.timed(this.o.io.extentGens(sources[0]!, this.o.vdisk, st.index, this.epoch));
    const extents = new Set([...theirs.keys(), ...ours.keys()]);
    for (const e of [...extents].sort((a, b) => a - b)) {
      const a = ours.get(e);
      const b = theirs.get(e);
      if (a && b && sameVersion(a, b)) continue;
      const image = a ? await this.readImage(st, e, sources) : null;
      await this.timed(this.o.io.writeExtent(target, this.o.vdisk, st.index, e, this.epoch, image));
      // not throttled: client I/O to the extent group waits for this lock anyway (the prefill outside it is throttled)
      this.counters.lockedCopies++;
    }
    // a copy is durable before the replica counts as in-sync (its source may be the only one that synced)
    await this.timed(this.o.io.sync(target, this.o.vdisk), this.syncTimeoutMs);
  }

  /** Places a new replica (not on `avoid` nodes nor the extent group's), fills it, records it (dropping `replacing` from stale). */
  private async addReplica(st: EgroupState, avoid: string[], replacing: ReplicaLocation | null, prefer: ReplicaLocation[] = [], onlyPrefer = false): Promise<ReplicaLocation | null> {
    const rec = st.record!.value;
    const exclude = [...avoid, ...rec.replicas.map((l) => l.node), ...rec.stale.filter((l) => !replacing || !sameLoc(l, replacing)).map((l) => l.node)];
    const disks = this.o.space.disks().filter((d) => !this.o.liveness.isDown(d.node));
    // a location prefilled outside the lock, if it still fits
    let found: ReplicaLocation | undefined = prefer.find((p) => !exclude.includes(p.node) && disks.some((d) => d.ok && d.node === p.node && d.serial === p.disk && d.freeBytes >= EXTENT_BYTES));
    if (!found && onlyPrefer) return null;
    if (!found) {
      try {
        found = placeEgroup(disks, '', 1, this.needBytes(st.index), exclude)[0]!;
      } catch {
        return null;
      }
    }
    const loc = found;
    await this.resyncInto(st, loc);
    await this.updateRecord(st, (r) => ({ replicas: [...r.replicas, loc], stale: replacing ? r.stale.filter((x) => !sameLoc(x, replacing)) : r.stale }));
    return loc;
  }

  /** Under the exclusive lock: in-sync replicas on down nodes go stale. */
  private async dropSuspects(st: EgroupState): Promise<void> {
    await this.markStale(st, st.record!.value.replicas.filter((l) => !this.usable(st, l)));
  }

  /** Moves replicas from in-sync to stale (compare-and-swap); refuses to empty the in-sync set. */
  private async markStale(st: EgroupState, locs: readonly ReplicaLocation[]): Promise<void> {
    if (!locs.length) return;
    await this.updateRecord(st, (r) => {
      const move = r.replicas.filter((l) => locs.some((x) => sameLoc(x, l)));
      if (!move.length) return null;
      const replicas = r.replicas.filter((l) => !move.some((x) => sameLoc(x, l)));
      if (!replicas.length) throw new UnavailableError(`vdisk ${this.o.vdisk} egroup ${st.index}: every in-sync replica failed`);
      return { replicas, stale: [...r.stale, ...move.filter((l) => !r.stale.some((x) => sameLoc(x, l)))] };
    });
    for (const l of locs) if (!st.record!.value.replicas.some((x) => sameLoc(x, l))) st.suspect.delete(locKey(l));
  }

  /** Read-modify-CAS of the record, one at a time per extent group; retried on a version conflict. */
  private async updateRecord(st: EgroupState, next: (r: EgroupRecord) => EgroupRecord | null): Promise<void> {
    const unlock = await st.recordLock.acquire();
    try {
      for (let attempt = 0; ; attempt++) {
        const cur = st.record!;
        const want = next(cur.value);
        if (!want) return;
        let r;
        try {
          r = await this.timed(this.o.meta.casEgroup(this.o.vdisk, st.index, this.epoch, cur.version, want), this.storeTimeoutMs);
        } catch (e) {
          // the swap may or may not have happened: the record is read again before the next I/O
          st.ready = false;
          throw e;
        }
        if (r.ok) {
          st.record = r.record;
          return;
        }
        if (r.reason === 'epoch' || attempt >= 3) this.lose('the configuration store has a newer owner');
        const now = await this.timed(this.o.meta.getEgroup(this.o.vdisk, st.index), this.storeTimeoutMs);
        if (!now) this.lose('the extent-group record vanished');
        st.record = now;
      }
    } finally {
      unlock();
    }
  }

  /** A replica write to `node` that fails at once when the node is declared down (not after its timeout). */
  private writeTo(l: ReplicaLocation, frame: WriteFrame): Promise<void> {
    let cancel!: () => void;
    const down = new Promise<never>((_, reject) => {
      const fail = (): void => reject(new UnavailableError(`${l.node} was declared down`));
      let set = this.downWaiters.get(l.node);
      if (!set) this.downWaiters.set(l.node, (set = new Set()));
      set.add(fail);
      cancel = () => set.delete(fail);
    });
    down.catch(() => undefined);
    return Promise.race([this.timed(this.o.io.write(l, frame)), down]).finally(cancel);
  }

  private onDown(node: string): void {
    for (const fail of this.downWaiters.get(node) ?? []) fail();
    this.downWaiters.delete(node);
    if (this.state !== 'open') return;
    for (const st of this.egroups.values()) {
      const on = st.record?.value.replicas.filter((l) => l.node === node) ?? [];
      if (!on.length) continue;
      for (const l of on) st.suspect.add(locKey(l));
      this.background(this.markStale(st, on));
    }
  }
}

