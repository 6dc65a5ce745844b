/**
 * @module
 * The v4 API's shapes (pure), as Nutanix's v4 SDKs (ntnx-api-golang-clients, the Python SDKs the
 * Ansible collection's `_v2` modules use) send and parse them: the envelope with `$objectType` on
 * every object (the SDKs choose the type by it) and `$reserved` (where they put an entity's ETag),
 * list queries (`$page`, `$limit`, `$filter`, `$orderby`, `$select`), task references whose
 * extId is `ZXJnb24=:<uuid>`, and the error body. Entities: clustermgmt clusters and hosts, vmm
 * AHV VMs and images, networking subnets, prism tasks.
 */
import { InputError } from '../../shared/errors.ts';
import type { Image, Subnet, Task, Vm, VmHost, VmCreateRequest, VmUpdateRequest, VmDiskRequest, VmNicRequest, VmPowerAction, ImageCreateRequest, SubnetCreateRequest } from '../../cvm/protocol/vms.ts';
import type { PrismTask } from '../protocol/prism.ts';
import { healthOf, type ClusterSnapshot, type MemberView } from './snapshot.ts';
import { matchesOData, parseODataFilter, parseOrderBy } from './odata.ts';
import { diskUuid, nicUuid, reportedPower, type V3VmContext } from './v3-vms.ts';

/** The version this Prism reports to `OPTIONS /api/<namespace>/unversioned/info`; it serves v4.0 to v4.3 paths. */
export const V4_VERSION = 'v4.3';
export const V4_NAMESPACES = ['clustermgmt', 'vmm', 'networking', 'prism', 'lifecycle'] as const;
export type V4Namespace = (typeof V4_NAMESPACES)[number];
/** A version path segment the SDKs use: v4.0, v4.1 … and their a/b pre-releases (v4.0.b1). */
export const isV4Version = (v: string): boolean => /^v4\.[0-9]{1,2}(\.[ab][0-9]{1,2})?$/.test(v);

const RESERVED = { $fv: 'v4.r0' };
type Obj = Record<string, unknown>;
const obj = (objectType: string, fields: Obj): Obj => ({ $objectType: objectType, $reserved: { ...RESERVED }, ...fields });
const ipv4 = (value: string): Obj => ({ ipv4: { value } });

// ---- list queries ----

export interface V4Query {
  page: number;
  limit: number;
  filter: ReturnType<typeof parseODataFilter>;
  orderBy: ReturnType<typeof parseOrderBy>;
  select: string[] | null;
}

export const V4_MAX_LIMIT = 100;
export const V4_DEFAULT_LIMIT = 50;

/** `$page` (from 0), `$limit` (1–100), `$filter`, `$orderby`, `$select`; other `$` parameters are refused by name. */
export function parseV4Query(q: Record<string, unknown>): V4Query {
  for (const k of Object.keys(q)) if (k.startsWith('$') && !['$page', '$limit', '$filter', '$orderby', '$select', '$expand'].includes(k)) throw new InputError(k, 'is not a query option of this API ($page, $limit, $filter, $orderby, $select)');
  const int = (k: string, dflt: number, min: number, max: number): number => {
    const raw = q[k];
    if (raw === undefined) return dflt;
    const n = typeof raw === 'string' && /^[0-9]{1,9}$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) throw new InputError(k, `must be a whole number from ${min} to ${max}`);
    return n;
  };
  const str = (k: string): string => {
    const v = q[k];
    if (v === undefined) return '';
    if (typeof v !== 'string') throw new InputError(k, 'must be given once');
    return v;
  };
  const sel = str('$select').trim();
  if (sel.length > 500) throw new InputError('$select', 'is longer than 500 characters');
  const select = sel === '' ? null : sel.split(',').map((s) => s.trim());
  if (select?.some((s) => !/^[A-Za-z_$][A-Za-z0-9_]*$/.test(s))) throw new InputError('$select', 'must be property names separated by commas');
  return { page: int('$page', 0, 0, 1_000_000), limit: int('$limit', V4_DEFAULT_LIMIT, 1, V4_MAX_LIMIT), filter: parseODataFilter(str('$filter')), orderBy: parseOrderBy(str('$orderby')), select };
}

