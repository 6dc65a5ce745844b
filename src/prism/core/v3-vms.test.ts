import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConflictError, InputError } from '../../shared/errors.ts';
import type { Image, Subnet, Task, Vm } from '../../cvm/protocol/vms.ts';
import {
  diskUuid, imageEntity, nicUuid, parseV3ImageCreate, parseV3SubnetCreate, parseV3VmCreate, parseV3VmUpdate, stableUuid, subnetEntity, vmAttrs, vmEntity, vmTaskOf, type V3VmContext,
} from './v3-vms.ts';

const CLUSTER = '00000000-0000-4000-8000-00000000c1c1';
const IMG = '11111111-1111-4111-8111-111111111111';
const NET = '22222222-2222-4222-8222-222222222222';
const SC = '33333333-3333-4333-8333-333333333333';
const subnet: Subnet = { uuid: NET, name: 'red', vlanId: 10, cidr: '10.10.0.0/24', gateway: '10.10.0.1', pool: { start: '10.10.0.10', end: '10.10.0.200' }, dns: ['10.10.0.53'], leases: { '10.10.0.10': '50:6b:8d:00:00:01' } };
const image: Image = { uuid: IMG, name: 'guest', format: 'raw', vdisk: `image-${IMG}`, sizeBytes: 64 << 20, state: 'ready', source: 'http://files/guest.img', createdAt: '2026-12-01T00:00:00.000Z' };
const ctx: V3VmContext = {
  cluster: { uuid: CLUSTER, name: 'lab' },
  hosts: [{ serial: 'S1', hostIp: '10.0.0.11', uuid: 'h-uuid-1', name: 'host-1' }],
  subnets: [subnet], images: [image], containers: [{ uuid: SC, name: 'default' }],
};
const vm: Vm & { lastTask: string } = {
  uuid: '44444444-4444-4444-8444-444444444444', name: 'web', specVersion: 3, vcpus: 2, memoryMiB: 512,
  disks: [
    { vdisk: 'vm-web-0', bus: 'virtio-scsi', sizeBytes: 64 << 20, image: IMG },
    { vdisk: 'vm-web-1', bus: 'virtio-blk', sizeBytes: 128 << 20, image: null },
    { vdisk: `image-${IMG}`, bus: 'cdrom', sizeBytes: 64 << 20, image: IMG },
  ],
  nics: [{ mac: '50:6B:8D:00:00:01', subnetUuid: NET, ip: '10.10.0.10' }],
  ha: true, powerState: 'on', host: { serial: 'S1', hostIp: '10.0.0.11' }, epoch: 2, runtimeState: 'running', createdAt: '2026-12-02T00:00:00.000Z', lastTask: 'task-1',
};

/** Ansible's ntnx_vms default spec (plugins/module_utils/prism/vms.py), filled as the module does for a VM from an image. */
const ansibleCreate = {
  api_version: '3.1.0',
  metadata: { kind: 'vm', categories_mapping: {}, use_categories_mapping: true },
  spec: {
    name: 'web2', cluster_reference: { kind: 'cluster', uuid: CLUSTER },
    resources: {
      num_sockets: 1, num_vcpus_per_socket: 2, num_threads_per_core: 1, memory_size_mib: 1024, power_state: 'ON', power_state_mechanism: { mechanism: 'HARD' },
      hardware_clock_timezone: 'UTC', boot_config: { boot_type: 'LEGACY', boot_device_order_list: ['CDROM', 'DISK', 'NETWORK'] },
      disk_list: [
        { device_properties: { device_type: 'DISK', disk_address: { adapter_type: 'SCSI', device_index: 0 } }, data_source_reference: { kind: 'image', uuid: IMG }, disk_size_bytes: 128 << 20 },
        { device_properties: { device_type: 'DISK', disk_address: { adapter_type: 'PCI' } }, disk_size_mib: 256, storage_config: { storage_container_reference: { kind: 'storage_container', uuid: SC } } },
        { device_properties: { device_type: 'CDROM', disk_address: { adapter_type: 'IDE' } }, data_source_reference: { kind: 'image', uuid: IMG } },
      ],
      nic_list: [{ nic_type: 'NORMAL_NIC', vlan_mode: 'ACCESS', is_connected: true, subnet_reference: { kind: 'subnet', uuid: NET }, ip_endpoint_list: [{ ip: '10.10.0.50', type: 'ASSIGNED' }] }],
    },
  },
};

