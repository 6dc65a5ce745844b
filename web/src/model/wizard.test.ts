import { test } from 'node:test';
import assert from 'node:assert/strict';
import { imageNodesSchema } from '../../../src/foundation/protocol/api.ts';
import type { DiscoverBlock, ValidationReport } from '../../../src/foundation/protocol/deploy.ts';
import { makePlan } from '../../../src/foundation/core/ip-plan.ts';
import { blockers, currentPlan, imageBodyOf, initialWizard, planInputOf, reachable, wizardReducer, type WizardAction, type WizardState } from './wizard.ts';

const node = (serial: string, ip: string, configured = false): DiscoverBlock['nodes'][number] => ({
  node_uuid: `u-${serial}`, node_serial: serial, node_position: 'A', ipv6_address: 'fe80::1', ipmi_mac: '00:00:00:00:00:01', ipmi_ip: ip,
  hypervisor: configured ? 'kvm' : null, hypervisor_version: null, svm_ip: null, nos_version: configured ? '1.0.0' : null, cluster_id: null, configured,
  model: 'CVG-H1065', foundation_version: '0.1.0', current_cvm_vlan_tag: null,
});
const BLOCKS: DiscoverBlock[] = [{ block_id: 'B1', model: 'CVG-H1065', chassis_n: 4, nodes: [node('S1', '127.10.0.1'), node('S2', '127.10.0.2'), node('S3', '127.10.0.3'), node('S4', '127.10.0.4', true)] }];
const report = (fail: string[] = []): ValidationReport => ({
  profile: 'lab', verdict: fail.length ? 'FAIL' : 'PASS', cluster: [], counts: { PASS: 0, WARN: 0, FAIL: fail.length },
  nodes: ['S1', 'S2', 'S3', 'S4'].map((serial) => ({
    serial, verdict: fail.includes(serial) ? 'FAIL' : 'PASS', excluded: fail.includes(serial), overridden: false,
    checks: fail.includes(serial) ? [{ check: 'disk.health', verdict: 'FAIL', measured: 'S400 Critical (slot 0)', threshold: 'OK', remedy: 'replace the disk' }] : [],
  })),
});
const run = (s: WizardState, ...as: WizardAction[]): WizardState => as.reduce(wizardReducer, s);
/** Foundation's own plan check, without the network probe. */
const checked = (s: WizardState): WizardAction => ({ type: 'planChecked', input: planInputOf(s), result: makePlan(planInputOf(s)) });

test('the steps open one after the other, each once its answers are usable', () => {
  let s = initialWizard();
  assert.deepEqual(reachable(s), ['discover']);
  assert.deepEqual(blockers(s), ['discover the nodes first']);
  s = run(s, { type: 'discovered', blocks: BLOCKS });
  assert.deepEqual(s.selected, ['S1', 'S2', 'S3'], 'a node already in a cluster is not selected');
  assert.equal(s.software.rf, '2');
  assert.deepEqual(reachable(s), ['discover', 'validate']);
  s = run(s, { type: 'go', step: 'network' });
  assert.equal(s.step, 'discover', 'a step past a blocked one does not open');
  s = run(s, { type: 'go', step: 'validate' }, { type: 'validated', report: report(['S2']) });
  assert.deepEqual(blockers(s), ['node S2 FAILs disk.health (S400 Critical (slot 0)): deselect it, or override']);
  s = run(s, { type: 'override', serial: 'S2', on: true });
  assert.deepEqual(blockers(s), []);
  s = run(s, { type: 'go', step: 'network' }, { type: 'network', field: 'hostStart', value: '127.30.0.1' }, { type: 'network', field: 'cvmStart', value: '127.30.1.1' }, { type: 'network', field: 'gateway', value: '127.30.255.254' });
  assert.deepEqual(blockers(s), ['check the plan']);
  s = run(s, checked(s));
  assert.deepEqual(blockers(s), []);
  assert.deepEqual(currentPlan(s)?.nodes.map((n) => `${n.serial} ${n.bmcIp} ${n.hostIp} ${n.cvmIp} ${n.hostname}`), ['S1 127.10.0.1 127.30.0.1 127.30.1.1 node-1', 'S2 127.10.0.2 127.30.0.2 127.30.1.2 node-2', 'S3 127.10.0.3 127.30.0.3 127.30.1.3 node-3']);
  // a changed answer makes the checked plan stale
  const changed = run(s, { type: 'network', field: 'cvmStart', value: '127.30.2.1' });
  assert.deepEqual(blockers(changed), ['the answers changed since the plan was checked: check it again']);
  assert.equal(imageBodyOf(changed), null);
  s = run(s, { type: 'go', step: 'software' }, { type: 'bundles', names: ['converge-0.9.0.tar.gz', 'converge-1.0.0.tar.gz'] });
  assert.equal(s.software.bundle, 'converge-1.0.0.tar.gz', 'the newest bundle by default');
  assert.deepEqual(blockers(run(s, { type: 'software', patch: { rf: '3', vcpus: 'lots' } })), ['CVM vCPUs: a whole number from 1 to 128', 'RF3 needs at least 5 nodes; 3 selected']);
  s = run(s, { type: 'go', step: 'review' }, { type: 'go', step: 'deploy' });
  assert.equal(s.step, 'deploy');
});

