/**
 * @module
 * What Prism knows of its cluster at one moment (gathered by node/source.ts from the configuration
 * store, the CVMs' APIs and the hosts' agents), as `GET /api/converge/v1/cluster` answers it to the
 * browser console (with the health verdict of core/snapshot.ts).
 */
import type { ClusterInfo, CvmStatus, PoolView, StoreHealth } from '../../cvm/protocol/cluster.ts';
import type { Container, Vdisk } from '../../cvm/protocol/storage.ts';
import type { HostStatus } from '../../hypervisor/protocol/node-config.ts';

export interface MemberView {
  serial: string;
  cvmIp: string;
  hostIp: string;
  /** Stable UUID of the node's host (derived from its serial). */
  hostUuid: string;
  cvm: CvmStatus | null;
  host: HostStatus | null;
  /** Why the CVM or the host did not answer, if one did not. */
  problems: string[];
}

export interface ClusterSnapshot {
  cluster: ClusterInfo & { dns?: string[]; ntp?: string[] };
  members: MemberView[];
  pool: PoolView | null;
  containers: (Container & { uuid: string })[];
  vdisks: Vdisk[];
  store: StoreHealth | null;
  /** The CVM address of the Prism leader that answered. */
  leader: string;
}

export type Health = 'OK' | 'WARNING' | 'CRITICAL';

/** GET /api/converge/v1/cluster. */
export type ClusterView = ClusterSnapshot & { health: { state: Health; reasons: string[] } };
