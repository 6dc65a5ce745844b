/**
 * @module
 * A vdisk as an NBD backend: the storage fabric's data path (first cut).
 *
 * A vdisk is cut into 1 MiB blocks; each block that has been written lives in an extent group
 * with RF replicas (core/placement.ts: the writer's node first, then distinct nodes), whose
 * locations are recorded in the configuration store before the first write is acknowledged
 * (`/converge/egroups/<vdisk uuid>/<block>` → replicas; created once, by transaction).
 *
 * Invariants:
 *  1. A write is acknowledged only after every replica has it; with FUA, after every replica has
 *     made it durable. FLUSH makes every write acknowledged before it durable on every replica.
 *  2. A read prefers the local replica, checks its checksums, and falls back to the others if one
 *     fails; a replica that answered wrongly is then rewritten from the good one.
 *  3. Blocks never written read as zeros and take no space.
 *  4. A replica that fails a write (failed disk, a node declared down by the cluster's failure
 *     detector, or a CVM unreachable for REPLICA_STALL_MS without being declared down) is dropped
 *     from the record (compare-and-swap) before the write is acknowledged: the record then lists
 *     fewer replicas than the RF, which the repair loop restores in the background and the
 *     resiliency status reports. A replica on a node declared down fails at once: no stall. At
 *     least one replica must take the write, or the write fails.
 *  5. A restored or moved replica (the repair loop) holds every acknowledged write: the copy is
 *     made first without holding up writes, then, under the block's exclusive gate, the record is
 *     swapped only if no write to the block started or ended on this CVM since the copy began;
 *     otherwise the copy is made again under the gate. (Writes that enter at another CVM are not
 *     seen here: vdisk ownership, ADR 015, is what closes that.)
 */
import type { Etcd3 } from 'etcd3';
import { errorMessage, DiskIoError, UnavailableError } from '../../shared/errors.ts';
import { placeReplicas, checkPoolSpace, type DiskSpace, type Replica } from '../core/placement.ts';
import { BLOCK_BYTES, type Vdisk } from '../core/storage.ts';
import type { NbdBackend } from '../../shared/nbd/backend.ts';
import type { LocalEgroups, PeerEgroups, EgroupRef } from './egroups.ts';
import { BlockGate } from '../../shared/block-gate.ts';
import type { LivenessEvent } from '../core/failure-detector.ts';
import { mapLimit } from '../../shared/async.ts';

export interface FabricDeps {
  etcd: Etcd3;
  local: LocalEgroups;
  peers: PeerEgroups;
  localNode: string;
  localIp: string;
  /** Free space of every disk in the pool (for placing new extent groups). */
  space: () => Promise<DiskSpace[]>;
  /** A pool disk's capacity. */
  capacityOf: (serial: string) => number;
  log?: (m: string) => void;
  /** Whether the cluster's failure detector declared a node down (node/liveness.ts); none: never. */
  isDown?: (node: string) => boolean;
  /** The failure detector's down / up events (Liveness.on); returns how to stop listening. */
  onLiveness?: (fn: (e: LivenessEvent) => void) => () => void;
  /** A block's record lost a replica (a write dropped it): the repair loop restores it. */
  degraded?: (vdisk: string, block: number) => void;
}

/**
 * How long a write waits for an unreachable replica's CVM that is not declared down (a partition
 * between two CVMs that both keep their liveness) before it drops the replica. A node declared
 * down fails at once.
 */
const REPLICA_STALL_MS = 5_000;

/**
 * One extent group of zeros, shared by every WRITE_ZEROES and TRIM. Never written to: replicas
 * (local disk, replication link) only read the bytes they are given.
 */
const ZEROS = Buffer.alloc(BLOCK_BYTES);
/** Extent groups zeroed at once by one request. */
const ZERO_PARALLEL = 4;

const key = (vd: Vdisk, block: number): string => `/converge/egroups/${vd.uuid}/${block}`;

interface Segment {
  block: number;
  /** Offset inside the block. */
  inner: number;
  /** Offset inside the request. */
  at: number;
  length: number;
}

