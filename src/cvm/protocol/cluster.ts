/**
 * @module
 * The CVM's HTTP API on cvmIp:2100 (what the CLI, Foundation and the other CVMs call):
 *
 *   GET  /status             CvmStatus
 *   POST /cluster/create     CreateRequest (core/cluster.ts) → CreatedCluster; run on one member, which drives the others
 *   GET  /cluster/ca         { cert }: the cluster's CA certificate (PEM), which Prism's certificates chain to
 *   POST /cluster/prepare    PrepareRequest (member to member): take part, start the store if asked
 *   POST /cluster/commit     { clusterId } (member to member): the cluster exists
 *   POST /cluster/destroy    back to unconfigured (stops the store, forgets the cluster)
 *   GET  /cluster/health     StoreHealth: the configuration store's members and quorum
 *   GET  /storage/pool       PoolView (on any member)
 *   GET  /storage/resiliency ResiliencyReport: every extent group's usable in-sync replicas against its container's RF
 *   GET  /storage/vdisks/<name>/replicas   ReplicaMap: where each written extent group's replicas are
 *   GET|POST /storage/containers, DELETE /storage/containers/<name>            { name, replicationFactor }
 *   GET|POST /storage/vdisks, DELETE /storage/vdisks/<name>                    { name, size, container }
 * Errors: { error: { code, message, field? } } with 400 / 404 / 409 / 503 / 500.
 */
import type { CvmAnnounce } from '../../foundation/protocol/installer.ts';
import type { Pool } from './storage.ts';
import type { PoolUsage } from '../core/usage.ts';
import type { MemberIdentities } from '../../shared/identity.ts';

/** What GET /storage/pool answers: the pool, counts, and capacity accounting per disk, node and container. */
export interface PoolView {
  pool: Pool;
  provisionedBytes: number;
  containers: number;
  vdisks: number;
  usage: PoolUsage;
}

/**
 * A service of a CVM as its status lists it. Most are processes of their own that the CVM
 * supervises (etcd, prism); genesis is the CVM process itself; stargate is a part of that process
 * (its NBD server and repair loop), so `partOf` names genesis and `pid` is genesis's.
 */
export interface ServiceView {
  name: string;
  /** up, starting, restarting, stopped or down. */
  state: string;
  /** The process it runs in. */
  pid: number | null;
  /** Restarts by the CVM's supervisor; null for what it does not restart on its own (genesis, whose restarts are its host's `cvm.restarts`, and what runs inside genesis). */
  restarts: number | null;
  /** Set when the service is a part of another's process rather than one of its own: that service. */
  partOf?: string;
  /** What the state was measured from, or why it is not up. */
  detail?: string;
}

export interface ClusterInfo {
  clusterId: string;
  name: string;
  redundancyFactor: 1 | 2 | 3;
  vip: string | null;
  members: { serial: string; cvmIp: string; hostIp: string }[];
  /** CVM addresses that run the configuration store (etcd). */
  store: string[];
  createdAt: string;
}

/** What POST /cluster/create answers: the cluster, and Prism's admin password when the cluster generated it (shown this once). */
export interface CreatedCluster extends ClusterInfo {
  initialAdminPassword?: string;
}

/** What a CVM reports of itself: what it announces to Foundation, plus its cluster, services and disks. */
export interface CvmStatus extends CvmAnnounce {
  cluster: ClusterInfo | null;
  services: ServiceView[];
  disks: {
    serial: string; mediaType: string; capacityBytes: number; usedBytes: number; ok: boolean;
    /**
     * Bytes of each vdisk (by uuid) on this disk: its extents holding data × 1 MiB (an extent
     * counts whole however little of it was written). Absent until the CVM has counted its
     * extents once after it started, and for a disk it could not open.
     */
    vdiskBytes?: Record<string, number>;
  }[];
  /** The repair loop's counters (while stargate runs). */
  repair?: {
    passes: number;
    lastPassAt: string | null;
    restored: number;
    /** Extent groups that lost a replica, at the last scan (0 when healthy). */
    pending: number;
    /** Extent groups with no good replica left. */
    stranded: number;
    orphansRemoved: number;
    lastError: string | null;
  };
}

