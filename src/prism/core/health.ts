/**
 * @module
 * Health checks and alerts (NCC's role; pure). The checks look at one moment of the cluster (the
 * snapshot, the replicas' resiliency, the VMs, the certificate) and say PASS, WARN or FAIL per
 * entity with what was seen, why it matters and what to do. Alerts are what the checks found
 * wrong, kept over time: raised when a check stops passing for an entity, resolved (on their own)
 * when it passes again, acknowledged by an operator meanwhile. A check that cannot tell (its data
 * did not come) says so as a WARN rather than passing.
 */
import type { ResiliencyReport } from '../../cvm/protocol/cluster.ts';
import type { Vm } from '../../cvm/protocol/vms.ts';
import type { ClusterSnapshot } from './snapshot.ts';
import { stableUuid } from './v3-vms.ts';

export type CheckStatus = 'PASS' | 'WARN' | 'FAIL';
export type Severity = 'critical' | 'warning' | 'info';

export interface CheckEntity {
  kind: 'cluster' | 'node' | 'cvm' | 'host' | 'disk' | 'vm' | 'storage_pool' | 'certificate';
  id: string;
  name: string;
}

export interface CheckResult {
  /** NCC-style path: `<category>/<check>`. */
  check: string;
  title: string;
  status: CheckStatus;
  entity: CheckEntity;
  /** What was seen (for a PASS too). */
  detail: string;
  cause: string;
  resolution: string;
}

/** What the checks look at. */
export interface HealthInput {
  snapshot: ClusterSnapshot;
  /** The records' view of every extent group, or null when it did not come. */
  resiliency: ResiliencyReport | null;
  /** The VM service's VMs, or null when it did not answer. */
  vms: Vm[] | null;
  /** Days until the cluster's Prism certificate expires. */
  certificateDaysLeft: number | null;
  now: number;
}

/** The pool thresholds: WARN above, FAIL above. */
export const POOL_WARN = 0.75;
export const POOL_FAIL = 0.9;
export const CERT_WARN_DAYS = 30;
export const CERT_FAIL_DAYS = 7;

type Spec = Omit<CheckResult, 'status' | 'entity' | 'detail'>;
const CHECKS = {
  cvm: { check: 'services/cvm_up_check', title: 'CVM up', cause: 'The CVM does not answer: its node may be powered off, its host down, or the CVM process stopped.', resolution: 'Check the node\'s power and its host; the CVM is restarted by its host. Until it is back, its replicas are restored elsewhere.' },
  services: { check: 'services/cvm_services_check', title: 'CVM services', cause: 'A service of the CVM is not running.', resolution: 'The CVM restarts its services; if one stays down, see the CVM\'s log (converge cluster status).' },
  host: { check: 'hypervisor/host_reachable_check', title: 'Host reachable', cause: 'The host\'s agent does not answer.', resolution: 'Check the node\'s power through its BMC; HA restarts its VMs elsewhere.' },
  link: { check: 'hypervisor/host_cvm_link_check', title: 'Host to CVM link', cause: 'The host\'s I/O path to its own CVM is not up: its VMs\' disks are served by another CVM.', resolution: 'It comes back with the CVM; if the CVM is up, restart the host agent.' },
  disk: { check: 'hardware/disk_online_check', title: 'Disk online', cause: 'A data disk of the node has failed: its replicas are not read or written.', resolution: 'Replace the disk (converge rack / the BMC\'s drive); the cluster restores RF on the others meanwhile.' },
  resiliency: { check: 'storage/data_resiliency_check', title: 'Data resiliency', cause: 'Extent groups are below their container\'s replication factor: one more failure may lose data.', resolution: 'Wait for re-protection to finish; if it cannot (no room, too few nodes), bring back the failed node or disk or free space.' },
  pool: { check: 'storage/storage_pool_usage_check', title: 'Storage pool usage', cause: 'The storage pool is filling up: past 90 % new data may not find room at its RF.', resolution: 'Delete unneeded vdisks and VMs or add disks or nodes.' },
  store: { check: 'metadata/configuration_store_quorum_check', title: 'Configuration store quorum', cause: 'The configuration store (etcd) has no quorum: the cluster cannot change anything.', resolution: 'Bring back the CVMs that are down; a majority of members must run.' },
  vmHa: { check: 'vm/vm_ha_restart_check', title: 'VM HA restart', cause: 'A VM whose host failed could not be restarted elsewhere.', resolution: 'Free memory or vCPUs on another host, or power its host back on (converge vm list shows why).' },
  cert: { check: 'security/certificate_expiry_check', title: 'Certificate expiry', cause: 'The cluster\'s Prism certificate expires soon: clients will refuse Prism afterwards.', resolution: 'Renew the cluster certificate before it expires.' },
} satisfies Record<string, Spec>;

