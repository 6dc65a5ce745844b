/**
 * The v2 repair loop (engine-repair.ts) over real VdiskOwners whose ports are fakes: replicas are
 * ReplicaModels (core/engine/replica-model.ts) answered at once, the configuration store a map with
 * versions and owner keys, liveness a set with events, time a VirtualClock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../shared/clock.ts';
import { ConflictError, UnavailableError } from '../../shared/errors.ts';
import type { BalanceDisk } from '../core/engine/balance.ts';
import { crc32c } from '../core/engine/crc32c.ts';
import { EGROUP_BYTES, EXTENT_BYTES, KEYS, type EgroupRecord } from '../core/engine/layout.ts';
import { VdiskOwner } from '../core/engine/owner.ts';
import type { CasResult, MetaStore, ReplicaIo, Versioned } from '../core/engine/ports.ts';
import { ReplicaModel } from '../core/engine/replica-model.ts';
import type { LivenessEvent } from '../core/failure-detector.ts';
import { CopyBudget, EGROUPS_V2_PREFIX, EngineRepairer, OWNERS_V2_PREFIX, type EngineRepairerDeps } from './engine-repair.ts';
import type { HeldOwners } from './owners.ts';

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const DISK_EGROUPS = 20;

class Fake {
  readonly clock = new VirtualClock(1_000_000);
  readonly nodes = new Map<string, ReplicaModel>();
  readonly down = new Set<string>();
  readonly records = new Map<string, Versioned<EgroupRecord>>();
  readonly ownerKeys = new Map<string, { node: string; epoch: number }>();
  readonly rf = new Map<string, number>();
  rev = 1;
  private readonly ownerSubs = new Set<(n: string) => void>();
  private readonly eventSubs = new Set<(e: LivenessEvent) => void>();

  constructor(names: string[]) {
    for (const n of names) this.nodes.set(n, new ReplicaModel(n, [{ serial: `${n}-ssd`, media: 'ssd' }], crc32c));
  }

  at(l: { node: string }): ReplicaModel {
    if (this.down.has(l.node)) throw new UnavailableError(`${l.node} is down`);
    return this.nodes.get(l.node)!;
  }

  io(): ReplicaIo {
    const call = <T>(fn: () => T): Promise<T> => {
      try {
        return Promise.resolve(fn());
      } catch (e) {
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
    };
    return {
      write: (l, f) => call(() => this.at(l).write(l.disk, f)),
      read: (l, r) => call(() => this.at(l).read(l.disk, r)),
      extentGens: (l, v, e, epoch) => call(() => this.at(l).extentGens(l.disk, v, e, epoch)),
      readExtent: (l, v, e, x) => call(() => this.at(l).readExtent(l.disk, v, e, x)),
      writeExtent: (l, v, e, x, epoch, img) => call(() => this.at(l).writeExtent(l.disk, v, e, x, epoch, img)),
      sync: (c, v) => call(() => this.at(c).sync(v)),
    };
  }

  meta(node: string): MetaStore {
    const res = (r: CasResult): Promise<CasResult> => Promise.resolve(structuredClone(r));
    const epochOk = (v: string, epoch: number): boolean => this.ownerKeys.get(v)?.epoch === epoch;
    return {
      getEgroup: (v, e) => Promise.resolve(structuredClone(this.records.get(`${v}/${e}`) ?? null)),
      listEgroups: (v) => Promise.resolve(new Map([...this.records].filter(([k]) => k.startsWith(`${v}/`)).map(([k, r]) => [Number(k.slice(v.length + 1)), structuredClone(r)]))),
      createEgroup: (v, e, epoch, record) => {
        if (!epochOk(v, epoch)) return res({ ok: false, reason: 'epoch' });
        if (this.records.has(`${v}/${e}`)) return res({ ok: false, reason: 'exists' });
        this.records.set(`${v}/${e}`, { value: structuredClone(record), version: ++this.rev });
        return res({ ok: true, record: this.records.get(`${v}/${e}`)! });
      },
      casEgroup: (v, e, epoch, version, record) => {
        if (!epochOk(v, epoch)) return res({ ok: false, reason: 'epoch' });
        if (this.records.get(`${v}/${e}`)?.version !== version) return res({ ok: false, reason: 'version' });
        this.records.set(`${v}/${e}`, { value: structuredClone(record), version: ++this.rev });
        return res({ ok: true, record: this.records.get(`${v}/${e}`)! });
      },
      acquireOwner: (v) => {
        const held = this.ownerKeys.get(v);
        if (held && held.node !== node) return Promise.reject(new ConflictError(`vdisk ${v} is owned by ${held.node}`));
        if (held) return Promise.resolve({ epoch: held.epoch });
        const epoch = ++this.rev;
        this.ownerKeys.set(v, { node, epoch });
        return Promise.resolve({ epoch });
      },
      releaseOwner: (v, epoch) => {
        if (this.ownerKeys.get(v)?.epoch === epoch) this.ownerKeys.delete(v);
        return Promise.resolve();
      },
      leaseValid: () => !this.down.has(node),
    };
  }

  open(node: string, vdisk: string, budget?: CopyBudget): Promise<VdiskOwner> {
    return VdiskOwner.open({
      vdisk, node, cvmIp: `ip-${node}`, rf: this.rf.get(vdisk) ?? 2, io: this.io(), meta: this.meta(node), clock: this.clock, checksum: crc32c,
      liveness: { isDown: (n) => this.down.has(n), subscribe: (fn) => { this.ownerSubs.add(fn); return () => this.ownerSubs.delete(fn); } },
      space: { disks: () => [...this.nodes.keys()].map((n) => ({ serial: `${n}-ssd`, node: n, cvmIp: `ip-${n}`, freeBytes: 1e12, ok: true, media: 'ssd' as const })) },
      ...(budget ? { copyThrottle: budget.throttle } : {}),
    });
  }

  declareDown(n: string): void {
    this.down.add(n);
    for (const f of [...this.ownerSubs]) f(n);
    for (const f of [...this.eventSubs]) f({ kind: 'down', node: n, record: { node: n, by: 'test', at: new Date(this.clock.now()).toISOString(), reason: 'test' } });
  }

  back(n: string): void {
    this.down.delete(n);
    for (const f of [...this.eventSubs]) f({ kind: 'up', node: n });
  }

  list(prefix: string): Record<string, string> {
    const all: Record<string, string> = {};
    for (const [k, r] of this.records) {
      const [v = '', eg = ''] = k.split('/');
      all[KEYS.egroup(v, Number(eg))] = JSON.stringify(r.value);
    }
    for (const [v, o] of this.ownerKeys) all[KEYS.owner(v)] = JSON.stringify(o);
    return Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith(prefix)));
  }

  pool(): BalanceDisk[] {
    return [...this.nodes.keys()].map((n) => ({ serial: `${n}-ssd`, node: n, cvmIp: `ip-${n}`, capacityBytes: DISK_EGROUPS * EGROUP_BYTES, media: 'ssd' as const }));
  }

  /** Runs timers `step` ms at a time until cond holds (settling promises in between). */
  async until(cond: () => boolean, maxMs = 120_000, step = 10): Promise<number> {
    const start = this.clock.now();
    for (;;) {
      await settle();
      if (cond()) return this.clock.now() - start;
      if (this.clock.now() - start > maxMs) throw new Error(`not reached in ${maxMs} ms of virtual time`);
      this.clock.advance(step);
    }
  }

  repairer(reg: Registry, budget: CopyBudget, extra: Partial<EngineRepairerDeps> = {}): EngineRepairer {
    return new EngineRepairer({
      clock: this.clock, node: reg.node, owners: reg, budget,
      liveness: { isDown: (n) => this.down.has(n), on: (fn) => { this.eventSubs.add(fn); return () => this.eventSubs.delete(fn); } },
      members: () => [...this.nodes.keys()],
      list: (p) => Promise.resolve(this.list(p)),
      pool: () => Promise.resolve(this.pool()),
      vdisks: () => Promise.resolve([...this.rf].map(([uuid, rf]) => ({ uuid, rf }))),
      log: () => undefined,
      intervalMs: 1000,
      ...extra,
    });
  }

  /** Every record of the vdisk at RF, none stale, none on a down node, its in-sync replicas identical. */
  healthy(vdisk: string): boolean {
    const rf = this.rf.get(vdisk) ?? 2;
    for (const [k, r] of this.records) {
      if (!k.startsWith(`${vdisk}/`)) continue;
      const rec = r.value;
      if (rec.stale.length || rec.replicas.length !== rf || rec.replicas.some((l) => this.down.has(l.node))) return false;
      const eg = Number(k.slice(vdisk.length + 1));
      const digests = new Set(rec.replicas.map((l) => this.nodes.get(l.node)!.digest(l.disk, vdisk, eg)));
      if (digests.size !== 1) return false;
    }
    return true;
  }
}

