/**
 * The owner's additions for the repair loop (owner.ts): needsRepair(), move(), dropReplica(),
 * repair({ needed }) and copyThrottle, with hand-made fakes (replicas are ReplicaModels answered at
 * once, the configuration store a map with versions).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../../shared/clock.ts';
import { UnavailableError } from '../../../shared/errors.ts';
import { crc32c } from './crc32c.ts';
import { EGROUP_BYTES, EXTENT_BYTES, PAGE_BYTES, type EgroupRecord, type ReplicaLocation } from './layout.ts';
import { VdiskOwner } from './owner.ts';
import type { CasResult, MetaStore, ReplicaIo, Versioned } from './ports.ts';
import { ReplicaModel } from './replica-model.ts';

class Cluster {
  readonly nodes = new Map<string, ReplicaModel>();
  readonly down = new Set<string>();
  readonly records = new Map<number, Versioned<EgroupRecord>>();
  readonly calls: string[] = [];
  readonly throttled: number[] = [];
  epoch = 0;
  rev = 1;
  private subs = new Set<(n: string) => void>();

  constructor(names: string[]) {
    for (const n of names) this.nodes.set(n, new ReplicaModel(n, [{ serial: `${n}-ssd`, media: 'ssd' }, { serial: `${n}-hdd`, media: 'hdd' }], crc32c));
  }

  io(): ReplicaIo {
    const call = <T>(what: string, l: { node: string }, fn: (m: ReplicaModel) => T): Promise<T> => {
      this.calls.push(`${what} ${l.node}`);
      if (this.down.has(l.node)) return Promise.reject(new UnavailableError(`${l.node} is down`));
      try {
        return Promise.resolve(fn(this.nodes.get(l.node)!));
      } catch (e) {
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
    };
    return {
      write: (l, f) => call('write', l, (m) => m.write(l.disk, f)),
      read: (l, r) => call('read', l, (m) => m.read(l.disk, r)),
      extentGens: (l, v, e, epoch) => call(`gens ${e}`, l, (m) => m.extentGens(l.disk, v, e, epoch)),
      readExtent: (l, v, e, x) => call(`readExtent ${e}`, l, (m) => m.readExtent(l.disk, v, e, x)),
      writeExtent: (l, v, e, x, epoch, img) => call(`writeExtent ${e}`, l, (m) => m.writeExtent(l.disk, v, e, x, epoch, img)),
      sync: (c, v) => call('sync', c, (m) => m.sync(v)),
    };
  }

  meta(): MetaStore {
    const res = (r: CasResult): Promise<CasResult> => Promise.resolve(structuredClone(r));
    return {
      getEgroup: (_v, e) => Promise.resolve(structuredClone(this.records.get(e) ?? null)),
      listEgroups: () => Promise.resolve(structuredClone(this.records)),
      createEgroup: (_v, e, epoch, record) => {
        if (epoch !== this.epoch) return res({ ok: false, reason: 'epoch' });
        this.records.set(e, { value: structuredClone(record), version: ++this.rev });
        return res({ ok: true, record: this.records.get(e)! });
      },
      casEgroup: (_v, e, epoch, version, record) => {
        if (epoch !== this.epoch) return res({ ok: false, reason: 'epoch' });
        if (this.records.get(e)?.version !== version) return res({ ok: false, reason: 'version' });
        this.records.set(e, { value: structuredClone(record), version: ++this.rev });
        return res({ ok: true, record: this.records.get(e)! });
      },
      acquireOwner: () => Promise.resolve({ epoch: (this.epoch = ++this.rev) }),
      releaseOwner: () => Promise.resolve(),
      leaseValid: () => true,
    };
  }

  open(node: string, throttle = false): Promise<VdiskOwner> {
    return VdiskOwner.open({
      vdisk: 'vd', node, cvmIp: `ip-${node}`, rf: 2, io: this.io(), meta: this.meta(), clock: new VirtualClock(), checksum: crc32c,
      liveness: { isDown: (n) => this.down.has(n), subscribe: (fn) => { this.subs.add(fn); return () => this.subs.delete(fn); } },
      space: { disks: () => [...this.nodes.keys()].flatMap((n) => [
        { serial: `${n}-ssd`, node: n, cvmIp: `ip-${n}`, freeBytes: 1e12, ok: true, media: 'ssd' as const },
        { serial: `${n}-hdd`, node: n, cvmIp: `ip-${n}`, freeBytes: 2e12, ok: true, media: 'hdd' as const },
      ]) },
      ...(throttle ? { copyThrottle: (bytes: number) => { this.throttled.push(bytes); return Promise.resolve(); } } : {}),
    });
  }

  declareDown(n: string): void {
    this.down.add(n);
    for (const f of this.subs) f(n);
  }

  digest(l: ReplicaLocation, eg: number): string | null {
    return this.nodes.get(l.node)!.digest(l.disk, 'vd', eg);
  }
}

const fill = (byte: number, n: number): Uint8Array => new Uint8Array(n).fill(byte);
const loc = (node: string, kind = 'ssd'): ReplicaLocation => ({ node, cvmIp: `ip-${node}`, disk: `${node}-${kind}` });

test('needsRepair: false when every record is at RF and in sync; true once a replica\'s node is declared down; false after repair', async () => {
  const c = new Cluster(['a', 'b', 'c']);
  const o = await c.open('a');
  assert.equal(o.needsRepair(), false);
  await o.pwrite(0, fill(1, PAGE_BYTES));
  assert.equal(o.needsRepair(), false);
  c.declareDown(c.records.get(0)!.value.replicas[1]!.node);
  assert.equal(o.needsRepair(), true, 'at once, before the replica is marked stale');
  await o.idle();
  assert.equal(o.needsRepair(), true);
  const r = await o.repair({ needed: true });
  assert.equal(r.replaced, 1);
  assert.equal(o.needsRepair(), false);
});

test('repair({ needed }) touches only the extent groups that need it', async () => {
  const c = new Cluster(['a', 'b', 'c']);
  const o = await c.open('a');
  await o.pwrite(0, fill(1, PAGE_BYTES));
  await o.pwrite(EGROUP_BYTES, fill(2, PAGE_BYTES));
  const other = c.records.get(1)!.value.replicas[1]!;
  // egroup 1's second replica misses a write
  c.down.add(other.node);
  await o.pwrite(EGROUP_BYTES, fill(3, PAGE_BYTES));
  c.down.delete(other.node);
  assert.equal(c.records.get(1)!.value.stale.length, 1);
  c.calls.length = 0;
  const r = await o.repair({ needed: true });
  assert.equal(r.resynced, 1);
  assert.ok(c.calls.every((x) => !x.startsWith('gens 0') && !x.startsWith('readExtent 0')), c.calls.join(', '));
});

test('copyThrottle: awaited with the bytes of each extent copied by repair, never for client I/O', async () => {
  const c = new Cluster(['a', 'b', 'c']);
  const o = await c.open('a', true);
  await o.pwrite(0, fill(1, 2 * EXTENT_BYTES + PAGE_BYTES));
  assert.deepEqual(await o.pread(0, PAGE_BYTES), fill(1, PAGE_BYTES));
  assert.deepEqual(c.throttled, []);
  c.declareDown(c.records.get(0)!.value.replicas[1]!.node);
  await o.idle();
  await o.repair();
  assert.deepEqual(c.throttled.slice().sort((x, y) => x - y), [PAGE_BYTES, EXTENT_BYTES, EXTENT_BYTES]);
});

test('move: the replica goes to the new disk (copied, then swapped in place in the record); refused when it would break the rules', async () => {
  const c = new Cluster(['a', 'b', 'c']);
  const o = await c.open('a', true);
  await o.pwrite(0, fill(4, EXTENT_BYTES));
  await o.pwrite(EXTENT_BYTES, fill(5, PAGE_BYTES));
  const [first, second] = c.records.get(0)!.value.replicas as [ReplicaLocation, ReplicaLocation];
  const third = ['a', 'b', 'c'].find((n) => n !== first.node && n !== second.node)!;
  assert.equal(await o.move(0, second, loc(first.node, 'hdd')), false, 'not onto a node holding another replica');
  assert.equal(await o.move(0, loc(third), loc(second.node, 'hdd')), false, 'not from a disk that holds no in-sync replica');
  assert.equal(await o.move(7, second, loc(third)), false, 'not of an extent group never written');
  assert.equal(await o.move(0, second, loc(third)), true);
  const rec = c.records.get(0)!.value;
  assert.deepEqual(rec.replicas, [first, loc(third)], 'in place: the first (local) replica stays first');
  assert.equal(c.digest(loc(third), 0), c.digest(first, 0));
  assert.equal(o.counters.moves, 1);
  // the old replica's files stay until dropped; a replica the record lists is never dropped
  assert.notEqual(c.digest(second, 0), '');
  assert.equal(await o.dropReplica(0, first), 0);
  assert.equal(await o.dropReplica(0, second), 2);
  assert.equal(c.digest(second, 0), '');
  // a move between two disks of one node
  assert.equal(await o.move(0, loc(third), loc(third, 'hdd')), true);
  assert.deepEqual(await o.pread(EXTENT_BYTES, PAGE_BYTES), fill(5, PAGE_BYTES));
  await o.pwrite(0, fill(6, PAGE_BYTES));
  assert.equal(c.digest(loc(third, 'hdd'), 0), c.digest(first, 0));
});

test('a throttled copy runs outside the exclusive lock: client writes to the extent group complete meanwhile and reach the new replica as they are made', async () => {
  const c = new Cluster(['a', 'b', 'c']);
  let release: () => void = () => undefined;
  let copies = 0;
  const o = await VdiskOwner.open({
    vdisk: 'vd', node: 'a', cvmIp: 'ip-a', rf: 2, io: c.io(), meta: c.meta(), clock: new VirtualClock(), checksum: crc32c,
    liveness: { isDown: (n) => c.down.has(n), subscribe: () => () => undefined },
    space: { disks: () => ['a', 'b', 'c'].map((n) => ({ serial: `${n}-ssd`, node: n, cvmIp: `ip-${n}`, freeBytes: 1e12, ok: true, media: 'ssd' as const })) },
    // the first copy waits until the test lets it go
    copyThrottle: () => (++copies === 1 ? new Promise<void>((r) => (release = r)) : Promise.resolve()),
  });
  await o.pwrite(0, fill(1, 4 * EXTENT_BYTES));
  const [, second] = c.records.get(0)!.value.replicas as [ReplicaLocation, ReplicaLocation];
  const third = ['b', 'c'].find((n) => n !== second.node)!;
  const moving = o.move(0, second, loc(third));
  for (let i = 0; i < 20 && copies === 0; i++) await new Promise((r) => setImmediate(r));
  assert.equal(copies, 1, 'the first extent is copied and its throttle waits');
  // a write to an extent already copied and one not yet copied: neither waits for the move
  await o.pwrite(0, fill(2, PAGE_BYTES));
  await o.pwrite(3 * EXTENT_BYTES, fill(3, PAGE_BYTES));
  release();
  assert.equal(await moving, true);
  assert.equal(c.digest(loc(third), 0), c.digest(loc('a'), 0));
  assert.equal(o.counters.prefilled, 4);
  // the new replica got the writes made during the copy: nothing was left to copy under the exclusive lock
  assert.equal(copies, 4, 'no extent copied again under the lock');
});

test('copyWindow: a copy outside the lock has up to the window\'s extents in flight; a window shrunk to one ends the extra copies', async () => {
  const c = new Cluster(['a', 'b', 'c']);
  let window = 3;
  const waiting: (() => void)[] = [];
  let most = 0;
  const o = await VdiskOwner.open({
    vdisk: 'vd', node: 'a', cvmIp: 'ip-a', rf: 2, io: c.io(), meta: c.meta(), clock: new VirtualClock(), checksum: crc32c,
    liveness: { isDown: (n) => c.down.has(n), subscribe: () => () => undefined },
    space: { disks: () => ['a', 'b', 'c'].map((n) => ({ serial: `${n}-ssd`, node: n, cvmIp: `ip-${n}`, freeBytes: 1e12, ok: true, media: 'ssd' as const })) },
    // every copy's throttle waits until the test lets it go: the copies waiting at once are those in flight
    copyThrottle: () => new Promise<void>((r) => {
      waiting.push(r);
      most = Math.max(most, waiting.length);
    }),
    copyWindow: () => window,
  });
  await o.pwrite(0, fill(7, 8 * EXTENT_BYTES));
  const [, second] = c.records.get(0)!.value.replicas as [ReplicaLocation, ReplicaLocation];
  const third = ['b', 'c'].find((n) => n !== second.node)!;
  const moving = o.move(0, second, loc(third));
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  };
  await settle();
  assert.equal(waiting.length, 3, 'three extents copied at once');
  window = 1;
  while (waiting.length > 0) {
    waiting.splice(0).forEach((r) => r());
    await settle();
    assert.ok(waiting.length <= 1, `one copy at a time once the window is 1 (${waiting.length})`);
  }
  assert.equal(await moving, true);
  assert.equal(most, 3);
  assert.equal(o.counters.prefilled, 8);
  assert.equal(c.digest(loc(third), 0), c.digest(loc('a'), 0));
});

test('copyThrottle: a stale replica whose node does not answer (not declared down) is replaced by one filled outside the lock; nothing is copied under it', async () => {
  const c = new Cluster(['a', 'b', 'c']);
  const o = await c.open('a', true);
  for (let x = 0; x < 8; x++) await o.pwrite(x * EXTENT_BYTES, fill(x + 1, PAGE_BYTES));
  const gone = c.records.get(0)!.value.replicas.find((l) => l.node !== 'a')!;
  c.down.add(gone.node); // it does not answer; nobody declared it down
  await o.pwrite(0, fill(9, PAGE_BYTES));
  assert.deepEqual(c.records.get(0)!.value.stale, [gone]);
  const r = await o.repair();
  assert.deepEqual([r.replaced, r.lockedCopies, r.failed], [1, 0, []], JSON.stringify(r));
  const rec = c.records.get(0)!.value;
  assert.deepEqual(rec.stale, []);
  const fresh = rec.replicas.find((l) => l.node !== 'a')!;
  assert.ok(fresh.node !== gone.node);
  assert.equal(c.digest(fresh, 0), c.digest(rec.replicas.find((l) => l.node === 'a')!, 0), 'a copy of the in-sync replica');
});
