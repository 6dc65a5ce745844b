/**
 * EtcdMetaStore (engine-meta.ts) against a real etcd on 127.127.0.1:23790 (peer 23791): ownership
 * and epochs, the fenced record transactions, lease expiry, leaseValid on an injected clock, and the
 * owner's data path (owner.ts) over it with in-memory replicas.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { etcdFixture } from '../../../test/drivers/etcd.ts';
import { SystemClock, VirtualClock, type Clock } from '../../shared/clock.ts';
import { ConflictError, UnavailableError } from '../../shared/errors.ts';
import { crc32c } from '../core/engine/crc32c.ts';
import { KEYS, PAGE_BYTES, type EgroupRecord, type ReplicaLocation } from '../core/engine/layout.ts';
import { VdiskOwner } from '../core/engine/owner.ts';
import type { ReplicaIo } from '../core/engine/ports.ts';
import { ReplicaModel } from '../core/engine/replica-model.ts';
import { EtcdMetaStore } from './engine-meta.ts';

const IP = '127.127.0.1';
const etcd = etcdFixture(IP, 'engine-meta');
const client = (): Etcd3 => etcd.client();
/** For looking at the store directly. */
const admin = client();

const until = async (what: string, fn: () => Promise<boolean>, ms = 10_000): Promise<void> => {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

function store(opts: { clock?: Clock; ttlS?: number; marginMs?: number; onLost?: (why: string) => void } = {}): EtcdMetaStore {
  return etcd.closeAfter(new EtcdMetaStore({ etcd: client(), clock: opts.clock ?? new SystemClock(), ttlS: opts.ttlS ?? 5, marginMs: opts.marginMs ?? 300, ...(opts.onLost ? { onLost: opts.onLost } : {}) }));
}

const loc = (node: string, disk = `${node}-ssd`): ReplicaLocation => ({ node, cvmIp: `ip-${node}`, disk });
const rec = (...nodes: string[]): EgroupRecord => ({ replicas: nodes.map((n) => loc(n)), stale: [] });

const opts = etcd.opts;

test('acquireOwner: epoch = the key\'s create revision; idempotent for the holder; ConflictError naming the holder for anyone else', opts, async () => {
  const a = store();
  const b = store();
  const { epoch } = await a.acquireOwner('vd-own', { node: 'a', cvmIp: 'ip-a' });
  const kv = (await admin.get(KEYS.owner('vd-own')).exec()).kvs[0]!;
  assert.equal(Number(kv.create_revision), epoch);
  assert.equal(kv.lease, a.leaseID, 'under the store\'s lease');
  assert.deepEqual(JSON.parse(kv.value.toString()), { node: 'a', cvmIp: 'ip-a' });
  assert.deepEqual(await a.acquireOwner('vd-own', { node: 'a', cvmIp: 'ip-a' }), { epoch }, 'a lost answer retried: same epoch');
  await assert.rejects(b.acquireOwner('vd-own', { node: 'b', cvmIp: 'ip-b' }), (e: unknown) => e instanceof ConflictError && /owned by a \(ip-a\)/.test(e.message));
  // the same node name under another lease (a restarted CVM whose old lease has not run out) is not the holder
  await assert.rejects(b.acquireOwner('vd-own', { node: 'a', cvmIp: 'ip-a' }), ConflictError);
});

test('releaseOwner deletes only the given epoch; a new owner gets a higher epoch', opts, async () => {
  const a = store();
  const b = store();
  const { epoch: e1 } = await a.acquireOwner('vd-rel', { node: 'a', cvmIp: 'ip-a' });
  await a.releaseOwner('vd-rel', e1 - 1);
  await assert.rejects(b.acquireOwner('vd-rel', { node: 'b', cvmIp: 'ip-b' }), ConflictError, 'a wrong epoch releases nothing');
  await a.releaseOwner('vd-rel', e1);
  const { epoch: e2 } = await b.acquireOwner('vd-rel', { node: 'b', cvmIp: 'ip-b' });
  assert.ok(e2 > e1, `${e2} > ${e1}`);
  await a.releaseOwner('vd-rel', e1); // the deposed owner's late release leaves the new owner alone
  await assert.rejects(a.acquireOwner('vd-rel', { node: 'a', cvmIp: 'ip-a' }), ConflictError);
  await b.releaseOwner('vd-rel', e2);
  const { epoch: e3 } = await a.acquireOwner('vd-rel', { node: 'a', cvmIp: 'ip-a' });
  assert.ok(e3 > e2);
});

test('records: create-if-absent, CAS on the mod revision, get and list (only this vdisk\'s)', opts, async () => {
  const a = store();
  const { epoch } = await a.acquireOwner('vd1', { node: 'a', cvmIp: 'ip-a' });
  const { epoch: e10 } = await a.acquireOwner('vd10', { node: 'a', cvmIp: 'ip-a' });
  assert.equal(await a.getEgroup('vd1', 0), null);
  const c0 = await a.createEgroup('vd1', 0, epoch, rec('a', 'b'));
  assert.ok(c0.ok);
  assert.deepEqual(c0.record.value, rec('a', 'b'));
  assert.deepEqual(await a.getEgroup('vd1', 0), c0.record);
  assert.deepEqual(await a.createEgroup('vd1', 0, epoch, rec('a', 'c')), { ok: false, reason: 'exists' });
  const moved: EgroupRecord = { replicas: [loc('a')], stale: [loc('b')] };
  const c1 = await a.casEgroup('vd1', 0, epoch, c0.record.version, moved);
  assert.ok(c1.ok && c1.record.version > c0.record.version);
  assert.deepEqual(await a.casEgroup('vd1', 0, epoch, c0.record.version, rec('a', 'c')), { ok: false, reason: 'version' }, 'a stale version');
  assert.deepEqual(await a.casEgroup('vd1', 9, epoch, c0.record.version, rec('a')), { ok: false, reason: 'version' }, 'no such record');
  assert.ok((await a.createEgroup('vd1', 3, epoch, rec('b'))).ok);
  assert.ok((await a.createEgroup('vd10', 0, e10, rec('c'))).ok);
  const list = await a.listEgroups('vd1');
  assert.deepEqual([...list.keys()].sort(), [0, 3]);
  assert.deepEqual(list.get(0), c1.record);
  assert.equal((await a.listEgroups('vd-none')).size, 0);
});

test('a deposed owner changes no record (epoch checked in the same transaction); nor does a wrong epoch', opts, async () => {
  const a = store();
  const b = store();
  const { epoch: ea } = await a.acquireOwner('vd-dep', { node: 'a', cvmIp: 'ip-a' });
  const c = await a.createEgroup('vd-dep', 0, ea, rec('a', 'b'));
  assert.ok(c.ok);
  assert.deepEqual(await a.createEgroup('vd-dep', 1, ea + 1, rec('a')), { ok: false, reason: 'epoch' });
  await a.releaseOwner('vd-dep', ea);
  assert.deepEqual(await a.casEgroup('vd-dep', 0, ea, c.record.version, rec('a')), { ok: false, reason: 'epoch' }, 'no owner at all');
  const { epoch: eb } = await b.acquireOwner('vd-dep', { node: 'b', cvmIp: 'ip-b' });
  assert.deepEqual(await a.casEgroup('vd-dep', 0, ea, c.record.version, rec('a')), { ok: false, reason: 'epoch' });
  assert.deepEqual(await a.casEgroup('vd-dep', 0, ea, 1, rec('a')), { ok: false, reason: 'epoch' }, 'the epoch is reported before the version');
  assert.deepEqual(await a.createEgroup('vd-dep', 1, ea, rec('a')), { ok: false, reason: 'epoch' });
  assert.equal(await a.getEgroup('vd-dep', 1), null);
  assert.deepEqual((await b.getEgroup('vd-dep', 0))?.value, rec('a', 'b'), 'unchanged');
  assert.ok((await b.casEgroup('vd-dep', 0, eb, c.record.version, rec('b'))).ok, 'the new owner can');
});

test('a CVM that stops renewing (crash): its lease runs out, ownership is free, the next owner\'s epoch is higher', opts, async () => {
  const a = store({ ttlS: 2, marginMs: 300 });
  const b = store();
  const { epoch: ea } = await a.acquireOwner('vd-exp', { node: 'a', cvmIp: 'ip-a' });
  assert.ok(a.leaseValid());
  const t0 = Date.now();
  a.abandon();
  await assert.rejects(b.acquireOwner('vd-exp', { node: 'b', cvmIp: 'ip-b' }), ConflictError);
  let eb = 0;
  await until('the owner key to go with the lease', async () => {
    eb = (await b.acquireOwner('vd-exp', { node: 'b', cvmIp: 'ip-b' })).epoch;
    return true;
  }, 8000);
  const freedAfter = Date.now() - t0;
  assert.ok(eb > ea);
  assert.equal(a.leaseValid(), false);
  assert.ok(freedAfter >= 2000 - 700 - 300, `freed after ${freedAfter} ms (TTL 2 s)`);
  console.log(`# owner key freed ${freedAfter} ms after the last keep-alive stopped (TTL 2 s)`);
});

test('leaseValid follows the answered keep-alives on the injected clock: false past TTL − margin, true again after the next answer', opts, async () => {
  const clock = new VirtualClock(1_000_000);
  const a = store({ clock, ttlS: 2, marginMs: 500 });
  assert.equal(a.leaseValid(), false, 'before the grant');
  await a.start();
  assert.ok(a.leaseValid());
  clock.advance(1400);
  assert.ok(a.leaseValid(), 'grant sent at t0; t0 + 1400 < t0 + 2000 - 500');
  clock.advance(200);
  assert.equal(a.leaseValid(), false, 'no answered keep-alive sent since t0: not sure past t0 + 1500');
  // keep-alives go every TTL/3 (real time): the next answered one was sent at the (virtual) now
  await until('a keep-alive answer', () => Promise.resolve(a.leaseValid()), 3000);
  clock.advance(1499);
  assert.ok(a.leaseValid());
  clock.advance(1);
  assert.equal(a.leaseValid(), false);
});

test('a lost lease (revoked at etcd): leaseValid false for good, onLost told, acquireOwner refused, the owner keys gone', opts, async () => {
  const lost: string[] = [];
  const a = store({ ttlS: 2, onLost: (w) => lost.push(w) });
  const { epoch } = await a.acquireOwner('vd-lost', { node: 'a', cvmIp: 'ip-a' });
  await admin.leaseClient.leaseRevoke({ ID: a.leaseID });
  await until('the loss to be noticed', () => Promise.resolve(lost.length > 0), 3000);
  assert.equal(a.leaseValid(), false);
  assert.equal(a.lost, lost[0]);
  await assert.rejects(a.acquireOwner('vd-lost', { node: 'a', cvmIp: 'ip-a' }), UnavailableError);
  assert.deepEqual(await a.createEgroup('vd-lost', 0, epoch, rec('a')), { ok: false, reason: 'epoch' });
  assert.equal((await admin.get(KEYS.owner('vd-lost')).exec()).kvs.length, 0);
});

// ---- the owner's data path (owner.ts) over the real store, replicas in memory ----

function replicas(names: string[]): { nodes: Map<string, ReplicaModel>; failing: Set<string>; io: ReplicaIo } {
  const nodes = new Map(names.map((n) => [n, new ReplicaModel(n, [{ serial: `${n}-ssd`, media: 'ssd' as const }], crc32c)]));
  const failing = new Set<string>();
  const at = (n: string): ReplicaModel => {
    if (failing.has(n)) throw new UnavailableError(`${n} fails`);
    return nodes.get(n)!;
  };
  const call = <T>(fn: () => T): Promise<T> => {
    try {
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  };
  const io: ReplicaIo = {
    write: (l, f) => call(() => at(l.node).write(l.disk, f)),
    read: (l, r) => call(() => at(l.node).read(l.disk, r)),
    extentGens: (l, v, e, epoch) => call(() => at(l.node).extentGens(l.disk, v, e, epoch)),
    readExtent: (l, v, e, x) => call(() => at(l.node).readExtent(l.disk, v, e, x)),
    writeExtent: (l, v, e, x, epoch, img) => call(() => at(l.node).writeExtent(l.disk, v, e, x, epoch, img)),
    sync: (c, v) => call(() => at(c.node).sync(v)),
  };
  return { nodes, failing, io };
}

function openOwner(vdisk: string, node: string, meta: EtcdMetaStore, io: ReplicaIo, names: string[], clock: Clock = new SystemClock()): Promise<VdiskOwner> {
  return VdiskOwner.open({
    vdisk, node, cvmIp: `ip-${node}`, rf: 2, io, meta, clock, checksum: crc32c,
    liveness: { isDown: () => false, subscribe: () => () => undefined },
    space: { disks: () => names.map((n) => ({ serial: `${n}-ssd`, node: n, cvmIp: `ip-${n}`, freeBytes: 1e12, ok: true, media: 'ssd' as const })) },
  });
}

const page = (b: number): Uint8Array => new Uint8Array(PAGE_BYTES).fill(b);

test('VdiskOwner over EtcdMetaStore: write, read back, hand over to another CVM (higher epoch, takeover), the old owner is fenced', opts, async () => {
  const names = ['a', 'b', 'c'];
  const { io } = replicas(names);
  const open = (node: string, meta: EtcdMetaStore): Promise<VdiskOwner> => openOwner('vd-owner', node, meta, io, names);
  const ma = store();
  const mb = store();
  const oa = await open('a', ma);
  await oa.pwrite(PAGE_BYTES, page(7));
  assert.deepEqual(await oa.pread(PAGE_BYTES, PAGE_BYTES), page(7));
  const stored = await mb.getEgroup('vd-owner', 0);
  assert.equal(stored?.value.replicas.length, 2);
  assert.deepEqual(stored?.value.replicas[0], loc('a'));
  await assert.rejects(open('b', mb), ConflictError);
  // handover by release (as a drain does; a crash is the lease-expiry test above)
  await ma.releaseOwner('vd-owner', oa.epoch);
  const ob = await open('b', mb);
  assert.ok(ob.epoch > oa.epoch);
  assert.deepEqual(await ob.pread(PAGE_BYTES, PAGE_BYTES), page(7), 'the new owner reads what a wrote');
  await ob.pwrite(PAGE_BYTES, page(8));
  // a, deposed, is fenced by the replicas (b's takeover raised their epoch floor): it cannot write
  await assert.rejects(oa.pwrite(PAGE_BYTES, page(9)));
  assert.deepEqual(await ob.pread(PAGE_BYTES, PAGE_BYTES), page(8));
  await ob.close();
  assert.equal((await admin.get(KEYS.owner('vd-owner')).exec()).kvs.length, 0, 'close released the key');
  oa.abandon();
});

test('VdiskOwner over EtcdMetaStore: a failing replica is moved to stale by a real CAS; the owner serves nothing once the lease is not sure, and is lost when that lasts', opts, async () => {
  const names = ['a', 'b'];
  const { io, failing } = replicas(names);
  const clock = new VirtualClock(5_000_000);
  const m = store({ clock, ttlS: 2, marginMs: 500 });
  const o = await openOwner('vd-stale', 'a', m, io, names, clock);
  await o.pwrite(0, page(1));
  const v1 = (await m.getEgroup('vd-stale', 0))!;
  assert.deepEqual(v1.value.replicas.map((l) => l.node), ['a', 'b']);
  failing.add('b');
  await o.pwrite(0, page(2));
  const v2 = (await m.getEgroup('vd-stale', 0))!;
  assert.ok(v2.version > v1.version);
  assert.deepEqual({ in: v2.value.replicas.map((l) => l.node), stale: v2.value.stale.map((l) => l.node) }, { in: ['a'], stale: ['b'] });
  assert.deepEqual(await o.pread(0, PAGE_BYTES), page(2));
  // no keep-alive answered for TTL − margin (virtual time): no read is served; the owner waits (a store electing a leader)
  clock.advance(1500);
  await assert.rejects(o.pread(0, PAGE_BYTES), /not confirmed/);
  assert.equal(o.status, 'open');
  // and still none after the owner's call timeout: it is lost
  clock.advance(2000);
  await assert.rejects(o.pread(0, PAGE_BYTES), /lost/);
  assert.equal(o.status, 'lost');
  o.abandon();
});

test('two CVMs acquire at once: exactly one wins; one CVM asking twice at once gets one epoch', opts, async () => {
  const a = store();
  const b = store();
  const r = await Promise.allSettled([a.acquireOwner('vd-race', { node: 'a', cvmIp: 'ip-a' }), b.acquireOwner('vd-race', { node: 'b', cvmIp: 'ip-b' })]);
  assert.equal(r.filter((x) => x.status === 'fulfilled').length, 1);
  assert.ok(r.some((x) => x.status === 'rejected' && x.reason instanceof ConflictError));
  const c = store();
  const [x, y] = await Promise.all([c.acquireOwner('vd-twice', { node: 'c', cvmIp: 'ip-c' }), c.acquireOwner('vd-twice', { node: 'c', cvmIp: 'ip-c' })]);
  assert.equal(x.epoch, y.epoch);
});

test('etcd unreachable: UnavailableError', opts, async () => {
  const s = etcd.closeAfter(new EtcdMetaStore({ etcd: etcd.client(`http://${IP}:23799`), clock: new SystemClock() }));
  const t0 = Date.now();
  await assert.rejects(s.getEgroup('vd', 0), UnavailableError);
  await assert.rejects(s.acquireOwner('vd', { node: 'a', cvmIp: 'ip-a' }), UnavailableError);
  assert.equal(s.leaseValid(), false);
  console.log(`# unreachable etcd answered in ${Date.now() - t0} ms`);
});