/** The list answer: filtered, sorted, one page, with the metadata and links the SDKs read. */
export function v4List(objectType: string, all: readonly Obj[], q: V4Query, selfUrl: string): Obj {
  let xs = all.filter((x) => matchesOData(q.filter, x));
  if (q.orderBy) xs = [...xs].sort(q.orderBy);
  const total = xs.length;
  const page = xs.slice(q.page * q.limit, (q.page + 1) * q.limit).map((x) => (q.select ? Object.fromEntries(Object.entries(x).filter(([k]) => k.startsWith('$') || k === 'extId' || q.select?.includes(k))) : x));
  const last = Math.max(0, Math.ceil(total / q.limit) - 1);
  const link = (rel: string, p: number): Obj => ({ $objectType: 'common.v1.response.ApiLink', href: `${selfUrl.split('?')[0] ?? ''}?$page=${p}&$limit=${q.limit}`, rel });
  return {
    $objectType: objectType, $reserved: { ...RESERVED },
    data: page,
    metadata: {
      $objectType: 'common.v1.response.ApiResponseMetadata', $reserved: { $fv: 'v1.r0' },
      flags: [{ $objectType: 'common.v1.config.Flag', name: 'hasError', value: false }, { $objectType: 'common.v1.config.Flag', name: 'isPaginated', value: true }, { $objectType: 'common.v1.config.Flag', name: 'isTruncated', value: false }],
      links: [link('first', 0), link('self', q.page), ...(q.page < last ? [link('next', q.page + 1)] : []), ...(q.page > 0 ? [link('prev', q.page - 1)] : []), link('last', last)],
      totalAvailableResults: total,
    },
  };
}

/** A single entity's answer (its ETag goes in the header and, by the SDK, into `$reserved`). */
export function v4One(objectType: string, data: Obj): Obj {
  return { $objectType: objectType, $reserved: { ...RESERVED }, data, metadata: { $objectType: 'common.v1.response.ApiResponseMetadata', flags: [{ $objectType: 'common.v1.config.Flag', name: 'hasError', value: false }], links: [] } };
}

/** A task's extId as the reference platform writes it: base64("ergon") + ":" + uuid. */
export const taskExtId = (uuid: string): string => `ZXJnb24=:${uuid}`;
export const taskUuidOf = (extId: string): string => (extId.startsWith('ZXJnb24=:') ? extId.slice(9) : extId);

/** The 202 answer of a mutation: a task reference. */
export function v4Accepted(objectType: string, task: string): Obj {
  return v4One(objectType, obj('prism.v4.config.TaskReference', { extId: taskExtId(task) }));
}

/** The v4 error body of a namespace. */
export function v4Error(ns: string, status: number, message: string, code: string, args: Record<string, string> = {}): Obj {
  return {
    $objectType: `${ns}.v4.error.ErrorResponse`, $dataItemDiscriminator: `${ns}.v4.error.ErrorResponse`,
    data: {
      $objectType: `${ns}.v4.error.ErrorResponse`, $errorItemDiscriminator: `List<${ns}.v4.error.AppMessage>`,
      error: [{ $objectType: `${ns}.v4.error.AppMessage`, message, severity: 'ERROR', code, locale: 'en-US', errorGroup: code, argumentsMap: args }],
    },
    metadata: { $objectType: 'common.v1.response.ApiResponseMetadata', flags: [{ $objectType: 'common.v1.config.Flag', name: 'hasError', value: true }] },
    status,
  };
}

// ---- clustermgmt ----

export function v4Cluster(s: ClusterSnapshot): Obj {
  const c = s.cluster;
  const nos = s.members.find((m) => m.cvm)?.cvm?.nosVersion ?? '';
  return obj('clustermgmt.v4.config.Cluster', {
    extId: c.clusterId, name: c.name,
    config: {
      clusterFunction: ['AOS'], hypervisorTypes: ['AHV'], buildInfo: { buildType: 'release', version: nos, fullVersion: `converge-aos-${nos}` },
      clusterArch: 'X86_64', redundancyFactor: c.redundancyFactor, isAvailable: healthOf(s).state !== 'CRITICAL', timezone: 'UTC',
      operationMode: s.store && !s.store.quorum ? 'READ_ONLY' : 'NORMAL', encryptionInTransitStatus: 'DISABLED',
    },
    network: { ...(c.vip ? { externalAddress: ipv4(c.vip) } : {}), nameServerIpList: (c.dns ?? []).map(ipv4), ntpServerIpList: (c.ntp ?? []).map((x) => ({ ipv4: { value: x } })) },
    nodes: { numberOfNodes: s.members.length, nodeList: s.members.map((m) => ({ controllerVmIp: ipv4(m.cvmIp), hostIp: ipv4(m.hostIp), nodeUuid: m.hostUuid })) },
  });
}