/** The CVM's owner registry, as owners.ts will be: client owners and owners held only for repair. */
class Registry implements HeldOwners {
  readonly owners = new Map<string, VdiskOwner>();
  readonly forRepair = new Set<string>();
  readonly acquired: string[] = [];

  constructor(private readonly c: Fake, readonly node: string, private readonly budget: CopyBudget) {}

  async openForClient(vdisk: string): Promise<VdiskOwner> {
    const o = await this.c.open(this.node, vdisk, this.budget);
    this.owners.set(vdisk, o);
    return o;
  }

  async acquire(uuid: string): Promise<VdiskOwner | null> {
    const have = this.owners.get(uuid);
    if (have?.status === 'open') return have;
    const holder = this.c.ownerKeys.get(uuid);
    if (holder && holder.node !== this.node) return null;
    this.acquired.push(uuid);
    const o = await this.c.open(this.node, uuid, this.budget);
    this.owners.set(uuid, o);
    this.forRepair.add(uuid);
    return o;
  }

  held(): readonly VdiskOwner[] {
    return [...this.owners.values()];
  }

  async releaseIfIdle(uuid: string): Promise<void> {
    if (!this.forRepair.delete(uuid)) return;
    const o = this.owners.get(uuid);
    this.owners.delete(uuid);
    await o?.close();
  }
}

