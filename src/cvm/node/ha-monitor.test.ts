/**
 * The HA monitor with fakes of its ports (a VM service, host agents, BMCs and a record store) on a
 * virtual clock: a host that stops answering is fenced after 10 s, then its VMs restart with their
 * epoch raised; a fence that fails restarts nothing and says why; a new leader's monitor carries on
 * from the persisted records; stop() ends the loop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { VirtualClock } from '../../shared/clock.ts';
import { UnavailableError } from '../../shared/errors.ts';
import type { Vm, VmHost } from '../protocol/vms.ts';
import type { FenceRecord, ReportedVm } from '../core/ha.ts';
import { host, simplePlace, vm } from '../core/ha.fixtures.ts';
import { HaMonitor, type HaEvent, type HaPorts } from './ha-monitor.ts';

class FakeCluster implements HaPorts {
  readonly vms = new Map<string, Vm>();
  readonly hosts: VmHost[];
  readonly down = new Set<string>();
  readonly bmcBroken = new Set<string>();
  readonly poweredOff = new Set<string>();
  readonly records = new Map<string, FenceRecord>();
  readonly events: HaEvent[] = [];
  readonly fenced: string[] = [];
  readonly restarted: { vm: string; host: string; epoch: number }[] = [];

  constructor(serials: string[], vms: Vm[]) {
    this.hosts = serials.map((s) => host(s));
    for (const v of vms) this.vms.set(v.uuid, v);
  }

  view(): Promise<{ hosts: VmHost[]; vms: Vm[] }> {
    const vms = [...this.vms.values()];
    const used = (h: string): number => vms.filter((v) => v.host?.serial === h).reduce((a, v) => a + v.memoryMiB, 0);
    return Promise.resolve({ hosts: this.hosts.map((h) => ({ ...h, freeMemoryMiB: h.memoryMiB - used(h.serial) })), vms });
  }
  pollHost(h: VmHost): Promise<ReportedVm[]> {
    if (this.down.has(h.serial) || this.poweredOff.has(h.serial)) return Promise.reject(new Error('connect ECONNREFUSED'));
    return Promise.resolve([...this.vms.values()].filter((v) => v.host?.serial === h.serial).map((v) => ({ uuid: v.uuid, state: 'running' })));
  }
  fence(serial: string): Promise<unknown> {
    this.fenced.push(serial);
    if (this.bmcBroken.has(serial)) return Promise.reject(new UnavailableError(`could not list its systems through the BMC at bmc-${serial}: ECONNREFUSED`));
    this.poweredOff.add(serial);
    return Promise.resolve({ sent: true });
  }
  powerOn(serial: string): Promise<unknown> {
    this.poweredOff.delete(serial);
    return Promise.resolve({ sent: true });
  }
  restartVm(uuid: string, h: string, epoch: number): Promise<unknown> {
    const v = this.vms.get(uuid);
    if (!v || v.epoch !== epoch - 1) return Promise.reject(new Error('epoch moved on'));
    this.vms.set(uuid, { ...v, host: { serial: h, hostIp: `ip-${h}` }, epoch });
    this.restarted.push({ vm: uuid, host: h, epoch });
    return Promise.resolve();
  }
  loadFenceRecords(): Promise<FenceRecord[]> {
    return Promise.resolve([...this.records.values()]);
  }
  saveFenceRecord(r: FenceRecord): Promise<void> {
    this.records.set(r.host, r);
    return Promise.resolve();
  }
  deleteFenceRecord(h: string): Promise<void> {
    this.records.delete(h);
    return Promise.resolve();
  }
  record(e: HaEvent): void {
    this.events.push(e);
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await tick();
}

/** Runs the monitor's loop for ms of virtual time, a poll at a time. */
async function run(clock: VirtualClock, ms: number, step = 500): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    await settle();
  }
}