function segments(offset: number, length: number): Segment[] {
  const out: Segment[] = [];
  for (let pos = offset; pos < offset + length;) {
    const block = Math.floor(pos / BLOCK_BYTES);
    const inner = pos - block * BLOCK_BYTES;
    const n = Math.min(BLOCK_BYTES - inner, offset + length - pos);
    out.push({ block, inner, at: pos - offset, length: n });
    pos += n;
  }
  return out;
}

/**
 * Counts a placement against the (cached) view of free space, so the extent groups placed before
 * the view is refreshed spread over the disks instead of all landing on the one that was freest.
 */
function charge(space: readonly DiskSpace[], reps: readonly Replica[]): void {
  for (const r of reps) {
    const d = space.find((x) => x.serial === r.disk);
    if (d) d.freeBytes -= BLOCK_BYTES;
  }
}

export class VdiskBackend implements NbdBackend {
  readonly readOnly = false;
  private map = new Map<number, Replica[]>();
  private allocating = new Map<number, Promise<Replica[]>>();
  private dirty = new Map<number, Replica[]>();
  /** Writes to a block share it; restoring a block takes it alone. */
  private gate = new BlockGate();
  /** Per block, how many writes started or ended here (a copy made meanwhile may lack one). */
  private writeEvents = new Map<number, number>();

  private bump(block: number): void {
    this.writeEvents.set(block, (this.writeEvents.get(block) ?? 0) + 1);
  }

  /** A write to a block, under its shared gate, counted for copies made meanwhile. */
  private writeCounted(s: Segment, piece: Buffer, fua: boolean): Promise<void> {
    return this.gate.shared(s.block, async () => {
      this.bump(s.block);
      try {
        await this.writeBlock(s, piece, fua);
      } finally {
        this.bump(s.block);
      }
    });
  }

  constructor(readonly vdisk: Vdisk, readonly rf: number, private readonly d: FabricDeps) {}

  private isDown(node: string): boolean {
    return node !== this.d.localNode && (this.d.isDown?.(node) ?? false);
  }

  /** The pool's disks that may take a new replica: not on a node declared down. */
  private async usableSpace(): Promise<DiskSpace[]> {
    const all = await this.d.space();
    return all.some((x) => this.isDown(x.node)) ? all.filter((x) => !this.isDown(x.node)) : all;
  }

  get size(): bigint {
    return BigInt(this.vdisk.sizeBytes);
  }

  private ref(rep: Replica, block: number): EgroupRef {
    return { disk: rep.disk, vdisk: this.vdisk.uuid, block };
  }

  private isLocal(rep: Replica): boolean {
    return rep.cvmIp === this.d.localIp && this.d.local.has(rep.disk);
  }

  /** The replicas of a block, or null if it was never written. */
  private async replicasOf(block: number): Promise<Replica[] | null> {
    const cached = this.map.get(block);
    if (cached) return cached;
    const raw = await this.d.etcd.get(key(this.vdisk, block)).string();
    if (!raw) return null;
    const reps = JSON.parse(raw) as Replica[];
    this.map.set(block, reps);
    return reps;
  }

  /** The replicas of a block, placing and recording them first if it has none. */
  private ensure(block: number): Promise<Replica[]> {
    const cached = this.map.get(block);
    if (cached) return Promise.resolve(cached);
    let p = this.allocating.get(block);
    if (!p) {
      p = (async () => {
        const existing = await this.replicasOf(block);
        if (existing) return existing;
        const space = await this.usableSpace();
        checkPoolSpace(space, (serial) => this.d.capacityOf(serial));
        const reps = placeReplicas(space, this.d.localNode, this.rf, BLOCK_BYTES);
        charge(space, reps);
        const k = key(this.vdisk, block);
        const r = await this.d.etcd.if(k, 'Create', '==', 0).then(this.d.etcd.put(k).value(JSON.stringify(reps))).commit();
        if (r.succeeded) {
          this.map.set(block, reps);
          return reps;
        }
        this.map.delete(block);
        const won = await this.replicasOf(block); // another CVM placed it first: use theirs
        if (!won) throw new Error(`extent group ${k} vanished`);
        return won;
      })().finally(() => this.allocating.delete(block));
      this.allocating.set(block, p);
    }
    return p;
  }