test('stableUuid: UUID-shaped, the same for the same parts, different otherwise', () => {
  const a = stableUuid('disk', 'vm', 'x');
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(stableUuid('disk', 'vm', 'x'), a);
  assert.notEqual(stableUuid('disk', 'vm', 'y'), a);
  assert.notEqual(stableUuid('disk', 'vmx', ''), stableUuid('disk', 'vm', 'x'));
});

test("Ansible's create spec becomes the VM service's request: sockets × cores, disks from an image, new, CD-ROM, a NIC with its address, power on", () => {
  const { request, spec } = parseV3VmCreate(ansibleCreate, ctx);
  assert.deepEqual(request, {
    name: 'web2', vcpus: 2, memoryMiB: 1024, powerOn: true,
    disks: [{ image: IMG, bus: 'virtio-scsi', sizeBytes: 128 << 20 }, { sizeBytes: 256 << 20, bus: 'virtio-blk', container: 'default' }, { cdromImage: IMG }],
    nics: [{ subnet: NET, ip: '10.10.0.50' }],
  });
  assert.equal(spec['name'], 'web2');
  // prism-go-client's recorded create: spec_version 1 in the metadata, no power state (off)
  const pgc = parseV3VmCreate({ metadata: { kind: 'vm', spec_version: 1 }, spec: { name: 'x', resources: { memory_size_mib: 256, num_sockets: 1 } } }, ctx);
  assert.equal(pgc.request.powerOn, false);
  assert.deepEqual(pgc.request.disks, []);
});

test('a create the cluster cannot do is refused naming the field', () => {
  const bad = (mutate: (b: any) => void, field: string | RegExp): void => {
    const b = structuredClone(ansibleCreate) as any;
    mutate(b);
    assert.throws(() => parseV3VmCreate(b, ctx), (e: unknown) => e instanceof InputError && (typeof field === 'string' ? e.field === field : field.test(e.field)), field.toString());
  };
  bad((b) => (b.spec.resources.frobnicate = 1), 'spec.resources.frobnicate');
  bad((b) => (b.spec.colour = 'red'), 'spec.colour');
  bad((b) => (b.spec.resources.boot_config.boot_type = 'UEFI'), 'spec.resources.boot_config.boot_type');
  bad((b) => (b.spec.resources.guest_customization = { cloud_init: { user_data: 'eA==' } }), 'spec.resources.guest_customization');
  bad((b) => (b.spec.resources.gpu_list = [{ vendor: 'NVIDIA' }]), 'spec.resources.gpu_list');
  bad((b) => delete b.spec.resources.memory_size_mib, 'spec.resources.memory_size_mib');
  bad((b) => (b.spec.resources.memory_size_mib = '1G'), 'spec.resources.memory_size_mib');
  bad((b) => (b.spec.resources.num_sockets = 0), 'spec.resources.num_sockets');
  bad((b) => (b.spec.resources.power_state = 'MAYBE'), 'spec.resources.power_state');
  bad((b) => (b.metadata.uuid = 'mine'), 'metadata.uuid');
  bad((b) => (b.metadata.categories = { env: 'prod' }), 'metadata.categories');
  bad((b) => (b.metadata.kind = 'image'), 'metadata.kind');
  bad((b) => (b.spec.cluster_reference.uuid = 'elsewhere'), 'spec.cluster_reference.uuid');
  bad((b) => (b.spec.resources.disk_list[0].data_source_reference.uuid = 'nope'), 'spec.resources.disk_list[0].data_source_reference.uuid');
  bad((b) => (b.spec.resources.disk_list[0].device_properties.disk_address.adapter_type = 'SATA'), 'spec.resources.disk_list[0].device_properties.disk_address.adapter_type');
  bad((b) => delete b.spec.resources.disk_list[1].disk_size_mib, 'spec.resources.disk_list[1].disk_size_mib');
  bad((b) => delete b.spec.resources.disk_list[2].data_source_reference, 'spec.resources.disk_list[2].data_source_reference');
  bad((b) => (b.spec.resources.disk_list[1].storage_config.storage_container_reference.uuid = 'x'), 'spec.resources.disk_list[1].storage_config.storage_container_reference.uuid');
  bad((b) => (b.spec.resources.nic_list[0].subnet_reference.uuid = 'x'), 'spec.resources.nic_list[0].subnet_reference.uuid');
  bad((b) => delete b.spec.resources.nic_list[0].subnet_reference, 'spec.resources.nic_list[0].subnet_reference');
  bad((b) => (b.spec.resources.nic_list[0].mac = 'x'), 'spec.resources.nic_list[0].mac');
  bad((b) => (b.spec = 'web'), 'spec');
  bad((b) => (b.extra = true), 'body.extra');
});

