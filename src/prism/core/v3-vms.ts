/**
 * @module
 * The v3 shapes of the VM service's entities (pure): VMs, images, subnets and their tasks, as
 * Nutanix's own clients (the Ansible collection, the Terraform provider, prism-go-client) send and
 * read them, translated to and from the VM service's API (cvm/protocol/vms.ts).
 *
 * What the clients dereference is always present (docs/prism.md, "v3"): `status.resources.
 * vnuma_config`, `power_state_mechanism.guest_transition_config`, each disk's `uuid`,
 * `disk_size_bytes` and `disk_size_mib`; `status.execution_context.task_uuid` is a list in
 * entities and a string in the answers of create, update and delete.
 *
 * Requests are checked field by field: a field the v3 schema has and Converge does not do (UEFI,
 * GPUs, cloud-init, categories) is refused by name rather than ignored, and so is a field the
 * schema does not have. Status-only fields a client copies back into the spec (Ansible and
 * Terraform PUT the status they read) are accepted and ignored.
 */
import { ConflictError, InputError } from '../../shared/errors.ts';
import type { Image, Subnet, Task, Vm, VmCreateRequest, VmDisk, VmDiskRequest, VmNicRequest, VmPowerAction, VmUpdateRequest, ImageCreateRequest, SubnetCreateRequest } from '../../cvm/protocol/vms.ts';
import { API_VERSION, type V3Entity } from './v3.ts';

/** What the shapes need besides the entity: the cluster, its hosts, subnets, images and containers. */
export interface V3VmContext {
  cluster: { uuid: string; name: string };
  hosts: readonly { serial: string; hostIp: string; uuid: string; name: string }[];
  subnets: readonly Subnet[];
  images: readonly Image[];
  containers: readonly { uuid: string; name: string }[];
}

