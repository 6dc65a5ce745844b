/**
 * @module
 * The v2.0 API shapes Prism answers under /api/nutanix/v2.0 (and /PrismGateway/services/rest/v2.0)
 * (pure): storage pools, containers, virtual disks and disks, VMs, hosts, the cluster and tasks, in
 * the reference platform's list envelope.
 */
import { InputError } from '../../shared/errors.ts';
import type { ClusterSnapshot, MemberView } from './snapshot.ts';
import type { Vm, VmPowerAction } from '../../cvm/protocol/vms.ts';
import { diskUuid, type V3VmContext } from './v3-vms.ts';

export interface V2List<T> {
  metadata: { grand_total_entities: number; total_entities: number; count: number; start_index: number; end_index: number; page?: number };
  entities: T[];
}

/**
 * `?count=&page=` (page from 1) as the v2.0 API pages lists. Both are whole numbers a client's JSON
 * can hold exactly (up to 2^53 - 1): `1e300` or a repeated parameter is refused, not rounded.
 */
export function v2List<T>(all: readonly T[], query: Record<string, unknown>): V2List<T> {
  const num = (f: string, dflt: number, min: number): number => {
    const raw = query[f];
    if (raw === undefined || raw === '') return dflt;
    const v = typeof raw === 'string' && /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(v) || v < min) throw new InputError(f, `must be a whole number from ${min} to ${Number.MAX_SAFE_INTEGER}`, undefined, raw);
    return v;
  };
  const count = num('count', all.length || 1, 1);
  const page = num('page', 1, 1);
  const start = (page - 1) * count;
  const entities = all.slice(start, start + count);
  return {
    metadata: { grand_total_entities: all.length, total_entities: all.length, count: entities.length, start_index: entities.length ? start : 0, end_index: entities.length ? start + entities.length - 1 : 0, page },
    entities,
  };
}

const tierOf = (mediaType: string): string => (/ssd|nvme/i.test(mediaType) ? 'SSD' : 'DAS-SATA');

export function storagePools(s: ClusterSnapshot): Record<string, unknown>[] {
  const p = s.pool;
  if (!p) return [];
  return [{
    storagepool_uuid: `${s.cluster.clusterId}-pool`, id: `${s.cluster.clusterId}::pool`, name: p.pool.name, cluster_uuid: s.cluster.clusterId,
    capacity: p.usage.capacityBytes, disks: p.pool.disks.map((d) => d.serial),
    usage_stats: { 'storage.capacity_bytes': String(p.usage.capacityBytes), 'storage.usage_bytes': String(p.usage.usedBytes), 'storage.free_bytes': String(p.usage.freeBytes) },
  }];
}

export function storageContainers(s: ClusterSnapshot): Record<string, unknown>[] {
  const uses = new Map((s.pool?.usage.containers ?? []).map((c) => [c.name, c]));
  const free = s.pool?.usage.freeBytes ?? 0;
  return s.containers.map((c) => {
    const u = uses.get(c.name);
    const physical = u?.physicalBytes ?? 0;
    return {
      storage_container_uuid: c.uuid, id: `${s.cluster.clusterId}::${c.uuid}`, name: c.name, cluster_uuid: s.cluster.clusterId,
      storage_pool_uuid: `${s.cluster.clusterId}-pool`, replication_factor: c.replicationFactor,
      // what the container can still take, in logical bytes, at its RF
      max_capacity: physical + free, advertised_capacity: null,
      vdisk_count: u?.vdisks ?? 0,
      usage_stats: {
        'storage.user_capacity_bytes': String(Math.floor((physical + free) / c.replicationFactor)),
        'storage.user_usage_bytes': String(u?.logicalBytes ?? 0),
        'storage.usage_bytes': String(physical),
        'storage.provisioned_bytes': String(u?.provisionedBytes ?? 0),
        'storage.user_free_bytes': String(Math.floor(free / c.replicationFactor)),
      },
    };
  });
}