test('a VM as v3 shows it: what Terraform and Ansible dereference is there; task_uuid a list; disks and NICs with stable uuids', () => {
  const e = vmEntity(vm, ctx);
  const st = e.status as any;
  const r = st.resources;
  assert.equal(e.metadata['uuid'], vm.uuid);
  assert.equal(e.metadata['kind'], 'vm');
  assert.equal(e.metadata['spec_version'], 3);
  assert.equal(e.metadata['entity_version'], '4');
  assert.match(String(e.metadata['creation_time']), /^\d{4}-\d\d-\d\dT/);
  assert.equal(st.state, 'COMPLETE');
  assert.deepEqual(st.execution_context, { task_uuid: ['task-1'] });
  assert.deepEqual(r.vnuma_config, { num_vnuma_nodes: 0 });
  assert.equal(typeof r.power_state_mechanism.guest_transition_config, 'object');
  assert.equal(r.power_state, 'ON');
  assert.deepEqual(r.host_reference, { kind: 'host', uuid: 'h-uuid-1', name: 'host-1' });
  assert.equal(r.num_sockets * r.num_vcpus_per_socket, 2);
  assert.equal(r.memory_size_mib, 512);
  assert.deepEqual(r.disk_list.map((d: any) => [d.device_properties.device_type, d.device_properties.disk_address.adapter_type, d.device_properties.disk_address.device_index, d.disk_size_mib]),
    [['DISK', 'SCSI', 0, 64], ['DISK', 'PCI', 0, 128], ['CDROM', 'IDE', 0, 64]]);
  for (const d of r.disk_list) {
    assert.match(d.uuid, /^[0-9a-f-]{36}$/);
    assert.equal(d.disk_size_bytes, d.disk_size_mib * 2 ** 20);
  }
  assert.equal(r.disk_list[0].uuid, diskUuid(vm.uuid, 'vm-web-0'));
  assert.deepEqual(r.disk_list[0].data_source_reference, { kind: 'image', uuid: IMG, name: 'guest' });
  assert.equal(r.nic_list[0].uuid, nicUuid(vm.uuid, '50:6b:8d:00:00:01'));
  assert.deepEqual(r.nic_list[0].ip_endpoint_list, [{ ip: '10.10.0.10', type: 'ASSIGNED' }]);
  assert.deepEqual(r.nic_list[0].subnet_reference, { kind: 'subnet', uuid: NET, name: 'red' });
  assert.equal((e.spec as any).resources.host_reference, undefined, 'where it runs is status, not spec');
  assert.deepEqual(vmAttrs(e), { vm_name: 'web', name: 'web', uuid: vm.uuid, power_state: 'on', host_name: 'host-1', num_vcpus: '2', memory_size_mib: '512' });
  const off = vmEntity({ ...vm, powerState: 'off', runtimeState: 'off', host: null }, ctx);
  assert.equal((off.status as any).resources.power_state, 'OFF');
  assert.equal((off.status as any).resources.host_reference, undefined);
});

