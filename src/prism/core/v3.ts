/**
 * @module
 * The v3 (intent-style) API shapes Prism answers under /api/nutanix/v3 (pure): cluster and host
 * entities, list requests with paging and a FIQL filter (core/fiql.ts), tasks, and the v3 error
 * body. Shapes follow the reference platform's v3 API as its public clients use it (see
 * ../shared/reference).
 */
import { InputError } from '../../shared/errors.ts';
import type { PrismTask } from '../protocol/prism.ts';
import { healthOf, type ClusterSnapshot, type MemberView } from './snapshot.ts';
import { attributesOf, collate, matchesFilter, parseFilter, type Filter } from './fiql.ts';

export const API_VERSION = '3.1';

export interface V3Entity {
  api_version: string;
  metadata: Record<string, unknown>;
  spec: Record<string, unknown>;
  status: Record<string, unknown>;
}

export interface ListRequest {
  kind: string;
  length: number;
  offset: number;
  filter: Filter | null;
  sortAttribute: string | null;
  sortOrder: 'ASCENDING' | 'DESCENDING';
}

export const MAX_LENGTH = 500;
export const DEFAULT_LENGTH = 20;

/**
 * Parses a `POST /<kind>s/list` body against the attributes entities of that kind can be filtered
 * and sorted by; every error names its field. A list's cost is bounded here, before anything is
 * read: at most MAX_LENGTH entities, a filter of bounded size (core/fiql.ts), known attributes only.
 */
export function parseListRequest(body: unknown, kind: string, attributes: readonly string[]): ListRequest {
  const b = (body ?? {}) as Record<string, unknown>;
  if (typeof b !== 'object' || Array.isArray(b)) throw new InputError('body', 'must be a JSON object');
  if (b['kind'] !== undefined && b['kind'] !== kind) throw new InputError('kind', `must be "${kind}" for this list`, [kind], b['kind']);
  const int = (f: string, dflt: number, min: number, max: number): number => {
    const v = b[f] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new InputError(f, `must be a whole number from ${min} to ${max}`, undefined, v);
    return v;
  };
  const length = int('length', DEFAULT_LENGTH, 1, MAX_LENGTH);
  const offset = int('offset', 0, 0, Number.MAX_SAFE_INTEGER);
  const f = b['filter'] ?? '';
  if (typeof f !== 'string') throw new InputError('filter', 'must be a FIQL string like name==web.*', undefined, f);
  const filter = parseFilter(f);
  const unknown = attributesOf(filter).find((a) => !attributes.includes(a));
  if (unknown !== undefined) throw new InputError('filter', `unknown attribute ${unknown} for ${kind}; one of ${attributes.join(', ')}`, attributes, unknown);
  const sa = b['sort_attribute'] ?? null;
  if (sa !== null && (typeof sa !== 'string' || !attributes.includes(sa))) throw new InputError('sort_attribute', `must be an attribute of ${kind}: one of ${attributes.join(', ')}`, attributes, sa);
  const so = b['sort_order'] ?? 'ASCENDING';
  if (so !== 'ASCENDING' && so !== 'DESCENDING') throw new InputError('sort_order', 'must be ASCENDING or DESCENDING', ['ASCENDING', 'DESCENDING'], so);
  return { kind, length, offset, filter, sortAttribute: sa, sortOrder: so };
}

/** Applies filter, sort and paging; `attrs` gives an entity's filterable attributes. */
export function listOf<T>(all: readonly T[], req: ListRequest, attrs: (x: T) => Record<string, string>): { metadata: Record<string, unknown>; entities: T[] } {
  let xs = all.map((x) => ({ x, a: attrs(x) })).filter((e) => matchesFilter(req.filter, e.a));
  const k = req.sortAttribute;
  if (k !== null) {
    const dir = req.sortOrder === 'ASCENDING' ? 1 : -1;
    xs = xs.sort((p, q) => dir * collate(p.a[k] ?? '', q.a[k] ?? ''));
  }
  const page = xs.slice(req.offset, req.offset + req.length).map((e) => e.x);
  return { metadata: { kind: req.kind, total_matches: xs.length, length: page.length, offset: req.offset }, entities: page };
}

function metadata(kind: string, uuid: string, name: string, created: string): Record<string, unknown> {
  return { kind, uuid, name, spec_version: 0, spec_hash: '00000000000000000000000000000000000000000000000000', categories: {}, categories_mapping: {}, creation_time: created, last_update_time: created };
}

export function clusterEntity(s: ClusterSnapshot): V3Entity {
  const c = s.cluster;
  const nos = s.members.find((m) => m.cvm)?.cvm?.nosVersion ?? '';
  const health = healthOf(s);
  const network = { external_ip: c.vip ?? '', name_server_ip_list: c.dns ?? [], ntp_server_ip_list: c.ntp ?? [], internal_subnet: '192.168.5.0/255.255.255.128' };
  const config = {
    software_map: { NOS: { software_type: 'NOS', status: 'INSTALLED', version: nos } },
    redundancy_factor: c.redundancyFactor, timezone: 'UTC', encryption_status: 'NOT_SUPPORTED', domain_awareness_level: 'NODE',
    operation_mode: s.store && !s.store.quorum ? 'READ_ONLY' : 'NORMAL',
  };
  return {
    api_version: API_VERSION,
    metadata: metadata('cluster', c.clusterId, c.name, c.createdAt),
    spec: { name: c.name, resources: { config, network } },
    status: {
      state: 'COMPLETE', name: c.name,
      resources: {
        config: { ...config, service_list: ['AOS'], is_available: health.state !== 'CRITICAL', cluster_arch: 'X86_64', build: { build_type: 'release', version: nos, full_version: `converge-aos-${nos}` } },
        nodes: { hypervisor_server_list: s.members.map((m) => ({ ip: m.hostIp, type: 'AHV', version: m.host?.hypervisorVersion ?? m.cvm?.hypervisorVersion ?? '' })) },
        network,
      },
    },
  };
}