/** A host's maintenance state as v4 reports it, from the VM service's host state. */
const MAINTENANCE: Record<VmHost['state'], string> = { up: 'NORMAL', down: 'NORMAL', fenced: 'NORMAL', 'entering-maintenance': 'ENTERING_MAINTENANCE_MODE', maintenance: 'IN_MAINTENANCE_MODE' };

export function v4Host(m: MemberView, s: ClusterSnapshot, vms: number, state?: VmHost['state']): Obj {
  const h = m.host;
  return obj('clustermgmt.v4.config.Host', {
    extId: m.hostUuid, hostName: h?.hostname ?? m.serial, hostType: 'HYPER_CONVERGED',
    hypervisor: { externalAddress: ipv4(m.hostIp), type: 'AHV', fullName: `Converge AHV ${h?.hypervisorVersion ?? m.cvm?.hypervisorVersion ?? ''}`.trim(), numberOfVms: vms, state: m.cvm && h ? 'ACCEPTED' : 'UNKNOWN' },
    cluster: { uuid: s.cluster.clusterId, name: s.cluster.name },
    controllerVm: { externalAddress: ipv4(m.cvmIp), id: 0 },
    ipmi: { ip: ipv4(h?.hardware.bmcIp ?? '') },
    blockSerial: h?.hardware.block.serial ?? '', blockModel: h?.hardware.model ?? '', nodeSerial: m.serial,
    cpuModel: h?.hardware.cpu.model ?? '', numberOfCpuSockets: h?.hardware.cpu.sockets ?? 0, numberOfCpuCores: h?.hardware.cpu.cores ?? 0, numberOfCpuThreads: h?.hardware.cpu.threads ?? 0,
    cpuFrequencyHz: (h?.hardware.cpu.speedMHz ?? 0) * 1e6, memorySizeBytes: (h?.hardware.memoryMiB ?? 0) * 2 ** 20,
    isDegraded: m.problems.length > 0, isHardwareVirtualized: false, maintenanceState: state ? MAINTENANCE[state] : 'NORMAL',
  });
}

// ---- vmm: VMs ----

const BUS: Record<string, string> = { 'virtio-scsi': 'SCSI', 'virtio-blk': 'PCI', cdrom: 'IDE' };

const v4PowerState = (vm: Vm): string => reportedPower(vm) ?? 'UNDETERMINED';

/** A VM's ETag: it changes with every spec change and power state. */
export const vmEtag = (vm: Vm): string => `"${vm.uuid.slice(0, 8)}-${vm.specVersion}-${vm.powerState}"`;

export function v4Vm(vm: Vm, ctx: V3VmContext): Obj {
  const idx = new Map<string, number>();
  const at = (bus: string): number => {
    const i = idx.get(bus) ?? 0;
    idx.set(bus, i + 1);
    return i;
  };
  const host = vm.host ? ctx.hosts.find((h) => h.serial === vm.host?.serial) : undefined;
  const disks = vm.disks.filter((d) => d.bus !== 'cdrom').map((d) => obj('vmm.v4.ahv.config.Disk', {
    extId: diskUuid(vm.uuid, d.vdisk), diskAddress: { busType: BUS[d.bus], index: at(BUS[d.bus] ?? '') },
    backingInfo: obj('vmm.v4.ahv.config.VmDisk', {
      diskExtId: diskUuid(vm.uuid, d.vdisk), diskSizeBytes: d.sizeBytes,
      ...(d.image ? { dataSource: { $objectType: 'vmm.v4.ahv.config.DataSource', reference: { $objectType: 'vmm.v4.ahv.config.ImageReference', imageExtId: d.image } } } : {}),
    }),
  }));
  const cdRoms = vm.disks.filter((d) => d.bus === 'cdrom').map((d) => obj('vmm.v4.ahv.config.CdRom', {
    extId: diskUuid(vm.uuid, d.vdisk), diskAddress: { busType: 'IDE', index: at('IDE') },
    backingInfo: obj('vmm.v4.ahv.config.VmDisk', { diskSizeBytes: d.sizeBytes, ...(d.image ? { dataSource: { reference: { $objectType: 'vmm.v4.ahv.config.ImageReference', imageExtId: d.image } } } : {}) }),
  }));
  const nics = vm.nics.map((n) => {
    const network = { nicType: 'NORMAL_NIC', vlanMode: 'ACCESS', subnet: { extId: n.subnetUuid }, ...(n.ip ? { ipv4Config: { ipAddress: { value: n.ip } }, ipv4Info: { learnedIpAddresses: [{ value: n.ip }] } } : {}) };
    const backing = { model: 'VIRTIO', macAddress: n.mac.toLowerCase(), isConnected: true };
    // both spellings: v4.0 clients read networkInfo/backingInfo, later ones nicNetworkInfo/nicBackingInfo
    return obj('vmm.v4.ahv.config.Nic', {
      extId: nicUuid(vm.uuid, n.mac), backingInfo: backing, networkInfo: network,
      nicBackingInfo: { $objectType: 'vmm.v4.ahv.config.VirtualEthernetNic', ...backing }, nicNetworkInfo: { $objectType: 'vmm.v4.ahv.config.VirtualEthernetNicNetworkInfo', ...network },
    });
  });
  return obj('vmm.v4.ahv.config.Vm', {
    extId: vm.uuid, name: vm.name, description: '', createTime: vm.createdAt, updateTime: vm.createdAt, biosUuid: vm.uuid,
    numSockets: vm.vcpus, numCoresPerSocket: 1, numThreadsPerCore: 1, numNumaNodes: 0, memorySizeBytes: vm.memoryMiB * 2 ** 20,
    powerState: v4PowerState(vm), machineType: 'PC', hardwareClockTimezone: 'UTC', isAgentVm: false, isVgaConsoleEnabled: false, isMemoryOvercommitEnabled: false,
    protectionType: 'UNPROTECTED', cluster: { extId: ctx.cluster.uuid }, ...(host ? { host: { extId: host.uuid } } : {}),
    bootConfig: { $objectType: 'vmm.v4.ahv.config.LegacyBoot', bootOrder: ['CDROM', 'DISK', 'NETWORK'] },
    disks, cdRoms, nics, serialPorts: [], gpus: [], categories: [],
    haPriority: vm.ha ? 1 : 0,
  });
}