  /**
   * Writes one replica. A replica on a node declared down fails at once, and so does a write in
   * flight to it when the declaration comes. A peer CVM that does not answer but is not declared
   * down is retried for REPLICA_STALL_MS (writing the same bytes again is harmless); after that the
   * replica counts as failed and the caller drops it.
   */
  private async writeReplica(rep: Replica, block: number, inner: number, data: Uint8Array, sync: boolean): Promise<void> {
    const ref = this.ref(rep, block);
    if (this.isLocal(rep)) return this.d.local.write(ref, inner, data, sync);
    const deadline = Date.now() + REPLICA_STALL_MS;
    for (let wait = 100; ; wait = Math.min(wait * 2, 1000)) {
      if (this.isDown(rep.node)) throw new UnavailableError(`node ${rep.node} is declared down`);
      try {
        return await this.untilDown(rep.node, this.d.peers.write(rep.cvmIp, ref, inner, data, sync));
      } catch (e) {
        if (!(e instanceof UnavailableError) || Date.now() > deadline) throw e;
        await this.untilDown(rep.node, new Promise<void>((r) => setTimeout(r, wait))).catch(() => undefined);
      }
    }
  }

  /**
   * The promise, or an UnavailableError as soon as the node is declared down (whichever first): a
   * listener on the detector's events while it is pending, no timer per write.
   */
  private untilDown<T>(node: string, p: Promise<T>): Promise<T> {
    const on = this.d.onLiveness;
    if (!on) return p;
    return new Promise<T>((resolve, reject) => {
      const off = on((e) => {
        if (e.kind === 'down' && e.node === node) reject(new UnavailableError(`node ${node} is declared down`));
      });
      p.then(resolve, reject).finally(off);
    });
  }

  private readReplica(rep: Replica, block: number, inner: number, length: number): Promise<Buffer> {
    const ref = this.ref(rep, block);
    return this.isLocal(rep) ? this.d.local.read(ref, inner, length) : this.d.peers.read(rep.cvmIp, ref, inner, length);
  }

  async pread(offset: number, length: number): Promise<Buffer> {
    const segs = segments(offset, length);
    const only = segs.length === 1 ? segs[0] : undefined;
    if (only) return (await this.readSegment(only)) ?? Buffer.alloc(length); // one block: no copy
    const out = Buffer.alloc(length);
    await Promise.all(segs.map(async (s) => (await this.readSegment(s))?.copy(out, s.at)));
    return out;
  }

  /** The bytes of one segment from the first replica that reads right, or undefined if never written. */
  private async readSegment(s: Segment): Promise<Buffer | undefined> {
    const reps = await this.replicasOf(s.block);
    if (!reps) return undefined; // never written: zeros
    const { data, bad } = await this.readFirst(reps, s.block, s.inner, s.length, 'no replica could be read');
    if (bad.length > 0) this.repair(bad, s.block, s.inner, data);
    return data;
  }

  /**
   * Reads from the first of these replicas that answers right, local ones first; also returns the
   * replicas that answered wrongly (bad checksum, I/O error: to be repaired), not the unreachable.
   */
  private async readFirst(reps: readonly Replica[], block: number, inner: number, length: number, failure: string): Promise<{ data: Buffer; bad: Replica[] }> {
    // local first, then peers, replicas on nodes declared down last (they are tried only if nothing else answers)
    const ordered = [...reps.filter((r) => this.isLocal(r)), ...reps.filter((r) => !this.isLocal(r) && !this.isDown(r.node)), ...reps.filter((r) => !this.isLocal(r) && this.isDown(r.node))];
    const errors: string[] = [];
    const bad: Replica[] = [];
    for (const rep of ordered) {
      try {
        return { data: await this.readReplica(rep, block, inner, length), bad };
      } catch (e) {
        errors.push(`${rep.node}/${rep.disk}: ${errorMessage(e)}`);
        if (!(e instanceof UnavailableError)) bad.push(rep);
      }
    }
    throw new DiskIoError(this.vdisk.name, `block ${block}: ${failure} (${errors.join('; ')})`);
  }

