/**
 * @module
 * Resiliency of v2 extent groups (pure): the record (in-sync and stale replicas) against what the
 * replicas hold. An extent group is `ok` only with at least RF in-sync replicas on distinct
 * reachable nodes, no stale replica, and every in-sync replica holding the same extents at the same
 * versions with the same data (equal digests). A status that says OK while replicas differ was the
 * first bug of issue 12; this function never does.
 */
import type { EgroupRecord, ReplicaLocation } from './layout.ts';
import { sameLoc } from './ports.ts';

export interface ReplicaState {
  loc: ReplicaLocation;
  reachable: boolean;
  /** A digest of every extent's version and data on this replica (null: unknown). */
  digest: string | null;
}

export interface EgroupInput {
  vdisk: string;
  egroup: number;
  record: EgroupRecord;
  states: readonly ReplicaState[];
}

export type EgroupStatus = 'ok' | 'degraded' | 'unavailable';

export interface EgroupResiliency {
  vdisk: string;
  egroup: number;
  status: EgroupStatus;
  /** Why not ok ('' when ok). */
  reason: string;
}

export interface Resiliency {
  ok: boolean;
  egroups: EgroupResiliency[];
}

export function egroupResiliency(input: EgroupInput, rf: number): EgroupResiliency {
  const { vdisk, egroup, record } = input;
  const stateOf = (l: ReplicaLocation): ReplicaState | undefined => input.states.find((s) => sameLoc(s.loc, l));
  const reachable = record.replicas.filter((l) => stateOf(l)?.reachable === true);
  const nodes = new Set(reachable.map((l) => l.node));
  const out = (status: EgroupStatus, reason: string): EgroupResiliency => ({ vdisk, egroup, status, reason });
  if (reachable.length === 0) return out('unavailable', 'no in-sync replica is reachable');
  if (nodes.size < rf) return out('degraded', `${nodes.size} in-sync replica(s) on distinct reachable nodes, RF ${rf}`);
  if (record.stale.length > 0) return out('degraded', `${record.stale.length} stale replica(s)`);
  const digests = new Set(reachable.map((l) => stateOf(l)?.digest ?? null));
  if (digests.has(null)) return out('degraded', 'a replica\'s content is unknown');
  if (digests.size > 1) return out('degraded', 'in-sync replicas differ');
  return out('ok', '');
}

export function resiliency(inputs: readonly EgroupInput[], rf: number): Resiliency {
  const egroups = inputs.map((i) => egroupResiliency(i, rf));
  return { ok: egroups.every((e) => e.status === 'ok'), egroups };
}