function v4Obj(v: unknown, field: string, required = false): Obj | undefined {
  if (v === undefined || v === null) {
    if (required) throw new InputError(field, 'is required');
    return undefined;
  }
  if (typeof v !== 'object' || Array.isArray(v)) throw new InputError(field, 'must be an object');
  return v as Obj;
}

function v4Known(o: Obj, field: string, keys: readonly string[]): void {
  for (const k of Object.keys(o)) if (!k.startsWith('$') && !keys.includes(k)) throw new InputError(field ? `${field}.${k}` : k, `is not a field of ${field || 'the body'} (one of ${keys.join(', ')})`);
}

function v4Int(o: Obj, k: string, field: string, min: number, max: number, dflt?: number): number {
  const v = o[k] ?? dflt;
  if (v === undefined) throw new InputError(field ? `${field}.${k}` : k, 'is required');
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new InputError(field ? `${field}.${k}` : k, `must be a whole number from ${min} to ${max}`);
  return v;
}

function listAt(v: unknown, field: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new InputError(field, 'must be a list');
  return v;
}

const VM_KEYS = [
  'name', 'description', 'numSockets', 'numCoresPerSocket', 'numThreadsPerCore', 'numNumaNodes', 'memorySizeBytes', 'cluster', 'disks', 'cdRoms', 'nics',
  'bootConfig', 'powerState', 'machineType', 'hardwareClockTimezone', 'isAgentVm', 'isVgaConsoleEnabled', 'isMemoryOvercommitEnabled', 'protectionType',
  'guestCustomization', 'gpus', 'serialPorts', 'categories', 'source', 'ownershipInfo', 'apcConfig', 'vtpmConfig', 'isCpuPassthroughEnabled', 'enabledCpuFeatures',
  'isVcpuHardPinningEnabled', 'isGpuConsoleEnabled', 'isBrandingEnabled', 'isCrossClusterMigrationInProgress', 'isLiveMigrateCapable', 'guestTools', 'haPriority',
  'extId', 'biosUuid', 'host', 'createTime', 'updateTime', 'generationUuid', 'storageConfig', 'pcieDevices', 'tenantId', 'links',
];

/** POST /vmm/…/ahv/config/vms: the VM service's create request (a v4 VM is created off). */
/**
 * PUT …/vms/{extId}: the VM as GET gave it, changed. What it changes: the name and the size
 * (numSockets × numCoresPerSocket × numThreadsPerCore, memorySizeBytes); disks and NICs have their
 * own v4 endpoints, so lists that differ from the VM's are refused naming them, as is a power state
 * (the `$actions`) or any field the schema does not have. Null when nothing changes.
 */