/** A UUID-shaped name derived from strings (FNV-1a, four lanes): the same parts, the same UUID. */
export function stableUuid(...parts: string[]): string {
  const text = parts.join('\0');
  const lanes = [0x811c9dc5, 0x01000193, 0x9e3779b9, 0x85ebca6b];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    for (let l = 0; l < 4; l++) lanes[l] = Math.imul((lanes[l]! ^ c) >>> 0, 0x01000193 + 2 * l) >>> 0;
  }
  const hex = lanes.map((x) => x.toString(16).padStart(8, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${((parseInt(hex.slice(16, 17), 16) & 3) | 8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

const ref = (kind: string, uuid: string, name?: string): Record<string, string> => (name === undefined ? { kind, uuid } : { kind, uuid, name });

function metadataOf(kind: string, uuid: string, name: string, specVersion: number, created: string): Record<string, unknown> {
  return {
    kind, uuid, name, spec_version: specVersion, entity_version: String(specVersion + 1), spec_hash: '00000000000000000000000000000000000000000000000000',
    categories: {}, categories_mapping: {}, creation_time: created, last_update_time: created,
  };
}

// ---- VMs ----

const ADAPTER: Record<VmDisk['bus'], string> = { 'virtio-scsi': 'SCSI', 'virtio-blk': 'PCI', cdrom: 'IDE' };

export const diskUuid = (vm: string, vdisk: string): string => stableUuid('disk', vm, vdisk);
export const nicUuid = (vm: string, mac: string): string => stableUuid('nic', vm, mac.toLowerCase());

function diskList(vm: Vm, ctx: V3VmContext, status: boolean): Record<string, unknown>[] {
  const index = new Map<string, number>();
  return vm.disks.map((d) => {
    const adapter = ADAPTER[d.bus];
    const i = index.get(adapter) ?? 0;
    index.set(adapter, i + 1);
    const image = d.image === null ? undefined : ctx.images.find((x) => x.uuid === d.image);
    return {
      uuid: diskUuid(vm.uuid, d.vdisk), disk_size_bytes: d.sizeBytes, disk_size_mib: Math.ceil(d.sizeBytes / 2 ** 20),
      device_properties: { device_type: d.bus === 'cdrom' ? 'CDROM' : 'DISK', disk_address: { adapter_type: adapter, device_index: i } },
      ...(d.image !== null ? { data_source_reference: ref('image', d.image, image?.name) } : {}),
      ...(status ? { is_migration_in_progress: false } : {}),
    };
  });
}

function nicList(vm: Vm, ctx: V3VmContext): Record<string, unknown>[] {
  return vm.nics.map((n) => {
    const subnet = ctx.subnets.find((s) => s.uuid === n.subnetUuid);
    return {
      uuid: nicUuid(vm.uuid, n.mac), nic_type: 'NORMAL_NIC', vlan_mode: 'ACCESS', mac_address: n.mac, is_connected: true, num_queues: 1, trunked_vlan_list: [],
      ip_endpoint_list: n.ip === null ? [] : [{ ip: n.ip, type: 'ASSIGNED' }],
      subnet_reference: ref('subnet', n.subnetUuid, subnet?.name),
    };
  });
}

/** What the VM is, as its host last reported it (undefined while the host does not answer). */
export function reportedPower(vm: Vm): 'ON' | 'OFF' | 'PAUSED' | undefined {
  switch (vm.runtimeState) {
    case 'running': case 'starting': case 'migrating': case 'incoming': case 'shutting-down':
      return 'ON';
    case 'paused':
      return 'PAUSED';
    case 'off': case 'crashed': case 'migrated':
      return 'OFF';
    default:
      return undefined;
  }
}

/** What the VM is now, as v3 says it: the host's report, else what it should be. */
const runtimePower = (vm: Vm): 'ON' | 'OFF' | 'PAUSED' => reportedPower(vm) ?? (vm.powerState === 'off' ? 'OFF' : vm.powerState === 'paused' ? 'PAUSED' : 'ON');

function vmResources(vm: Vm, ctx: V3VmContext, status: boolean): Record<string, unknown> {
  const r: Record<string, unknown> = {
    num_sockets: vm.vcpus, num_vcpus_per_socket: 1, num_threads_per_core: 1, memory_size_mib: vm.memoryMiB,
    power_state: status ? runtimePower(vm) : vm.powerState === 'off' ? 'OFF' : 'ON',
    power_state_mechanism: { mechanism: 'HARD', guest_transition_config: { enable_script_exec: false, should_fail_on_script_failure: false } },
    hardware_clock_timezone: 'UTC', machine_type: 'PC', is_agent_vm: false, vga_console_enabled: false,
    boot_config: { boot_type: 'LEGACY', boot_device_order_list: ['CDROM', 'DISK', 'NETWORK'] },
    vnuma_config: { num_vnuma_nodes: 0 }, serial_port_list: [], gpu_list: [],
    disk_list: diskList(vm, ctx, status), nic_list: nicList(vm, ctx),
  };
  if (status) {
    const host = vm.host ? ctx.hosts.find((h) => h.serial === vm.host?.serial) : undefined;
    if (host) r['host_reference'] = ref('host', host.uuid, host.name);
    Object.assign(r, { hypervisor_type: 'AHV', protection_type: 'UNPROTECTED', bios_uuid: vm.uuid, generation_uuid: stableUuid('generation', vm.uuid, String(vm.epoch)) });
  }
  return r;
}

/** A VM as v3 shows it (`lastTask`: the VM service's last task on it, if known). */
export function vmEntity(vm: Vm & { lastTask?: string }, ctx: V3VmContext): V3Entity {
  const cluster = ref('cluster', ctx.cluster.uuid, ctx.cluster.name);
  return {
    api_version: API_VERSION,
    metadata: metadataOf('vm', vm.uuid, vm.name, vm.specVersion, vm.createdAt),
    spec: { name: vm.name, cluster_reference: cluster, resources: vmResources(vm, ctx, false) },
    status: {
      state: 'COMPLETE', name: vm.name, cluster_reference: cluster,
      execution_context: { task_uuid: vm.lastTask ? [vm.lastTask] : [] },
      resources: vmResources(vm, ctx, true),
      ...(vm.haBlocked ? { message_list: [{ message: vm.haBlocked, reason: 'HA_BLOCKED' }] } : {}),
    },
  };
}

/** What VMs can be filtered and sorted by (Ansible looks a VM up with `vm_name==<name>`). */
export const VM_ATTRIBUTES = ['vm_name', 'name', 'uuid', 'power_state', 'host_name', 'num_vcpus', 'memory_size_mib'] as const;
export const vmAttrs = (e: V3Entity): Record<(typeof VM_ATTRIBUTES)[number], string> => {
  const r = (e.status['resources'] ?? {}) as { power_state?: string; host_reference?: { name?: string }; num_sockets?: number; memory_size_mib?: number };
  const name = String(e.metadata['name']);
  return { vm_name: name, name, uuid: String(e.metadata['uuid']), power_state: (r.power_state ?? '').toLowerCase(), host_name: r.host_reference?.name ?? '', num_vcpus: String(r.num_sockets ?? 0), memory_size_mib: String(r.memory_size_mib ?? 0) };
};

// ---- request checking ----

type Obj = Record<string, unknown>;

function objectAt(v: unknown, field: string, required = false): Obj | undefined {
  if (v === undefined || v === null) {
    if (required) throw new InputError(field, 'is required');
    return undefined;
  }
  if (typeof v !== 'object' || Array.isArray(v)) throw new InputError(field, 'must be an object');
  return v as Obj;
}

function arrayAt(v: unknown, field: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new InputError(field, 'must be a list');
  return v;
}

/** Refuses a key the schema does not have, naming it. */
function known(o: Obj, field: string, keys: readonly string[]): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new InputError(`${field}.${k}`, `is not a field of ${field.split('.').pop() ?? field} (one of ${keys.join(', ')})`);
}

function stringAt(o: Obj, key: string, field: string, required = false, max = 256): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) {
    if (required) throw new InputError(`${field}.${key}`, 'is required');
    return undefined;
  }
  if (typeof v !== 'string' || v.length > max) throw new InputError(`${field}.${key}`, `must be a string of at most ${max} characters`);
  return v;
}

function intAt(o: Obj, key: string, field: string, min: number, max: number, dflt?: number): number {
  const v = o[key] ?? dflt;
  if (v === undefined) throw new InputError(`${field}.${key}`, 'is required');
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new InputError(`${field}.${key}`, `must be a whole number from ${min} to ${max}`);
  return v;
}

const METADATA_KEYS = ['kind', 'uuid', 'name', 'spec_version', 'entity_version', 'spec_hash', 'categories', 'categories_mapping', 'use_categories_mapping', 'project_reference', 'owner_reference', 'creation_time', 'last_update_time', 'should_force_translate'];

/** metadata: its kind, no categories (not supported), answers the spec_version sent. */
function checkMetadata(body: Obj, kind: string, create: boolean): number | undefined {
  const m = objectAt(body['metadata'], 'metadata', !create) ?? {};
  known(m, 'metadata', METADATA_KEYS);
  if (m['kind'] !== undefined && m['kind'] !== kind) throw new InputError('metadata.kind', `must be "${kind}"`);
  if (create && m['uuid'] !== undefined) throw new InputError('metadata.uuid', 'is assigned by the cluster on create; leave it out');
  for (const c of ['categories', 'categories_mapping'] as const) {
    const cat = objectAt(m[c], `metadata.${c}`);
    if (cat && Object.keys(cat).length > 0) throw new InputError(`metadata.${c}`, 'categories are not supported by this cluster');
  }
  const sv = m['spec_version'];
  if (sv === undefined) {
    if (!create) throw new InputError('metadata.spec_version', 'is required on update (the version read with GET)');
    return undefined;
  }
  if (typeof sv !== 'number' || !Number.isInteger(sv) || sv < 0) throw new InputError('metadata.spec_version', 'must be a whole number');
  return sv;
}

function checkTop(body: unknown): Obj {
  const b = objectAt(body, 'body', true)!;
  known(b, 'body', ['api_version', 'metadata', 'spec', 'status']);
  return b;
}

function checkCluster(spec: Obj, field: string, ctx: V3VmContext): void {
  const c = objectAt(spec['cluster_reference'], `${field}.cluster_reference`);
  if (!c) return;
  known(c, `${field}.cluster_reference`, ['kind', 'uuid', 'name']);
  if (c['uuid'] !== undefined && c['uuid'] !== ctx.cluster.uuid) throw new InputError(`${field}.cluster_reference.uuid`, `must be this cluster's (${ctx.cluster.uuid})`);
}

const RESOURCE_KEYS = [
  'num_sockets', 'num_vcpus_per_socket', 'num_threads_per_core', 'memory_size_mib', 'power_state', 'power_state_mechanism',
  'hardware_clock_timezone', 'machine_type', 'is_agent_vm', 'vga_console_enabled', 'boot_config', 'vnuma_config', 'serial_port_list',
  'gpu_list', 'disk_list', 'nic_list', 'guest_customization', 'guest_tools', 'guest_os_id', 'enable_cpu_passthrough', 'is_vcpu_hard_pinned',
  'memory_overcommit_enabled', 'hardware_virtualization_enabled', 'disable_branding', 'parent_reference', 'power_state_mechanism',
  // status-only fields a client copies back into the spec
  'host_reference', 'hypervisor_type', 'protection_type', 'bios_uuid', 'generation_uuid', 'is_live_migratable', 'cluster_reference',
];
const DISK_KEYS = ['uuid', 'device_properties', 'data_source_reference', 'disk_size_mib', 'disk_size_bytes', 'storage_config', 'volume_group_reference', 'is_migration_in_progress'];
const NIC_KEYS = ['uuid', 'nic_type', 'vlan_mode', 'mac_address', 'ip_endpoint_list', 'is_connected', 'subnet_reference', 'trunked_vlan_list', 'num_queues', 'network_function_chain_reference', 'network_function_nic_type', 'model', 'secondary_ip_address_list'];

/** The resources Converge refuses by name when they ask for something it does not do. */
function checkUnsupported(r: Obj, f: string): void {
  const boot = objectAt(r['boot_config'], `${f}.boot_config`);
  if (boot?.['boot_type'] !== undefined && boot['boot_type'] !== 'LEGACY') throw new InputError(`${f}.boot_config.boot_type`, 'only LEGACY boot (BIOS) is supported');
  if (arrayAt(r['gpu_list'], `${f}.gpu_list`).length > 0) throw new InputError(`${f}.gpu_list`, 'GPUs are not supported');
  const gc = objectAt(r['guest_customization'], `${f}.guest_customization`);
  if (gc && Object.keys(gc).length > 0) throw new InputError(`${f}.guest_customization`, 'guest customization (cloud-init, sysprep) is not supported');
  if (r['machine_type'] !== undefined && r['machine_type'] !== 'PC') throw new InputError(`${f}.machine_type`, 'only PC is supported');
}

function vcpusOf(r: Obj, f: string): number {
  return intAt(r, 'num_sockets', f, 1, 256, 1) * intAt(r, 'num_vcpus_per_socket', f, 1, 256, 1) * intAt(r, 'num_threads_per_core', f, 1, 8, 1);
}

function powerOf(r: Obj, f: string): 'ON' | 'OFF' | undefined {
  const p = r['power_state'];
  if (p === undefined) return undefined;
  if (p !== 'ON' && p !== 'OFF') throw new InputError(`${f}.power_state`, 'must be ON or OFF');
  return p;
}

/** A disk of a request: a copy of an image, a new empty disk, or a CD-ROM holding an image. */
function diskRequest(raw: unknown, f: string, ctx: V3VmContext): VmDiskRequest {
  const d = objectAt(raw, f, true)!;
  known(d, f, DISK_KEYS);
  if (d['volume_group_reference'] !== undefined) throw new InputError(`${f}.volume_group_reference`, 'volume groups are not supported');
  const props = objectAt(d['device_properties'], `${f}.device_properties`) ?? {};
  known(props, `${f}.device_properties`, ['device_type', 'disk_address']);
  const type = props['device_type'] ?? 'DISK';
  if (type !== 'DISK' && type !== 'CDROM') throw new InputError(`${f}.device_properties.device_type`, 'must be DISK or CDROM');
  const addr = objectAt(props['disk_address'], `${f}.device_properties.disk_address`) ?? {};
  known(addr, `${f}.device_properties.disk_address`, ['adapter_type', 'device_index']);
  const adapter = addr['adapter_type'] ?? (type === 'CDROM' ? 'IDE' : 'SCSI');
  const src = objectAt(d['data_source_reference'], `${f}.data_source_reference`);
  let image: string | undefined;
  if (src) {
    known(src, `${f}.data_source_reference`, ['kind', 'uuid', 'name']);
    if (src['kind'] !== 'image') throw new InputError(`${f}.data_source_reference.kind`, 'must be "image" (copies of other VMs\' disks are not supported)');
    image = stringAt(src, 'uuid', `${f}.data_source_reference`, true, 64);
    if (!ctx.images.some((i) => i.uuid === image)) throw new InputError(`${f}.data_source_reference.uuid`, `no image ${image} in this cluster`);
  }
  if (type === 'CDROM') {
    if (adapter !== 'IDE' && adapter !== 'SATA') throw new InputError(`${f}.device_properties.disk_address.adapter_type`, 'a CD-ROM is on IDE or SATA');
    if (!image) throw new InputError(`${f}.data_source_reference`, 'a CD-ROM needs an image (empty drives are not supported)');
    return { cdromImage: image };
  }
  if (adapter !== 'SCSI' && adapter !== 'PCI') throw new InputError(`${f}.device_properties.disk_address.adapter_type`, 'a disk is on SCSI (virtio-scsi) or PCI (virtio-blk)');
  const bus = adapter === 'SCSI' ? 'virtio-scsi' : 'virtio-blk';
  const bytes = d['disk_size_bytes'] !== undefined ? intAt(d, 'disk_size_bytes', f, 1, 64 * 2 ** 40) : d['disk_size_mib'] !== undefined ? intAt(d, 'disk_size_mib', f, 1, 64 * 2 ** 20) * 2 ** 20 : undefined;
  const sc = objectAt(objectAt(d['storage_config'], `${f}.storage_config`)?.['storage_container_reference'], `${f}.storage_config.storage_container_reference`);
  let container: string | undefined;
  if (sc) {
    const uuid = stringAt(sc, 'uuid', `${f}.storage_config.storage_container_reference`, true, 64);
    container = ctx.containers.find((c) => c.uuid === uuid)?.name;
    if (!container) throw new InputError(`${f}.storage_config.storage_container_reference.uuid`, `no storage container ${uuid} in this cluster`);
  }
  if (image) return { image, bus, ...(bytes !== undefined ? { sizeBytes: bytes } : {}), ...(container ? { container } : {}) };
  if (bytes === undefined) throw new InputError(`${f}.disk_size_mib`, 'a new empty disk needs a size (disk_size_mib or disk_size_bytes)');
  return { sizeBytes: bytes, bus, ...(container ? { container } : {}) };
}

function nicRequest(raw: unknown, f: string, ctx: V3VmContext): VmNicRequest {
  const n = objectAt(raw, f, true)!;
  known(n, f, NIC_KEYS);
  if (n['nic_type'] !== undefined && n['nic_type'] !== 'NORMAL_NIC') throw new InputError(`${f}.nic_type`, 'only NORMAL_NIC is supported');
  if (n['vlan_mode'] !== undefined && n['vlan_mode'] !== 'ACCESS') throw new InputError(`${f}.vlan_mode`, 'only ACCESS is supported');
  const s = objectAt(n['subnet_reference'], `${f}.subnet_reference`, true)!;
  known(s, `${f}.subnet_reference`, ['kind', 'uuid', 'name']);
  const subnet = stringAt(s, 'uuid', `${f}.subnet_reference`, true, 64)!;
  if (!ctx.subnets.some((x) => x.uuid === subnet)) throw new InputError(`${f}.subnet_reference.uuid`, `no subnet ${subnet} in this cluster`);
  const ips = arrayAt(n['ip_endpoint_list'], `${f}.ip_endpoint_list`);
  const first = ips.length > 0 ? objectAt(ips[0], `${f}.ip_endpoint_list[0]`, true)! : undefined;
  const ip = first ? stringAt(first, 'ip', `${f}.ip_endpoint_list[0]`, false, 64) : undefined;
  const mac = stringAt(n, 'mac_address', f, false, 17);
  return { subnet, ...(ip ? { ip } : {}), ...(mac ? { mac } : {}) };
}

/**
 * A create or update body of `kind` checked down to its spec's resources (whose keys are checked
 * against `keys`): the spec, its name, the resources and their field path; and the metadata's
 * spec_version (required on update).
 */
function openSpec(body: unknown, kind: string, ctx: V3VmContext, create: boolean, keys: readonly string[]): { spec: Obj; name: string | undefined; r: Obj; f: string; specVersion: number | undefined } {
  const b = checkTop(body);
  const specVersion = checkMetadata(b, kind, create);
  const spec = objectAt(b['spec'], 'spec', true)!;
  known(spec, 'spec', ['name', 'description', 'cluster_reference', 'resources', 'availability_zone_reference']);
  const name = stringAt(spec, 'name', 'spec', create, 80);
  checkCluster(spec, 'spec', ctx);
  const f = 'spec.resources';
  const r = objectAt(spec['resources'], f, true)!;
  known(r, f, keys);
  return { spec, name, r, f, specVersion };
}

/** POST /vms: the VM service's create request; `spec` is echoed in the answer. */
export function parseV3VmCreate(body: unknown, ctx: V3VmContext): { request: VmCreateRequest; spec: Obj } {
  const { spec, name = '', r, f } = openSpec(body, 'vm', ctx, true, RESOURCE_KEYS);
  checkUnsupported(r, f);
  const request: VmCreateRequest = {
    name, vcpus: vcpusOf(r, f), memoryMiB: intAt(r, 'memory_size_mib', f, 16, 4 * 2 ** 20),
    disks: arrayAt(r['disk_list'], `${f}.disk_list`).map((d, i) => diskRequest(d, `${f}.disk_list[${i}]`, ctx)),
    nics: arrayAt(r['nic_list'], `${f}.nic_list`).map((n, i) => nicRequest(n, `${f}.nic_list[${i}]`, ctx)),
    powerOn: powerOf(r, f) === 'ON',
  };
  return { request, spec };
}

/** PUT /vms/{uuid}: what changes (an update of the VM service, a power action), against the VM as it is. */
export function parseV3VmUpdate(body: unknown, vm: Vm, ctx: V3VmContext): { update: VmUpdateRequest | null; power: VmPowerAction | null; spec: Obj } {
  const { spec, name, r, f, specVersion: sv = 0 } = openSpec(body, 'vm', ctx, false, RESOURCE_KEYS);
  if (sv !== vm.specVersion) throw new SpecVersionError(vm.specVersion, sv);
  checkUnsupported(r, f);
  const u: VmUpdateRequest = { specVersion: vm.specVersion };
  if (name !== undefined && name !== vm.name) u.name = name;
  const vcpus = vcpusOf(r, f);
  if (vcpus !== vm.vcpus) u.vcpus = vcpus;
  const mem = intAt(r, 'memory_size_mib', f, 16, 4 * 2 ** 20, vm.memoryMiB);
  if (mem !== vm.memoryMiB) u.memoryMiB = mem;
  if (r['disk_list'] !== undefined) {
    const mine = new Map(vm.disks.map((d) => [diskUuid(vm.uuid, d.vdisk), d]));
    const kept = new Set<string>();
    const add: VmDiskRequest[] = [];
    arrayAt(r['disk_list'], `${f}.disk_list`).forEach((raw, i) => {
      const df = `${f}.disk_list[${i}]`;
      const d = objectAt(raw, df, true)!;
      const id = d['uuid'];
      if (id === undefined) {
        add.push(diskRequest(d, df, ctx));
        return;
      }
      const cur = typeof id === 'string' ? mine.get(id) : undefined;
      if (!cur) throw new InputError(`${df}.uuid`, `is not a disk of VM ${vm.name}`);
      known(d, df, DISK_KEYS);
      const bytes = d['disk_size_bytes'] ?? (typeof d['disk_size_mib'] === 'number' ? d['disk_size_mib'] * 2 ** 20 : undefined);
      if (typeof bytes === 'number' && Math.ceil(bytes / 2 ** 20) !== Math.ceil(cur.sizeBytes / 2 ** 20)) throw new InputError(`${df}.disk_size_mib`, 'resizing a disk is not supported');
      kept.add(cur.vdisk);
    });
    const remove = vm.disks.filter((d) => !kept.has(d.vdisk)).map((d) => d.vdisk);
    if (add.length > 0) u.addDisks = add;
    if (remove.length > 0) u.removeDisks = remove;
  }
  if (r['nic_list'] !== undefined) {
    const byUuid = new Map(vm.nics.map((n) => [nicUuid(vm.uuid, n.mac), n]));
    const kept = new Set<string>();
    const add: VmNicRequest[] = [];
    arrayAt(r['nic_list'], `${f}.nic_list`).forEach((raw, i) => {
      const nf = `${f}.nic_list[${i}]`;
      const n = objectAt(raw, nf, true)!;
      const cur = typeof n['uuid'] === 'string' ? byUuid.get(n['uuid']) : vm.nics.find((x) => typeof n['mac_address'] === 'string' && x.mac.toLowerCase() === n['mac_address'].toLowerCase());
      if (n['uuid'] !== undefined && !cur) throw new InputError(`${nf}.uuid`, `is not a NIC of VM ${vm.name}`);
      if (cur) {
        known(n, nf, NIC_KEYS);
        kept.add(cur.mac);
      } else add.push(nicRequest(n, nf, ctx));
    });
    const remove = vm.nics.filter((n) => !kept.has(n.mac)).map((n) => n.mac);
    if (add.length > 0) u.addNics = add;
    if (remove.length > 0) u.removeNics = remove;
  }
  const want = powerOf(r, f);
  const mech = objectAt(r['power_state_mechanism'], `${f}.power_state_mechanism`)?.['mechanism'];
  if (mech !== undefined && mech !== 'HARD' && mech !== 'ACPI' && mech !== 'GUEST') throw new InputError(`${f}.power_state_mechanism.mechanism`, 'must be HARD, ACPI or GUEST');
  const isOff = vm.powerState === 'off';
  const power: VmPowerAction | null = want === 'ON' && isOff ? 'on' : want === 'OFF' && !isOff ? (mech === 'ACPI' || mech === 'GUEST' ? 'shutdown' : 'off') : null;
  const changed = Object.keys(u).length > 1;
  return { update: changed ? u : null, power, spec };
}

/** A PUT made against a spec_version that moved on (409, as the reference platform answers). */
export class SpecVersionError extends ConflictError {
  readonly field = 'metadata.spec_version';
  constructor(readonly current: number, sent: number) {
    super(`metadata.spec_version: is ${sent}, but the entity is at ${current}: GET it again and apply the change to that`);
  }
}

// ---- images ----

/** An image as v3 shows it (`lastTask`: its last task, if known; `description`: what a create gave, while Prism holds it). */
export function imageEntity(img: Image & { lastTask?: string; description?: string }, ctx: V3VmContext, base: string): V3Entity {
  const type = img.format === 'iso' ? 'ISO_IMAGE' : 'DISK_IMAGE';
  const resources = { image_type: type, architecture: 'X86_64', ...(img.source.startsWith('http') ? { source_uri: img.source } : {}) };
  const description = img.description === undefined ? {} : { description: img.description };
  return {
    api_version: API_VERSION,
    metadata: metadataOf('image', img.uuid, img.name, 0, img.createdAt),
    spec: { name: img.name, ...description, resources },
    status: {
      state: img.state === 'ready' ? 'COMPLETE' : 'PENDING', name: img.name, ...description,
      execution_context: { task_uuid: img.lastTask ? [img.lastTask] : [] },
      resources: { ...resources, size_bytes: img.sizeBytes, retrieval_uri_list: [`${base}/api/nutanix/v3/images/${img.uuid}/file`], current_cluster_reference_list: [ref('cluster', ctx.cluster.uuid)] },
    },
  };
}

export const IMAGE_ATTRIBUTES = ['name', 'uuid', 'image_type', 'state'] as const;
export const imageAttrs = (e: V3Entity): Record<(typeof IMAGE_ATTRIBUTES)[number], string> => ({
  name: String(e.metadata['name']), uuid: String(e.metadata['uuid']),
  image_type: String((e.spec['resources'] as { image_type?: string } | undefined)?.image_type ?? ''), state: String(e.status['state']),
});

/** A file's checksum as v3 gives it (`spec.resources.checksum`, or an upload's X-Nutanix-Checksum-* headers). */
export interface V3Checksum {
  algorithm: 'SHA_1' | 'SHA_256';
  /** Lower-case hex. */
  value: string;
}

const CHECKSUM_HEX = { SHA_1: 40, SHA_256: 64 } as const;

/** A checksum's algorithm and value, each error naming the field it came from. */
export function parseChecksum(algorithm: unknown, value: unknown, fields: { algorithm: string; value: string }): V3Checksum {
  if (algorithm !== 'SHA_1' && algorithm !== 'SHA_256') throw new InputError(fields.algorithm, 'must be SHA_1 or SHA_256');
  const hex = CHECKSUM_HEX[algorithm];
  if (typeof value !== 'string' || !new RegExp(`^[0-9a-fA-F]{${hex}}$`).test(value)) throw new InputError(fields.value, `must be the ${algorithm} of the file: ${hex} hex digits`);
  return { algorithm, value: value.toLowerCase() };
}

/** An image whose file comes later, by PUT /images/{uuid}/file (a v3 create without `source_uri`). */
export interface V3ImageUpload {
  name: string;
  format?: 'iso';
  description?: string;
  /** What the uploaded file must hash to. */
  checksum?: V3Checksum;
}

/**
 * POST /images: an import from `spec.resources.source_uri`, or without it an image whose file the
 * client uploads next (`upload`; node/image-upload.ts).
 */
export function parseV3ImageCreate(body: unknown): { request: ImageCreateRequest; spec: Obj } | { upload: V3ImageUpload; spec: Obj } {
  const b = checkTop(body);
  checkMetadata(b, 'image', true);
  const spec = objectAt(b['spec'], 'spec', true)!;
  known(spec, 'spec', ['name', 'description', 'resources']);
  const name = stringAt(spec, 'name', 'spec', true, 80)!;
  const description = stringAt(spec, 'description', 'spec', false, 1000);
  const r = objectAt(spec['resources'], 'spec.resources', true)!;
  known(r, 'spec.resources', ['image_type', 'source_uri', 'architecture', 'checksum', 'initial_placement_ref_list', 'version', 'data_source_reference', 'source_options']);
  const type = r['image_type'] ?? 'DISK_IMAGE';
  if (type !== 'DISK_IMAGE' && type !== 'ISO_IMAGE') throw new InputError('spec.resources.image_type', 'must be DISK_IMAGE or ISO_IMAGE');
  if (r['architecture'] !== undefined && r['architecture'] !== 'X86_64') throw new InputError('spec.resources.architecture', 'only X86_64 is supported');
  if (r['data_source_reference'] !== undefined) throw new InputError('spec.resources.data_source_reference', 'images from VM disks are not supported; give source_uri');
  const format = type === 'ISO_IMAGE' ? { format: 'iso' as const } : {};
  const url = stringAt(r, 'source_uri', 'spec.resources', false, 2048);
  const c = objectAt(r['checksum'], 'spec.resources.checksum');
  if (url === undefined) {
    // an upload's checksum is checked as the file goes through (an import from a URL's is not, yet)
    if (c) known(c, 'spec.resources.checksum', ['checksum_algorithm', 'checksum_value']);
    const checksum = c ? parseChecksum(c['checksum_algorithm'], c['checksum_value'], { algorithm: 'spec.resources.checksum.checksum_algorithm', value: 'spec.resources.checksum.checksum_value' }) : undefined;
    return { upload: { name, ...format, ...(description ? { description } : {}), ...(checksum ? { checksum } : {}) }, spec };
  }
  if (c) throw new InputError('spec.resources.checksum', 'is checked on uploads only, not yet on an import from a URL; leave it out');
  return { request: { name, url, ...format }, spec };
}

// ---- subnets ----

function prefixOf(cidr: string | null): { ip: string; prefix: number } | undefined {
  const m = cidr === null ? null : /^([\d.]+)\/(\d+)$/.exec(cidr);
  return m ? { ip: m[1] ?? '', prefix: Number(m[2]) } : undefined;
}

export function subnetEntity(s: Subnet, ctx: V3VmContext): V3Entity {
  const net = prefixOf(s.cidr);
  const ipConfig = net ? {
    subnet_ip: net.ip, prefix_length: net.prefix, ...(s.gateway ? { default_gateway_ip: s.gateway } : {}),
    pool_list: s.pool ? [{ range: `${s.pool.start} ${s.pool.end}` }] : [],
    dhcp_options: { domain_name_server_list: s.dns },
  } : undefined;
  const resources = { subnet_type: 'VLAN', vlan_id: s.vlanId, vswitch_name: 'br0', ...(ipConfig ? { ip_config: ipConfig } : {}) };
  const cluster = ref('cluster', ctx.cluster.uuid, ctx.cluster.name);
  const assigned = Object.keys(s.leases).length;
  return {
    api_version: API_VERSION,
    metadata: metadataOf('subnet', s.uuid, s.name, 0, '1970-01-01T00:00:00Z'),
    spec: { name: s.name, cluster_reference: cluster, resources },
    status: {
      state: 'COMPLETE', name: s.name, cluster_reference: cluster, execution_context: { task_uuid: [] },
      resources: { ...resources, ip_usage_stats: { num_assigned_ips: assigned, num_macs: assigned } },
    },
  };
}

export const SUBNET_ATTRIBUTES = ['name', 'uuid', 'vlan_id', 'subnet_type'] as const;
export const subnetAttrs = (e: V3Entity): Record<(typeof SUBNET_ATTRIBUTES)[number], string> => {
  const r = (e.spec['resources'] ?? {}) as { vlan_id?: number; subnet_type?: string };
  return { name: String(e.metadata['name']), uuid: String(e.metadata['uuid']), vlan_id: String(r.vlan_id ?? ''), subnet_type: r.subnet_type ?? '' };
};

/** POST /subnets: a VLAN subnet, with IPAM when ip_config is given. */
export function parseV3SubnetCreate(body: unknown, ctx: V3VmContext): { request: SubnetCreateRequest; spec: Obj } {
  const { spec, name = '', r, f } = openSpec(body, 'subnet', ctx, true, ['subnet_type', 'vlan_id', 'is_external', 'virtual_switch_uuid', 'vswitch_name', 'ip_config', 'enable_nat', 'network_function_chain_reference', 'vpc_reference']);
  if (r['subnet_type'] !== undefined && r['subnet_type'] !== 'VLAN') throw new InputError(`${f}.subnet_type`, 'only VLAN subnets are supported');
  if (r['is_external'] === true) throw new InputError(`${f}.is_external`, 'external subnets are not supported');
  const vlanId = intAt(r, 'vlan_id', f, 0, 4094);
  const ip = objectAt(r['ip_config'], `${f}.ip_config`);
  if (!ip) return { request: { name, vlanId }, spec };
  const g = `${f}.ip_config`;
  known(ip, g, ['subnet_ip', 'prefix_length', 'default_gateway_ip', 'pool_list', 'dhcp_options', 'dhcp_server_address']);
  const subnetIp = stringAt(ip, 'subnet_ip', g, true, 15)!;
  const prefix = intAt(ip, 'prefix_length', g, 8, 30);
  const gateway = stringAt(ip, 'default_gateway_ip', g, false, 15);
  const pools = arrayAt(ip['pool_list'], `${g}.pool_list`);
  if (pools.length > 1) throw new InputError(`${g}.pool_list`, 'one pool per subnet is supported');
  let pool: { start: string; end: string } | undefined;
  if (pools.length === 1) {
    const p = objectAt(pools[0], `${g}.pool_list[0]`, true)!;
    const range = stringAt(p, 'range', `${g}.pool_list[0]`, true, 40)!;
    const [start, end, extra] = range.trim().split(/\s+/);
    if (!start || !end || extra !== undefined) throw new InputError(`${g}.pool_list[0].range`, 'must be "<first address> <last address>"');
    pool = { start, end };
  }
  const dhcp = objectAt(ip['dhcp_options'], `${g}.dhcp_options`);
  const dns = dhcp ? arrayAt(dhcp['domain_name_server_list'], `${g}.dhcp_options.domain_name_server_list`).map((x, i) => {
    if (typeof x !== 'string') throw new InputError(`${g}.dhcp_options.domain_name_server_list[${i}]`, 'must be an address');
    return x;
  }) : [];
  return { request: { name, vlanId, cidr: `${subnetIp}/${prefix}`, ...(gateway ? { gateway } : {}), ...(pool ? { pool } : {}), ...(dns.length > 0 ? { dns } : {}) }, spec };
}

// ---- tasks and answers ----

const TASK_STATUS: Record<Task['state'], string> = { queued: 'QUEUED', running: 'RUNNING', paused: 'RUNNING', succeeded: 'SUCCEEDED', failed: 'FAILED', aborted: 'FAILED' };
const OPERATION: Record<string, string> = {
  'vm.create': 'VmCreate', 'vm.update': 'VmUpdate', 'vm.delete': 'VmDelete', 'vm.clone': 'VmClone', 'vm.migrate': 'VmMigrate',
  'vm.power.on': 'VmPowerStateChange', 'vm.power.off': 'VmPowerStateChange', 'vm.power.shutdown': 'VmPowerStateChange', 'vm.power.reset': 'VmPowerStateChange',
  'image.import': 'ImageCreate', 'image.create': 'ImageCreate', 'image.delete': 'ImageDelete', 'vm.ha-restart': 'VmHaRestart',
};

/** A VM service task as v3's GET /tasks/{uuid} shows it (an aborted task is FAILED, with why). */
export function vmTaskOf(t: Task, clusterUuid: string): Record<string, unknown> {
  const done = t.finishedAt ?? '';
  return {
    uuid: t.uuid, status: TASK_STATUS[t.state], percentage_complete: t.percent, progress_message: t.message,
    operation_type: OPERATION[t.operation] ?? t.operation,
    entity_reference_list: [ref(t.entity.kind, t.entity.uuid, t.entity.name)],
    cluster_reference: ref('cluster', clusterUuid), subtask_reference_list: [],
    ...(t.parent ? { parent_task_reference: ref('task', t.parent) } : {}),
    error_detail: t.error ? t.error.message : '', error_code: t.error ? t.error.code : '',
    creation_time: t.createdAt, start_time: t.startedAt ?? '', last_update_time: done || t.startedAt || t.createdAt, completion_time: done, completion_timev: done,
    api_version: API_VERSION,
  };
}

/** The 202 answer of a create or update: the spec back, a PENDING status with the task's uuid (a string here). */
export function accepted(kind: string, uuid: string, specVersion: number, spec: Obj, task: string): Record<string, unknown> {
  return { api_version: API_VERSION, metadata: { kind, uuid, spec_version: specVersion }, spec, status: { state: 'PENDING', execution_context: { task_uuid: task } } };
}

/** The 202 answer of a delete (Terraform reads `spec` as a string). */
export function deleting(kind: string, uuid: string, task: string): Record<string, unknown> {
  return { api_version: API_VERSION, metadata: { kind, uuid }, spec: '', status: { state: 'DELETE_PENDING', execution_context: { task_uuid: task } } };
}