const fill = (byte: number, n: number): Uint8Array => new Uint8Array(n).fill(byte);

test('a node declared down: the owner CVM re-protects its vdisk at once, through the budget', async () => {
  const c = new Fake(['a', 'b', 'c', 'd']);
  c.rf.set('v1', 2);
  const budget = new CopyBudget({ clock: c.clock, mibPerSec: 64 });
  const reg = new Registry(c, 'a', budget);
  const o = await reg.openForClient('v1');
  await o.pwrite(0, fill(1, 2 * EXTENT_BYTES));
  await o.pwrite(EGROUP_BYTES, fill(2, EXTENT_BYTES));
  const r = c.repairer(reg, budget, { scanEveryMs: 3_600_000 });
  r.start();
  await c.until(() => r.stats.passes >= 1);
  assert.equal(r.stats.pending, 0);
  const victim = c.records.get('v1/0')!.value.replicas[1]!.node;
  c.declareDown(victim);
  const took = await c.until(() => c.healthy('v1'));
  assert.ok(took < 2000, `re-protected in ${took} ms`);
  assert.equal(r.stats.restored, 2);
  assert.ok(budget.stats.bytes >= 3 * EXTENT_BYTES, `${budget.stats.bytes} bytes through the budget`);
  assert.deepEqual(await o.pread(0, 4096), fill(1, 4096));
  await r.stop();
  await o.close();
});

test('an unowned vdisk is repaired by the leader only (the lowest-serial member not down), which gives it back', async () => {
  const c = new Fake(['a', 'b', 'c', 'd']);
  c.rf.set('v2', 2);
  const budget = (): CopyBudget => new CopyBudget({ clock: c.clock, mibPerSec: 0 });
  c.down.add('a'); // the lowest serial is down: b leads
  // written at d (its first replica there), then closed: nobody owns it
  const writer = await c.open('d', 'v2');
  await writer.pwrite(0, fill(7, EXTENT_BYTES));
  await writer.close();
  assert.equal(c.ownerKeys.size, 0);
  const regs = ['a', 'b', 'c', 'd'].map((n) => new Registry(c, n, budget()));
  const reps = regs.map((g) => c.repairer(g, new CopyBudget({ clock: c.clock, mibPerSec: 0 })));
  for (const r of reps.slice(1, 3)) r.start();
  c.declareDown('d');
  await c.until(() => c.healthy('v2') && c.ownerKeys.size === 0);
  assert.deepEqual(regs[1]!.acquired, ['v2'], 'b (the leader) took it');
  assert.deepEqual(regs[2]!.acquired, [], 'c did not');
  assert.equal(reps[1]!.stats.leader, true);
  assert.equal(reps[2]!.stats.leader, false);
  assert.equal(reps[1]!.stats.restored, 1);
  const rec = c.records.get('v2/0')!.value;
  assert.ok(rec.replicas.every((l) => l.node !== 'd' && l.node !== 'a'));
  assert.equal(c.nodes.get(rec.replicas[0]!.node)!.digest(rec.replicas[0]!.disk, 'v2', 0), c.nodes.get(rec.replicas[1]!.node)!.digest(rec.replicas[1]!.disk, 'v2', 0));
  for (const r of reps.slice(1, 3)) await r.stop();
});

