import { test } from 'node:test';
import assert from 'node:assert/strict';
import { precheckText, prechecks, type PrecheckInput } from './prechecks.ts';

const GiB = 1024 ** 3;
const healthy = (): PrecheckInput => ({
  nodes: [1, 2, 3].map((i) => ({ serial: `SN${i}`, hostname: `node-${i}`, hostUp: true, cvmUp: true, servicesDown: [], hostState: 'up', memoryMiB: 8192, freeMemoryMiB: 4096, vcpus: 8, freeVcpus: 6 })),
  vms: [{ name: 'a', host: 'SN1', memoryMiB: 2048, vcpus: 2 }, { name: 'b', host: 'SN1', memoryMiB: 2048, vcpus: 2 }],
  resiliency: { pending: 0, stranded: 0 },
  pool: { usedBytes: 10 * GiB, nodeCapacityBytes: { SN1: 40 * GiB, SN2: 40 * GiB, SN3: 40 * GiB } },
  bundleProblems: [],
  token: { holder: null, upgradeRunning: false },
});
const status = (i: PrecheckInput): Record<string, string> => Object.fromEntries(prechecks(i).map((r) => [r.id, r.status]));

test('a healthy cluster passes every pre-check', () => {
  const r = prechecks(healthy());
  assert.ok(r.every((x) => x.status === 'PASS'), JSON.stringify(r));
  const { text, ok } = precheckText(r);
  assert.equal(ok, true);
  assert.match(text, /^\/lcm_prechecks\/cluster\/nodes_up +\[ PASS \]$/m);
  assert.match(text, /PASS 8 {3}WARN 0 {3}FAIL 0/);
});

test('each failure stops the upgrade with its reason', () => {
  const i = healthy();
  i.nodes[1]!.cvmUp = false;
  i.nodes[2]!.servicesDown = ['stargate'];
  i.nodes[0]!.hostState = 'maintenance';
  i.resiliency = { pending: 12, stranded: 0 };
  i.bundleProblems = ['cvm/cvm.mjs: sha256 0a1b… does not match'];
  i.token = { holder: 'SN3', upgradeRunning: false };
  const r = prechecks(i);
  assert.deepEqual(status(i), {
    'cluster/nodes_up': 'FAIL', 'cluster/services_up': 'FAIL', 'storage/data_resiliency': 'FAIL', 'hosts/no_maintenance': 'FAIL',
    'capacity/evacuation': 'PASS', 'capacity/node_loss': 'PASS', 'lcm/bundle_checksums': 'FAIL', 'lcm/shutdown_token': 'FAIL',
  });
  const detail = (id: string): string => r.find((x) => x.id === id)?.detail ?? '';
  assert.equal(detail('cluster/nodes_up'), 'node-2: CVM down');
  assert.equal(detail('cluster/services_up'), 'node-3: stargate not up');
  assert.match(detail('storage/data_resiliency'), /^12 extent group\(s\) below their RF/);
  assert.match(detail('lcm/shutdown_token'), /held by SN3 with no upgrade running/);
  const { text, ok } = precheckText(r);
  assert.equal(ok, false);
  assert.match(text, /\/lcm_prechecks\/cluster\/nodes_up +\[ FAIL \]\n {4}node-2: CVM down/);
  assert.equal(status({ ...healthy(), resiliency: null })['storage/data_resiliency'], 'FAIL', 'not known is not OK');
});

test('capacity: a host whose VMs fit nowhere else, and data that would not fit without a node', () => {
  const i = healthy();
  i.vms.push({ name: 'big', host: 'SN1', memoryMiB: 6000, vcpus: 1 });
  const r = prechecks(i).find((x) => x.id === 'capacity/evacuation');
  assert.equal(r?.status, 'FAIL');
  assert.match(r?.detail ?? '', /node-1: big \(6000 MiB, 1 vCPU\) fit on no other host/);
  const tight = healthy();
  tight.pool = { usedBytes: 75 * GiB, nodeCapacityBytes: { SN1: 40 * GiB, SN2: 40 * GiB, SN3: 40 * GiB } };
  assert.equal(status(tight)['capacity/node_loss'], 'WARN');
  tight.pool.usedBytes = 90 * GiB;
  assert.equal(status(tight)['capacity/node_loss'], 'FAIL');
  // a host in maintenance takes no VMs: the others must
  const m = healthy();
  m.nodes[1]!.hostState = 'maintenance';
  m.nodes[2]!.freeMemoryMiB = 3000;
  assert.equal(status(m)['capacity/evacuation'], 'FAIL');
});