export function parseV4VmUpdate(body: unknown, vm: Vm): VmUpdateRequest | null {
  const b = v4Obj(body, 'body', true)!;
  v4Known(b, '', VM_KEYS);
  if (b['extId'] !== undefined && b['extId'] !== vm.uuid) throw new InputError('extId', `is not this VM's (${vm.uuid})`);
  const u: VmUpdateRequest = { specVersion: vm.specVersion };
  const name = b['name'] ?? vm.name;
  if (typeof name !== 'string' || name.length === 0 || name.length > 80) throw new InputError('name', 'must be 1 to 80 characters');
  if (name !== vm.name) u.name = name;
  const n = (k: string): number => (b[k] === undefined ? 1 : v4Int(b, k, '', 1, 256));
  const vcpus = b['numSockets'] === undefined ? vm.vcpus : v4Int(b, 'numSockets', '', 1, 256) * n('numCoresPerSocket') * n('numThreadsPerCore');
  if (vcpus !== vm.vcpus) u.vcpus = vcpus;
  const mem = b['memorySizeBytes'] === undefined ? vm.memoryMiB : Math.ceil(v4Int(b, 'memorySizeBytes', '', 16 * 2 ** 20, 4 * 2 ** 40) / 2 ** 20);
  if (mem !== vm.memoryMiB) u.memoryMiB = mem;
  const ids = (k: string): string[] | undefined => (b[k] === undefined ? undefined : listAt(b[k], k).map((x, i) => {
    const id = v4Obj(x, `${k}[${i}]`, true)!['extId'];
    return typeof id === 'string' ? id : '';
  }).sort());
  const same = (a: string[] | undefined, want: string[]): boolean => a === undefined || (a.length === want.length && a.every((x, i) => x === want[i]));
  if (!same(ids('disks'), vm.disks.filter((d) => d.bus !== 'cdrom').map((d) => diskUuid(vm.uuid, d.vdisk)).sort())) throw new InputError('disks', 'disks are added and removed through …/vms/{extId}/disks, not by an update of the VM');
  if (!same(ids('cdRoms'), vm.disks.filter((d) => d.bus === 'cdrom').map((d) => diskUuid(vm.uuid, d.vdisk)).sort())) throw new InputError('cdRoms', 'CD-ROMs are changed through …/vms/{extId}/cd-roms, not by an update of the VM');
  if (!same(ids('nics'), vm.nics.map((x) => nicUuid(vm.uuid, x.mac)).sort())) throw new InputError('nics', 'NICs are added and removed through …/vms/{extId}/nics, not by an update of the VM');
  const power = b['powerState'];
  if (power !== undefined && power !== v4PowerState(vm)) throw new InputError('powerState', 'is changed by the power $actions (power-on, power-off, shutdown, …), not by an update');
  return Object.keys(u).length > 1 ? u : null;
}

