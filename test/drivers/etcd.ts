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

export async function startEtcd(ip: string, name: string, dir: string): Promise<ChildProcess> {
  const proc = spawn('etcd', ['--name', name, '--data-dir', join(dir, 'etcd'), '--listen-client-urls', `http://${ip}:2379`, '--advertise-client-urls', `http://${ip}:2379`,
    '--listen-peer-urls', `http://${ip}:2380`, '--initial-advertise-peer-urls', `http://${ip}:2380`, '--initial-cluster', `${name}=http://${ip}:2380`, '--log-level', 'error'], { stdio: 'ignore' });
  const probe = new Etcd3({ hosts: `http://${ip}:2379` });
  try {
    await until('etcd', async () => probe.get('x').string().then(() => true, () => undefined));
    await new StorageMeta(probe, () => 1).initPool(poolOf([]), { name: 'default-container', replicationFactor: 1, createdAt: new Date().toISOString() });
  } finally {
    probe.close();
  }
  return proc;
}
