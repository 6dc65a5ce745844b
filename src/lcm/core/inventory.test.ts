import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inventoryOf, offerOf, precheckInputOf } from './inventory.ts';
import { planUpgrade } from './plan.ts';
import { prechecks } from './prechecks.ts';
import { parseManifest } from '../../shared/bundle/manifest.ts';
import type { CvmStatus } from '../../cvm/protocol/cluster.ts';

const manifest = parseManifest({
  format: 1, name: 'converge', version: '1.1.0', builtAt: '2026-12-05T00:00:00Z',
  components: { hypervisor: { name: 'h', version: '1.1.0', entry: 'hypervisor/hypervisor.mjs' }, cvm: { name: 'c', version: '1.1.0', entry: 'cvm/cvm.mjs' }, installer: { name: 'i', version: '1.1.0', entry: 'installer/installer.mjs' } },
  files: {}, minFirmware: { bmc: '3.0.0' }, compatibility: { '1.1.0': ['1.1.0'] }, upgradeFrom: ['1.0.0'], cvmProtocol: { version: 2, compatibleFrom: 1 },
});
const members = [1, 2, 3].map((i) => ({ serial: `SN${i}`, cvmIp: `10.0.1.${i}`, hostIp: `10.0.0.${i}` }));
const status = (ip: string): CvmStatus | null => (ip === '10.0.1.3' ? null : ({
  serial: 'x', cvmIp: ip, hostIp: '', hypervisorVersion: '1.0.0', nosVersion: '1.0.0', configured: true, clusterId: 'c', cluster: null,
  services: [{ name: 'genesis', state: 'up', pid: 1, restarts: 0 }, { name: 'stargate', state: ip === '10.0.1.2' ? 'restarting' : 'up', pid: 1, restarts: 0 }], disks: [],
}));

test('a manifest as LCM weighs it; a node whose CVM does not answer is unknown, and the plan refuses it by name', () => {
  const offer = offerOf(manifest, 'b'.repeat(64));
  assert.deepEqual([offer.version, offer.hypervisor, offer.nos, offer.upgradeFrom, offer.cvmProtocol, offer.minFirmware], ['1.1.0', '1.1.0', '1.1.0', ['1.0.0'], { version: 2, compatibleFrom: 1 }, { bmc: '3.0.0' }]);
  const inv = inventoryOf(members, status, (s) => ({ bmc: s === 'SN1' ? '3.1.0' : '2.0.0', bios: null }));
  assert.deepEqual(inv.map((n) => [n.serial, n.hypervisor, n.nos]), [['SN1', '1.0.0', '1.0.0'], ['SN2', '1.0.0', '1.0.0'], ['SN3', null, null]]);
  const { refusals } = planUpgrade(inv, offer);
  assert.deepEqual(refusals.map((r) => r.field), ['firmware.bmc', 'node.SN3']);
});

test('the pre-checks\' view: hosts from the VM service, services not up, VMs that run, resiliency split into restoring and stranded', () => {
  const input = precheckInputOf({
    members, status,
    hosts: [{ serial: 'SN1', hostIp: '', cvmIp: '', state: 'up', memoryMiB: 4096, freeMemoryMiB: 2048, vcpus: 4, freeVcpus: 2, vms: 1 }, { serial: 'SN2', hostIp: '', cvmIp: '', state: 'maintenance', memoryMiB: 4096, freeMemoryMiB: 4096, vcpus: 4, freeVcpus: 4, vms: 0 }],
    vms: [{ name: 'a', powerState: 'on', host: { serial: 'SN1' }, memoryMiB: 512, vcpus: 1 } as never, { name: 'b', powerState: 'off', host: null, memoryMiB: 512, vcpus: 1 } as never],
    resiliency: { ok: false, extentGroups: 10, atRf: 7, belowRf: 3, unavailable: 1, restoring: 2 } as never,
    pool: null, bundleProblems: [], token: { holder: null, upgradeRunning: false },
  });
  assert.deepEqual(input.nodes.map((n) => [n.serial, n.cvmUp, n.hostState, n.servicesDown]), [['SN1', true, 'up', []], ['SN2', true, 'maintenance', ['stargate']], ['SN3', false, 'down', []]]);
  assert.deepEqual(input.vms.map((v) => v.name), ['a']);
  assert.deepEqual(input.resiliency, { pending: 2, stranded: 1 });
  const fails = prechecks(input).filter((r) => r.status === 'FAIL').map((r) => r.id);
  assert.deepEqual(fails, ['cluster/nodes_up', 'cluster/services_up', 'storage/data_resiliency', 'hosts/no_maintenance', 'capacity/evacuation']);
});
