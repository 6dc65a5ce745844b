import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeStages, upgradeSummary } from './lcm.ts';
import type { StepKind, UpgradeRecord } from '../../../../src/lcm/protocol/lcm.ts';

const STEPS: StepKind[] = ['enter-maintenance', 'stop-cvm', 'install', 'restart', 'rejoin', 'resiliency', 'exit-maintenance'];
function record(o: Partial<UpgradeRecord> & { at?: number; state?: UpgradeRecord['state'] } = {}): UpgradeRecord {
  const now = '2026-12-05T00:00:00.000Z';
  const at = o.at ?? 3;
  return {
    id: 'u', to: '1.1.0', bundleSha256: '', state: 'running', pauseRequested: false, token: 'B', startedAt: now, updatedAt: now, finishedAt: null, error: null, events: [],
    plan: { to: '1.1.0', current: [], nodes: ['A', 'B', 'C'].map((s) => ({ serial: s, hostname: `node-${s}`, from: { hypervisor: '1.0.0', nos: '1.0.0', bundle: '1.0.0' }, steps: STEPS.map((kind) => ({ kind, detail: `${kind} detail` })) })) },
    nodes: [
      { serial: 'A', state: 'done', step: 6, since: now, error: null, issuedBy: null },
      { serial: 'B', state: 'running', step: at, since: now, error: null, issuedBy: 'x' },
      { serial: 'C', state: 'pending', step: -1, since: now, error: null, issuedBy: null },
    ],
    ...o,
  };
}

test('a node\'s steps in four boxes: done before the step\'s, the step\'s active (failed, paused), pending after', () => {
  const r = record();
  assert.deepEqual(nodeStages(r, 'A').map((b) => b.state), ['done', 'done', 'done', 'done']);
  assert.deepEqual(nodeStages(r, 'B').map((b) => [b.title, b.state]), [['Maintenance', 'done'], ['Install', 'done'], ['Restart', 'active'], ['Validate', 'pending']]);
  assert.equal(nodeStages(r, 'B')[2]?.detail, 'restart detail');
  assert.deepEqual(nodeStages(r, 'C').map((b) => b.state), ['pending', 'pending', 'pending', 'pending']);
  assert.deepEqual(nodeStages(record({ at: 1 }), 'B').map((b) => b.state), ['active', 'pending', 'pending', 'pending'], 'stop-cvm is still Maintenance');
  const failed = record({ state: 'failed', error: 'node-B: restart did not finish' });
  failed.nodes[1] = { ...failed.nodes[1]!, state: 'failed' };
  assert.deepEqual(nodeStages(failed, 'B').map((b) => b.state), ['done', 'done', 'failed', 'pending']);
  assert.equal(upgradeSummary(failed), 'Stopped at node-B\'s restart; Resume tries the step again.');
  assert.equal(nodeStages(record({ state: 'paused' }), 'B')[2]?.state, 'paused');
  assert.deepEqual(nodeStages(r, 'nope').map((b) => b.state), ['pending', 'pending', 'pending', 'pending']);
});

test('the headline says where the upgrade is', () => {
  assert.equal(upgradeSummary(record()), '1 of 3 nodes at 1.1.0; node-B holds the shutdown token.');
  assert.equal(upgradeSummary(record({ pauseRequested: true })), '1 of 3 nodes at 1.1.0; node-B holds the shutdown token (pauses after this node).');
  assert.equal(upgradeSummary(record({ state: 'succeeded' })), 'Every node runs 1.1.0 (3 upgraded).');
  assert.equal(upgradeSummary(record({ state: 'paused' })), 'Paused after 1 of 3 nodes; resume to go on.');
});