test("updates as the clients send them: the GET's status PUT back changes nothing; power and resources are told apart; a stale spec_version is a 409", () => {
  const e = vmEntity(vm, ctx);
  // Terraform and Ansible: metadata from the GET, spec from its status
  const asRead = { metadata: e.metadata, spec: { name: (e.status as any).name, cluster_reference: (e.status as any).cluster_reference, resources: structuredClone((e.status as any).resources) } };
  assert.deepEqual(parseV3VmUpdate(asRead, vm, ctx).update, null);
  assert.equal(parseV3VmUpdate(asRead, vm, ctx).power, null);

  const off = structuredClone(asRead) as any;
  off.spec.resources.power_state = 'OFF';
  assert.equal(parseV3VmUpdate(off, vm, ctx).power, 'off');
  off.spec.resources.power_state_mechanism.mechanism = 'ACPI';
  assert.equal(parseV3VmUpdate(off, vm, ctx).power, 'shutdown');

  const grow = structuredClone(asRead) as any;
  grow.spec.resources.memory_size_mib = 1024;
  grow.spec.resources.num_sockets = 4;
  grow.spec.resources.disk_list.splice(1, 1); // the data disk removed
  grow.spec.resources.disk_list.push({ device_properties: { device_type: 'DISK', disk_address: { adapter_type: 'SCSI' } }, disk_size_mib: 32 });
  grow.spec.resources.nic_list = [];
  grow.spec.name = 'web-renamed';
  const u = parseV3VmUpdate(grow, vm, ctx);
  assert.deepEqual(u.update, { specVersion: 3, name: 'web-renamed', vcpus: 4, memoryMiB: 1024, addDisks: [{ sizeBytes: 32 << 20, bus: 'virtio-scsi' }], removeDisks: ['vm-web-1'], removeNics: ['50:6B:8D:00:00:01'] });

  const stale = structuredClone(asRead) as any;
  stale.metadata.spec_version = 2;
  assert.throws(() => parseV3VmUpdate(stale, vm, ctx), (err: unknown) => err instanceof ConflictError && /metadata\.spec_version: is 2, but the entity is at 3/.test(err.message));
  const none = structuredClone(asRead) as any;
  delete none.metadata.spec_version;
  assert.throws(() => parseV3VmUpdate(none, vm, ctx), (err: unknown) => err instanceof InputError && err.field === 'metadata.spec_version');
  const resize = structuredClone(asRead) as any;
  resize.spec.resources.disk_list[0].disk_size_mib = 999;
  delete resize.spec.resources.disk_list[0].disk_size_bytes;
  assert.throws(() => parseV3VmUpdate(resize, vm, ctx), (err: unknown) => err instanceof InputError && err.field === 'spec.resources.disk_list[0].disk_size_mib');
  const foreign = structuredClone(asRead) as any;
  foreign.spec.resources.disk_list[0].uuid = stableUuid('someone else');
  assert.throws(() => parseV3VmUpdate(foreign, vm, ctx), (err: unknown) => err instanceof InputError && err.field === 'spec.resources.disk_list[0].uuid');
});

test("subnets: Ansible's VLAN create with IPAM, and the entity it reads back", () => {
  const body = {
    api_version: '3.1.0', metadata: { kind: 'subnet' },
    spec: {
      name: 'green', cluster_reference: { kind: 'cluster', uuid: CLUSTER },
      resources: {
        subnet_type: 'VLAN', vlan_id: 30, is_external: false, virtual_switch_uuid: 'dvs',
        ip_config: { subnet_ip: '10.30.0.0', prefix_length: 24, default_gateway_ip: '10.30.0.1', pool_list: [{ range: '10.30.0.10 10.30.0.20' }], dhcp_options: { domain_name_server_list: ['10.30.0.53'], domain_search_list: [], domain_name: '' } },
      },
    },
  };
  assert.deepEqual(parseV3SubnetCreate(body, ctx).request, { name: 'green', vlanId: 30, cidr: '10.30.0.0/24', gateway: '10.30.0.1', pool: { start: '10.30.0.10', end: '10.30.0.20' }, dns: ['10.30.0.53'] });
  assert.deepEqual(parseV3SubnetCreate({ spec: { name: 'plain', resources: { vlan_id: 5 } } }, ctx).request, { name: 'plain', vlanId: 5 });
  const b = structuredClone(body) as any;
  b.spec.resources.ip_config.pool_list[0].range = '10.30.0.10-10.30.0.20';
  assert.throws(() => parseV3SubnetCreate(b, ctx), (e: unknown) => e instanceof InputError && e.field === 'spec.resources.ip_config.pool_list[0].range');
  b.spec.resources.subnet_type = 'OVERLAY';
  assert.throws(() => parseV3SubnetCreate(b, ctx), (e: unknown) => e instanceof InputError && e.field === 'spec.resources.subnet_type');
  const e = subnetEntity(subnet, ctx) as any;
  assert.deepEqual(e.spec.resources.ip_config, { subnet_ip: '10.10.0.0', prefix_length: 24, default_gateway_ip: '10.10.0.1', pool_list: [{ range: '10.10.0.10 10.10.0.200' }], dhcp_options: { domain_name_server_list: ['10.10.0.53'] } });
  assert.equal(e.spec.resources.vlan_id, 10);
  assert.equal(e.status.resources.ip_usage_stats.num_assigned_ips, 1);
});