const result = (spec: Spec, status: CheckStatus, entity: CheckEntity, detail: string): CheckResult => ({ ...spec, status, entity, detail });

/** Runs every check. One result per check and entity, PASS results included. */
export function runChecks(i: HealthInput): CheckResult[] {
  const s = i.snapshot;
  const out: CheckResult[] = [];
  const cluster: CheckEntity = { kind: 'cluster', id: s.cluster.clusterId, name: s.cluster.name };
  if (s.store) out.push(result(CHECKS.store, s.store.quorum ? 'PASS' : 'FAIL', cluster, `${s.store.healthy} of ${s.store.members.length} members healthy`));
  else out.push(result(CHECKS.store, 'WARN', cluster, 'the store\'s health could not be read'));
  for (const m of s.members) {
    const cvm: CheckEntity = { kind: 'cvm', id: m.cvmIp, name: `CVM ${m.cvmIp} (${m.serial})` };
    const host: CheckEntity = { kind: 'host', id: m.hostUuid, name: `host ${m.hostIp} (${m.serial})` };
    out.push(result(CHECKS.cvm, m.cvm ? 'PASS' : 'FAIL', cvm, m.cvm ? 'answers' : m.problems.find((p) => p.startsWith('CVM')) ?? 'does not answer'));
    if (m.cvm) {
      const down = m.cvm.services.filter((x) => x.state !== 'up');
      out.push(result(CHECKS.services, down.length === 0 ? 'PASS' : 'WARN', cvm, down.length === 0 ? `${m.cvm.services.length} services up` : down.map((x) => `${x.name} is ${x.state}`).join('; ')));
      for (const d of m.cvm.disks) {
        out.push(result(CHECKS.disk, d.ok ? 'PASS' : 'FAIL', { kind: 'disk', id: d.serial, name: `disk ${d.serial} on ${m.serial}` }, d.ok ? `${d.mediaType}, ${Math.round((100 * d.usedBytes) / Math.max(1, d.capacityBytes))} % used` : 'failed: I/O errors'));
      }
    }
    out.push(result(CHECKS.host, m.host ? 'PASS' : 'FAIL', host, m.host ? 'answers' : m.problems.find((p) => p.startsWith('host')) ?? 'does not answer'));
    if (m.host) out.push(result(CHECKS.link, m.host.link.state === 'up' ? 'PASS' : 'WARN', host, `link to CVM ${m.cvmIp} is ${m.host.link.state}`));
  }
  const r = i.resiliency;
  if (r) {
    const detail = r.ok ? `${r.extentGroups} extent groups, all at RF` : `${r.belowRf} of ${r.extentGroups} extent groups below RF (${r.restoring} being restored, ${r.unavailable} with no usable replica)`;
    out.push(result(CHECKS.resiliency, r.ok ? 'PASS' : r.unavailable > 0 ? 'FAIL' : 'WARN', cluster, detail));
  } else {
    out.push(result(CHECKS.resiliency, 'WARN', cluster, 'the replicas\' records could not be read'));
  }
  if (s.pool) {
    const used = s.pool.usage.usedBytes / Math.max(1, s.pool.usage.capacityBytes);
    const pct = Math.round(used * 100);
    out.push(result(CHECKS.pool, used > POOL_FAIL ? 'FAIL' : used > POOL_WARN ? 'WARN' : 'PASS', { kind: 'storage_pool', id: `${s.cluster.clusterId}-pool`, name: `storage pool ${s.pool.pool.name}` }, `${pct} % used (warn above ${POOL_WARN * 100} %, fail above ${POOL_FAIL * 100} %)`));
  }
  for (const vm of i.vms ?? []) {
    if (vm.haBlocked) out.push(result(CHECKS.vmHa, 'FAIL', { kind: 'vm', id: vm.uuid, name: `VM ${vm.name}` }, vm.haBlocked));
  }
  if (i.vms) out.push(result(CHECKS.vmHa, i.vms.some((v) => v.haBlocked) ? 'WARN' : 'PASS', cluster, `${i.vms.length} VMs; ${i.vms.filter((v) => v.haBlocked).length} could not be restarted by HA`));
  if (i.certificateDaysLeft !== null) {
    const d = Math.floor(i.certificateDaysLeft);
    out.push(result(CHECKS.cert, d < CERT_FAIL_DAYS ? 'FAIL' : d < CERT_WARN_DAYS ? 'WARN' : 'PASS', { kind: 'certificate', id: `${s.cluster.clusterId}-prism`, name: 'the Prism certificate' }, `expires in ${d} days`));
  }
  return out;
}

