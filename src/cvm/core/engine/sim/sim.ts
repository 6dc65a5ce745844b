/**
 * @module
 * The deterministic simulator of the v2 data path (ADR 015). One seed = one run: a cluster of
 * fake nodes (world.ts), vdisks written, read, trimmed and flushed through their owners
 * (owner.ts) by concurrent clients, and random faults: CVM crashes (the owner fails over with a
 * new epoch), node power loss, a disk failure, partitions, ownership moves, bit rot, dropped
 * frames. Invariants are checked as it runs (every read against the history, the resiliency
 * status against the replicas every few steps) and once quiet: replicas of every extent group
 * identical, resiliency OK, every page readable and right; then every node loses power at once
 * and every page acknowledged before a completed FLUSH must still read right.
 *
 * Everything runs on the seeded PRNG and the fake clock, so a seed replays exactly. `settle`
 * must let pending promise callbacks run (the caller passes one; core code has no timers).
 */
import { PAGE_BYTES, EGROUP_BYTES, EXTENT_BYTES } from '../layout.ts';
import { VdiskOwner } from '../owner.ts';
import type { Bugs } from '../ports.ts';
import { resiliency, type EgroupInput } from '../resiliency.ts';
import { crc32c } from '../crc32c.ts';
import { SimClock } from './clock.ts';
import { History } from './history.ts';
import { Rng } from './prng.ts';
import { ETCD, World, type WorldConfig } from './world.ts';

export interface SimOptions {
  seed: number;
  /** Lets pending promise callbacks run (e.g. `() => new Promise((r) => setImmediate(r))`). */
  settle: () => Promise<void>;
  bugs?: Bugs;
  rf?: number;
  nodes?: number;
  vdisks?: number;
  clientsPerVdisk?: number;
  /** Simulated time of the faulty workload. */
  durationMs?: number;
  /** Mean simulated time between faults (crash, power loss, partition, disk failure, ownership move). */
  faultEveryMs?: number;
  /** Mean simulated time between bit-rot injections. */
  rotEveryMs?: number;
  /** Stop at the first violation. */
  failFast?: boolean;
}

export interface SimResult {
  seed: number;
  violations: string[];
  stats: { ops: number; acked: number; failed: number; reads: number; flushes: number; faults: Record<string, number>; readRepairs: number; steps: number; simMs: number };
  log: string[];
}

/** Pages the clients touch: 2 extent groups × 2 extents × 4 pages (hot, so writes and repairs collide). */
const PAGES = [0, 1].flatMap((g) => [0, 1].flatMap((x) => [0, 1, 2, 3].map((p) => g * EGROUP_BYTES + x * EXTENT_BYTES + p * PAGE_BYTES)));

/** A page of write `id`: its id, then a pattern derived from it. */
function pageOf(id: number): Uint8Array {
  const b = new Uint8Array(PAGE_BYTES);
  new DataView(b.buffer).setUint32(0, id, true);
  for (let i = 4; i < PAGE_BYTES; i += 64) b[i] = (id * 31 + i) & 0xff;
  return b;
}

/** The write id a page holds (0: zeros), or -1 for bytes no write produced. */
function valueOf(page: Uint8Array): number {
  const id = new DataView(page.buffer, page.byteOffset, page.byteLength).getUint32(0, true);
  const want = id === 0 ? new Uint8Array(PAGE_BYTES) : pageOf(id);
  for (let i = 0; i < PAGE_BYTES; i++) if (page[i] !== want[i]) return -1;
  return id;
}

export class Simulation {
  readonly clock = new SimClock();
  readonly rng: Rng;
  readonly world: World;
  readonly history = new History();
  readonly log: string[] = [];
  private readonly rf: number;
  private readonly vdisks: string[];
  private readonly home = new Map<string, string>();
  private readonly current = new Map<string, VdiskOwner>();
  private readonly opening = new Map<string, Promise<VdiskOwner>>();
  private nextWrite = 0;
  private readonly gone = new WeakSet<VdiskOwner>();
  private readonly dropRate = 0.002;
  private readonly owners: VdiskOwner[] = [];
  private faulting = true;
  private diskFailed = false;
  /** Nodes crashed, powered off or cut off, until they are back. */
  private readonly impaired = new Set<string>();
  private readonly stats: SimResult['stats'] = { ops: 0, acked: 0, failed: 0, reads: 0, flushes: 0, faults: {}, readRepairs: 0, steps: 0, simMs: 0 };