  /** Rewrites the good bytes onto replicas that failed a read (bad checksum, I/O error). */
  private repair(bad: readonly Replica[], block: number, inner: number, good: Buffer): void {
    for (const rep of bad) {
      this.writeReplica(rep, block, inner, good, true).then(
        () => this.d.log?.(`repaired ${this.vdisk.name} block ${block} on ${rep.node}/${rep.disk} from a good replica`),
        (e: unknown) => this.d.log?.(`could not repair ${this.vdisk.name} block ${block} on ${rep.node}/${rep.disk}: ${errorMessage(e)}`),
      );
    }
  }

  async pwrite(offset: number, data: Buffer, fua: boolean): Promise<void> {
    await Promise.all(segments(offset, data.length).map((s) => this.writeCounted(s, data.subarray(s.at, s.at + s.length), fua)));
  }

  private async writeBlock(s: Segment, piece: Buffer, fua: boolean): Promise<void> {
    let reps = await this.ensure(s.block);
    for (let round = 0; ; round++) {
      const results = await Promise.allSettled(reps.map((rep) => this.writeReplica(rep, s.block, s.inner, piece, fua)));
      const failed = reps.filter((_r, i) => results[i]?.status === 'rejected');
      if (failed.length === 0) break;
      if (failed.length === reps.length) {
        const why = results.map((x, i) => (x.status === 'rejected' ? `${reps[i]?.node}/${reps[i]?.disk}: ${errorMessage(x.reason)}` : '')).join('; ');
        throw new DiskIoError(this.vdisk.name, `block ${s.block}: every replica failed the write (${why})`);
      }
      const r = await this.dropReplicas(s.block, reps, failed);
      reps = r.replicas;
      // Another CVM changed the record meanwhile (it restored the block from a copy that may
      // predate this write): write the piece again, to the replicas of the record that won.
      if (!r.raced) break;
      if (round >= 3) throw new DiskIoError(this.vdisk.name, `block ${s.block}: its replicas keep changing under this write`);
    }
    if (!fua) this.dirty.set(s.block, reps);
  }

  /**
   * Takes replicas that failed a write out of the record (compare-and-swap), so no read ever goes
   * to a replica that missed an acknowledged write; the record then lists fewer replicas than the
   * RF, and the repair loop is told. `raced` when somebody changed the record meanwhile (the record
   * that won is returned: the caller writes the piece again to it).
   */
  private async dropReplicas(block: number, reps: Replica[], failed: readonly Replica[]): Promise<{ replicas: Replica[]; raced: boolean }> {
    const next = reps.filter((r) => !failed.includes(r));
    const won = await this.casRecord(block, reps, next);
    if (won) return { replicas: won, raced: true };
    this.d.log?.(`${this.vdisk.name} block ${block}: dropped ${failed.map((f) => `${f.node}/${f.disk}`).join(', ')} (failed a write); ${next.length} of ${this.rf} replicas until the repair loop restores it`);
    this.d.degraded?.(this.vdisk.uuid, block);
    return { replicas: next, raced: false };
  }

