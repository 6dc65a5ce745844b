import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../../shared/errors.ts';
import { HaTracker, planEvacuation, planReturn, type HaDecision } from './ha.ts';
import { host, simplePlace, vm } from './ha.fixtures.ts';

const kinds = (ds: HaDecision[]): string[] => ds.map((d) => (d.kind === 'host-state' ? `${d.kind}:${d.host}:${d.state}` : 'vm' in d ? `${d.kind}:${d.vm}` : `${d.kind}:${'host' in d ? d.host : d.record.host}`));

test('up → suspect after a missed poll → down after 10 s without an answer → fence, with its record first', () => {
  const t = new HaTracker(0);
  const view = { hosts: [host('a'), host('b')], vms: [vm('v1', { on: 'a' })] };
  t.answered('a', 0, [{ uuid: 'v1', state: 'running' }]);
  t.answered('b', 0, []);
  t.missed('a', 2000);
  assert.equal(t.liveness('a'), 'suspect');
  t.answered('b', 9000, []);
  assert.deepEqual(t.decide(9999, view, simplePlace), []);
  assert.equal(t.liveness('a'), 'suspect');
  t.answered('b', 10_000, []);
  const ds = t.decide(10_000, view, simplePlace);
  assert.deepEqual(kinds(ds), ['host-state:a:fencing', 'record-fence:a', 'fence:a']);
  assert.deepEqual(t.decide(10_500, view, simplePlace), [], 'decided once');
  t.fenceDone('a', 12_000, { ok: true });
  const after = t.decide(12_000, view, simplePlace);
  assert.deepEqual(kinds(after), ['host-state:a:fenced', 'restart:v1', 'record-fence:a']);
  const r = after.find((d) => d.kind === 'restart');
  assert.deepEqual(r, { kind: 'restart', vm: 'v1', name: 'vm-v1', host: 'b', from: 'a', epoch: 2 });
  assert.deepEqual(t.decide(12_100, view, simplePlace), [], 'the restart is in flight');
});

test('a down host without HA VMs is not fenced; a VM with HA off on a fenced host is not restarted (said once)', () => {
  const t = new HaTracker(0);
  const hosts = [host('a'), host('b'), host('c')];
  t.decide(0, { hosts, vms: [] }, simplePlace); // first seen at 0: each host has 10 s to answer
  t.answered('b', 10_000, []);
  t.answered('c', 10_000, []);
  const ds = t.decide(10_000, { hosts, vms: [vm('v1', { on: 'a', ha: false }), vm('v2', { on: 'c' })] }, simplePlace);
  assert.deepEqual(kinds(ds), ['host-state:a:down']);
  // with an HA VM too, it is fenced; the HA-off VM is said not restarted
  const vms = [vm('v1', { on: 'a', ha: false }), vm('v3', { on: 'a' })];
  t.decide(10_100, { hosts, vms }, simplePlace);
  t.fenceDone('a', 11_000, { ok: true });
  const after = t.decide(11_000, { hosts, vms }, simplePlace);
  assert.ok(after.some((d) => d.kind === 'not-restarted' && d.vm === 'v1' && /HA is off/.test(d.reason)));
  assert.ok(after.some((d) => d.kind === 'restart' && d.vm === 'v3'));
  assert.ok(!t.decide(11_500, { hosts, vms }, simplePlace).some((d) => d.kind === 'not-restarted'));
});

test('no room anywhere: ha-blocked naming the placement\'s reason; restarted once room appears', () => {
  const t = new HaTracker(0);
  const big = vm('big', { on: 'a', memoryMiB: 6000 });
  const full = [host('a'), host('b', { freeMemoryMiB: 2000 })];
  t.answered('b', 10_000, []);
  t.decide(10_000, { hosts: full, vms: [big] }, simplePlace);
  t.fenceDone('a', 10_100, { ok: true });
  const ds = t.decide(10_100, { hosts: full, vms: [big] }, simplePlace);
  const b = ds.find((d) => d.kind === 'ha-blocked');
  assert.ok(b && b.kind === 'ha-blocked' && /no host can take it: no host that is up has 6000 MiB/.test(b.reason));
  assert.deepEqual(t.decide(10_200, { hosts: full, vms: [big] }, simplePlace), [], 'said once');
  const roomy = [host('a'), host('b')];
  assert.ok(t.decide(10_300, { hosts: roomy, vms: [big] }, simplePlace).some((d) => d.kind === 'restart' && d.host === 'b'));
});

