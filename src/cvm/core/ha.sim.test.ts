/**
 * Deterministic simulation of HA (core/ha.ts) with fake hosts, fake BMCs, a fake network and a
 * virtual clock (ha.fixtures.ts): host failures, failed fences, partitions, two failures at
 * once, a leader change mid-fence; then any sequence of faults (fast-check) never puts a VM on two
 * live hosts, and once the faults stop every HA VM runs exactly once. A failing property prints
 * its seed and path (fast-check), which replays it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Sim } from './ha.fixtures.ts';

const restartsOf = (s: Sim): { vm: string; host: string; at: number }[] => s.decisions.flatMap((d) => (d.kind === 'restart' ? [{ vm: d.vm, host: d.host, at: d.at }] : []));

test('a host dies: fenced, then its VMs restart on the others within the time bound, each once', () => {
  const s = new Sim({ hosts: 3, vms: 6 });
  s.run(5000);
  s.crash('h1');
  const died = s.clock.now();
  s.run(40_000);
  assert.deepEqual(s.violations, []);
  const fence = s.decisions.find((d) => d.kind === 'fence');
  assert.ok(fence && fence.kind === 'fence' && fence.host === 'h1');
  const restarts = restartsOf(s);
  assert.deepEqual(restarts.map((r) => r.vm).sort(), ['v1', 'v4']);
  assert.ok(restarts.every((r) => r.host !== 'h1' && r.at >= fence.at + s.fenceMs), 'after the fence was confirmed');
  // bound: downAfter (10 s) + a poll (2 s) + the fence (3 s) + the next poll (2 s)
  assert.ok(restarts.every((r) => r.at - died <= 10_000 + 2 * s.pollMs + s.fenceMs), `restarted at ${restarts.map((r) => r.at - died).join(', ')} ms after the crash`);
  const where = s.placements();
  for (const v of s.vms.values()) assert.equal(where.get(v.uuid)?.length, 1, `${v.uuid} runs once`);
  assert.equal(s.vms.get('v1')!.epoch, 2, 'the restart raised the epoch');
  assert.equal(s.tracker.liveness('h1'), 'fenced');
  assert.equal(s.fences.get('h1')?.state, 'fenced');
});

test('a fence that fails restarts nothing: the VMs are ha-blocked with the reason, fencing is retried with backoff', () => {
  const s = new Sim({ hosts: 3, vms: 6 });
  s.run(5000);
  s.bmc('h1', false);
  s.crash('h1');
  s.run(120_000);
  assert.deepEqual(restartsOf(s), []);
  const blocked = s.decisions.filter((d) => d.kind === 'ha-blocked');
  assert.deepEqual(blocked.map((d) => (d.kind === 'ha-blocked' ? d.vm : '')).sort(), ['v1', 'v4'], 'said once per VM');
  assert.match(blocked[0]!.kind === 'ha-blocked' ? blocked[0]!.reason : '', /could not be fenced \(the BMC does not answer\)/);
  const attempts = s.decisions.filter((d) => d.kind === 'fence').map((d) => d.at);
  assert.ok(attempts.length >= 4, `${attempts.length} attempts`);
  const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
  assert.ok(gaps.every((g, i) => i === 0 || g >= gaps[i - 1]!), `backoff grows: ${gaps.join(', ')}`);
  // the BMC answers again: the next attempt fences, then the VMs restart
  s.bmc('h1', true);
  s.run(80_000);
  assert.deepEqual(restartsOf(s).map((r) => r.vm).sort(), ['v1', 'v4']);
  assert.deepEqual(s.violations, []);
});

test('a host cut off from the leader keeps running its VMs: it is fenced (its VMs stop) before they restart', () => {
  const s = new Sim({ hosts: 3, vms: 6 });
  s.run(5000);
  s.partition('h2');
  let ranUntilFence = true;
  for (let i = 0; i < 40; i++) {
    s.run(500);
    if (restartsOf(s).length === 0 && !s.h('h2').powered) ranUntilFence = false;
    // while no restart was decided the cut-off host still runs its VMs
    if (restartsOf(s).length === 0 && s.h('h2').powered) assert.equal(s.h('h2').running.size, 2);
  }
  assert.ok(ranUntilFence || !s.h('h2').powered);
  assert.equal(s.h('h2').powered, false, 'fenced through its BMC');
  assert.deepEqual(restartsOf(s).map((r) => r.vm).sort(), ['v2', 'v5']);
  assert.deepEqual(s.violations, []);
  // the network heals and the host is powered on again: it stays fenced until released, then comes back empty
  s.partition('h2', false);
  s.h('h2').powered = true; // someone pressed the power button (not through the cluster)
  s.run(10_000);
  assert.equal(s.tracker.liveness('h2'), 'fenced', 'answers, but nobody released it');
  s.tracker.released('h2', s.clock.now());
  s.run(4000);
  assert.equal(s.tracker.liveness('h2'), 'up');
  assert.equal(s.fences.has('h2'), false, 'its fence record is forgotten');
});

test('two hosts fail at once: both fenced, every VM restarted on the two left, never two copies', () => {
  const s = new Sim({ hosts: 4, vms: 8 });
  s.run(3000);
  s.crash('h0');
  s.partition('h3');
  s.run(40_000);
  assert.deepEqual(s.violations, []);
  assert.equal(s.tracker.liveness('h0'), 'fenced');
  assert.equal(s.tracker.liveness('h3'), 'fenced');
  const where = s.placements();
  for (const v of s.vms.values()) {
    assert.deepEqual(where.get(v.uuid)?.length, 1, `${v.uuid} runs once`);
    assert.ok(['h1', 'h2'].includes(where.get(v.uuid)![0]!));
  }
});

test('the leader changes while a fence is in flight: the new one fences again from the record, and restarts each VM once', () => {
  const s = new Sim({ hosts: 3, vms: 6, fenceMs: 4000 });
  s.run(3000);
  s.partition('h1');
  // until the fence is decided
  while (!s.decisions.some((d) => d.kind === 'fence')) s.run(500);
  assert.equal(s.fences.get('h1')?.state, 'fencing', 'persisted before the fence');
  s.run(1000);
  s.leaderChange();
  s.run(30_000);
  assert.deepEqual(s.violations, []);
  const fences = s.decisions.filter((d) => d.kind === 'fence');
  assert.equal(fences.length, 2, 'the new leader fenced again (ForceOff of an Off host is harmless)');
  const restarts = restartsOf(s);
  assert.deepEqual(restarts.map((r) => r.vm).sort(), ['v1', 'v4']);
  assert.ok(restarts.every((r) => r.at >= fences[1]!.at + s.fenceMs), 'after the new leader\'s fence');
});

test('the leader changes after the fence, before the restarts: they happen once, with the epoch raised once', () => {
  const s = new Sim({ hosts: 3, vms: 6, restartMs: 3000 });
  s.run(3000);
  s.crash('h1');
  while (restartsOf(s).length === 0) s.run(500);
  s.leaderChange();
  s.run(30_000);
  assert.deepEqual(s.violations, []);
  assert.deepEqual(restartsOf(s).map((r) => r.vm).sort(), ['v1', 'v4']);
  assert.equal(s.vms.get('v1')!.epoch, 2);
  assert.equal(s.tracker.liveness('h1'), 'fenced', 'from the record');
});

test('the leader cut off from most hosts fences nothing', () => {
  const s = new Sim({ hosts: 4, vms: 4 });
  s.run(3000);
  for (const h of ['h1', 'h2', 'h3']) s.partition(h);
  s.run(60_000);
  assert.equal(s.decisions.filter((d) => d.kind === 'fence').length, 0);
  assert.ok(s.decisions.some((d) => d.kind === 'ha-blocked' && /reaches only 1 of 4 hosts/.test(d.reason)));
  for (const h of ['h1', 'h2', 'h3']) s.partition(h, false);
  s.run(5000);
  assert.deepEqual(['h0', 'h1', 'h2', 'h3'].map((h) => s.tracker.liveness(h)), ['up', 'up', 'up', 'up']);
  assert.equal(s.placements().size, 4);
});

type Fault =
  | { at: number; kind: 'crash' | 'partition' | 'heal' | 'bmc-fail' | 'bmc-ok' | 'power-on'; host: number }
  | { at: number; kind: 'leader' };

const faultArb: fc.Arbitrary<Fault> = fc.oneof(
  fc.record({ at: fc.integer({ min: 0, max: 90_000 }), kind: fc.constantFrom('crash' as const, 'partition' as const, 'heal' as const, 'bmc-fail' as const, 'bmc-ok' as const, 'power-on' as const), host: fc.integer({ min: 0, max: 4 }) }),
  fc.record({ at: fc.integer({ min: 0, max: 90_000 }), kind: fc.constant('leader' as const) }),
);

test('property: for any faults, no VM runs on two live hosts; once they stop, every HA VM runs exactly once', () => {
  fc.assert(fc.property(fc.array(faultArb, { maxLength: 14 }), fc.integer({ min: 3, max: 5 }), fc.integer({ min: 250, max: 4000 }), (faults, hosts, fenceMs) => {
    const s = new Sim({ hosts, vms: 2 * hosts, fenceMs, pollMs: 1000 });
    for (const f of [...faults].sort((a, b) => a.at - b.at)) {
      s.run(Math.max(0, f.at - s.clock.now()));
      if (f.kind === 'leader') {
        s.leaderChange();
        continue;
      }
      const h = `h${f.host % hosts}`;
      if (f.kind === 'crash') s.crash(h);
      else if (f.kind === 'partition') s.partition(h);
      else if (f.kind === 'heal') s.partition(h, false);
      else if (f.kind === 'bmc-fail') s.bmc(h, false);
      else if (f.kind === 'bmc-ok') s.bmc(h, true);
      else s.powerOn(h);
      assert.deepEqual(s.violations, [], s.log.join('\n'));
    }
    s.run(30_000);
    assert.deepEqual(s.violations, [], s.log.join('\n'));
    // liveness: the faults stop; everything heals within a few minutes
    for (let i = 0; i < 6; i++) {
      s.healAll();
      s.run(30_000);
    }
    assert.deepEqual(s.violations, [], s.log.join('\n'));
    const where = s.placements();
    for (const v of s.vms.values()) {
      assert.equal(where.get(v.uuid)?.length, 1, `${v.uuid} runs once (on ${where.get(v.uuid)?.join(', ') ?? 'nothing'})\n${s.log.join('\n')}`);
      assert.equal(where.get(v.uuid)![0], v.host?.serial, `${v.uuid} runs where its record says`);
    }
  }), { numRuns: Number(process.env['SIM_RUNS'] ?? 200), ...(process.env['SIM_SEED'] ? { seed: Number(process.env['SIM_SEED']) } : {}) });
});