test('the copy budget holds re-protection to its rate, and client writes to the extent group go on meanwhile', async () => {
  const c = new Fake(['a', 'b', 'c']);
  c.rf.set('v3', 2);
  const budget = new CopyBudget({ clock: c.clock, mibPerSec: 8 });
  const reg = new Registry(c, 'a', budget);
  const o = await reg.openForClient('v3');
  await o.pwrite(0, fill(3, 8 * EXTENT_BYTES));
  const r = c.repairer(reg, budget, { scanEveryMs: 3_600_000 });
  r.start();
  await c.until(() => r.stats.passes >= 1);
  const victim = c.records.get('v3/0')!.value.replicas[1]!.node;
  const t0 = c.clock.now();
  c.declareDown(victim);
  // a client write while the copy runs: it must not wait for the whole copy
  await c.until(() => budget.stats.copies >= 2);
  let wrote = -1;
  const w0 = c.clock.now();
  void o.pwrite(7 * EXTENT_BYTES, fill(9, 4096)).then(() => (wrote = c.clock.now() - w0));
  await c.until(() => wrote >= 0, 5000, 1);
  assert.ok(!c.healthy('v3'), 'the write finished while re-protection was still running');
  assert.ok(wrote < 300, `a client write waited ${wrote} ms`);
  await c.until(() => c.healthy('v3'));
  const took = c.clock.now() - t0;
  // 8 MiB at 8 MiB/s
  assert.ok(took >= 950, `8 MiB re-protected in ${took} ms`);
  assert.ok(took < 3000, `8 MiB re-protected in ${took} ms`);
  console.log(`# 8 MiB re-protected at 8 MiB/s in ${took} ms (virtual); a client write meanwhile took ${wrote} ms`);
  const rec = c.records.get('v3/0')!.value;
  const page = c.nodes.get(rec.replicas[1]!.node)!.read(rec.replicas[1]!.disk, { vdisk: 'v3', egroup: 0, extent: 7, inner: 0, length: 4096 });
  assert.deepEqual(page.data, fill(9, 4096), 'the new replica has the write made during the copy');
  await r.stop();
  await o.close();
});

test('the duty cycle: after a copy that took d ms the next waits d ms more', async () => {
  const clock = new VirtualClock();
  const b = new CopyBudget({ clock, mibPerSec: 0, dutyCycle: 0.5 });
  let done = false;
  void b.throttle(EXTENT_BYTES).then(() => (done = true));
  await settle();
  assert.ok(done, 'the first copy does not wait');
  clock.advance(100); // the next copy took 100 ms
  done = false;
  void b.throttle(EXTENT_BYTES).then(() => (done = true));
  await settle();
  assert.ok(!done);
  clock.advance(99);
  await settle();
  assert.ok(!done);
  clock.advance(1);
  await settle();
  assert.ok(done);
});

test('with no client I/O the budget lets copies through at once; with client I/O it holds them to its rate again', async () => {
  const clock = new VirtualClock();
  let busy = false;
  const b = new CopyBudget({ clock, mibPerSec: 8, busy: () => busy });
  let done = 0;
  for (let i = 0; i < 16; i++) void b.throttle(EXTENT_BYTES).then(() => done++);
  await settle();
  assert.equal(done, 16, '16 MiB copied with no wait (idle: no limit)');
  assert.equal(b.stats.unthrottled, 16);
  busy = true;
  void b.throttle(8 * EXTENT_BYTES).then(() => done++);
  await settle();
  assert.equal(done, 16, '8 MiB at 8 MiB/s waits');
  clock.advance(999);
  await settle();
  assert.equal(done, 16);
  clock.advance(1);
  await settle();
  assert.equal(done, 17, 'after 1 s');
});

