/**
 * @module
 * A single plain etcd (Debian's etcd-server) on a loopback address, for tests of services that
 * keep their records in the cluster's store without a whole cluster around them, with the
 * storage pool and default container a new cluster has.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { StorageMeta } from '../../src/cvm/node/storage-meta.ts';
import { poolOf } from '../../src/cvm/core/storage.ts';
import { until } from './until.ts';

/**
 * Starts etcd on ip (client port 2379, peer 2380 unless given) and waits until it answers; `pool`
 * (default true) records an empty storage pool and the default container, as a new cluster has.
 */
export async function startEtcd(ip: string, name: string, dir: string, o: { clientPort?: number; peerPort?: number; pool?: boolean } = {}): Promise<ChildProcess> {
  const client = `http://${ip}:${o.clientPort ?? 2379}`;
  const peer = `http://${ip}:${o.peerPort ?? 2380}`;
  const proc = spawn('etcd', ['--name', name, '--data-dir', join(dir, 'etcd'), '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${name}=${peer}`, '--log-level', 'error'], { stdio: 'ignore' });
  const probe = new Etcd3({ hosts: client });
  try {
    await until('etcd', async () => probe.get('x').string().then(() => true, () => undefined));
    if (o.pool ?? true) await new StorageMeta(probe, () => 1).initPool(poolOf([]), { name: 'default-container', replicationFactor: 1, createdAt: new Date().toISOString() });
  } finally {
    probe.close();
  }
  return proc;
}
