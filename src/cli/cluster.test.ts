import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resiliencyLines } from './cluster.ts';
import type { ResiliencyReport } from '../cvm/protocol/cluster.ts';

const base: ResiliencyReport = { ok: true, extentGroups: 24, atRf: 24, belowRf: 0, unavailable: 0, restoring: 0, containers: [], members: [], failedDisks: [], examples: [], strayRecords: 0 };
const repair = { passes: 3, lastPassAt: null, restored: 0, pending: 0, stranded: 0, orphansRemoved: 0, lastError: null };

test('data resiliency: OK only from the records, whatever the repair loops count', () => {
  assert.deepEqual(resiliencyLines(base, [{ ...repair, pending: 5 }]), ['Data resiliency: OK (every extent group at its RF: 24 of 24)']);
  assert.deepEqual(resiliencyLines(null, []), [], 'no cluster: no line');
  assert.deepEqual(resiliencyLines(new Error('the configuration store has no quorum'), []), ['Data resiliency: unknown (the configuration store has no quorum)']);
});

test('data resiliency below RF: how many, why, and examples', () => {
  const r: ResiliencyReport = {
    ...base, ok: false, atRf: 20, belowRf: 4, unavailable: 1,
    members: [{ node: 'N1', cvmIp: '10.0.0.1', state: 'up', detail: '', disks: [] }, { node: 'N3', cvmIp: '10.0.0.3', state: 'unconfigured', detail: 'answers unconfigured: it is no longer a member', disks: [] }],
    failedDisks: [{ node: 'N1', serial: 'D1' }],
    examples: [{ vdisk: 'fabric', egroup: 5, replicationFactor: 2, usable: 1, stale: 0, missing: ['N3/D9: CVM 10.0.0.3 is unconfigured'] }],
  };
  assert.deepEqual(resiliencyLines(r, [{ ...repair, pending: 3 }]), [
    'Data resiliency: 4 extent group(s) below RF of 24, 1 with no usable replica; the repair loops are restoring them',
    '    CVM 10.0.0.3 (N3) answers unconfigured: it is no longer a member',
    '    failed disks: N1/D1',
    '    e.g. vdisk fabric extent group 5: 1 of 2 usable in sync (N3/D9: CVM 10.0.0.3 is unconfigured)',
  ]);
  assert.equal(resiliencyLines(r, [repair])[0], 'Data resiliency: 4 extent group(s) below RF of 24, 1 with no usable replica');
});

test('stale replicas: the extent groups being restored are counted, and each example says how many it has', () => {
  const r: ResiliencyReport = {
    ...base, ok: false, atRf: 22, belowRf: 2, restoring: 2,
    examples: [{ vdisk: 'fabric', egroup: 0, replicationFactor: 2, usable: 2, stale: 1, missing: ['N3/D9: stale (being restored)'] }],
  };
  assert.deepEqual(resiliencyLines(r, []), [
    'Data resiliency: 2 extent group(s) below RF of 24, 2 being restored (stale replicas)',
    '    e.g. vdisk fabric extent group 0: 2 of 2 usable in sync, 1 stale (N3/D9: stale (being restored))',
  ]);
});