  constructor(private readonly o: SimOptions) {
    this.rng = new Rng(o.seed);
    this.rf = o.rf ?? 2;
    const cfg: WorldConfig = { nodes: o.nodes ?? 4, leaseTtlMs: 2000, keepaliveMs: 400, netDelayMs: [1, 8], dropRate: this.dropRate, rpcTimeoutMs: 1000, diskBytes: 1 << 30 };
    this.world = new World(this.clock, this.rng, cfg);
    this.world.etcd.onChange = (what) => this.note(`record ${what}`);
    this.vdisks = Array.from({ length: o.vdisks ?? 2 }, (_, i) => `vd${i + 1}`);
    const names = [...this.world.nodes.keys()];
    for (const v of this.vdisks) this.home.set(v, this.rng.pick(names));
  }

  private get violations(): string[] {
    return this.history.violations;
  }

  private note(s: string): void {
    this.log.push(`${this.clock.now()} ${s}`);
  }

  /** Runs the event loop until `p` settles. */
  private async drive<T>(p: Promise<T>, limitMs = 600_000): Promise<T> {
    let state: 'pending' | 'ok' | 'err' = 'pending';
    let value: T | undefined;
    let error: unknown;
    p.then((v) => { state = 'ok'; value = v; }, (e: unknown) => { state = 'err'; error = e; });
    const until = this.clock.now() + limitMs;
    await this.o.settle();
    while (state === 'pending') {
      if (this.clock.now() > until) throw new Error(`seed ${this.o.seed}: no progress for ${limitMs} ms of simulated time`);
      const t = this.clock.peek();
      if (!this.clock.step()) throw new Error(`seed ${this.o.seed}: deadlock (no event left)`);
      if (this.clock.peek() !== t) await this.o.settle();
      if (this.clock.steps % 100 === 0) this.checkResiliency();
      if (this.o.failFast && this.violations.length) throw new Error('violation');
    }
    if (state === 'err') throw error instanceof Error ? error : new Error(String(error));
    return value as T;
  }

  private sleep(ms: number): Promise<void> {
    return this.clock.sleep(ms);
  }

  /** The vdisk's owner, opened at its home (or another live node) if it has none that serves. */
  private async owner(vdisk: string): Promise<VdiskOwner> {
    const cur = this.current.get(vdisk);
    if (cur && cur.status === 'open') return cur;
    const pending = this.opening.get(vdisk);
    if (pending) return pending;
    if (cur && !this.gone.has(cur)) {
      this.gone.add(cur);
      this.note(`${vdisk} owner at ${cur.node} epoch ${cur.epoch} is ${cur.status}${cur.why ? `: ${cur.why}` : ''}`);
    }
    const p = (async () => {
      const up = [...this.world.nodes.values()].filter((n) => n.up && !this.world.isolated.has(n.name)).map((n) => n.name);
      const want = this.home.get(vdisk)!;
      const node = up.includes(want) ? want : this.rng.pick(up.length ? up : [want]);
      const o = await VdiskOwner.open({
        vdisk, node, cvmIp: this.world.node(node).cvmIp, rf: this.rf,
        io: this.world.replicaIo(node), meta: this.world.meta(node), liveness: this.world.liveness(node),
        clock: this.clock, space: this.world.space(), checksum: crc32c, callTimeoutMs: 300, syncTimeoutMs: 3000, bugs: this.o.bugs ?? {},
        // odd seeds: repair copies are throttled, so they run outside the exclusive lock while clients write
        // (and seeds 3 mod 4 copy up to three extents at a time, the window of an idle CVM; it varies as on a CVM whose clients come and go)
        ...(this.o.seed % 2 === 1 ? { copyThrottle: (bytes: number) => this.clock.sleep(1 + Math.floor(bytes / (16 * PAGE_BYTES))) } : {}),
        ...(this.o.seed % 4 === 3 ? { copyWindow: () => 1 + Math.floor((this.clock.now() / 50) % 3) } : {}),
      });
      const n = this.world.node(node);
      if (!n.up) {
        o.abandon();
        throw new Error('owner node died while opening');
      }
      n.owners.set(vdisk, o);
      this.current.set(vdisk, o);
      this.note(`${vdisk} owned by ${node} epoch ${o.epoch}`);
      this.owners.push(o);
      return o;
    })();
    this.opening.set(vdisk, p);
    p.catch((e: unknown) => {
      this.note(`${vdisk}: open failed: ${(e as Error).message}`);
      this.handOff(vdisk);
    });
    try {
      return await p;
    } finally {
      this.opening.delete(vdisk);
    }
  }

