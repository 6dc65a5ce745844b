/**
 * The owner's rules (owner.ts) with hand-made fakes: replicas are ReplicaModels answered at once,
 * the configuration store a map with versions and an owner epoch, liveness a set.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../../shared/clock.ts';
import { UnavailableError } from '../../../shared/errors.ts';
import { crc32c } from './crc32c.ts';
import { EGROUP_BYTES, PAGE_BYTES, type EgroupRecord, type ReplicaLocation } from './layout.ts';
import { VdiskOwner, type OwnerOptions } from './owner.ts';
import type { Bugs, CasResult, MetaStore, ReplicaIo, Versioned } from './ports.ts';
import { ReplicaModel, extentKey } from './replica-model.ts';

class Cluster {
  readonly nodes = new Map<string, ReplicaModel>();
  readonly failing = new Set<string>();
  readonly down = new Set<string>();
  readonly calls: string[] = [];
  readonly records = new Map<number, Versioned<EgroupRecord>>();
  owner: { epoch: number } | null = null;
  rev = 1;
  leaseOk = true;
  private listeners = new Set<(n: string) => void>();

  constructor(names: string[]) {
    for (const n of names) this.nodes.set(n, new ReplicaModel(n, [{ serial: `${n}-hdd`, media: 'hdd' }, { serial: `${n}-ssd`, media: 'ssd' }], crc32c));
  }

  at(l: ReplicaLocation | { node: string }): ReplicaModel {
    if (this.failing.has(l.node)) throw new UnavailableError(`${l.node} fails`);
    return this.nodes.get(l.node)!;
  }

  io(): ReplicaIo {
    const call = <T>(what: string, fn: () => T): Promise<T> => {
      this.calls.push(what);
      try {
        return Promise.resolve(fn());
      } catch (e) {
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
    };
    return {
      write: (l, f) => call(`write ${l.node} gen ${f.gen}`, () => this.at(l).write(l.disk, f)),
      read: (l, r) => call(`read ${l.node}`, () => this.at(l).read(l.disk, r)),
      extentGens: (l, v, e, epoch) => call(`gens ${l.node}`, () => this.at(l).extentGens(l.disk, v, e, epoch)),
      readExtent: (l, v, e, x) => call(`readExtent ${l.node}`, () => this.at(l).readExtent(l.disk, v, e, x)),
      writeExtent: (l, v, e, x, epoch, img) => call(`writeExtent ${l.node}`, () => this.at(l).writeExtent(l.disk, v, e, x, epoch, img)),
      sync: (c, v) => call(`sync ${c.node}`, () => this.at(c).sync(v)),
    };
  }

  meta(): MetaStore {
    const res = (r: CasResult): Promise<CasResult> => Promise.resolve(structuredClone(r));
    return {
      getEgroup: (_v, e) => Promise.resolve(structuredClone(this.records.get(e) ?? null)),
      listEgroups: () => Promise.resolve(structuredClone(this.records)),
      createEgroup: (_v, e, epoch, record) => {
        if (this.owner?.epoch !== epoch) return res({ ok: false, reason: 'epoch' });
        if (this.records.has(e)) return res({ ok: false, reason: 'exists' });
        this.records.set(e, { value: structuredClone(record), version: ++this.rev });
        this.calls.push(`create ${e}`);
        return res({ ok: true, record: this.records.get(e)! });
      },
      casEgroup: (_v, e, epoch, version, record) => {
        if (this.owner?.epoch !== epoch) return res({ ok: false, reason: 'epoch' });
        if (this.records.get(e)?.version !== version) return res({ ok: false, reason: 'version' });
        this.records.set(e, { value: structuredClone(record), version: ++this.rev });
        this.calls.push(`cas ${e} stale=${record.stale.map((l) => l.node).join(',')}`);
        return res({ ok: true, record: this.records.get(e)! });
      },
      acquireOwner: () => {
        this.owner = { epoch: ++this.rev };
        return Promise.resolve({ epoch: this.owner.epoch });
      },
      releaseOwner: () => {
        this.owner = null;
        return Promise.resolve();
      },
      leaseValid: () => this.leaseOk,
    };
  }

  readonly clock = new VirtualClock();

  declareDown(n: string): void {
    this.down.add(n);
    for (const l of this.listeners) l(n);
  }

  open(node: string, bugs: Bugs = {}, rf = 2): Promise<VdiskOwner> {
    const o: OwnerOptions = {
      vdisk: 'vd', node, cvmIp: `ip-${node}`, rf, io: this.io(), meta: this.meta(), clock: this.clock, checksum: crc32c, bugs,
      liveness: { isDown: (n) => this.down.has(n), subscribe: (fn) => { this.listeners.add(fn); return () => this.listeners.delete(fn); } },
      space: { disks: () => [...this.nodes.keys()].flatMap((n) => [
        { serial: `${n}-hdd`, node: n, cvmIp: `ip-${n}`, freeBytes: 2e12, ok: true, media: 'hdd' as const },
        { serial: `${n}-ssd`, node: n, cvmIp: `ip-${n}`, freeBytes: 1e12, ok: true, media: 'ssd' as const },
      ]) },
    };
    return VdiskOwner.open(o);
  }
}

const page = (byte: number, n = 1): Uint8Array => new Uint8Array(PAGE_BYTES * n).fill(byte);

test('a write creates the extent group record first (RF replicas, the local one first, SSDs), then reads back', async () => {
  const c = new Cluster(['a', 'b', 'c']);
  const o = await c.open('b');
  await o.pwrite(PAGE_BYTES, page(7));
  const rec = c.records.get(0)!.value;
  assert.equal(rec.replicas.length, 2);
  assert.deepEqual(rec.replicas[0], { node: 'b', cvmIp: 'ip-b', disk: 'b-ssd' });
  assert.ok(rec.replicas.every((l) => l.disk.endsWith('-ssd')));
  assert.ok(c.calls.indexOf('create 0') < c.calls.findIndex((x) => x.startsWith('write')), 'recorded before the first write');
  assert.deepEqual(await o.pread(PAGE_BYTES, PAGE_BYTES), page(7));
  // both replicas have it, at generation 1
  for (const l of rec.replicas) assert.equal(c.nodes.get(l.node)!.extentGens(l.disk, 'vd', 0, o.epoch).get(0)?.gen, 1);
});

test('an unwritten extent group reads as zeros without any replica I/O (negative cache)', async () => {
  const c = new Cluster(['a', 'b']);
  const o = await c.open('a');
  c.calls.length = 0;
  assert.deepEqual(await o.pread(3 * EGROUP_BYTES, 2 * PAGE_BYTES), new Uint8Array(2 * PAGE_BYTES));
  assert.deepEqual(c.calls, []);
});

test('TRIM: unwritten extent groups are left alone (no record, no frame); written ones get zero frames without data', async () => {
  const c = new Cluster(['a', 'b']);
  const o = await c.open('a');
  await o.pwrite(EGROUP_BYTES, page(5, 2));
  c.calls.length = 0;
  const frames: { data: Uint8Array | null; zero: boolean }[] = [];
  const io = c.io();
  const write = io.write.bind(io);
  (o as unknown as { o: OwnerOptions }).o.io.write = (l, f) => {
    frames.push({ data: f.data, zero: f.zero });
    return write(l, f);
  };
  await o.zero(0, 3 * EGROUP_BYTES);
  assert.ok(!c.calls.some((x) => x.startsWith('create')), 'nothing placed for the unwritten extent groups 0 and 2');
  assert.deepEqual([...c.records.keys()], [1]);
  assert.equal(frames.length, 2 * 128, 'one zero frame per extent of extent group 1, to each of its 2 replicas');
  assert.ok(frames.every((f) => f.zero && f.data === null), 'no bytes of zeros sent');
  assert.deepEqual(await o.pread(EGROUP_BYTES, 2 * PAGE_BYTES), new Uint8Array(2 * PAGE_BYTES));
});

test('a replica that fails a write is moved to stale by CAS before the write is acknowledged; it is no longer written', async () => {
  const c = new Cluster(['a', 'b', 'c']);
  const o = await c.open('a');
  await o.pwrite(0, page(1));
  const other = c.records.get(0)!.value.replicas[1]!.node;
  c.failing.add(other);
  c.calls.length = 0;
  await o.pwrite(0, page(2));
  assert.deepEqual(c.records.get(0)!.value.stale.map((l) => l.node), [other]);
  assert.deepEqual(c.calls.filter((x) => x.startsWith('cas')), [`cas 0 stale=${other}`]);
  c.calls.length = 0;
  await o.pwrite(0, page(3));
  assert.deepEqual(c.calls, ['write a gen 3']);
  // repair: the node answers again, the stale replica is resynced and back in sync
  c.failing.delete(other);
  const r = await o.repair();
  assert.equal(r.resynced, 1);
  assert.deepEqual(c.records.get(0)!.value.stale, []);
  assert.equal(c.nodes.get(other)!.digest(`${other}-ssd`, 'vd', 0), c.nodes.get('a')!.digest('a-ssd', 'vd', 0));
});

test('a write that no in-sync replica took fails and empties nothing', async () => {
  const c = new Cluster(['a', 'b']);
  const o = await c.open('a');
  await o.pwrite(0, page(1));
  c.failing.add('a');
  c.failing.add('b');
  await assert.rejects(o.pwrite(0, page(2)), UnavailableError);
  assert.equal(c.records.get(0)!.value.replicas.length, 2);
});

test('a node declared down: its replicas go stale at once and are never read', async () => {
  const c = new Cluster(['a', 'b', 'c']);
  const o = await c.open('a');
  await o.pwrite(0, page(1));
  c.declareDown('a');
  await o.idle();
  assert.deepEqual(c.records.get(0)!.value.stale.map((l) => l.node), ['a']);
  c.calls.length = 0;
  assert.deepEqual(await o.pread(0, PAGE_BYTES), page(1));
  assert.ok(c.calls.every((x) => !x.endsWith(' a')), c.calls.join(', '));
});

test('a corrupt local page: the read falls back to another replica, and the bad one is repaired', async () => {
  const c = new Cluster(['a', 'b']);
  const o = await c.open('a');
  await o.pwrite(0, page(5, 2));
  assert.ok(c.nodes.get('a')!.corrupt('a-ssd', extentKey('vd', 0, 0), 1, 100));
  assert.deepEqual(await o.pread(0, 2 * PAGE_BYTES), page(5, 2));
  await o.idle();
  assert.deepEqual(c.nodes.get('a')!.read('a-ssd', { vdisk: 'vd', egroup: 0, extent: 0, inner: 0, length: 2 * PAGE_BYTES }).data, page(5, 2));
  assert.equal(o.counters.readRepairs, 1);
});

test('a partial-page write verifies and merges the old page', async () => {
  const c = new Cluster(['a', 'b']);
  const o = await c.open('a');
  await o.pwrite(0, page(9));
  await o.pwrite(100, new Uint8Array(10).fill(1));
  const want = page(9);
  want.fill(1, 100, 110);
  assert.deepEqual(await o.pread(0, PAGE_BYTES), want);
  await o.zero(200, 10);
  want.fill(0, 200, 210);
  assert.deepEqual(await o.pread(0, PAGE_BYTES), want);
});

test('takeover: replicas that differ (a write in flight when the owner died) are made identical from the highest before the first I/O', async () => {
  const c = new Cluster(['a', 'b']);
  const o1 = await c.open('a');
  await o1.pwrite(0, page(1));
  // the old owner's last write reached only replica a
  c.failing.add('b');
  c.nodes.get('a')!.write('a-ssd', { vdisk: 'vd', egroup: 0, epoch: o1.epoch, gen: 2, extent: 0, inner: 0, data: page(2), length: PAGE_BYTES, zero: false, crcs: [crc32c(page(2))] });
  c.failing.delete('b');
  o1.abandon();
  const o2 = await c.open('b');
  assert.ok(o2.epoch > o1.epoch);
  assert.deepEqual(await o2.pread(0, PAGE_BYTES), page(2));
  assert.equal(c.nodes.get('a')!.digest('a-ssd', 'vd', 0), c.nodes.get('b')!.digest('b-ssd', 'vd', 0));
  // the old owner is fenced: its frames are refused by the replicas the new owner touched
  assert.throws(() => c.nodes.get('b')!.write('b-ssd', { vdisk: 'vd', egroup: 0, epoch: o1.epoch, gen: 9, extent: 0, inner: 0, data: page(3), length: PAGE_BYTES, zero: false, crcs: [crc32c(page(3))] }), /stale epoch/);
});

test('FLUSH syncs every CVM holding an in-sync replica (the bug switch: only the owner\'s)', async () => {
  const c = new Cluster(['a', 'b', 'c']);
  const o1 = await c.open('a');
  await o1.pwrite(0, page(1));
  await o1.pwrite(EGROUP_BYTES, page(2));
  await o1.close();
  // a new owner on a CVM that never saw the writes
  const holders = new Set([...c.records.values()].flatMap((r) => r.value.replicas.map((l) => l.node)));
  const fresh = ['a', 'b', 'c'].find((n) => !holders.has(n)) ?? 'c';
  const o2 = await c.open(fresh);
  c.calls.length = 0;
  await o2.flush();
  assert.deepEqual(c.calls.filter((x) => x.startsWith('sync')).sort(), [...holders].map((n) => `sync ${n}`).sort());
  await o2.close();
  const o3 = await c.open(fresh, { flushOnlyLocal: true });
  c.calls.length = 0;
  await o3.flush();
  assert.deepEqual(c.calls.filter((x) => x.startsWith('sync')), [`sync ${fresh}`]);
});

test('an owner whose lease is not confirmed serves nothing and stays; unconfirmed for the call timeout, it is lost', async () => {
  const c = new Cluster(['a', 'b']);
  const o = await c.open('a');
  await o.pwrite(0, page(1));
  // keep-alives unanswered for a moment (the store electing a leader): refused, not lost
  c.leaseOk = false;
  await assert.rejects(o.pread(0, PAGE_BYTES), /not confirmed/);
  await assert.rejects(o.pwrite(0, page(2)), /not confirmed/);
  assert.equal(o.status, 'open');
  c.leaseOk = true;
  assert.deepEqual(await o.pread(0, PAGE_BYTES), page(1), 'the refused write changed nothing');
  // unconfirmed for the call timeout (2 s by default): lost for good
  c.leaseOk = false;
  await assert.rejects(o.pread(0, PAGE_BYTES), /not confirmed/);
  c.clock.advance(2000);
  await assert.rejects(o.pread(0, PAGE_BYTES), /ownership .* lost/);
  assert.equal(o.status, 'lost');
  c.leaseOk = true;
  await assert.rejects(o.pread(0, PAGE_BYTES), /lost/);
});

test('re-replication: a replica on a dead disk is replaced on another node, filled, then recorded', async () => {
  const c = new Cluster(['a', 'b', 'c']);
  const o = await c.open('a');
  await o.pwrite(0, page(4));
  const other = c.records.get(0)!.value.replicas[1]!;
  c.nodes.get(other.node)!.failDisk(other.disk);
  await o.pwrite(PAGE_BYTES, page(5));
  assert.deepEqual(c.records.get(0)!.value.stale, [other]);
  c.declareDown(other.node);
  const r = await o.repair();
  assert.equal(r.replaced, 1);
  const rec = c.records.get(0)!.value;
  assert.equal(rec.replicas.length, 2);
  assert.deepEqual(rec.stale, []);
  const fresh = rec.replicas[1]!;
  assert.ok(fresh.node !== other.node && fresh.node !== 'a');
  assert.equal(c.nodes.get(fresh.node)!.digest(fresh.disk, 'vd', 0), c.nodes.get('a')!.digest('a-ssd', 'vd', 0));
});

test('a replica write in flight to a node that is declared down fails at once: the write completes on the others without waiting for its timeout', async () => {
  const c = new Cluster(['a', 'b']);
  const o = await c.open('a');
  await o.pwrite(0, page(1));
  // b stops answering (its writes hang), then is declared down
  const io = (o as unknown as { o: OwnerOptions }).o.io;
  const write = io.write.bind(io);
  io.write = (l, f) => (l.node === 'b' ? new Promise<void>(() => undefined) : write(l, f));
  let acked = false;
  const w = o.pwrite(0, page(2)).then(() => void (acked = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(acked, false, 'waiting on b');
  c.declareDown('b');
  await w; // the VirtualClock never advances: only the declaration can end the wait
  assert.deepEqual(c.records.get(0)!.value.stale.map((l) => l.node), ['b'], 'b made stale before the ack');
  assert.deepEqual(await o.pread(0, PAGE_BYTES), page(2));
});
