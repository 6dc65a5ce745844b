import { test } from 'node:test';
import assert from 'node:assert/strict';
import { draftProblems, subnetCreateBody, vmCreateBody, vmRow, type V3Vm, type VmDraft } from './v3.ts';
import { parseV3SubnetCreate, parseV3VmCreate, vmEntity, type V3VmContext } from '../../../../src/prism/core/v3-vms.ts';
import type { Vm } from '../../../../src/cvm/protocol/vms.ts';

const ctx: V3VmContext = {
  cluster: { uuid: 'c0000000-0000-4000-8000-000000000001', name: 'lab' },
  hosts: [{ serial: 'SN1', hostIp: '10.0.0.1', uuid: 'h0000000-0000-4000-8000-000000000001', name: 'node-1' }],
  subnets: [{ uuid: '5ab0e7e1-0000-4000-8000-000000000001', name: 'red', vlanId: 10, cidr: '10.10.0.0/24', gateway: '10.10.0.1', pool: { start: '10.10.0.10', end: '10.10.0.99' }, dns: [], leases: {} }],
  images: [{ uuid: '1a6e0000-0000-4000-8000-000000000001', name: 'guest', format: 'raw', vdisk: 'image-guest', sizeBytes: 64 << 20, state: 'ready', source: 'file', createdAt: '2026-12-01T00:00:00.000Z' }],
  containers: [{ uuid: 'ct', name: 'default' }],
};
const draft: VmDraft = { name: 'web-1', vcpus: 2, memoryMiB: 512, image: '1a6e0000-0000-4000-8000-000000000001', dataDiskMiB: 64, subnet: '5ab0e7e1-0000-4000-8000-000000000001', powerOn: true };

test('the wizard\'s body is one Prism\'s v3 takes: a disk from the image, a NIC on the subnet, powered on', () => {
  assert.deepEqual(draftProblems(draft, ['other']), {});
  const { request } = parseV3VmCreate(vmCreateBody(draft, ctx.cluster.uuid), ctx);
  assert.equal(request.name, 'web-1');
  assert.equal(request.vcpus, 2);
  assert.equal(request.memoryMiB, 512);
  assert.equal(request.powerOn, true);
  assert.deepEqual(request.disks.map((d) => ('image' in d ? d.image : undefined)), ['1a6e0000-0000-4000-8000-000000000001', undefined]);
  assert.deepEqual(request.disks.map((d) => ('sizeBytes' in d ? d.sizeBytes : undefined)), [undefined, 64 * 2 ** 20], 'an empty 64 MiB data disk');
  assert.equal(request.nics?.length, 1);
  assert.equal(parseV3VmCreate(vmCreateBody({ ...draft, subnet: '', powerOn: false }, ctx.cluster.uuid), ctx).request.nics?.length, 0);
  assert.equal(parseV3VmCreate(vmCreateBody({ ...draft, dataDiskMiB: 0 }, ctx.cluster.uuid), ctx).request.disks.length, 1);
});

test('a draft\'s problems name its fields', () => {
  assert.deepEqual(Object.keys(draftProblems({ ...draft, name: '-x', vcpus: 0, memoryMiB: 1.5, image: '', dataDiskMiB: -1 }, [])).sort(), ['dataDiskMiB', 'image', 'memoryMiB', 'name', 'vcpus']);
  assert.match(draftProblems(draft, ['web-1']).name ?? '', /exists/);
});

test('the subnet form\'s body is one Prism\'s v3 takes', () => {
  const { request } = parseV3SubnetCreate(subnetCreateBody({ name: 'blue', vlanId: '20', cidr: '10.20.0.0/24', gateway: '10.20.0.1', poolStart: '10.20.0.10', poolEnd: '10.20.0.50' }, ctx.cluster.uuid), ctx);
  assert.deepEqual({ ...request }, { name: 'blue', vlanId: 20, cidr: '10.20.0.0/24', gateway: '10.20.0.1', pool: { start: '10.20.0.10', end: '10.20.0.50' } });
});

test('a VM\'s row comes from the entity the server gives', () => {
  const vm: Vm = { uuid: 'v0000000-0000-4000-8000-000000000001', name: 'web-1', specVersion: 2, vcpus: 2, memoryMiB: 512, disks: [{ vdisk: 'vm-web-1-0', bus: 'virtio-scsi', sizeBytes: 64 << 20, image: 'guest' }], nics: [{ mac: '52:54:00:00:00:01', subnetUuid: '5ab0e7e1-0000-4000-8000-000000000001', ip: '10.10.0.10' }], ha: true, powerState: 'on', host: { serial: 'SN1', hostIp: '10.0.0.1' }, epoch: 1, runtimeState: 'running', createdAt: '2026-12-01T00:00:00.000Z' };
  const row = vmRow(vmEntity(vm, ctx) as unknown as V3Vm);
  assert.deepEqual(row, { uuid: vm.uuid, name: 'web-1', power: 'ON', host: 'node-1', vcpus: 2, memoryMiB: 512, ips: ['10.10.0.10'], disks: 1 });
});