export function virtualDisks(s: ClusterSnapshot): Record<string, unknown>[] {
  const byName = new Map(s.containers.map((c) => [c.name, c]));
  return s.vdisks.map((v) => ({
    uuid: v.uuid, name: v.name, cluster_uuid: s.cluster.clusterId,
    storage_container_uuid: byName.get(v.container)?.uuid ?? '', storage_container_name: v.container,
    disk_capacity_in_bytes: v.sizeBytes, nutanix_nfs_file_path: `/${v.container}/.converge/vdisks/${v.name}`,
    disk_address: `nbd://${s.cluster.vip ?? s.leader}/${v.name}`, attached_vm_uuid: null, created_time: v.createdAt,
  }));
}

export function disks(s: ClusterSnapshot): Record<string, unknown>[] {
  const used = new Map((s.pool?.usage.disks ?? []).map((d) => [d.serial, d]));
  return s.members.flatMap((m) => (m.cvm?.disks ?? []).map((d) => {
    const u = used.get(d.serial);
    return {
      disk_uuid: d.serial, id: `${s.cluster.clusterId}::${d.serial}`, serial_number: d.serial, storage_tier_name: tierOf(d.mediaType),
      node_uuid: m.hostUuid, node_serial: m.serial, cvm_ip_address: m.cvmIp, host_name: m.host?.hostname ?? m.serial, cluster_uuid: s.cluster.clusterId,
      disk_size: d.capacityBytes, online: d.ok, disk_status: d.ok ? 'NORMAL' : 'MARKED_FOR_REMOVAL_BUT_NOT_DETACHABLE',
      storage_pool_uuid: u ? `${s.cluster.clusterId}-pool` : null,
      usage_stats: { 'storage.capacity_bytes': String(d.capacityBytes), 'storage.usage_bytes': String(d.usedBytes), 'storage.free_bytes': String(Math.max(0, d.capacityBytes - d.usedBytes)) },
    };
  }));
}

/** The v2.0 error body (the reference platform answers `{ message, error_code }`). */
export function v2Error(status: number, message: string, field?: string): Record<string, unknown> {
  return { message, error_code: { code: status, validation_errors: field ? [{ field, message }] : [] }, detailed_message: message };
}

// ---- VMs, hosts and the cluster (older tools: virt-who, scripts of the v2.0 era) ----

const v2Power = (vm: Vm): string => (vm.powerState === 'off' ? 'off' : vm.powerState === 'paused' ? 'paused' : 'on');

/** A VM as v2.0 shows it (`host_uuid` only while it runs, as virt-who expects). */
export function v2Vm(vm: Vm, ctx: V3VmContext): Record<string, unknown> {
  const host = vm.host ? ctx.hosts.find((h) => h.serial === vm.host?.serial) : undefined;
  const idx = new Map<string, number>();
  return {
    uuid: vm.uuid, name: vm.name, description: '', power_state: v2Power(vm), num_vcpus: vm.vcpus, num_cores_per_vcpu: 1, memory_mb: vm.memoryMiB,
    ...(host && vm.powerState !== 'off' ? { host_uuid: host.uuid } : {}), timezone: 'UTC', machine_type: 'pc', allow_live_migrate: true, ha_priority: vm.ha ? 0 : -1,
    boot: { uefi_boot: false }, vm_features: { AGENT_VM: false, VGA_CONSOLE: false }, gpus_assigned: false, vm_logical_timestamp: vm.specVersion,
    vm_disk_info: vm.disks.map((d) => {
      const bus = d.bus === 'cdrom' ? 'ide' : d.bus === 'virtio-scsi' ? 'scsi' : 'pci';
      const i = idx.get(bus) ?? 0;
      idx.set(bus, i + 1);
      return { is_cdrom: d.bus === 'cdrom', is_empty: false, size: d.sizeBytes, disk_address: { device_bus: bus, device_index: i, vmdisk_uuid: diskUuid(vm.uuid, d.vdisk), device_uuid: diskUuid(vm.uuid, d.vdisk) }, ...(d.image ? { source_disk_address: { vmdisk_uuid: d.image } } : {}) };
    }),
    vm_nics: vm.nics.map((n) => ({ mac_address: n.mac.toLowerCase(), network_uuid: n.subnetUuid, ...(n.ip ? { ip_address: n.ip, requested_ip_address: n.ip } : {}), is_connected: true, model: 'virtio', vlan_mode: 'Access' })),
  };
}