export interface Alert {
  id: string;
  check: string;
  title: string;
  severity: Severity;
  entity: CheckEntity;
  message: string;
  cause: string;
  resolution: string;
  createdAt: string;
  lastSeenAt: string;
  acknowledged: boolean;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  resolved: boolean;
  resolvedAt: string | null;
  /** Who resolved it: `auto` when its check passed again. */
  resolvedBy: string | null;
}

const keyOf = (check: string, entity: CheckEntity): string => `${check}|${entity.kind}|${entity.id}`;

/**
 * The alerts after a run: a failing result with no open alert raises one (FAIL critical, WARN
 * warning); an open one still failing is updated (message, last seen, severity); an open one whose
 * check passed again, or whose entity no result names any more, is resolved automatically. Answers
 * the alerts that changed. Resolved alerts are kept as they are (history).
 */
export function reconcile(open: readonly Alert[], results: readonly CheckResult[], now: number): Alert[] {
  const at = new Date(now).toISOString();
  const byKey = new Map(open.filter((a) => !a.resolved).map((a) => [keyOf(a.check, a.entity), a]));
  const changed: Alert[] = [];
  const seen = new Set<string>();
  for (const r of results) {
    const k = keyOf(r.check, r.entity);
    seen.add(k);
    const a = byKey.get(k);
    if (r.status === 'PASS') {
      if (a) changed.push({ ...a, resolved: true, resolvedAt: at, resolvedBy: 'auto', lastSeenAt: at });
      continue;
    }
    const severity: Severity = r.status === 'FAIL' ? 'critical' : 'warning';
    if (a) {
      if (a.message !== r.detail || a.severity !== severity) changed.push({ ...a, message: r.detail, severity, lastSeenAt: at });
      continue;
    }
    changed.push({
      id: stableUuid('alert', k, at), check: r.check, title: r.title, severity, entity: r.entity, message: r.detail, cause: r.cause, resolution: r.resolution,
      createdAt: at, lastSeenAt: at, acknowledged: false, acknowledgedAt: null, acknowledgedBy: null, resolved: false, resolvedAt: null, resolvedBy: null,
    });
  }
  for (const [k, a] of byKey) if (!seen.has(k)) changed.push({ ...a, resolved: true, resolvedAt: at, resolvedBy: 'auto' });
  return changed;
}

/** An alert acknowledged, or resolved (which acknowledges it too), by `user` at `at`; what was set before stays. */
export function changeAlert(a: Alert, change: 'acknowledge' | 'resolve', user: string, at: string): Alert {
  const acked = { ...a, acknowledged: true, acknowledgedAt: a.acknowledgedAt ?? at, acknowledgedBy: a.acknowledgedBy ?? user };
  return change === 'acknowledge' ? acked : { ...acked, resolved: true, resolvedAt: a.resolvedAt ?? at, resolvedBy: a.resolvedBy ?? user };
}

/** The console's NCC-style report: one line per check and entity, a summary, then what is not PASS in detail. */
export function nccReport(results: readonly CheckResult[]): string {
  const width = Math.max(0, ...results.map((r) => r.check.length));
  const lines = results.map((r) => `/health_checks/${r.check.padEnd(width)}  ${r.entity.name.padEnd(32)} [ ${r.status} ]`);
  const count = (st: CheckStatus): number => results.filter((r) => r.status === st).length;
  lines.push('', '+-----------------------+', '| State   | Count       |', '+-----------------------+');
  for (const st of ['PASS', 'WARN', 'FAIL'] as const) lines.push(`| ${st.padEnd(7)} | ${String(count(st)).padEnd(11)} |`);
  lines.push(`| Total   | ${String(results.length).padEnd(11)} |`, '+-----------------------+');
  for (const r of results.filter((x) => x.status !== 'PASS')) {
    lines.push('', `Detailed information for ${r.check}:`, `${r.status}: ${r.entity.name}: ${r.detail}`, `Cause: ${r.cause}`, `Resolution: ${r.resolution}`);
  }
  return `${lines.join('\n')}\n`;
}