export interface PrepareRequest {
  cluster: ClusterInfo;
  /** Set when this CVM runs a store member: etcd's --initial-cluster and token. */
  store: { name: string; initialCluster: string; token: string } | null;
  /** This member's certificates from the new cluster CA (ADR 013). */
  identities: MemberIdentities;
}

/**
 * Where a CVM keeps its cluster identity, under its state dir: `pki/member.json`
 * (MemberIdentities, 0600) and the same as files for etcd (`pki/ca.crt`, `pki/cvm.crt`, `pki/cvm.key`).
 * Destroy removes the folder.
 */
export const MEMBER_PKI_DIR = 'pki';
export const MEMBER_IDENTITIES_FILE = 'pki/member.json';

/** The cluster record in the configuration store: ClusterInfo with its DNS and NTP servers. */
export const CLUSTER_KEY = '/converge/cluster';

export const CVM_API_PORT = 2100;
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
/** Stargate serves vdisks over NBD here (cvmIp:10809). */
export const NBD_PORT = 10809;
/** CVMs read and write each other's extent-group replicas here (core/replication-codec.ts). */
export const REPLICATION_PORT = 2009;

/**
 * A member as another member (or the CLI) sees it: up only when it answers as a member of this
 * cluster; a CVM that answers unconfigured or in another cluster is no longer one (destroyed).
 */
export type MemberState = 'up' | 'down' | 'unconfigured' | 'other-cluster';

export interface MemberHealth {
  node: string;
  cvmIp: string;
  state: MemberState;
  /** Why it is not up (or, when up, nothing). */
  detail: string;
  /** Its disks as its CVM reports them (empty when it is not up). */
  disks: { serial: string; ok: boolean }[];
}

/**
 * What GET /storage/resiliency answers, measured from the extent-group records (storage engine v2:
 * in-sync replicas and stale ones): an in-sync replica is usable when its disk is ok and its node's
 * CVM answers as a member; replicas on one node count once (a node's loss takes them all). An
 * extent group is at its RF when it has usable in-sync replicas on at least its container's RF
 * distinct nodes and no stale replica (a stale one is being resynced or replaced: until that is
 * done the extent group is not at its RF, whatever else it has).
 */
export interface ResiliencyReport {
  /** Every extent group at its RF (none has a stale replica). */
  ok: boolean;
  extentGroups: number;
  atRf: number;
  /** Extent groups not at their RF: too few usable in-sync replicas, or a stale one. */
  belowRf: number;
  /** Of those below RF, how many have no usable in-sync replica at all (unreadable until a node or disk returns). */
  unavailable: number;
  /** Of those below RF, how many have stale replicas: being restored (resynced or replaced). */
  restoring: number;
  containers: { name: string; replicationFactor: number; extentGroups: number; belowRf: number }[];
  /** Every member and its state, and the failed disks of those up: why replicas do not count. */
  members: MemberHealth[];
  failedDisks: { node: string; serial: string }[];
  /**
   * The first extent groups below RF (at most 5), each with its usable in-sync replicas (on distinct
   * nodes), its stale ones, and why its replicas fall short.
   */
  examples: { vdisk: string; egroup: number; replicationFactor: number; usable: number; stale: number; missing: string[] }[];
  /** Records of no known vdisk (not counted). */
  strayRecords: number;
}

export interface StoreHealth {
  members: { cvmIp: string; healthy: boolean; leader: boolean; detail: string }[];
  healthy: number;
  quorum: boolean;
}

/** Where a replica of an extent group lives: a disk of a node, served by the CVM at cvmIp. */
export interface ReplicaPlace {
  node: string;
  cvmIp: string;
  disk: string;
}

/**
 * A vdisk's written extent groups and where their replicas are (ADR 015: one record per written
 * extent group, the aligned `egroupBytes` region [egroup × egroupBytes, (egroup + 1) × egroupBytes)).
 * `replicas` are in sync (each holds every acknowledged write); `stale` missed a write and are
 * being resynced or replaced (never read).
 */
export interface ReplicaMap {
  vdisk: string;
  uuid: string;
  replicationFactor: number;
  egroupBytes: number;
  egroups: { egroup: number; replicas: ReplicaPlace[]; stale: ReplicaPlace[] }[];
}
