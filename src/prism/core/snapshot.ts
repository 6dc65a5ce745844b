/**
 * @module
 * What Prism knows of its cluster at one moment: gathered by node/source.ts from the configuration
 * store, the CVMs' APIs and the hosts' agents; mapped to API shapes by core/v3.ts and core/v2.ts.
 */
import type { ClusterSnapshot, Health } from '../protocol/cluster-view.ts';

export type { ClusterSnapshot, Health, MemberView } from '../protocol/cluster-view.ts';

/** The cluster's health verdict and the reasons for anything below OK. */
export function healthOf(s: ClusterSnapshot): { state: Health; reasons: string[] } {
  const reasons: string[] = [];
  let critical = false;
  if (s.store && !s.store.quorum) {
    critical = true;
    reasons.push(`configuration store has no quorum (${s.store.healthy}/${s.store.members.length} healthy)`);
  }
  for (const m of s.members) {
    if (!m.cvm) reasons.push(`CVM ${m.cvmIp} (${m.serial}) is down`);
    else {
      for (const sv of m.cvm.services) if (sv.state !== 'up') reasons.push(`CVM ${m.cvmIp}: ${sv.name} is ${sv.state}`);
      for (const d of m.cvm.disks) if (!d.ok) reasons.push(`disk ${d.serial} on ${m.serial} has failed`);
      if ((m.cvm.repair?.pending ?? 0) > 0) reasons.push(`CVM ${m.cvmIp}: ${m.cvm.repair?.pending ?? 0} extent group(s) below their RF, being restored`);
      if ((m.cvm.repair?.stranded ?? 0) > 0) {
        critical = true;
        reasons.push(`CVM ${m.cvmIp}: ${m.cvm.repair?.stranded ?? 0} extent group(s) have no good replica`);
      }
    }
    if (!m.host) reasons.push(`host ${m.hostIp} (${m.serial}) does not answer`);
    else if (m.host.link.state !== 'up') reasons.push(`host ${m.hostIp}: link to its CVM is ${m.host.link.state}`);
  }
  const down = s.members.filter((m) => !m.cvm).length;
  if (down > s.cluster.redundancyFactor - 1 && s.cluster.redundancyFactor > 1) critical = true;
  return { state: critical ? 'CRITICAL' : reasons.length > 0 ? 'WARNING' : 'OK', reasons };
}