  /**
   * The asking CVM's request to the holder of the owner key (ADR 015: the owner drains, syncs and
   * releases): the holder closes its owner, or releases a key it holds without serving it (an
   * acquisition whose answer was lost). A holder that is down keeps the key until its lease ends.
   */
  private handOff(vdisk: string): void {
    const held = this.world.etcd.owners.get(vdisk);
    if (!held) return;
    const n = this.world.node(held.node);
    if (!n.up) return;
    const o = n.owners.get(vdisk);
    if (o && o.status === 'open') {
      if (o.epoch === held.epoch) void o.close().catch(() => undefined);
      return;
    }
    if (o && o.status === 'closing') return;
    void this.world.rpc(n.name, ETCD, () => this.world.etcd.release(vdisk, held.epoch)).catch(() => undefined);
  }

  private async client(vdisk: string, until: number): Promise<void> {
    while (this.clock.now() < until) {
      await this.sleep(this.rng.int(0, 30));
      const r = this.rng.next();
      const base = this.rng.pick(PAGES);
      const inExtent = (base % EXTENT_BYTES) / PAGE_BYTES;
      const count = inExtent < 3 && this.rng.chance(0.3) ? 2 : 1;
      const pages = Array.from({ length: count }, (_, i) => base / PAGE_BYTES + i);
      this.stats.ops++;
      if (r < 0.45 || (r >= 0.92)) {
        const trim = r >= 0.92;
        const id = ++this.nextWrite;
        const ws = this.history.begin(vdisk, pages, trim ? 0 : id, id, this.clock.now());
        try {
          const o = await this.owner(vdisk);
          if (trim) await o.zero(base, count * PAGE_BYTES);
          else {
            const data = new Uint8Array(count * PAGE_BYTES);
            for (let i = 0; i < count; i++) data.set(pageOf(id), i * PAGE_BYTES);
            await o.pwrite(base, data);
          }
          this.history.end(ws, true, this.clock.now());
          this.stats.acked++;
        } catch {
          this.history.end(ws, false, this.clock.now());
          this.stats.failed++;
          await this.sleep(50);
        }
      } else if (r < 0.82) {
        await this.read(vdisk, base, count, 'read');
      } else {
        const at = this.clock.now();
        try {
          const o = await this.owner(vdisk);
          await o.flush();
          this.history.flushed(vdisk, at);
          this.stats.flushes++;
        } catch {
          await this.sleep(50);
        }
      }
    }
  }