test('restarts spread by what each placement already took (capacity counted as the plan goes)', () => {
  const t = new HaTracker(0);
  const hosts = [host('a'), host('b', { freeMemoryMiB: 4096 }), host('c', { freeMemoryMiB: 4096 })];
  const vms = [vm('v1', { on: 'a', memoryMiB: 3000 }), vm('v2', { on: 'a', memoryMiB: 3000 })];
  t.answered('b', 10_000, []);
  t.answered('c', 10_000, []);
  t.decide(10_000, { hosts, vms }, simplePlace);
  t.fenceDone('a', 10_000, { ok: true });
  const targets = t.decide(10_000, { hosts, vms }, simplePlace).flatMap((d) => (d.kind === 'restart' ? [d.host] : []));
  assert.deepEqual(targets, ['b', 'c']);
});

test('a failed restart is retried after restartRetryMs; the VM record moving on ends it', () => {
  const t = new HaTracker(0, [], { restartRetryMs: 5000 });
  const hosts = [host('a'), host('b')];
  let vms = [vm('v1', { on: 'a' })];
  t.answered('b', 10_000, []);
  t.decide(10_000, { hosts, vms }, simplePlace);
  t.fenceDone('a', 10_000, { ok: true });
  assert.ok(t.decide(10_000, { hosts, vms }, simplePlace).some((d) => d.kind === 'restart'));
  t.restartDone('v1', 11_000, { ok: false, reason: 'QEMU did not start' });
  assert.deepEqual(t.decide(12_000, { hosts, vms }, simplePlace).filter((d) => d.kind === 'restart'), []);
  const again = t.decide(16_000, { hosts, vms }, simplePlace).find((d) => d.kind === 'restart');
  assert.equal(again?.kind === 'restart' ? again.epoch : 0, 3, 'a retry raises the epoch again');
  vms = [vm('v1', { on: 'b', epoch: 3 })];
  t.restartDone('v1', 17_000, { ok: true });
  assert.deepEqual(t.decide(30_000, { hosts, vms }, simplePlace).filter((d) => d.kind === 'restart'), []);
});

test('a fenced host that answers running VMs is fenced again; one powered on and empty comes back up', () => {
  const t = new HaTracker(0, [{ host: 'a', state: 'fenced', since: 1, attempts: 1, reason: null }]);
  const hosts = [host('a'), host('b')];
  t.answered('b', 100, []);
  assert.equal(t.liveness('a'), 'fenced', 'from its record');
  t.answered('a', 100, []);
  assert.equal(t.liveness('a'), 'fenced', 'not released: stays fenced');
  t.answered('a', 200, [{ uuid: 'ghost', state: 'running' }]);
  assert.equal(t.liveness('a'), 'down');
  const ds = t.decide(200, { hosts, vms: [vm('ghost', { on: 'a' })] }, simplePlace);
  assert.ok(ds.some((d) => d.kind === 'fence' && d.host === 'a'));
  t.fenceDone('a', 300, { ok: true });
  t.released('a', 400);
  t.decide(400, { hosts, vms: [] }, simplePlace);
  t.answered('a', 500, [{ uuid: 'ghost', state: 'off' }]);
  assert.equal(t.liveness('a'), 'up');
  const back = t.decide(500, { hosts, vms: [] }, simplePlace);
  assert.deepEqual(kinds(back), ['host-state:a:up', 'forget-fence:a']);
});

