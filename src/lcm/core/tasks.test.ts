import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planUpgrade } from './plan.ts';
import { STEP_OPERATION, UPGRADE_OPERATION, tasksOfUpgrade as tasksWith, upgradePercent } from './tasks.ts';
import type { UpgradeRecord } from '../protocol/lcm.ts';
import { advance, resumeUpgrade, startUpgrade, type NodeView, type Observation } from './upgrade.ts';
import type { BundleOffer, NodeInventory } from '../protocol/lcm.ts';

const offer: BundleOffer = { version: '1.1.0', hypervisor: '1.1.0', nos: '1.1.0', compatibility: { '1.1.0': ['1.1.0'] }, minFirmware: {}, sha256: 'f'.repeat(64) };
const target = { version: '1.1.0', hypervisor: '1.1.0', nos: '1.1.0', firmware: {} };
const inv: NodeInventory[] = ['SN1', 'SN2'].map((s) => ({ serial: s, hostname: `node-${s}`, hostIp: '', cvmIp: '', hypervisor: '1.0.0', nos: '1.0.0', bundle: '1.0.0', firmware: { bmc: null, bios: null } }));
const view = (o: Partial<NodeView> = {}): NodeView => ({ hostUp: true, cvmUp: true, servicesUp: true, hostState: 'up', hypervisor: '1.0.0', nos: '1.0.0', staged: null, firmware: { bmc: null, bios: null }, ...o });
const look = (now: number, sn1: Partial<NodeView>): Observation => ({ now, nodes: { SN1: view(sn1), SN2: view() }, resiliencyOk: true });
const CLUSTER = { uuid: 'c-uuid', name: 'lab' };
const iso = (s: number): string => new Date(s * 1000).toISOString();
const stepTaskUuid = (u: string, serial: string, step: number): string => `${u}/${serial}/${step}`;
const tasksOfUpgrade = (r: UpgradeRecord, c: typeof CLUSTER): ReturnType<typeof tasksWith> => tasksWith(r, c, stepTaskUuid);

test('an upgrade is one task; each step a node reached is a subtask with its own times, done steps succeeded, the current one running', () => {
  const { plan } = planUpgrade(inv, offer);
  let rec = startUpgrade('u-1', plan, offer.sha256, 0);
  // SN1 takes the token at 1 s, is in maintenance at 2 s, its CVM stopped at 3 s: now installing
  for (const [t, seen] of [[1, {}], [2, { hostState: 'maintenance' }], [3, { hostState: 'maintenance', cvmUp: false }]] as const) rec = advance(rec, look(t, seen), target, 'd').record;
  const tasks = tasksOfUpgrade(rec, CLUSTER);
  const [up, ...steps] = tasks;
  assert.deepEqual([up?.uuid, up?.operation, up?.state, up?.parent, up?.entity], ['u-1', UPGRADE_OPERATION, 'running', null, { kind: 'cluster', uuid: 'c-uuid', name: 'lab' }]);
  assert.equal(up?.percent, upgradePercent(rec));
  assert.ok((up?.percent ?? 0) > 0 && (up?.percent ?? 100) < 50);
  assert.deepEqual(steps.map((s) => [s.operation, s.state, s.percent, s.parent]), [
    [STEP_OPERATION, 'succeeded', 100, 'u-1'], [STEP_OPERATION, 'succeeded', 100, 'u-1'], [STEP_OPERATION, 'running', 0, 'u-1'],
  ], 'maintenance and CVM stop done; install under way; SN2 has none yet');
  assert.deepEqual(steps.map((s) => [s.startedAt, s.finishedAt]), [[iso(0.001), iso(0.002)], [iso(0.002), iso(0.003)], [iso(0.003), null]]);
  assert.match(steps[2]?.message ?? '', /^node-SN1: .*boot disk/);
  assert.equal(steps[0]?.uuid, stepTaskUuid('u-1', 'SN1', 0));
  assert.equal(new Set(tasks.map((t) => t.uuid)).size, tasks.length, 'every task its own uuid');
  // the same record read again (another CVM drives): the same tasks
  assert.deepEqual(tasksOfUpgrade(structuredClone(rec), CLUSTER), tasks);
  assert.equal(tasksOfUpgrade({ ...rec, state: 'paused' }, CLUSTER)[0]?.state, 'paused', 'paused (v4: SUSPENDED)');
});

test('a step that failed is a failed subtask with the reason, and the upgrade failed; resumed, the step runs again', () => {
  const { plan } = planUpgrade(inv, offer);
  let rec = startUpgrade('u-1', plan, offer.sha256, 0, { restart: 10_000 });
  const down = { hostState: 'maintenance', cvmUp: false, hostUp: false, staged: '1.1.0' };
  for (const [t, seen] of [[1, {}], [2, { hostState: 'maintenance' }], [3, { hostState: 'maintenance', cvmUp: false }], [4, { hostState: 'maintenance', cvmUp: false, staged: '1.1.0' }], [20, down]] as const) {
    rec = advance(rec, look(t * 1000, seen), target, 'd').record;
  }
  assert.equal(rec.state, 'failed');
  const [up, ...steps] = tasksOfUpgrade(rec, CLUSTER);
  assert.equal(up?.state, 'failed');
  assert.match(up?.error?.message ?? '', /restart did not finish/);
  assert.ok(up?.finishedAt);
  const failed = steps.at(-1);
  assert.deepEqual([failed?.state, failed?.error?.code], ['failed', 'CVG_ERR_LCM']);
  assert.match(failed?.error?.message ?? '', /node-SN1: restart did not finish within 10 s/);
  const again = tasksOfUpgrade(resumeUpgrade(rec, 30_000), CLUSTER);
  assert.deepEqual([again[0]?.state, again[0]?.finishedAt, again.at(-1)?.state, again.at(-1)?.uuid], ['running', null, 'running', failed?.uuid]);
});

test('a record written before step times were kept still gives tasks (their times: the step\'s since)', () => {
  const { plan } = planUpgrade(inv, offer);
  let rec = startUpgrade('u-1', plan, offer.sha256, 0);
  for (const [t, seen] of [[1, {}], [2, { hostState: 'maintenance' }]] as const) rec = advance(rec, look(t * 1000, seen), target, 'd').record;
  const old = { ...rec, nodes: rec.nodes.map(({ startedAt: _s, finished: _f, ...n }) => n) };
  const steps = tasksOfUpgrade(old, CLUSTER).slice(1);
  assert.deepEqual(steps.map((s) => s.state), ['succeeded', 'running']);
  assert.ok(steps.every((s) => s.startedAt === rec.nodes[0]?.since));
});

test('the upgrade\'s percent: done nodes, and the steps reached of the one under way', () => {
  const { plan } = planUpgrade([...inv, { ...inv[0]!, serial: 'SN3', hostname: 'node-SN3' }], offer);
  const rec = startUpgrade('u-1', plan, offer.sha256, 0);
  const steps = plan.nodes[0]?.steps.length ?? 0;
  assert.equal(steps, 7);
  const at = { ...rec, nodes: rec.nodes.map((n, i) => (i === 0 ? { ...n, state: 'done' as const } : i === 1 ? { ...n, state: 'running' as const, step: 3 } : n)) };
  assert.equal(upgradePercent(at), 48, '(1 + 3/7) / 3');
  assert.equal(upgradePercent({ ...at, nodes: at.nodes.map((n) => ({ ...n, state: 'done' as const })) }), 99, 'never 100 before it says succeeded');
  assert.equal(upgradePercent({ ...at, state: 'succeeded' }), 100);
});
