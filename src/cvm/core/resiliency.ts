/**
 * @module
 * Data resiliency (pure), measured from the records rather than inferred from the repair loops:
 * every extent group's record in the configuration store (storage engine v2, ADR 015: its in-sync
 * replicas and its stale ones) against its container's RF.
 *
 *  - A replica is **usable** when its node's CVM answers as a member of this cluster and reports
 *    the replica's disk ok. A CVM that does not answer, answers unconfigured (its cluster
 *    destroyed) or in another cluster holds nothing this cluster can count on.
 *  - Only in-sync replicas count; replicas on one node count once (losing that node loses them all).
 *  - An extent group is **at its RF** with usable in-sync replicas on at least its container's RF
 *    distinct nodes and **no stale replica** (the engine's rule, core/engine/resiliency.ts
 *    egroupResiliency: a stale replica is being resynced or replaced, so the extent group is being
 *    restored, never OK); **unavailable** with no usable in-sync replica at all.
 *  - Replica contents are not compared here (the owner resyncs in-sync replicas that differ when it
 *    takes an extent group over); this report is the records and the members' health.
 */
import { egroupResiliency } from './engine/resiliency.ts';
import type { EgroupRecord, ReplicaLocation } from './engine/layout.ts';
import type { Container, Vdisk } from './storage.ts';
import type { MemberHealth, MemberState, ResiliencyReport } from '../protocol/cluster.ts';

/** An extent group's record as stored: its vdisk (uuid), its index, and its replicas. */
export interface StoredEgroup {
  vdisk: string;
  egroup: number;
  record: EgroupRecord;
}

/** What a member's status says about it for this cluster (null: it did not answer). */
export function memberState(clusterId: string, s: { configured: boolean; clusterId: string | null } | null): MemberState {
  if (!s) return 'down';
  if (!s.configured || s.clusterId === null) return 'unconfigured';
  return s.clusterId === clusterId ? 'up' : 'other-cluster';
}

/** A member's health from its status (or the error of the call that did not get one). */
export function memberHealthOf(
  clusterId: string,
  m: { serial: string; cvmIp: string },
  s: { configured: boolean; clusterId: string | null; cluster?: { name: string } | null; disks: readonly { serial: string; ok: boolean }[] } | null,
  error = '',
): MemberHealth {
  const state = memberState(clusterId, s);
  const detail = {
    up: '',
    down: `does not answer${error ? ` (${error})` : ''}`,
    unconfigured: 'answers unconfigured: it is no longer a member (its cluster configuration was destroyed)',
    'other-cluster': `answers as a member of another cluster (${[s?.cluster?.name, s?.clusterId].filter(Boolean).join(' ')})`,
  }[state];
  return { node: m.serial, cvmIp: m.cvmIp, state, detail, disks: state === 'up' && s ? s.disks.map((d) => ({ serial: d.serial, ok: d.ok })) : [] };
}

const EXAMPLES = 5;
/** The engine's verdict compares replica digests; here every replica gets the same one (contents are not compared). */
const NOT_COMPARED = '';

/**
 * @param records    every extent-group record of the cluster
 * @param clusterRf  the RF of an extent group whose container is not known
 */
export function resiliencyOf(records: readonly StoredEgroup[], vdisks: readonly Vdisk[], containers: readonly Container[], members: readonly MemberHealth[], clusterRf: number): ResiliencyReport {
  const vdiskOf = new Map(vdisks.map((v) => [v.uuid, v]));
  const rfOf = new Map(containers.map((c) => [c.name, c.replicationFactor]));
  const memberOf = new Map(members.map((m) => [m.node, m]));
  const perContainer = new Map<string, ResiliencyReport['containers'][number]>(containers.map((c) => [c.name, { name: c.name, replicationFactor: c.replicationFactor, extentGroups: 0, belowRf: 0 }]));
  const report: ResiliencyReport = {
    ok: true, extentGroups: 0, atRf: 0, belowRf: 0, unavailable: 0, restoring: 0, containers: [], members: [...members],
    failedDisks: members.flatMap((m) => m.disks.filter((d) => !d.ok).map((d) => ({ node: m.node, serial: d.serial }))),
    examples: [], strayRecords: 0,
  };
  /** Why a replica does not count (null: it does). */
  const unusable = (r: ReplicaLocation): string | null => {
    const m = memberOf.get(r.node);
    if (!m) return `${r.node}/${r.disk}: ${r.node} is not a member`;
    if (m.state !== 'up') return `${r.node}/${r.disk}: CVM ${m.cvmIp} ${m.state === 'down' ? 'does not answer' : m.state === 'unconfigured' ? 'is unconfigured' : 'is in another cluster'}`;
    const d = m.disks.find((x) => x.serial === r.disk);
    if (!d) return `${r.node}/${r.disk}: disk not reported by its CVM`;
    return d.ok ? null : `${r.node}/${r.disk}: disk failed`;
  };
  for (const rec of records) {
    const v = vdiskOf.get(rec.vdisk);
    if (!v) {
      report.strayRecords++;
      continue;
    }
    const rf = rfOf.get(v.container) ?? clusterRf;
    const c = perContainer.get(v.container) ?? { name: v.container, replicationFactor: rf, extentGroups: 0, belowRf: 0 };
    perContainer.set(v.container, c);
    report.extentGroups++;
    c.extentGroups++;
    const { replicas, stale } = rec.record;
    const states = replicas.map((loc) => ({ loc, reachable: unusable(loc) === null, digest: NOT_COMPARED }));
    const verdict = egroupResiliency({ vdisk: rec.vdisk, egroup: rec.egroup, record: rec.record, states }, rf);
    if (verdict.status === 'ok') {
      report.atRf++;
      continue;
    }
    report.belowRf++;
    c.belowRf++;
    if (verdict.status === 'unavailable') report.unavailable++;
    if (stale.length > 0) report.restoring++;
    if (report.examples.length >= EXAMPLES) continue;
    const missing: string[] = [];
    const nodes = new Set<string>();
    for (const r of replicas) {
      const why = unusable(r);
      if (why) missing.push(why);
      else if (nodes.has(r.node)) missing.push(`${r.node}/${r.disk}: a second replica on node ${r.node}`);
      else nodes.add(r.node);
    }
    if (replicas.length < rf) missing.push(`the record lists ${replicas.length} of ${rf} in-sync replicas`);
    for (const r of stale) missing.push(`${r.node}/${r.disk}: stale (being restored)`);
    report.examples.push({ vdisk: v.name, egroup: rec.egroup, replicationFactor: rf, usable: nodes.size, stale: stale.length, missing });
  }
  report.ok = report.belowRf === 0;
  report.containers = [...perContainer.values()].sort((a, b) => a.name.localeCompare(b.name));
  return report;
}
