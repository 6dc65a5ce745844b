/**
 * @module
 * Foundation's `cvm-services` check (pure): what each member's CVM must run once the cluster is
 * committed, and the verdict on what their statuses say. Every member runs genesis (the CVM
 * process), stargate (a part of genesis: its NBD server and repair loop), prism and lcm (Life Cycle
 * Manager: the cluster's upgrades); a member of
 * the configuration store runs etcd too. A member that does not answer, is not in this cluster, or
 * lacks a service or has one in any state but up is a problem named with its CVM, the service and
 * the state.
 */
import type { CvmStatus } from '../../cvm/protocol/cluster.ts';

/** One member's status as seen (null: it did not answer, and error says why). */
export interface CvmObservation {
  cvmIp: string;
  status: CvmStatus | null;
  error: string | null;
}

export interface ServicesVerdict {
  ok: boolean;
  /** One line per member that falls short: its CVM, and each service with its state. */
  problems: string[];
  /** The check's evidence: the problems, or every member's services. */
  evidence: string;
}

/** The services a member must run: genesis, etcd on a store member, prism, lcm, stargate. */
export function expectedServices(cvmIp: string, store: readonly string[]): string[] {
  return ['genesis', ...(store.includes(cvmIp) ? ['etcd'] : []), 'prism', 'lcm', 'stargate'];
}

export function evaluateServices(clusterId: string, store: readonly string[], seen: readonly CvmObservation[]): ServicesVerdict {
  const problems: string[] = [];
  const fine: string[] = [];
  for (const o of seen) {
    const s = o.status;
    if (!s) {
      problems.push(`CVM ${o.cvmIp} does not answer${o.error ? ` (${o.error})` : ''}`);
      continue;
    }
    const who = `CVM ${o.cvmIp} (${s.serial})`;
    if (!s.configured || s.clusterId !== clusterId) {
      problems.push(`${who} is not a member of cluster ${clusterId} (${s.clusterId ? `it is in cluster ${s.clusterId}` : 'unconfigured'})`);
      continue;
    }
    const expected = expectedServices(o.cvmIp, store);
    const bad: string[] = [];
    for (const name of expected) {
      const sv = s.services.find((x) => x.name === name);
      if (!sv) bad.push(`${name} not running`);
    }
    for (const sv of s.services) {
      if (sv.state === 'up') continue;
      bad.push(`${sv.name} ${sv.state}${sv.restarts ? ` after ${sv.restarts} restart(s)` : ''}${sv.detail ? ` (${sv.detail})` : ''}`);
    }
    if (bad.length) problems.push(`${who}: ${bad.join(', ')}`);
    else fine.push(`${o.cvmIp}: ${s.services.map((x) => (x.partOf ? `${x.name} (in ${x.partOf})` : x.name)).join(', ')}`);
  }
  if (seen.length === 0) problems.push('no CVM to check');
  const ok = problems.length === 0;
  return { ok, problems, evidence: ok ? `every service up on ${seen.length}/${seen.length} CVMs: ${fine.join('; ')}` : problems.join('; ') };
}
