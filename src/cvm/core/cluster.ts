/**
 * @module
 * Cluster formation rules (pure): what a create request must satisfy, and which CVMs run the
 * configuration store. Sizes follow the reference platform: a single node (RF1), three or more
 * for RF2, five or more for RF3; the store (etcd here, Zookeeper there) runs on 1 CVM for a single
 * node, 3 normally, 5 when RF3 is asked on 5 or more nodes.
 */
export { parseCreateRequest, MIN_NODES, MAX_NODES, type CreateRequest } from '../protocol/create-request.ts';

/** The CVMs that run the configuration store, in member order. */
export function storeMembers(cvmIps: readonly string[], rf: 1 | 2 | 3): string[] {
  const n = cvmIps.length;
  const count = n < 3 ? 1 : rf === 3 && n >= 5 ? 5 : 3;
  return cvmIps.slice(0, count);
}

/** etcd's --initial-cluster value: name=peerURL,... (names are the CVMs' serials; peers speak TLS). */
export function initialCluster(members: readonly { name: string; ip: string }[], peerPort = 2380): string {
  return members.map((m) => `${m.name}=https://${m.ip}:${peerPort}`).join(',');
}