test('images: created from a URL (ISO or disk), shown with their size and where to download them', () => {
  const fromUrl = parseV3ImageCreate({ api_version: '3.1.0', metadata: { kind: 'image' }, spec: { name: 'debian', description: 'd', resources: { image_type: 'ISO_IMAGE', source_uri: 'https://x/d.iso', architecture: 'X86_64' } } });
  assert.deepEqual('request' in fromUrl && fromUrl.request, { name: 'debian', url: 'https://x/d.iso', format: 'iso' });
  // without source_uri: an image whose file the client uploads next (PUT /images/{uuid}/file)
  const toUpload = parseV3ImageCreate({ spec: { name: 'x', description: 'mine', resources: {} } });
  assert.deepEqual('upload' in toUpload && toUpload.upload, { name: 'x', description: 'mine' });
  assert.throws(() => parseV3ImageCreate({ spec: { name: 'x', resources: { source_uri: 42 } } }), (e: unknown) => e instanceof InputError && e.field === 'spec.resources.source_uri');
  assert.throws(() => parseV3ImageCreate({ spec: { name: 'x', resources: { source_uri: 'http://a', image_type: 'VM' } } }), (e: unknown) => e instanceof InputError && e.field === 'spec.resources.image_type');
  const e = imageEntity({ ...image, lastTask: 't9' }, ctx, 'https://10.0.9.1:9440') as any;
  assert.equal(e.status.state, 'COMPLETE');
  assert.deepEqual(e.status.execution_context.task_uuid, ['t9']);
  assert.equal(e.status.resources.size_bytes, 64 << 20);
  assert.deepEqual(e.status.resources.retrieval_uri_list, [`https://10.0.9.1:9440/api/nutanix/v3/images/${IMG}/file`]);
  assert.equal(imageEntity({ ...image, state: 'importing' }, ctx, '').status['state'], 'PENDING');
});

test("a VM service task as v3's task: statuses the clients wait on; an aborted one is FAILED with its reason and code", () => {
  const t: Task = {
    uuid: 't1', operation: 'vm.create', entity: { kind: 'vm', uuid: vm.uuid, name: 'web' }, state: 'running', percent: 40, message: 'copying', error: null, result: null,
    createdAt: '2026-12-01T00:00:00.000Z', startedAt: '2026-12-01T00:00:01.000Z', finishedAt: null, parent: null, request: {},
  };
  const v = vmTaskOf(t, CLUSTER) as any;
  assert.equal(v.status, 'RUNNING');
  assert.equal(v.operation_type, 'VmCreate');
  assert.deepEqual(v.entity_reference_list, [{ kind: 'vm', uuid: vm.uuid, name: 'web' }]);
  const a = vmTaskOf({ ...t, state: 'aborted', error: { code: 'CVG_ERR_ABORTED', message: 'the host failed' }, finishedAt: '2026-12-01T00:00:09.000Z' }, CLUSTER) as any;
  assert.equal(a.status, 'FAILED');
  assert.equal(a.error_detail, 'the host failed');
  assert.equal(a.error_code, 'CVG_ERR_ABORTED');
  assert.equal(a.completion_time, '2026-12-01T00:00:09.000Z');
});
