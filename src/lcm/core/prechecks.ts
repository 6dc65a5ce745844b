/**
 * @module
 * LCM's pre-checks (pure, ADR 018), as NCC's pre-upgrade checks: run before anything changes, and
 * again before each node; any FAIL stops the upgrade with its reason. PASS / WARN / FAIL each with
 * what was found.
 */
import type { PrecheckResult } from '../protocol/lcm.ts';

export interface PrecheckInput {
  nodes: {
    serial: string;
    hostname: string;
    hostUp: boolean;
    cvmUp: boolean;
    /** Services of the CVM that are not up. */
    servicesDown: string[];
    /** The VM service's view of the host: up, maintenance, entering-maintenance, down, fenced. */
    hostState: string;
    memoryMiB: number;
    freeMemoryMiB: number;
    vcpus: number;
    freeVcpus: number;
  }[];
  /** The VMs running, where, and what they need. */
  vms: { name: string; host: string | null; memoryMiB: number; vcpus: number }[];
  /** Extent groups below their RF and with no good replica; null: not known. */
  resiliency: { pending: number; stranded: number } | null;
  /** The pool: bytes used, and the capacity of each node's disks. */
  pool: { usedBytes: number; nodeCapacityBytes: Record<string, number> } | null;
  /** What the bundle's verification found wrong (empty: its files match their sha256). */
  bundleProblems: string[];
  /** The shutdown token's holder, and whether an upgrade is running that holds it. */
  token: { holder: string | null; upgradeRunning: boolean };
}

const result = (id: string, title: string, status: PrecheckResult['status'], detail: string): PrecheckResult => ({ id, title, status, detail });

export function prechecks(i: PrecheckInput): PrecheckResult[] {
  const out: PrecheckResult[] = [];
  const down = i.nodes.filter((n) => !n.hostUp || !n.cvmUp);
  out.push(down.length === 0
    ? result('cluster/nodes_up', 'every host and CVM up', 'PASS', `${i.nodes.length} hosts and CVMs answer`)
    : result('cluster/nodes_up', 'every host and CVM up', 'FAIL', down.map((n) => `${n.hostname}: ${!n.hostUp ? 'host' : 'CVM'} down`).join('; ')));
  const services = i.nodes.filter((n) => n.cvmUp && n.servicesDown.length > 0);
  out.push(services.length === 0
    ? result('cluster/services_up', 'every CVM service up', 'PASS', 'all up')
    : result('cluster/services_up', 'every CVM service up', 'FAIL', services.map((n) => `${n.hostname}: ${n.servicesDown.join(', ')} not up`).join('; ')));
  out.push(i.resiliency === null
    ? result('storage/data_resiliency', 'every extent group at its replication factor', 'FAIL', 'not known: no CVM answered for the extent groups')
    : i.resiliency.pending + i.resiliency.stranded === 0
      ? result('storage/data_resiliency', 'every extent group at its replication factor', 'PASS', 'data resiliency OK')
      : result('storage/data_resiliency', 'every extent group at its replication factor', 'FAIL', `${i.resiliency.pending} extent group(s) below their RF${i.resiliency.stranded ? `, ${i.resiliency.stranded} with no good replica` : ''}: wait for the repair`));
  const maint = i.nodes.filter((n) => n.hostState === 'maintenance' || n.hostState === 'entering-maintenance');
  out.push(maint.length === 0 || i.token.upgradeRunning
    ? result('hosts/no_maintenance', 'no host in maintenance', 'PASS', 'none')
    : result('hosts/no_maintenance', 'no host in maintenance', 'FAIL', `${maint.map((n) => n.hostname).join(', ')} in maintenance: take it out first`));
  out.push(evacuation(i));
  out.push(capacityWithoutANode(i));
  out.push(i.bundleProblems.length === 0
    ? result('lcm/bundle_checksums', 'the bundle\'s files match their checksums', 'PASS', 'every file matches its sha256')
    : result('lcm/bundle_checksums', 'the bundle\'s files match their checksums', 'FAIL', i.bundleProblems.slice(0, 5).join('; ')));
  out.push(i.token.holder === null || i.token.upgradeRunning
    ? result('lcm/shutdown_token', 'no stale shutdown token', 'PASS', i.token.holder ? `held by ${i.token.holder} for the running upgrade` : 'free')
    : result('lcm/shutdown_token', 'no stale shutdown token', 'FAIL', `held by ${i.token.holder} with no upgrade running: release it (converge lcm abort)`));
  return out;
}

/** Each host's running VMs fit on the other up hosts (first fit, largest first), memory and vCPUs. */
function evacuation(i: PrecheckInput): PrecheckResult {
  const title = 'every host\'s VMs fit on the others';
  const short: string[] = [];
  for (const n of i.nodes) {
    const mine = i.vms.filter((v) => v.host === n.serial).sort((a, b) => b.memoryMiB - a.memoryMiB);
    if (mine.length === 0) continue;
    const others = i.nodes.filter((o) => o.serial !== n.serial && o.hostState === 'up').map((o) => ({ mem: o.freeMemoryMiB, cpu: o.freeVcpus }));
    const homeless = mine.filter((v) => {
      const to = others.find((o) => o.mem >= v.memoryMiB && o.cpu >= v.vcpus);
      if (!to) return true;
      to.mem -= v.memoryMiB;
      to.cpu -= v.vcpus;
      return false;
    });
    if (homeless.length > 0) short.push(`${n.hostname}: ${homeless.map((v) => `${v.name} (${v.memoryMiB} MiB, ${v.vcpus} vCPU)`).join(', ')} fit on no other host`);
  }
  return short.length === 0 ? result('capacity/evacuation', title, 'PASS', 'each host can be emptied onto the others') : result('capacity/evacuation', title, 'FAIL', short.join('; '));
}

/** The data fits on the nodes left when the largest is down (else the repair during its restart cannot restore RF). */
function capacityWithoutANode(i: PrecheckInput): PrecheckResult {
  const title = 'the data fits without any one node';
  if (!i.pool) return result('capacity/node_loss', title, 'WARN', 'the pool\'s usage is not known');
  const caps = Object.values(i.pool.nodeCapacityBytes);
  const total = caps.reduce((a, b) => a + b, 0);
  const left = total - Math.max(0, ...caps);
  const pct = left > 0 ? Math.round((100 * i.pool.usedBytes) / left) : 100;
  if (i.pool.usedBytes <= left * 0.9) return result('capacity/node_loss', title, 'PASS', `${pct} % of the pool without its largest node`);
  return result('capacity/node_loss', title, i.pool.usedBytes <= left ? 'WARN' : 'FAIL', `${pct} % of the pool without its largest node: replicas of a restarting node may not all be restored elsewhere`);
}

/** The checks as `converge lcm precheck` prints them (NCC's lines), and whether they let an upgrade run. */
export function precheckText(results: readonly PrecheckResult[]): { text: string; ok: boolean } {
  const lines = results.map((r) => `/lcm_prechecks/${r.id.padEnd(26)} [ ${r.status} ]${r.status === 'PASS' ? '' : `\n    ${r.detail}`}`);
  const count = (s: string): number => results.filter((r) => r.status === s).length;
  lines.push('', `PASS ${count('PASS')}   WARN ${count('WARN')}   FAIL ${count('FAIL')}`);
  return { text: `${lines.join('\n')}\n`, ok: count('FAIL') === 0 };
}