export function hostEntity(m: MemberView, s: ClusterSnapshot): V3Entity {
  const h = m.host;
  const name = h?.hostname ?? m.serial;
  const disks = m.cvm?.disks ?? [];
  return {
    api_version: API_VERSION,
    metadata: metadata('host', m.hostUuid, name, s.cluster.createdAt),
    spec: { name, resources: {} },
    status: {
      state: m.cvm && h ? 'COMPLETE' : 'ERROR', name,
      cluster_reference: { kind: 'cluster', uuid: s.cluster.clusterId, name: s.cluster.name },
      resources: {
        serial_number: m.serial, host_type: 'HYPER_CONVERGED',
        hypervisor: { ip: m.hostIp, hypervisor_full_name: `Converge AHV ${h?.hypervisorVersion ?? m.cvm?.hypervisorVersion ?? ''}`.trim(), num_vms: 0 },
        controller_vm: { ip: m.cvmIp, state: m.cvm ? 'UP' : 'DOWN' },
        ipmi: { ip: h?.hardware.bmcIp ?? '' },
        block: { block_serial_number: h?.hardware.block.serial ?? '', block_model: h?.hardware.model ?? '' },
        cpu_model: h?.hardware.cpu.model ?? '', num_cpu_sockets: h?.hardware.cpu.sockets ?? 0, num_cpu_cores: h?.hardware.cpu.cores ?? 0,
        num_cpu_threads: h?.hardware.cpu.threads ?? 0, cpu_capacity_hz: (h?.hardware.cpu.speedMHz ?? 0) * 1e6 * (h?.hardware.cpu.cores ?? 0),
        memory_capacity_mib: h?.hardware.memoryMiB ?? 0,
        host_disks_reference_list: disks.map((d) => ({ kind: 'disk', uuid: d.serial })),
        ...(m.problems.length > 0 ? { message_list: m.problems.map((p) => ({ message: p, reason: 'UNREACHABLE' })) } : {}),
      },
    },
  };
}

/** What clusters can be filtered and sorted by. */
export const CLUSTER_ATTRIBUTES = ['name', 'uuid'] as const;
export const clusterAttrs = (e: V3Entity): Record<(typeof CLUSTER_ATTRIBUTES)[number], string> => ({ name: String(e.metadata['name']), uuid: String(e.metadata['uuid']) });
/** What hosts can be filtered and sorted by. */
export const HOST_ATTRIBUTES = ['name', 'uuid', 'serial_number', 'hypervisor_ip', 'controller_vm_ip'] as const;
export const hostAttrs = (e: V3Entity): Record<(typeof HOST_ATTRIBUTES)[number], string> => {
  const r = (e.status['resources'] ?? {}) as { serial_number?: string; hypervisor?: { ip?: string }; controller_vm?: { ip?: string } };
  return { name: String(e.metadata['name']), uuid: String(e.metadata['uuid']), serial_number: r.serial_number ?? '', hypervisor_ip: r.hypervisor?.ip ?? '', controller_vm_ip: r.controller_vm?.ip ?? '' };
};

/**
 * GET /tasks/{uuid}: the reference platform's task shape (Ansible reads error_code of a failed
 * task; Terraform's struct names the end `completion_timev`).
 */
export function taskOf(t: PrismTask, clusterId: string): Record<string, unknown> {
  return {
    uuid: t.uuid, status: t.status, percentage_complete: t.percentage, progress_message: t.message, operation_type: t.operationType,
    entity_reference_list: t.entities.map((e) => ({ kind: e.kind, uuid: e.uuid, name: e.name })),
    cluster_reference: { kind: 'cluster', uuid: clusterId }, subtask_reference_list: [],
    error_detail: t.error ?? '', error_code: t.error ? 'CVG_ERR_TASK' : '', creation_time: t.createdAt, start_time: t.startedAt ?? '',
    last_update_time: t.completedAt ?? t.startedAt ?? t.createdAt, completion_time: t.completedAt ?? '', completion_timev: t.completedAt ?? '',
    api_version: API_VERSION,
  };
}

/** What tasks can be filtered and sorted by. */
export const TASK_ATTRIBUTES = ['uuid', 'status', 'operation_type', 'entity_uuid', 'creation_time'] as const;
export const taskAttrs = (t: Record<string, unknown>): Record<(typeof TASK_ATTRIBUTES)[number], string> => ({
  uuid: String(t['uuid']), status: String(t['status']), operation_type: String(t['operation_type']),
  entity_uuid: String((t['entity_reference_list'] as { uuid?: string }[] | undefined)?.[0]?.uuid ?? ''), creation_time: String(t['creation_time']),
});

/** The v3 error body. */
export function v3Error(code: number, kind: string, message: string, reason: string, details: Record<string, unknown> = {}): Record<string, unknown> {
  return { api_version: API_VERSION, code, kind, state: 'ERROR', message_list: [{ message, reason, details }] };
}