test('a host that stops answering: fenced after 10 s, then its HA VMs restart elsewhere with the epoch raised', async () => {
  const clock = new VirtualClock(0);
  const c = new FakeCluster(['a', 'b', 'c'], [vm('v1', { on: 'a' }), vm('v2', { on: 'a', ha: false }), vm('v3', { on: 'b' })]);
  const m = new HaMonitor({ ports: c, place: simplePlace, clock, pollMs: 1000 });
  await m.start();
  await run(clock, 3000);
  c.down.add('a');
  await run(clock, 9000);
  assert.deepEqual(c.fenced, [], 'not yet: 10 s without an answer');
  await run(clock, 4000);
  assert.deepEqual(c.fenced, ['a']);
  assert.deepEqual(c.restarted, [{ vm: 'v1', host: 'c', epoch: 2 }]);
  assert.equal(m.liveness('a'), 'fenced');
  assert.equal(c.records.get('a')?.state, 'fenced');
  assert.ok(c.events.some((e) => e.kind === 'not-restarted' && e.vm === 'v2'));
  assert.ok(c.events.some((e) => e.kind === 'fence-done' && e.ok));
  assert.ok(c.events.some((e) => e.kind === 'restart-done' && e.ok && e.vm === 'v1'));
  // powered on through the cluster: back once it answers with nothing running
  c.down.delete('a');
  c.vms.set('v2', { ...c.vms.get('v2')!, host: null, powerState: 'off' });
  await m.powerOn('a');
  await run(clock, 2000);
  assert.equal(m.liveness('a'), 'up');
  assert.equal(c.records.has('a'), false);
  await m.stop();
  assert.equal(clock.pending, 0, 'no timer left');
});

test('a fence that fails: nothing restarts, the VM is ha-blocked with the BMC\'s reason, the fence is retried', async () => {
  const clock = new VirtualClock(0);
  const c = new FakeCluster(['a', 'b', 'c'], [vm('v1', { on: 'a' })]);
  c.bmcBroken.add('a');
  const m = new HaMonitor({ ports: c, place: simplePlace, clock, pollMs: 1000 });
  await m.start();
  c.down.add('a');
  await run(clock, 30_000);
  assert.deepEqual(c.restarted, []);
  assert.ok(c.fenced.length >= 3, `${c.fenced.length} attempts`);
  const blocked = c.events.filter((e) => e.kind === 'ha-blocked');
  assert.equal(blocked.length, 1);
  assert.match(blocked[0]!.kind === 'ha-blocked' ? blocked[0]!.reason : '', /could not be fenced \(could not list its systems through the BMC at bmc-a: ECONNREFUSED\)/);
  assert.equal(c.records.get('a')?.state, 'fencing');
  await m.stop();
});

test('a new leader carries on from the persisted records: a "fencing" host is fenced again and its VMs restart once', async () => {
  const clock = new VirtualClock(100_000);
  const c = new FakeCluster(['a', 'b', 'c'], [vm('v1', { on: 'a' }), vm('v2', { on: 'a' })]);
  c.down.add('a');
  c.records.set('a', { host: 'a', state: 'fencing', since: 90_000, attempts: 1, reason: null });
  const m = new HaMonitor({ ports: c, place: simplePlace, clock, pollMs: 1000 });
  await m.start();
  await run(clock, 3000);
  assert.deepEqual(c.fenced, ['a'], 'fenced at once, not after another 10 s');
  assert.deepEqual(c.restarted.map((r) => r.vm).sort(), ['v1', 'v2']);
  assert.ok(c.restarted.every((r) => r.epoch === 2 && r.host !== 'a'));
  await m.stop();
});

test('stop() while a fence is in flight: its outcome is dropped, no restart, no timer left', async () => {
  const clock = new VirtualClock(0);
  const c = new FakeCluster(['a', 'b', 'c'], [vm('v1', { on: 'a' })]);
  let release: (() => void) | undefined;
  c.fence = (serial: string) => {
    c.fenced.push(serial);
    return new Promise((r) => { release = () => r({ sent: true }); });
  };
  const m = new HaMonitor({ ports: c, place: simplePlace, clock, pollMs: 1000 });
  await m.start();
  c.down.add('a');
  await run(clock, 12_000);
  assert.deepEqual(c.fenced, ['a']);
  const stopped = m.stop();
  release?.();
  await stopped;
  assert.deepEqual(c.restarted, []);
  assert.equal(clock.pending, 0);
});