  private async read(vdisk: string, offset: number, count: number, what: string): Promise<boolean> {
    const rs = this.clock.now();
    let data: Uint8Array;
    try {
      const o = await this.owner(vdisk);
      data = await o.pread(offset, count * PAGE_BYTES);
    } catch (e) {
      if (what.startsWith('verify')) this.note(`${what}: ${vdisk} page ${offset / PAGE_BYTES}: ${(e as Error).message}`);
      await this.sleep(50);
      return false;
    }
    this.stats.reads++;
    const re = this.clock.now();
    for (let i = 0; i < count; i++) this.history.checkRead(`seed ${this.o.seed} ${what}`, vdisk, offset / PAGE_BYTES + i, valueOf(data.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES)), rs, re);
    return true;
  }

  // ---- faults ----

  private count(kind: string): void {
    this.stats.faults[kind] = (this.stats.faults[kind] ?? 0) + 1;
    this.note(`fault ${kind}`);
  }

  private async faults(until: number, every: number): Promise<void> {
    while (this.clock.now() < until) {
      await this.sleep(this.rng.int(every / 2, every * 3 / 2));
      if (!this.faulting || this.clock.now() >= until) return;
      const names = [...this.world.nodes.keys()];
      const healthy = names.filter((n) => !this.impaired.has(n));
      const r = this.rng.next();
      const single = this.healthy();
      if (r < 0.15 && single) {
        const n = this.rng.pick(names);
        this.count(`crash ${n}`);
        this.impair(n, 'crash');
      } else if (r < 0.25 && single) {
        const n = this.rng.pick(names);
        this.count(`power loss ${n}`);
        this.history.powerLoss(this.clock.now());
        this.impair(n, 'power');
      } else if (r < 0.4 && single) {
        const n = this.rng.pick(names);
        this.count(`partition ${n}`);
        this.impaired.add(n);
        this.world.isolated.add(n);
        this.clock.setTimeout(() => {
          this.world.isolated.delete(n);
          // its effects outlive it: frames sent during the partition time out (and replicas go stale) up to an RPC timeout later
          this.clock.setTimeout(() => this.impaired.delete(n), 2 * this.world.cfg.rpcTimeoutMs);
        }, this.rng.int(300, 4000));
      } else if (r < 0.68 && !this.diskFailed && single) {
        const n = this.world.node(this.rng.pick(healthy));
        const d = this.rng.pick([...n.replica.disks.values()]);
        this.diskFailed = true;
        this.count(`disk failure ${d.serial}`);
        n.replica.failDisk(d.serial);
      } else if (r < 0.85) {
        const v = this.rng.pick(this.vdisks);
        const to = this.rng.pick(healthy.length ? healthy : names);
        this.count(`move ${v} to ${to}`);
        this.home.set(v, to);
        const o = this.current.get(v);
        if (o && o.status === 'open') void o.close().catch(() => undefined);
      } else if (r < 0.9 && single) {
        this.count('power loss of every node');
        this.history.powerLoss(this.clock.now());
        for (const n of names) this.impair(n, 'power');
      } else if (r >= 0.9) {
        this.rebalanceMove();
      }
    }
  }

  /** Rebalancing: an owner moves an in-sync replica of one of its extent groups to another disk, then drops the old one. */
  private rebalanceMove(): void {
    const open = [...this.current.values()].filter((o) => o.status === 'open');
    if (!open.length) return;
    const o = this.rng.pick(open);
    const recs = [...o.records()].filter(([, rec]) => rec.stale.length === 0 && rec.replicas.length > 0);
    if (!recs.length) return;
    const [eg, rec] = this.rng.pick(recs);
    const from = this.rng.pick(rec.replicas);
    const disks = this.world.space().disks().filter((d) => d.ok && !this.world.etcd.down.has(d.node) && d.serial !== from.disk && !rec.replicas.some((l) => l.node === d.node && l.node !== from.node));
    if (!disks.length) return;
    const d = this.rng.pick(disks);
    const to = { node: d.node, cvmIp: d.cvmIp, disk: d.serial };
    this.count(`rebalance ${o.vdisk}/${eg} ${from.disk} to ${to.disk}`);
    void o.move(eg, from, to).then((moved) => (moved ? o.dropReplica(eg, from) : 0)).catch(() => undefined);
  }

  private impair(n: string, how: 'crash' | 'power'): void {
    this.impaired.add(n);
    if (how === 'power') this.world.powerLoss(n);
    else this.world.crash(n);
    this.restartLater(n, this.rng.int(2500, 6000));
  }

  /** A node comes back once it has been declared down (its replicas went stale first). */
  private restartLater(n: string, ms: number): void {
    this.clock.setTimeout(() => {
      if (!this.world.etcd.down.has(n)) {
        this.restartLater(n, 200);
        return;
      }
      this.world.restart(n);
      this.impaired.delete(n);
      this.note(`restart ${n}`);
    }, ms);
  }

  /** Bit rot, more often than the other faults: a page of one in-sync replica whose peers are clean. */
  private async rot(until: number, every: number): Promise<void> {
    while (this.clock.now() < until) {
      await this.sleep(this.rng.int(every / 2, every * 3 / 2));
      // one fault at a time: no dropped frames (which make replicas stale) while a bad page is unrepaired
      if (this.healthy()) this.world.cfg.dropRate = this.dropRate;
      // nor while a dropped frame may still make a replica stale (its timeout has not run out)
      const dropsSettled = this.clock.now() - this.world.lastDropAt > 2 * this.world.cfg.rpcTimeoutMs;
      if (this.faulting && this.clock.now() < until && this.impaired.size === 0 && dropsSettled && this.corruptSomething()) this.world.cfg.dropRate = 0;
    }
  }

  /** The in-sync replicas of the extent group of `key` other than on `node` read it cleanly, and there are some. */
  private peersClean(key: string, node: string): boolean {
    const [vdisk, eg, x] = key.split('/') as [string, string, string];
    const rec = this.world.etcd.egroups.get(`${vdisk}/${eg}`)?.value;
    const peers = rec?.replicas.filter((l) => l.node !== node) ?? [];
    if (!peers.length) return false;
    try {
      for (const l of peers) this.world.node(l.node).replica.readExtent(l.disk, vdisk, Number(eg), Number(x));
      return true;
    } catch {
      return false;
    }
  }

  private corruptSomething(): boolean {
    // mostly on the owner's own node: reads go there first, so read repair runs
    const ownerNodes = new Map([...this.current].filter(([, o]) => o.status === 'open').map(([v, o]) => [v, o.node]));
    const local = this.rng.chance(0.7);
    const cands = [...this.world.nodes.values()].flatMap((n) => [...n.replica.disks.values()].filter((d) => !d.failed).flatMap((d) => [...d.cur.keys()]
      .filter((key) => !local || ownerNodes.get(key.slice(0, key.indexOf('/'))) === n.name).map((key) => ({ n, d, key }))));
    if (!cands.length) return false;
    const { n, d, key } = this.rng.pick(cands);
    if (!this.peersClean(key, n.name)) return false;
    const pages = [...d.cur.get(key)!.pages.keys()];
    if (!pages.length) return false;
    // a bad region: every page of the extent (or one page)
    const hit = (this.rng.chance(0.5) ? pages : [this.rng.pick(pages)]).filter((p) => n.replica.corrupt(d.serial, key, p, this.rng.int(0, PAGE_BYTES - 1)));
    if (hit.length) this.count(`bit rot ${d.serial} ${key} page(s) ${hit.join(',')}`);
    return hit.length > 0;
  }

  private quietHealthy(): boolean {
    return [...this.world.etcd.egroups.values()].every((r) => r.value.stale.length === 0 && r.value.replicas.length >= this.rf);
  }

  /**
   * Every extent group at RF on up nodes and good disks, with no bad page: the next fault is a
   * single fault (two overlapping faults can lose data legitimately, which proves nothing).
   */
  private healthy(): boolean {
    if (this.impaired.size || !this.quietHealthy()) return false;
    for (const [k, r] of this.world.etcd.egroups) {
      const [vdisk, eg] = k.split('/') as [string, string];
      for (const l of r.value.replicas) {
        const n = this.world.node(l.node);
        if (!n.up || n.replica.disks.get(l.disk)?.failed !== false) return false;
        try {
          const prefix = `${vdisk}/${eg}/`;
          for (const key of n.replica.disks.get(l.disk)!.cur.keys()) if (key.startsWith(prefix)) n.replica.readExtent(l.disk, vdisk, Number(eg), Number(key.slice(prefix.length)));
        } catch {
          return false;
        }
      }
    }
    return true;
  }

  // ---- invariants ----

  private egroupInputs(): EgroupInput[] {
    const out: EgroupInput[] = [];
    for (const [k, r] of this.world.etcd.egroups) {
      const [vdisk, eg] = k.split('/') as [string, string];
      const egroup = Number(eg);
      const states = [...r.value.replicas, ...r.value.stale].map((loc) => {
        const n = this.world.node(loc.node);
        const d = n.replica.disks.get(loc.disk);
        return { loc, reachable: n.up && !!d && !d.failed, digest: n.replica.digest(loc.disk, vdisk, egroup) };
      });
      out.push({ vdisk, egroup, record: r.value, states });
    }
    return out;
  }

  /** Resiliency is never OK while an extent group has fewer than RF in-sync replicas or they differ. */
  private checkResiliency(): void {
    const inputs = this.egroupInputs();
    const rep = resiliency(inputs, this.rf);
    rep.egroups.forEach((e, i) => {
      if (e.status !== 'ok') return;
      const input = inputs[i]!;
      // RF reachable in-sync replicas, identical: a further in-sync replica on a failed disk or a down node is not counted
      const inSync = input.states.filter((s) => s.reachable && input.record.replicas.some((l) => l.node === s.loc.node && l.disk === s.loc.disk));
      const digests = new Set(inSync.map((s) => s.digest));
      if (inSync.length < this.rf || digests.size !== 1) this.violations.push(`seed ${this.o.seed}: resiliency OK for ${e.vdisk}/${e.egroup} with ${inSync.length} in-sync replica(s), ${digests.size} distinct content(s)`);
    });
  }

  /** Once quiet: every record's in-sync replicas identical, at RF, no stale. */
  private checkQuiet(when: string): void {
    const rep = resiliency(this.egroupInputs(), this.rf);
    for (const e of rep.egroups) if (e.status !== 'ok') this.violations.push(`seed ${this.o.seed} ${when}: ${e.vdisk} egroup ${e.egroup} is ${e.status} once quiet: ${e.reason} (record ${JSON.stringify(this.world.etcd.egroups.get(`${e.vdisk}/${e.egroup}`)?.value)})`);
  }

  private async heal(): Promise<void> {
    this.faulting = false;
    this.world.isolated.clear();
    // wait for every node to be back
    for (let i = 0; i < 200 && this.impaired.size; i++) await this.sleep(100);
    for (const [v, home] of this.home) if (!this.world.node(home).up) this.home.set(v, [...this.world.nodes.keys()][0]!);
  }

  /** Repairs every vdisk until a pass finds nothing to do (owners retried as they fail over). */
  private async repairAll(): Promise<void> {
    for (let round = 0; round < 30; round++) {
      let clean = true;
      for (const v of this.vdisks) {
        try {
          const o = await this.owner(v);
          const r = await o.repair({ scrub: true });
          await o.idle();
          if (r.resynced || r.replaced || r.scrubbed || r.failed.length) clean = false;
          if (r.failed.length) this.note(`repair ${v}: ${r.failed.join('; ')}`);
        } catch (e) {
          this.note(`repair ${v}: ${(e as Error).message}`);
          clean = false;
          await this.sleep(500);
        }
      }
      if (clean && this.quietHealthy()) return;
      await this.sleep(200);
    }
  }

  private async verifyAll(what: string): Promise<void> {
    for (const v of this.vdisks) {
      for (const page of PAGES) {
        let ok = false;
        for (let attempt = 0; attempt < 20 && !ok; attempt++) {
          ok = await this.read(v, page, 1, what);
          if (!ok) await this.sleep(500);
        }
        if (!ok) this.violations.push(`seed ${this.o.seed} ${what}: ${v} page ${page / PAGE_BYTES} unreadable once quiet`);
      }
    }
  }

  async run(): Promise<SimResult> {
    const duration = this.o.durationMs ?? 3000;
    const until = duration;
    const clients: Promise<void>[] = [];
    for (const v of this.vdisks) for (let i = 0; i < (this.o.clientsPerVdisk ?? 2); i++) clients.push(this.client(v, until));
    clients.push(this.faults(until, this.o.faultEveryMs ?? 500));
    clients.push(this.rot(until, this.o.rotEveryMs ?? 250));
    // background re-protection at each owner
    const repairs = (async () => {
      for (let round = 1; this.clock.now() < until; round++) {
        await this.sleep(1000);
        for (const o of this.current.values()) if (o.status === 'open') void o.repair({ scrub: round % 3 === 0 }).catch(() => undefined);
      }
    })();
    try {
      await this.drive(Promise.all([...clients, repairs]));
      await this.drive(this.heal());
      await this.drive(this.repairAll());
      this.note('quiet');
      this.checkQuiet('after the run');
      await this.drive(this.verifyAll('verify after the run'));
      // every node loses power at once: what a completed FLUSH covered must survive
      this.note('power loss of every node (final)');
      this.history.powerLoss(this.clock.now());
      for (const n of this.world.nodes.keys()) this.impair(n, 'power');
      await this.drive(this.heal());
      await this.drive(this.verifyAll('verify after power loss of every node'));
      await this.drive(this.repairAll());
      this.checkQuiet('after power loss of every node');
    } catch (e) {
      if (!(this.o.failFast && (e as Error).message === 'violation')) this.violations.push(`seed ${this.o.seed}: ${(e as Error).stack ?? String(e)}`);
    }
    this.stats.steps = this.clock.steps;
    this.stats.readRepairs = this.owners.reduce((a, o) => a + o.counters.readRepairs, 0);
    this.stats.simMs = this.clock.now();
    return { seed: this.o.seed, violations: [...this.violations], stats: this.stats, log: this.log };
  }
}

export function runSeed(o: SimOptions): Promise<SimResult> {
  return new Simulation(o).run();
}