export function parseV4VmCreate(body: unknown, ctx: V3VmContext): VmCreateRequest {
  const b = v4Obj(body, 'body', true)!;
  v4Known(b, '', VM_KEYS);
  const name = b['name'];
  if (typeof name !== 'string' || name.length === 0 || name.length > 80) throw new InputError('name', 'is required: 1 to 80 characters');
  const cl = v4Obj(b['cluster'], 'cluster');
  if (cl?.['extId'] !== undefined && cl['extId'] !== ctx.cluster.uuid) throw new InputError('cluster.extId', `must be this cluster's (${ctx.cluster.uuid})`);
  if (listAt(b['gpus'], 'gpus').length > 0) throw new InputError('gpus', 'GPUs are not supported');
  if (v4Obj(b['guestCustomization'], 'guestCustomization')) throw new InputError('guestCustomization', 'guest customization (cloud-init, sysprep) is not supported');
  if (listAt(b['categories'], 'categories').length > 0) throw new InputError('categories', 'categories are not supported by this cluster');
  const boot = v4Obj(b['bootConfig'], 'bootConfig');
  if (boot && boot['$objectType'] !== undefined && boot['$objectType'] !== 'vmm.v4.ahv.config.LegacyBoot') throw new InputError('bootConfig', 'only legacy (BIOS) boot is supported');
  const bytes = v4Int(b, 'memorySizeBytes', '', 16 * 2 ** 20, 4 * 2 ** 40);
  const image = (ref: Obj | undefined, field: string): string | undefined => {
    const ds = v4Obj(ref?.['dataSource'], `${field}.dataSource`);
    if (!ds) return undefined;
    const r = v4Obj(ds['reference'], `${field}.dataSource.reference`, true)!;
    const id = r['imageExtId'];
    if (typeof id !== 'string') throw new InputError(`${field}.dataSource.reference.imageExtId`, 'is required (copies of VM disks are not supported)');
    if (!ctx.images.some((i) => i.uuid === id)) throw new InputError(`${field}.dataSource.reference.imageExtId`, `no image ${id} in this cluster`);
    return id;
  };
  const disks: VmDiskRequest[] = listAt(b['disks'], 'disks').map((raw, i) => {
    const f = `disks[${i}]`;
    const d = v4Obj(raw, f, true)!;
    v4Known(d, f, ['diskAddress', 'backingInfo', 'extId']);
    const bus = v4Obj(d['diskAddress'], `${f}.diskAddress`)?.['busType'] ?? 'SCSI';
    if (bus !== 'SCSI' && bus !== 'PCI') throw new InputError(`${f}.diskAddress.busType`, 'a disk is on SCSI (virtio-scsi) or PCI (virtio-blk)');
    const bi = v4Obj(d['backingInfo'], `${f}.backingInfo`, true)!;
    if (bi['$objectType'] !== undefined && bi['$objectType'] !== 'vmm.v4.ahv.config.VmDisk') throw new InputError(`${f}.backingInfo`, 'only VM disks (vmm.v4.ahv.config.VmDisk) are supported');
    const img = image(bi, `${f}.backingInfo`);
    const size = bi['diskSizeBytes'] === undefined ? undefined : v4Int(bi, 'diskSizeBytes', `${f}.backingInfo`, 1, 64 * 2 ** 40);
    const sc = v4Obj(bi['storageContainer'], `${f}.backingInfo.storageContainer`);
    const container = sc ? ctx.containers.find((c) => c.uuid === sc['extId'])?.name : undefined;
    if (sc && !container) throw new InputError(`${f}.backingInfo.storageContainer.extId`, 'no such storage container in this cluster');
    const b2 = bus === 'SCSI' ? 'virtio-scsi' as const : 'virtio-blk' as const;
    if (img) return { image: img, bus: b2, ...(size !== undefined ? { sizeBytes: size } : {}), ...(container ? { container } : {}) };
    if (size === undefined) throw new InputError(`${f}.backingInfo.diskSizeBytes`, 'a new empty disk needs a size');
    return { sizeBytes: size, bus: b2, ...(container ? { container } : {}) };
  });
  listAt(b['cdRoms'], 'cdRoms').forEach((raw, i) => {
    const f = `cdRoms[${i}]`;
    const c = v4Obj(raw, f, true)!;
    const img = image(v4Obj(c['backingInfo'], `${f}.backingInfo`), `${f}.backingInfo`);
    if (!img) throw new InputError(`${f}.backingInfo`, 'a CD-ROM needs an image (empty drives are not supported)');
    disks.push({ cdromImage: img });
  });
  const nics: VmNicRequest[] = listAt(b['nics'], 'nics').map((raw, i) => {
    const f = `nics[${i}]`;
    const n = v4Obj(raw, f, true)!;
    v4Known(n, f, ['backingInfo', 'networkInfo', 'nicBackingInfo', 'nicNetworkInfo', 'extId']);
    const netKey = n['nicNetworkInfo'] !== undefined ? 'nicNetworkInfo' : 'networkInfo';
    const net = v4Obj(n[netKey], `${f}.${netKey}`, true)!;
    const subnet = v4Obj(net['subnet'], `${f}.${netKey}.subnet`, true)!['extId'];
    if (typeof subnet !== 'string' || !ctx.subnets.some((s) => s.uuid === subnet)) throw new InputError(`${f}.${netKey}.subnet.extId`, 'no such subnet in this cluster');
    const ip = (v4Obj(v4Obj(net['ipv4Config'], `${f}.${netKey}.ipv4Config`)?.['ipAddress'], `${f}.${netKey}.ipv4Config.ipAddress`))?.['value'];
    const backing = v4Obj(n['nicBackingInfo'] ?? n['backingInfo'], `${f}.backingInfo`);
    const mac = backing?.['macAddress'];
    return { subnet, ...(typeof ip === 'string' ? { ip } : {}), ...(typeof mac === 'string' ? { mac } : {}) };
  });
  const vcpus = v4Int(b, 'numSockets', '', 1, 256, 1) * v4Int(b, 'numCoresPerSocket', '', 1, 256, 1) * v4Int(b, 'numThreadsPerCore', '', 1, 8, 1);
  return { name, vcpus, memoryMiB: Math.ceil(bytes / 2 ** 20), disks, nics, powerOn: false };
}

/** The `$actions/<action>` of a VM the VM service has. */
export const V4_POWER_ACTIONS: Record<string, VmPowerAction> = {
  'power-on': 'on', 'power-off': 'off', shutdown: 'shutdown', 'guest-shutdown': 'shutdown', reset: 'reset', 'power-cycle': 'reset', reboot: 'reset', 'guest-reboot': 'reset',
};

