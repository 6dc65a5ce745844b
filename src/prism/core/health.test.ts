import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ResiliencyReport } from '../../cvm/protocol/cluster.ts';
import type { Vm } from '../../cvm/protocol/vms.ts';
import { GiB, member, snapshot } from './fixtures.ts';
import { nccReport, reconcile, runChecks, type HealthInput } from './health.ts';

const okResiliency: ResiliencyReport = { ok: true, extentGroups: 10, atRf: 10, belowRf: 0, unavailable: 0, restoring: 0, containers: [], members: [], failedDisks: [], examples: [], strayRecords: 0 };
const input = (o: Partial<HealthInput> = {}): HealthInput => ({ snapshot: snapshot(), resiliency: okResiliency, vms: [], certificateDaysLeft: 300, now: Date.parse('2026-12-04T00:00:00Z'), ...o });
const status = (rs: ReturnType<typeof runChecks>, check: string, entity?: string): string[] => rs.filter((r) => r.check === check && (entity === undefined || r.entity.id === entity)).map((r) => r.status);

test('a healthy cluster passes every check', () => {
  const rs = runChecks(input());
  assert.deepEqual([...new Set(rs.map((r) => r.status))], ['PASS'], JSON.stringify(rs.filter((r) => r.status !== 'PASS')));
  for (const c of ['services/cvm_up_check', 'hardware/disk_online_check', 'hypervisor/host_reachable_check', 'storage/data_resiliency_check', 'storage/storage_pool_usage_check', 'metadata/configuration_store_quorum_check', 'security/certificate_expiry_check']) {
    assert.ok(rs.some((r) => r.check === c), c);
  }
});

test('each fault fails its check, for its entity, with a cause and a resolution', () => {
  const failedDisk = snapshot([member(1), member(2, { cvm: { ...member(2).cvm!, disks: [{ serial: 'D2', mediaType: 'SSD', capacityBytes: 10 * GiB, usedBytes: 0, ok: false }] } }), member(3)]);
  const rs = runChecks(input({ snapshot: failedDisk }));
  assert.deepEqual(status(rs, 'hardware/disk_online_check', 'D2'), ['FAIL']);
  assert.deepEqual(status(rs, 'hardware/disk_online_check', 'D1'), ['PASS']);
  const fail = rs.find((r) => r.status === 'FAIL')!;
  assert.match(fail.cause, /failed/);
  assert.match(fail.resolution, /Replace the disk/);

  const down = snapshot([member(1), member(2, { cvm: null, problems: ['CVM 10.0.1.2: does not answer (ECONNREFUSED)'] }), member(3)]);
  assert.deepEqual(status(runChecks(input({ snapshot: down })), 'services/cvm_up_check', '10.0.1.2'), ['FAIL']);
  const noQuorum = snapshot();
  noQuorum.store = { members: [], healthy: 1, quorum: false };
  assert.deepEqual(status(runChecks(input({ snapshot: noQuorum })), 'metadata/configuration_store_quorum_check'), ['FAIL']);

  const full = (used: number): string[] => {
    const s = snapshot();
    s.pool!.usage.usedBytes = used * s.pool!.usage.capacityBytes;
    return status(runChecks(input({ snapshot: s })), 'storage/storage_pool_usage_check');
  };
  assert.deepEqual([full(0.74), full(0.8), full(0.95)], [['PASS'], ['WARN'], ['FAIL']]);

  assert.deepEqual(status(runChecks(input({ resiliency: { ...okResiliency, ok: false, belowRf: 3, restoring: 3 } })), 'storage/data_resiliency_check'), ['WARN']);
  assert.deepEqual(status(runChecks(input({ resiliency: { ...okResiliency, ok: false, belowRf: 3, unavailable: 1 } })), 'storage/data_resiliency_check'), ['FAIL']);
  assert.deepEqual(status(runChecks(input({ resiliency: null })), 'storage/data_resiliency_check'), ['WARN'], 'unknown is not a pass');
  assert.deepEqual([20, 3].map((d) => status(runChecks(input({ certificateDaysLeft: d })), 'security/certificate_expiry_check')[0]), ['WARN', 'FAIL']);
  const stuck = { uuid: 'vm-1', name: 'db', haBlocked: 'no host has 8 GiB free' } as Vm;
  assert.deepEqual(status(runChecks(input({ vms: [stuck] })), 'vm/vm_ha_restart_check', 'vm-1'), ['FAIL']);
});

test('alerts: raised when a check fails, updated while it does, resolved on their own when it passes; acknowledged ones too', () => {
  const t0 = Date.parse('2026-12-04T00:00:00Z');
  const bad = snapshot([member(1, { cvm: { ...member(1).cvm!, disks: [{ serial: 'D1', mediaType: 'SSD', capacityBytes: 10 * GiB, usedBytes: 0, ok: false }] } }), member(2), member(3)]);
  const raised = reconcile([], runChecks(input({ snapshot: bad })), t0);
  assert.equal(raised.length, 1);
  const a = raised[0]!;
  assert.deepEqual([a.check, a.severity, a.entity.id, a.resolved, a.acknowledged], ['hardware/disk_online_check', 'critical', 'D1', false, false]);
  assert.deepEqual(reconcile(raised, runChecks(input({ snapshot: bad })), t0 + 30_000), [], 'still failing the same way: no change');
  const acked = [{ ...a, acknowledged: true, acknowledgedBy: 'admin', acknowledgedAt: new Date(t0).toISOString() }];
  const cleared = reconcile(acked, runChecks(input()), t0 + 60_000);
  assert.equal(cleared.length, 1);
  assert.deepEqual([cleared[0]!.resolved, cleared[0]!.resolvedBy, cleared[0]!.acknowledged], [true, 'auto', true]);
  const again = reconcile(cleared, runChecks(input({ snapshot: bad })), t0 + 90_000);
  assert.equal(again.length, 1);
  assert.notEqual(again[0]!.id, a.id, 'a new alert when it fails again');
  // an entity no check names any more (a node removed): its alert resolves
  assert.equal(reconcile(raised, runChecks(input({ snapshot: snapshot([member(2), member(3)]) })), t0 + 1).find((x) => x.id === a.id)?.resolved, true);
});

test("the NCC-style report: a line per check and entity, the counts, then what is not PASS in detail", () => {
  const bad = snapshot([member(1, { host: null, problems: ['host 10.0.0.1: does not answer'] }), member(2), member(3)]);
  const text = nccReport(runChecks(input({ snapshot: bad })));
  assert.match(text, /^\/health_checks\/hypervisor\/host_reachable_check +host 10\.0\.0\.1 \(SN1\) +\[ FAIL \]$/m);
  assert.match(text, /^\| FAIL {4}\| 1 {11}\|$/m);
  assert.match(text, /Detailed information for hypervisor\/host_reachable_check:\nFAIL: host 10\.0\.0\.1 \(SN1\): host 10\.0\.0\.1: does not answer\nCause: .+\nResolution: .+/);
});