test('the plan\'s errors block the network step, naming node and field', () => {
  let s = run(initialWizard(), { type: 'discovered', blocks: BLOCKS }, { type: 'validated', report: report() }, { type: 'network', field: 'hostStart', value: '10.1.0.1' });
  s = run(s, checked(s));
  assert.ok(blockers(s, 'network').length > 0);
  assert.match(blockers(s, 'network')[0] ?? '', /hostIp|host/);
  assert.match(blockers(s, 'review').join('\n'), /^Network: /m);
});

test('the image_nodes body: what Foundation accepts, with the plan\'s addresses, the overrides and the cluster', () => {
  let s = run(initialWizard(), { type: 'discovered', blocks: BLOCKS }, { type: 'validated', report: report(['S3']) }, { type: 'override', serial: 'S3', on: true },
    { type: 'network', field: 'hostStart', value: '127.30.0.1' }, { type: 'network', field: 'cvmStart', value: '127.30.1.1' }, { type: 'network', field: 'gateway', value: '127.30.255.254' },
    { type: 'network', field: 'dns', value: '127.0.0.53, 127.0.0.54' }, { type: 'bundles', names: ['converge-1.0.0.tar.gz'] });
  s = run(s, checked(s));
  const body = imageBodyOf(s)!;
  const parsed = imageNodesSchema.parse(body);
  assert.equal(parsed.nos_package, 'converge-1.0.0.tar.gz');
  assert.deepEqual(parsed.blocks[0]?.nodes.map((n) => [n.hypervisor_ip, n.cvm_ip, n.ipmi_ip, n.ipmi_configure_now, n.override_validation]), [
    ['127.30.0.1', '127.30.1.1', '127.10.0.1', false, false], ['127.30.0.2', '127.30.1.2', '127.10.0.2', false, false], ['127.30.0.3', '127.30.1.3', '127.10.0.3', false, true],
  ]);
  assert.deepEqual(parsed.clusters.map((c) => [c.cluster_name, c.cluster_members.join(','), c.cluster_init_now, c.redundancy_factor, c.cvm_dns_servers?.join(',')]), [['converge-lab', '127.30.1.1,127.30.1.2,127.30.1.3', true, 2, '127.0.0.53,127.0.0.54']]);
  const imagingOnly = imageNodesSchema.parse(imageBodyOf(run(s, { type: 'software', patch: { createCluster: false } })));
  assert.deepEqual(imagingOnly.clusters, []);
  // a new BMC start moves the BMCs: the body asks Foundation to configure them
  let moved = run(s, { type: 'network', field: 'bmcStart', value: '127.10.1.1' });
  moved = run(moved, checked(moved));
  assert.deepEqual(imageNodesSchema.parse(imageBodyOf(moved)).blocks[0]?.nodes.map((n) => [n.ipmi_ip, n.ipmi_configure_now]), [['127.10.1.1', true], ['127.10.1.2', true], ['127.10.1.3', true]]);
});