// ---- vmm: images; networking: subnets ----

export function v4Image(img: Image, ctx: V3VmContext): Obj {
  return obj('vmm.v4.content.Image', {
    extId: img.uuid, name: img.name, description: '', type: img.format === 'iso' ? 'ISO_IMAGE' : 'DISK_IMAGE', sizeBytes: img.sizeBytes,
    ...(img.source.startsWith('http') ? { source: { $objectType: 'vmm.v4.content.UrlSource', url: img.source, shouldAllowInsecureUrl: false } } : {}),
    clusterLocationExtIds: [ctx.cluster.uuid], createTime: img.createdAt, lastUpdateTime: img.createdAt, placementPolicyStatus: [],
  });
}

export function parseV4ImageCreate(body: unknown): ImageCreateRequest {
  const b = v4Obj(body, 'body', true)!;
  v4Known(b, '', ['name', 'description', 'type', 'source', 'clusterLocationExtIds', 'checksum', 'categoryExtIds']);
  const name = b['name'];
  if (typeof name !== 'string' || name.length === 0 || name.length > 80) throw new InputError('name', 'is required: 1 to 80 characters');
  const type = b['type'] ?? 'DISK_IMAGE';
  if (type !== 'DISK_IMAGE' && type !== 'ISO_IMAGE') throw new InputError('type', 'must be DISK_IMAGE or ISO_IMAGE');
  if (b['checksum'] !== undefined) throw new InputError('checksum', 'checksum verification is not supported yet; leave it out');
  const src = v4Obj(b['source'], 'source', true)!;
  if (src['$objectType'] !== undefined && src['$objectType'] !== 'vmm.v4.content.UrlSource') throw new InputError('source', 'only a URL source (vmm.v4.content.UrlSource) is supported');
  const url = src['url'];
  if (typeof url !== 'string' || url.length > 2048) throw new InputError('source.url', 'is required');
  return { name, url, ...(type === 'ISO_IMAGE' ? { format: 'iso' as const } : {}) };
}

export function v4Subnet(s: Subnet, ctx: V3VmContext): Obj {
  const m = s.cidr ? /^([\d.]+)\/(\d+)$/.exec(s.cidr) : null;
  return obj('networking.v4.config.Subnet', {
    extId: s.uuid, name: s.name, subnetType: 'VLAN', networkId: s.vlanId, clusterReference: ctx.cluster.uuid, isExternal: false,
    ipConfig: m ? [{
      ipv4: {
        ipSubnet: { ip: { value: m[1] }, prefixLength: Number(m[2]) }, ...(s.gateway ? { defaultGatewayIp: { value: s.gateway } } : {}),
        poolList: s.pool ? [{ startIp: { value: s.pool.start }, endIp: { value: s.pool.end } }] : [],
      },
    }] : [],
    dhcpOptions: { domainNameServers: s.dns.map((d) => ({ ipv4: { value: d } })) },
    ipUsage: { numAssignedIPs: Object.keys(s.leases).length, numMacs: Object.keys(s.leases).length },
  });
}

export function parseV4SubnetCreate(body: unknown, ctx: V3VmContext): SubnetCreateRequest {
  const b = v4Obj(body, 'body', true)!;
  v4Known(b, '', ['name', 'description', 'subnetType', 'networkId', 'clusterReference', 'vpcReference', 'ipConfig', 'dhcpOptions', 'isExternal', 'virtualSwitchReference', 'isNatEnabled']);
  const name = b['name'];
  if (typeof name !== 'string' || name.length === 0 || name.length > 80) throw new InputError('name', 'is required: 1 to 80 characters');
  if (b['subnetType'] !== undefined && b['subnetType'] !== 'VLAN') throw new InputError('subnetType', 'only VLAN subnets are supported');
  if (b['clusterReference'] !== undefined && b['clusterReference'] !== ctx.cluster.uuid) throw new InputError('clusterReference', `must be this cluster's (${ctx.cluster.uuid})`);
  const vlanId = v4Int(b, 'networkId', '', 0, 4094);
  const cfg = listAt(b['ipConfig'], 'ipConfig');
  if (cfg.length === 0) return { name, vlanId };
  if (cfg.length > 1) throw new InputError('ipConfig', 'one IPv4 configuration per subnet is supported');
  const v4 = v4Obj(v4Obj(cfg[0], 'ipConfig[0]', true)!['ipv4'], 'ipConfig[0].ipv4', true)!;
  const sub = v4Obj(v4['ipSubnet'], 'ipConfig[0].ipv4.ipSubnet', true)!;
  const ip = v4Obj(sub['ip'], 'ipConfig[0].ipv4.ipSubnet.ip', true)!['value'];
  if (typeof ip !== 'string') throw new InputError('ipConfig[0].ipv4.ipSubnet.ip.value', 'is required');
  const prefix = v4Int(sub, 'prefixLength', 'ipConfig[0].ipv4.ipSubnet', 8, 30);
  const gw = v4Obj(v4['defaultGatewayIp'], 'ipConfig[0].ipv4.defaultGatewayIp')?.['value'];
  const pools = listAt(v4['poolList'], 'ipConfig[0].ipv4.poolList');
  if (pools.length > 1) throw new InputError('ipConfig[0].ipv4.poolList', 'one pool per subnet is supported');
  const p0 = pools.length === 1 ? v4Obj(pools[0], 'ipConfig[0].ipv4.poolList[0]', true)! : undefined;
  const start = p0 ? v4Obj(p0['startIp'], 'ipConfig[0].ipv4.poolList[0].startIp', true)!['value'] : undefined;
  const end = p0 ? v4Obj(p0['endIp'], 'ipConfig[0].ipv4.poolList[0].endIp', true)!['value'] : undefined;
  return { name, vlanId, cidr: `${ip}/${prefix}`, ...(typeof gw === 'string' ? { gateway: gw } : {}), ...(typeof start === 'string' && typeof end === 'string' ? { pool: { start, end } } : {}) };
}

