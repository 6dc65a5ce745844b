/**
 * @module
 * Gathers a ClusterSnapshot: the cluster record from the configuration store, storage and store
 * health from the local CVM's API, each member's CVM status and host agent status. Answers from
 * a snapshot at most `maxAgeMs` old, so a burst of requests costs one round of calls.
 */
import type { Etcd3 } from 'etcd3';
import { errorMessage, UnavailableError } from '../../shared/errors.ts';
import { within } from '../../shared/async.ts';
import { CLUSTER_KEY, type ClusterInfo, type CvmStatus, type PoolView, type StoreHealth } from '../../cvm/protocol/cluster.ts';
import type { Container, Vdisk } from '../../cvm/protocol/storage.ts';
import { cvmCall } from '../../cvm/protocol/client.ts';
import type { HostStatus } from '../../hypervisor/protocol/node-config.ts';
import { hostCall } from '../../hypervisor/protocol/client.ts';
import type { ClusterSnapshot, MemberView } from '../core/snapshot.ts';
import { nameUuid } from '../../shared/name-uuid.ts';

function hostStatus(ip: string): Promise<HostStatus> {
  return hostCall<HostStatus>(ip, '/status', { timeoutMs: 5000 });
}

export class SnapshotSource {
  private last: { at: number; snap: Promise<ClusterSnapshot> } | undefined;

  constructor(private readonly etcd: Etcd3, private readonly cvmIp: string, private readonly maxAgeMs = 1500) {}

  get(): Promise<ClusterSnapshot> {
    const now = Date.now();
    if (this.last && now - this.last.at < this.maxAgeMs) return this.last.snap;
    const snap = this.gather();
    this.last = { at: now, snap };
    snap.catch(() => {
      if (this.last?.snap === snap) this.last = undefined;
    });
    return snap;
  }

  /** Forget the cached snapshot (after a change made through Prism). */
  invalidate(): void {
    this.last = undefined;
  }

  private async gather(): Promise<ClusterSnapshot> {
    let raw: string | null;
    try {
      raw = await within(this.etcd.get(CLUSTER_KEY).string(), 5000, 'the configuration store');
    } catch (e) {
      throw new UnavailableError(`the configuration store does not answer (${errorMessage(e)})`);
    }
    if (!raw) throw new UnavailableError('the cluster record is missing from the configuration store');
    const cluster = JSON.parse(raw) as ClusterInfo & { dns?: string[]; ntp?: string[] };
    const local = <T>(path: string): Promise<T | null> => cvmCall<T>(this.cvmIp, path, { timeoutMs: 5000 }).catch(() => null);
    const [pool, containers, vdisks, store, members] = await Promise.all([
      local<PoolView>('/storage/pool'),
      local<Container[]>('/storage/containers'),
      local<Vdisk[]>('/storage/vdisks'),
      local<StoreHealth>('/cluster/health'),
      Promise.all(cluster.members.map(async (m): Promise<MemberView> => {
        const problems: string[] = [];
        const [cvm, host] = await Promise.all([
          cvmCall<CvmStatus>(m.cvmIp, '/status', { timeoutMs: 5000 }).catch((e: unknown) => {
            problems.push(`CVM ${m.cvmIp}: ${errorMessage(e)}`);
            return null;
          }),
          hostStatus(m.hostIp).catch((e: unknown) => {
            problems.push(`host ${m.hostIp}: ${errorMessage(e)}`);
            return null;
          }),
        ]);
        return { ...m, hostUuid: nameUuid(cluster.clusterId, `host/${m.serial}`), cvm, host, problems };
      })),
    ]);
    return {
      cluster, members, pool, store,
      containers: (containers ?? []).map((c) => ({ ...c, uuid: nameUuid(cluster.clusterId, `container/${c.name}`) })),
      vdisks: vdisks ?? [],
      leader: this.cvmIp,
    };
  }
}
