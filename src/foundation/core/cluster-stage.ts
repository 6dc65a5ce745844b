/**
 * @module
 * Stage 3–4 of a session (pure): a `clusters[]` entry with `cluster_init_now` waits for its members
 * to be imaged, then Foundation creates the cluster and validates it. This module holds the entry's
 * record and the rules for when it may start and when it is finished.
 */
import type { Stage } from './imaging.ts';

export type ClusterStage = 'not_requested' | 'waiting' | 'creating' | 'validating' | 'done' | 'failed';

export interface ClusterCheck {
  name: string;
  ok: boolean;
  evidence: string;
}

export interface ClusterEntry {
  cluster_name: string;
  /** CVM addresses of the members. */
  cluster_members: string[];
  status: string;
  percent_complete: number;
  init: boolean;
  redundancy_factor: 1 | 2 | 3;
  vip: string | null;
  dns: string[];
  ntp: string[];
  stage: ClusterStage;
  checks: ClusterCheck[];
  cluster_id: string | null;
  /** Where Prism answers once the cluster is validated, and the CA file its certificate chains to. */
  prism: { url: string; ca_file: string; admin_password_file: string | null } | null;
  startedAt: number | null;
  endedAt: number | null;
}

/** The validations run on a new cluster, in order (docs/foundation.md). */
export const CLUSTER_CHECKS = ['host-cvm-link', 'store-quorum', 'cvm-services', 'storage-pool', 'data-path', 'prism'] as const;

export const isClusterFinal = (s: ClusterStage): boolean => s === 'done' || s === 'failed' || s === 'not_requested';

/** What a waiting entry should do given its members' imaging stages (by CVM address). */
export function clusterReadiness(entry: ClusterEntry, memberStage: (cvmIp: string) => Stage | undefined): 'start' | 'wait' | 'blocked' {
  const stages = entry.cluster_members.map(memberStage);
  if (stages.some((s) => s === 'failed' || s === 'aborted')) return 'blocked';
  if (stages.every((s) => s === 'done')) return 'start';
  return 'wait';
}

/** Whether the session may call itself stopped: the entry is finished, or cannot go on until a member is retried. */
export function clusterSettled(entry: ClusterEntry, memberStage: (cvmIp: string) => Stage | undefined): boolean {
  return isClusterFinal(entry.stage) || (entry.stage === 'waiting' && clusterReadiness(entry, memberStage) === 'blocked');
}

export function newClusterEntry(c: { cluster_name: string; cluster_members: string[]; cluster_init_now: boolean; redundancy_factor: number; cluster_external_ip?: string | undefined; cvm_dns_servers?: string[] | undefined; cvm_ntp_servers?: string[] | undefined }): ClusterEntry {
  return {
    cluster_name: c.cluster_name, cluster_members: c.cluster_members,
    status: c.cluster_init_now ? 'waiting for its nodes to be imaged' : 'not created (cluster_init_now is false)',
    percent_complete: c.cluster_init_now ? 0 : 100,
    init: c.cluster_init_now, redundancy_factor: (c.redundancy_factor as 1 | 2 | 3), vip: c.cluster_external_ip ?? null,
    dns: c.cvm_dns_servers ?? [], ntp: c.cvm_ntp_servers ?? [],
    stage: c.cluster_init_now ? 'waiting' : 'not_requested', checks: [], cluster_id: null, prism: null, startedAt: null, endedAt: null,
  };
}