  /**
   * Restores an extent group to its RF (the repair loop): waits for writes in flight to the block,
   * checks that the record is still the one the plan saw, then copies the block to new replicas in
   * place of the lost ones and of those missing from the record.
   */
  async restore(block: number, seen: readonly Replica[], lost: readonly Replica[]): Promise<'restored' | 'changed'> {
    const lostOf = (reps: Replica[]): Replica[] => reps.filter((x) => lost.some((l) => l.disk === x.disk && l.node === x.node));
    this.map.delete(block);
    const first = await this.replicasOf(block);
    if (!first || JSON.stringify(first) !== JSON.stringify(seen)) return 'changed';
    // the copy, without holding up writes
    const before = this.writeEvents.get(block) ?? 0;
    const copy = await this.copyOut(block, first, lostOf(first));
    return this.gate.exclusive(block, async () => {
      this.map.delete(block);
      const now = await this.replicasOf(block);
      if (!now || JSON.stringify(now) !== JSON.stringify(seen)) return 'changed';
      const quiet = (this.writeEvents.get(block) ?? 0) === before;
      const r = quiet ? (copy ? await this.swapRecord(block, now, copy.next, copy.lost, copy.fresh) : { replicas: now, raced: false }) : await this.rereplicate(block, now, lostOf(now));
      return r.raced ? 'changed' : 'restored';
    });
  }

  /**
   * Moves one replica of a block to another disk (rebalancing): under the block's exclusive gate,
   * if the record is still `seen`, copies the whole block from a good replica to `to`, then swaps
   * `from` for `to` in the record. The old replica's file is left to the orphan sweep.
   */
  async move(block: number, seen: readonly Replica[], from: Replica, to: Replica): Promise<'moved' | 'changed'> {
    const copyTo = async (now: Replica[], i: number): Promise<void> => {
      const sources = [now[i]!, ...now.filter((_r, j) => j !== i)];
      const { data: whole } = await this.readFirst(sources, block, 0, BLOCK_BYTES, 'no replica could be read to move');
      await this.writeReplica(to, block, 0, whole, true);
    };
    const indexIn = (now: Replica[] | null): number => (!now || JSON.stringify(now) !== JSON.stringify(seen) || now.some((r) => r.node === to.node) ? -1 : now.findIndex((r) => r.node === from.node && r.disk === from.disk));
    this.map.delete(block);
    const first = await this.replicasOf(block);
    const i0 = indexIn(first);
    if (!first || i0 < 0) return 'changed';
    const before = this.writeEvents.get(block) ?? 0;
    await copyTo(first, i0); // without holding up writes
    return this.gate.exclusive(block, async () => {
      this.map.delete(block);
      const now = await this.replicasOf(block);
      const i = indexIn(now);
      if (!now || i < 0) return 'changed';
      if ((this.writeEvents.get(block) ?? 0) !== before) await copyTo(now, i); // a write came in meanwhile: again, under the gate
      return (await this.casRecord(block, now, now.map((r, j) => (j === i ? to : r)))) ? 'changed' : 'moved';
    });
  }

  /** Forgets the cached replicas of a block (its record changed in the store). */
  forget(block: number): void {
    this.map.delete(block);
  }

  /**
   * Replaces replicas that are lost (failed disk, node declared down) and adds those the record
   * lacks to reach the RF: new replicas on other nodes get a full, checksum-verified copy of the
   * block from a good replica (which holds every acknowledged write), then the record is swapped in
   * the store if nobody changed it meanwhile (`raced` if somebody did: the record that won is
   * returned).
   */
  private async rereplicate(block: number, reps: Replica[], lost: readonly Replica[]): Promise<{ replicas: Replica[]; raced: boolean }> {
    const copy = await this.copyOut(block, reps, lost);
    return copy ? this.swapRecord(block, reps, copy.next, copy.lost, copy.fresh) : { replicas: reps, raced: false };
  }