test('a leader rebuilt from a "fencing" record fences at once; hosts in maintenance are not fenced', () => {
  const t = new HaTracker(50_000, [{ host: 'a', state: 'fencing', since: 40_000, attempts: 2, reason: 'timeout' }]);
  const hosts = [host('a'), host('b'), host('m', { state: 'maintenance' })];
  t.answered('b', 50_000, []);
  const ds = t.decide(50_000, { hosts, vms: [vm('v1', { on: 'a' }), vm('v2', { on: 'm' })] }, simplePlace);
  assert.deepEqual(ds.filter((d) => d.kind === 'fence'), [{ kind: 'fence', host: 'a', attempt: 3 }]);
  t.answered('b', 61_000, []);
  const later = t.decide(61_000, { hosts, vms: [vm('v1', { on: 'a' }), vm('v2', { on: 'm' })] }, simplePlace);
  assert.ok(later.some((d) => d.kind === 'host-state' && d.host === 'm' && /maintenance: not fenced/.test(d.reason)));
  assert.ok(!later.some((d) => d.kind === 'fence'));
  assert.deepEqual(t.fenceRecords().map((r) => [r.host, r.state, r.attempts]), [['a', 'fencing', 3]]);
});

test('planEvacuation: largest first onto the hosts that are up, capacity counted as it goes', () => {
  const vms = [vm('s', { on: 'a', memoryMiB: 512 }), vm('l', { on: 'a', memoryMiB: 4000 }), vm('m', { on: 'a', memoryMiB: 2000 }), vm('off'), vm('other', { on: 'b' })];
  const hosts = [host('a'), host('b', { freeMemoryMiB: 5000 }), host('c', { freeMemoryMiB: 4500 }), host('d', { state: 'maintenance' })];
  const p = planEvacuation('a', vms, hosts, simplePlace);
  assert.deepEqual(p, { ok: true, migrations: [
    { vm: 'l', name: 'vm-l', from: 'a', to: 'b' },
    { vm: 'm', name: 'vm-m', from: 'a', to: 'c' },
    { vm: 's', name: 'vm-s', from: 'a', to: 'c' },
  ] });
});

test('planEvacuation refuses, naming the VM that fits nowhere', () => {
  const vms = [vm('huge', { on: 'a', memoryMiB: 7000 }), vm('s', { on: 'a', memoryMiB: 512 })];
  const p = planEvacuation('a', vms, [host('a'), host('b', { freeMemoryMiB: 6000 })], simplePlace);
  assert.equal(p.ok, false);
  assert.ok(!p.ok && p.vm.uuid === 'huge' && /VM vm-huge \(huge\) fits on no other host: no host that is up has 7000 MiB/.test(p.reason), JSON.stringify(p));
  const alone = planEvacuation('a', vms, [host('a')], simplePlace);
  assert.ok(!alone.ok && /no other host is up/.test(alone.reason));
  assert.deepEqual(planEvacuation('a', [], [host('a')], simplePlace), { ok: true, migrations: [] }, 'nothing to move: nothing needed');
});

test('planReturn: the VMs moved away go back while the host has room; the rest are said', () => {
  const home = host('a', { state: 'maintenance', freeMemoryMiB: 3000 });
  const vms = [vm('x', { on: 'b', memoryMiB: 2000 }), vm('y', { on: 'c', memoryMiB: 2000 }), vm('z', { on: 'a' }), vm('w')];
  const r = planReturn(home, ['x', 'y', 'z', 'w', 'gone'], vms, simplePlace);
  assert.deepEqual(r.migrations, [{ vm: 'x', name: 'vm-x', from: 'b', to: 'a' }]);
  assert.deepEqual(r.skipped.map((s) => [s.vm, s.reason.split(':')[0]]), [['y', 'the host cannot take it back'], ['z', 'already on the host'], ['w', 'the VM is off'], ['gone', 'the VM no longer exists']]);
});

test('PlaceFn is the seam: an InputError from it is the reason given', () => {
  const never = (): InputError => new InputError('host', 'affinity: must stay on a');
  const p = planEvacuation('a', [vm('v', { on: 'a' })], [host('a'), host('b')], never);
  assert.ok(!p.ok && /affinity: must stay on a/.test(p.reason));
});