test('a node that returns gets extent groups moved onto it; the old replicas are dropped', async () => {
  const c = new Fake(['a', 'b', 'c']);
  c.rf.set('v4', 2);
  const budget = new CopyBudget({ clock: c.clock, mibPerSec: 0 });
  const reg = new Registry(c, 'a', budget);
  c.down.add('c');
  const o = await reg.openForClient('v4');
  for (let eg = 0; eg < 12; eg++) await o.pwrite(eg * EGROUP_BYTES, fill(eg + 1, 4096));
  assert.ok([...c.records.values()].every((r) => r.value.replicas.every((l) => l.node !== 'c')));
  const r = c.repairer(reg, budget, { scanEveryMs: 3_600_000 });
  r.start();
  await c.until(() => r.stats.passes >= 1);
  assert.equal(r.stats.moved, 0, 'nothing to move onto a node that is down');
  c.back('c');
  await c.until(() => r.stats.moved > 0 && !r.stats.balancing);
  const onC = [...c.records.values()].filter((x) => x.value.replicas.some((l) => l.node === 'c')).length;
  // 12 + 12 replicas over 3 disks of 20: c ends within the band of the mean (8)
  assert.ok(onC >= 5 && onC <= 8, `${onC} extent groups on c`);
  assert.equal(r.stats.moved, onC);
  for (const [k, rec] of c.records) {
    const eg = Number(k.split('/')[1]);
    assert.equal(rec.value.replicas[0]!.node, 'a', 'the first (local) replica stays');
    const [x, y] = rec.value.replicas;
    assert.equal(c.nodes.get(x!.node)!.digest(x!.disk, 'v4', eg), c.nodes.get(y!.node)!.digest(y!.disk, 'v4', eg));
    if (y!.node === 'c') assert.equal(c.nodes.get('b')!.digest('b-ssd', 'v4', eg), '', 'the moved replica\'s files are gone from b');
  }
  for (let eg = 0; eg < 12; eg++) assert.deepEqual(await o.pread(eg * EGROUP_BYTES, 4096), fill(eg + 1, 4096));
  await r.stop();
  await o.close();
});

test('stop() during a throttled pass: the copy stops before its next extent and stop() returns', async () => {
  const c = new Fake(['a', 'b', 'c']);
  c.rf.set('v5', 2);
  const budget = new CopyBudget({ clock: c.clock, mibPerSec: 1 });
  const reg = new Registry(c, 'a', budget);
  const o = await reg.openForClient('v5');
  await o.pwrite(0, fill(5, 16 * EXTENT_BYTES));
  const r = c.repairer(reg, budget, { scanEveryMs: 3_600_000 });
  r.start();
  await c.until(() => r.stats.passes >= 1);
  c.declareDown(c.records.get('v5/0')!.value.replicas[1]!.node);
  await c.until(() => budget.stats.copies >= 2);
  let stopped = false;
  const copies = budget.stats.copies;
  void r.stop().then(() => (stopped = true));
  const took = await c.until(() => stopped, 10_000);
  assert.ok(took < 1000, `stop() took ${took} ms`);
  assert.ok(budget.stats.copies <= copies + 1, `${budget.stats.copies - copies} more copies after stop()`);
  assert.ok(!c.healthy('v5'));
  const passes = r.stats.passes;
  c.clock.advance(10_000);
  await settle();
  assert.equal(r.stats.passes, passes, 'no pass after stop()');
  await o.close();
});

