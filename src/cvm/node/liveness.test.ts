import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../shared/clock.ts';
import { Liveness, type DeclareResult, type LivenessStore, type WatchHandlers } from './liveness.ts';
import type { LivenessEvent } from '../core/failure-detector.ts';

/** A store in memory: leases expire when told (expire(node)), watches see every change. */
class FakeStore implements LivenessStore {
  data = new Map<string, string>();
  leased = new Map<string, string>();
  watchers: { prefix: string; put: (k: string, v: string) => void; del: (k: string) => void }[] = [];
  creates = 0;

  /** Keys whose changes no watch reports (a view that lags). */
  muted = new Set<string>();

  private set(k: string, v: string): void {
    this.data.set(k, v);
    if (this.muted.has(k)) return;
    for (const w of this.watchers) if (k.startsWith(w.prefix)) w.put(k, v);
  }

  del(k: string): void {
    if (!this.data.delete(k)) return;
    for (const w of this.watchers) if (k.startsWith(w.prefix)) w.del(k);
  }

  putLeased(key: string, value: string): Promise<{ revoke(): Promise<void> }> {
    this.set(key, value);
    return Promise.resolve({ revoke: () => Promise.resolve(this.del(key)) });
  }

  declareDown(downKey: string, aliveKey: string, value: string): Promise<DeclareResult> {
    this.creates++;
    if (this.data.has(downKey)) return Promise.resolve('exists');
    if (this.data.has(aliveKey)) return Promise.resolve('alive');
    this.set(downKey, value);
    return Promise.resolve('declared');
  }

  delete(key: string): Promise<void> {
    this.del(key);
    return Promise.resolve();
  }

  listAndWatch(prefix: string, on: WatchHandlers): Promise<{ snapshot: Record<string, string>; cancel(): Promise<void> }> {
    const w = { prefix, ...on };
    this.watchers.push(w);
    const snapshot = Object.fromEntries([...this.data].filter(([k]) => k.startsWith(prefix)));
    return Promise.resolve({ snapshot, cancel: () => Promise.resolve(void (this.watchers = this.watchers.filter((x) => x !== w))) });
  }
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

test('three CVMs: one lease expires → declared down once, everyone sees it down; it returns → cleared, everyone sees it up', async () => {
  const store = new FakeStore();
  const clock = new VirtualClock(0);
  const members = ['A', 'B', 'C'];
  const events: Record<string, LivenessEvent[]> = { A: [], B: [], C: [] };
  const mk = (n: string): Liveness => {
    const l = new Liveness({ store, clock, self: { node: n, cvmIp: `ip-${n}` }, members: () => members, log: () => undefined, ttlS: 2 });
    l.on((e) => events[n]?.push(e));
    return l;
  };
  const [a, b, c] = [mk('A'), mk('B'), mk('C')];
  for (const l of [a, b, c]) await l.start();
  await settle();
  assert.ok(store.data.has('/converge/v2/alive/C'));
  assert.equal(a.isDown('C'), false);
  const before = store.creates;
  // C powered off: its lease expires and etcd deletes its key
  await c.stop();
  store.del('/converge/v2/alive/C'); // (already gone with the revoke; a no-op)
  await settle();
  assert.ok(a.isDown('C') && b.isDown('C'), 'down for everyone');
  assert.equal(store.creates - before, 1, 'B saw the declaration before the alive key went: it declares nothing');
  const rec = JSON.parse(store.data.get('/converge/v2/down/C') ?? '{}');
  assert.equal(rec.node, 'C');
  assert.ok(['A', 'B'].includes(rec.by));
  assert.deepEqual(events['A']?.map((e) => e.kind), ['down']);
  // C comes back: it clears its own declaration
  const c2 = mk('C');
  await c2.start();
  await settle();
  assert.equal(store.data.has('/converge/v2/down/C'), false);
  assert.equal(a.isDown('C'), false);
  assert.deepEqual(events['B']?.map((e) => e.kind), ['down', 'up']);
  for (const l of [a, b, c2]) await l.stop();
});

test('a member that never put an alive key is declared down after the grace period', async () => {
  const store = new FakeStore();
  const clock = new VirtualClock(0);
  const a = new Liveness({ store, clock, self: { node: 'A', cvmIp: 'ip-A' }, members: () => ['A', 'B'], log: () => undefined, ttlS: 2, graceMs: 5000 });
  await a.start();
  clock.advance(3000);
  await settle();
  assert.equal(a.isDown('B'), false);
  clock.advance(4000);
  await settle();
  assert.ok(a.isDown('B'));
  await a.stop();
});

test('a CVM whose view missed a live member\'s alive key does not declare it down (the declaration checks the key)', async () => {
  const store = new FakeStore();
  const clock = new VirtualClock(0);
  const logs: string[] = [];
  const a = new Liveness({ store, clock, self: { node: 'A', cvmIp: 'ip-A' }, members: () => ['A', 'B'], log: (m) => logs.push(m), ttlS: 2, graceMs: 5000 });
  await a.start();
  store.muted.add('/converge/v2/alive/B');
  const b = new Liveness({ store, clock, self: { node: 'B', cvmIp: 'ip-B' }, members: () => ['A', 'B'], log: () => undefined, ttlS: 2, graceMs: 5000 });
  await b.start();
  assert.ok(store.data.has('/converge/v2/alive/B'), "B's key is there; A was not told");
  for (let i = 0; i < 12; i++) {
    clock.advance(1000);
    await settle();
  }
  assert.ok(store.creates >= 1, 'A tried to declare B down');
  assert.equal(store.data.has('/converge/v2/down/B'), false, 'no down key for a live node');
  assert.equal(a.isDown('B'), false);
  assert.equal(b.isDown('B'), false);
  assert.equal(logs.filter((m) => m.includes('declared node B down')).length, 0);
  // and A now knows B is alive: no further attempts
  const tries = store.creates;
  for (let i = 0; i < 12; i++) {
    clock.advance(1000);
    await settle();
  }
  assert.equal(store.creates, tries);
  for (const l of [a, b]) await l.stop();
});
