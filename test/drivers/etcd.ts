/**
 * @module
 * A single plain etcd (Debian's etcd-server) on a loopback address, for tests of services that
 * keep their records in the cluster's store without a whole cluster around them, with the
 * storage pool and default container a new cluster has.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
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

export interface EtcdFixture {
  /** Test options: skipped when Debian's etcd is not installed. */
  opts: { skip: string | false };
  /** A client of the fixture's etcd (or of `hosts`), closed after the file's tests. */
  client(hosts?: string): Etcd3;
  /** Closes `s` after the file's tests (before the clients). */
  closeAfter<T extends { close(): Promise<unknown> }>(s: T): T;
}

/**
 * A one-member etcd for one test file on `ip` (client port 23790, peer 23791, no pool): started
 * before the file's tests, stopped after them with everything made through it.
 */
export function etcdFixture(ip: string, name: string): EtcdFixture {
  const has = spawnSync('etcd', ['--version']).status === 0;
  const url = `http://${ip}:23790`;
  let proc: ChildProcess | undefined;
  let dir = '';
  const clients: Etcd3[] = [];
  const closers: (() => Promise<unknown>)[] = [];
  before(async () => {
    if (!has) return;
    dir = mkdtempSync(join(tmpdir(), `${name}-`));
    proc = await startEtcd(ip, 'm', dir, { clientPort: 23790, peerPort: 23791, pool: false });
  });
  after(async () => {
    for (const c of closers) await c().catch(() => undefined);
    for (const c of clients) c.close();
    proc?.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return {
    opts: { skip: !has && 'no etcd binary' },
    client: (hosts = url) => {
      const c = new Etcd3({ hosts });
      clients.push(c);
      return c;
    },
    closeAfter: (s) => {
      closers.push(() => s.close());
      return s;
    },
  };
}