// ---- prism tasks ----

const REL: Record<string, string> = { vm: 'vmm:ahv:config:vm', image: 'vmm:content:image', subnet: 'networking:config:subnet', host: 'clustermgmt:config:host', cluster: 'clustermgmt:config:cluster', virtual_disk: 'vmm:ahv:config:vm:disk' };
const V4_STATUS: Record<Task['state'], string> = { queued: 'QUEUED', running: 'RUNNING', paused: 'SUSPENDED', succeeded: 'SUCCEEDED', failed: 'FAILED', aborted: 'CANCELED' };

const appMessage = (message: string, code: string): Obj => ({ $objectType: 'prism.v4.error.AppMessage', message, severity: 'ERROR', code, locale: 'en-US', errorGroup: code, argumentsMap: {} });

/** A VM service task as a v4 Task (a failed or cancelled one has at least one error message: Terraform indexes it). */
export function v4TaskOfVm(t: Task, clusterUuid: string): Obj {
  const status = V4_STATUS[t.state];
  return obj('prism.v4.config.Task', {
    extId: taskExtId(t.uuid), status, progressPercentage: t.percent, operation: t.operation, operationDescription: t.message,
    createdTime: t.createdAt, ...(t.startedAt ? { startedTime: t.startedAt } : {}), ...(t.finishedAt ? { completedTime: t.finishedAt } : {}), lastUpdatedTime: t.finishedAt ?? t.startedAt ?? t.createdAt,
    entitiesAffected: [{ $objectType: 'prism.v4.config.EntityReference', extId: t.entity.uuid, rel: REL[t.entity.kind] ?? t.entity.kind, name: t.entity.name }],
    clusterExtIds: [clusterUuid], isCancelable: false, subTasks: [], warnings: [], completionDetails: [],
    ...(t.parent ? { parentTask: { extId: taskExtId(t.parent) } } : {}),
    errorMessages: status === 'FAILED' || status === 'CANCELED' ? [appMessage(t.error?.message ?? t.state, t.error?.code ?? 'CVG_ERR_TASK')] : [],
  });
}

/** One of Prism's own tasks as a v4 Task. */
export function v4TaskOfPrism(t: PrismTask, clusterUuid: string): Obj {
  return obj('prism.v4.config.Task', {
    extId: taskExtId(t.uuid), status: t.status, progressPercentage: t.percentage, operation: t.operationType, operationDescription: t.message,
    createdTime: t.createdAt, ...(t.startedAt ? { startedTime: t.startedAt } : {}), ...(t.completedAt ? { completedTime: t.completedAt } : {}), lastUpdatedTime: t.completedAt ?? t.startedAt ?? t.createdAt,
    entitiesAffected: t.entities.map((e) => ({ $objectType: 'prism.v4.config.EntityReference', extId: e.uuid, rel: REL[e.kind] ?? e.kind, name: e.name })),
    clusterExtIds: [clusterUuid], isCancelable: false, subTasks: [], warnings: [], completionDetails: [],
    errorMessages: t.status === 'FAILED' ? [appMessage(t.error ?? 'failed', 'CVG_ERR_TASK')] : [],
  });
}