test('a vdisk whose repair cannot progress (no node left for a replica) is retried less and less often, and again at once on a liveness event', async () => {
  const c = new Fake(['a', 'b']);
  c.rf.set('v6', 2);
  const budget = new CopyBudget({ clock: c.clock, mibPerSec: 0 });
  const reg = new Registry(c, 'a', budget);
  const o = await reg.openForClient('v6');
  await o.pwrite(0, fill(6, 4096));
  let repairs = 0;
  const repair = o.repair.bind(o);
  o.repair = (opts) => {
    repairs++;
    return repair(opts);
  };
  const r = c.repairer(reg, budget, { scanEveryMs: 3_600_000 });
  r.start();
  c.declareDown('b');
  await c.until(() => r.stats.passes >= 60, 120_000, 100);
  // 60 passes of 1 s: tries at about 0, 1, 2, 4, 8, 16, 32 s
  assert.ok(repairs >= 5 && repairs <= 9, `${repairs} repairs in 60 s`);
  assert.equal(r.stats.backingOff, 1);
  assert.equal(r.stats.restored, 0);
  assert.match(r.stats.lastError ?? '', /no place/);
  c.nodes.set('c', new ReplicaModel('c', [{ serial: 'c-ssd', media: 'ssd' }], crc32c));
  const before = repairs;
  // a disk that comes back (poolChanged, from the CVM's view of disk health) retries at once too
  r.poolChanged();
  await c.until(() => repairs > before, 2000, 100);
  c.back('x');
  await c.until(() => c.healthy('v6'), 5000);
  await r.stop();
  await o.close();
});

test('the sweep deletes old extent files no record lists on this node and disk (moved away, deleted vdisk), and keeps the rest', async () => {
  const c = new Fake(['a', 'b', 'c']);
  c.rf.set('v7', 2);
  c.rf.set('v8', 2);
  const rec = (...nodes: string[]): Versioned<EgroupRecord> => ({ value: { replicas: nodes.map((n) => ({ node: n, cvmIp: `ip-${n}`, disk: `${n}-ssd` })), stale: [] }, version: 1 });
  c.records.set('v7/0', rec('a', 'b'));
  c.records.set('v7/1', rec('b', 'c'));
  c.records.set('v7/2', { value: { replicas: [{ node: 'b', cvmIp: 'ip-b', disk: 'b-ssd' }], stale: [{ node: 'a', cvmIp: 'ip-a', disk: 'a-ssd' }] }, version: 1 });
  const old = c.clock.now() - 3_600_000;
  const files = new Map<string, number>([
    ['a-ssd/v7/0', old], ['a-ssd/v7/1', old], ['a-ssd/v7/129', old], ['a-ssd/v7/256', old], ['a-ssd/v7/130', c.clock.now()],
    ['a-hdd/v7/3', old], ['a-ssd/gone/0', old], ['a-ssd/v8/5', old],
  ]);
  const local = {
    inventory: () => {
      const by = new Map<string, { disk: string; vdisk: string; blocks: { block: number; mtimeMs: number }[] }>();
      for (const [k, mtimeMs] of files) {
        const [disk = '', vdisk = '', block = ''] = k.split('/');
        const e = by.get(`${disk}/${vdisk}`) ?? { disk, vdisk, blocks: [] };
        e.blocks.push({ block: Number(block), mtimeMs });
        by.set(`${disk}/${vdisk}`, e);
      }
      return Promise.resolve([...by.values()]);
    },
    drop: (r: { disk: string; vdisk: string; block: number }) => {
      files.delete(`${r.disk}/${r.vdisk}/${r.block}`);
      return Promise.resolve();
    },
  };
  const budget = new CopyBudget({ clock: c.clock });
  const r = c.repairer(new Registry(c, 'a', budget), budget, { local });
  assert.equal(await r.sweep(), 3);
  assert.deepEqual([...files.keys()].sort(), [
    'a-ssd/v7/0', // egroup 0 lists a-ssd
    'a-ssd/v7/1', // egroup 0 too
    'a-ssd/v7/130', // egroup 1 does not, but the file is recent (a copy in progress)
    'a-ssd/v7/256', // egroup 2 lists a-ssd as stale
    'a-ssd/v8/5', // a vdisk with no v2 record at all
  ]);
  // gone: a-ssd/v7/129 (egroup 1 is on b and c), a-hdd/v7/3 (egroup 0 is on a's other disk), a-ssd/gone/0 (a deleted vdisk)
  assert.equal(r.stats.orphansRemoved, 3);
});

test('the prefixes scanned are those of the records and owner keys', () => {
  assert.equal(`${EGROUPS_V2_PREFIX}v/3`, KEYS.egroup('v', 3));
  assert.equal(`${OWNERS_V2_PREFIX}v`, KEYS.owner('v'));
});