  /**
   * Copies a block from a good replica to new replicas (durably) for the lost ones and those the
   * record lacks to reach the RF; returns the record to put (null: nothing to do).
   */
  private async copyOut(block: number, reps: Replica[], lost: readonly Replica[]): Promise<{ next: Replica[]; fresh: Replica[]; lost: readonly Replica[] } | null> {
    const good = reps.filter((r) => !lost.includes(r));
    if (good.length === 0) throw new DiskIoError(this.vdisk.name, `block ${block}: every replica failed (${lost.map((f) => `${f.node}/${f.disk}`).join(', ')})`);
    const need = Math.max(this.rf - good.length, 0);
    if (need === 0 && lost.length === 0) return null;
    const { data: whole } = await this.readFirst(good, block, 0, BLOCK_BYTES, 'no good replica could be read to re-replicate');
    const space = (await this.usableSpace()).filter((d) => !good.some((g) => g.node === d.node) && !lost.some((f) => f.disk === d.serial || f.node === d.node));
    const fresh = placeReplicas(space, '', need, BLOCK_BYTES);
    charge(space, fresh);
    await Promise.all(fresh.map((r) => this.writeReplica(r, block, 0, whole, true)));
    return { next: [...good, ...fresh], fresh, lost };
  }

  /**
   * Compare-and-swap of a block's record from `reps` to `next`: undefined when it took (the cache
   * follows), else the record that won (somebody changed it meanwhile).
   */
  private async casRecord(block: number, reps: Replica[], next: Replica[]): Promise<Replica[] | undefined> {
    const k = key(this.vdisk, block);
    const r = await this.d.etcd.if(k, 'Value', '==', JSON.stringify(reps)).then(this.d.etcd.put(k).value(JSON.stringify(next))).commit();
    if (!r.succeeded) {
      this.map.delete(block);
      const won = await this.replicasOf(block);
      if (!won) throw new DiskIoError(this.vdisk.name, `block ${block}: its extent group record vanished`);
      return won;
    }
    this.map.set(block, next);
    return undefined;
  }

  /** Puts `next` as the block's record if it is still `reps` (`raced` with the record that won if not). */
  private async swapRecord(block: number, reps: Replica[], next: Replica[], lost: readonly Replica[], fresh: readonly Replica[]): Promise<{ replicas: Replica[]; raced: boolean }> {
    const won = await this.casRecord(block, reps, next);
    if (won) return { replicas: won, raced: true };
    this.d.log?.(`${this.vdisk.name} block ${block}: ${lost.length > 0 ? `replaced ${lost.map((f) => `${f.node}/${f.disk}`).join(', ')}` : 'back to RF'} with ${fresh.map((f) => `${f.node}/${f.disk}`).join(', ')}`);
    return { replicas: next, raced: false };
  }

  /** FLUSH: every write acknowledged so far becomes durable on every replica (one request per peer). */
  async flush(): Promise<void> {
    const dirty = [...this.dirty];
    this.dirty.clear();
    const local: EgroupRef[] = [];
    const remote = new Map<string, EgroupRef[]>();
    for (const [block, reps] of dirty) {
      for (const rep of reps) {
        if (this.isLocal(rep)) local.push(this.ref(rep, block));
        else {
          let l = remote.get(rep.cvmIp);
          if (!l) remote.set(rep.cvmIp, (l = []));
          l.push(this.ref(rep, block));
        }
      }
    }
    try {
      await Promise.all([this.d.local.syncMany(local), ...[...remote].map(([ip, refs]) => this.d.peers.syncMany(ip, refs))]);
    } catch (e) {
      for (const [block, reps] of dirty) if (!this.dirty.has(block)) this.dirty.set(block, reps); // still not durable: the next FLUSH tries again
      throw e;
    }
  }

  /**
   * WRITE_ZEROES (and TRIM): one extent group at a time, ZERO_PARALLEL in flight, each written from
   * the one shared block of zeros. A request may cover 4 GiB; the memory it takes does not grow
   * with it (one buffer of zeros per block, all at once, took a CVM from 230 MiB to 1.2 GiB for a
   * 1 GiB TRIM).
   */
  async zero(offset: number, length: number, fua: boolean): Promise<void> {
    await mapLimit(segments(offset, length), ZERO_PARALLEL, async (s) => {
      if (!(await this.replicasOf(s.block))) return; // never written: already zeros
      await this.writeCounted(s, ZEROS.subarray(0, s.length), fua);
    });
  }

  trim(offset: number, length: number, fua: boolean): Promise<void> {
    return this.zero(offset, length, fua);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
