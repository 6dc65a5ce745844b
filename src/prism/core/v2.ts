/**
 * @module
 * The v2.0 API shapes Prism answers under /api/nutanix/v2.0 for storage (pure): storage pools,
 * containers, virtual disks and disks, in the reference platform's list envelope.
 */
import { InputError } from '../../shared/errors.ts';
import type { ClusterSnapshot } from './snapshot.ts';

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