/** `POST /vms/{uuid}/set_power_state` `{ "transition" }`: the VM service's power action. */
export function parseV2Transition(body: unknown): VmPowerAction {
  const t = (body as { transition?: unknown } | null)?.transition;
  const map: Record<string, VmPowerAction> = { on: 'on', off: 'off', acpi_shutdown: 'shutdown', powercycle: 'reset', reset: 'reset', acpi_reboot: 'reset', pause: 'pause', suspend: 'pause', resume: 'resume' };
  const a = typeof t === 'string' ? map[t.toLowerCase()] : undefined;
  if (!a) throw new InputError('transition', 'must be one of ON, OFF, ACPI_SHUTDOWN, RESET, POWERCYCLE, ACPI_REBOOT, PAUSE, RESUME');
  return a;
}

export function v2Host(m: MemberView, s: ClusterSnapshot, vms: number): Record<string, unknown> {
  const h = m.host;
  return {
    uuid: m.hostUuid, name: h?.hostname ?? m.serial, serial: m.serial, cluster_uuid: s.cluster.clusterId, state: m.cvm && h ? 'NORMAL' : 'DETACHED',
    hypervisor_type: 'kKvm', hypervisor_full_name: `Converge AHV ${h?.hypervisorVersion ?? m.cvm?.hypervisorVersion ?? ''}`.trim(), hypervisor_address: m.hostIp,
    service_vmexternal_ip: m.cvmIp, ipmi_address: h?.hardware.bmcIp ?? '', block_serial: h?.hardware.block.serial ?? '', block_model_name: h?.hardware.model ?? '',
    cpu_model: h?.hardware.cpu.model ?? '', num_cpu_sockets: h?.hardware.cpu.sockets ?? 0, num_cpu_cores: h?.hardware.cpu.cores ?? 0, num_cpu_threads: h?.hardware.cpu.threads ?? 0,
    memory_capacity_in_bytes: (h?.hardware.memoryMiB ?? 0) * 2 ** 20, num_vms: vms, disk_hardware_configs: Object.fromEntries((m.cvm?.disks ?? []).map((d, i) => [String(i + 1), { serial_number: d.serial }])),
  };
}

export function v2Cluster(s: ClusterSnapshot): Record<string, unknown> {
  const c = s.cluster;
  const nos = s.members.find((m) => m.cvm)?.cvm?.nosVersion ?? '';
  return {
    uuid: c.clusterId, id: `${c.clusterId}::${c.clusterId}`, name: c.name, cluster_external_ipaddress: c.vip ?? null, num_nodes: s.members.length, version: nos, full_version: `converge-aos-${nos}`,
    hypervisor_types: ['kKvm'], timezone: 'UTC', name_servers: c.dns ?? [], ntp_servers: c.ntp ?? [], cluster_redundancy_state: { current_redundancy_factor: c.redundancyFactor, desired_redundancy_factor: c.redundancyFactor },
    storage_type: 'mixed', operation_mode: s.store && !s.store.quorum ? 'ReadOnly' : 'Normal',
  };
}

const V2_TASK: Record<string, string> = { queued: 'Queued', running: 'Running', paused: 'Suspended', succeeded: 'Succeeded', failed: 'Failed', aborted: 'Aborted', QUEUED: 'Queued', RUNNING: 'Running', SUCCEEDED: 'Succeeded', FAILED: 'Failed' };
const usecs = (iso: string | null): number | undefined => (iso ? Date.parse(iso) * 1000 : undefined);

/** A task (the VM service's or Prism's) as v2.0's GET /tasks/{uuid}. */
export function v2Task(t: { uuid: string; state: string; percent: number; operation: string; entities: { kind: string; uuid: string }[]; error: string | null; createdAt: string; finishedAt: string | null }): Record<string, unknown> {
  return {
    uuid: t.uuid, progress_status: V2_TASK[t.state] ?? t.state, percentage_complete: t.percent, operation_type: t.operation,
    entity_list: t.entities.map((e) => ({ entity_id: e.uuid, entity_type: e.kind })), create_time_usecs: usecs(t.createdAt), complete_time_usecs: usecs(t.finishedAt),
    meta_response: { error_code: t.error ? 1 : 0, error_detail: t.error ?? '' },
  };
}
