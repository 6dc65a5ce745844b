/**
 * StorageMeta (storage-meta.ts) against a real etcd on 127.112.0.1:23790 (peer 23791): the v2
 * extent-group records as the engine's EtcdMetaStore writes them, read back for resiliency and the
 * replica map; deleting a vdisk deletes its records and its owner key with it, and nothing else.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { SystemClock } from '../../shared/clock.ts';
import { NotFoundError, UnavailableError } from '../../shared/errors.ts';
import { EGROUP_BYTES, KEYS, type EgroupRecord, type ReplicaLocation } from '../core/engine/layout.ts';
import { EtcdMetaStore } from './engine-meta.ts';
import { StorageMeta } from './storage-meta.ts';
import { poolOf } from '../core/storage.ts';

const IP = '127.112.0.1';
const URL = `http://${IP}:23790`;
const hasEtcd = spawnSync('etcd', ['--version']).status === 0;
let proc: ChildProcess | undefined;
let dir = '';
let etcd: Etcd3;
let engine: EtcdMetaStore;

const loc = (node: string): ReplicaLocation => ({ node, cvmIp: `ip-${node}`, disk: `${node}-ssd` });
const rec = (inSync: string[], stale: string[] = []): EgroupRecord => ({ replicas: inSync.map(loc), stale: stale.map(loc) });

before(async () => {
  if (!hasEtcd) return;
  dir = mkdtempSync(join(tmpdir(), 'storage-meta-'));
  proc = spawn('etcd', ['--name', 'm', '--data-dir', join(dir, 'etcd'), '--listen-client-urls', URL, '--advertise-client-urls', URL,
    '--listen-peer-urls', `http://${IP}:23791`, '--initial-advertise-peer-urls', `http://${IP}:23791`, '--initial-cluster', `m=http://${IP}:23791`, '--log-level', 'error'], { stdio: 'ignore' });
  etcd = new Etcd3({ hosts: URL });
  const end = Date.now() + 10_000;
  while (!(await etcd.get('x').string().then(() => true, () => false))) {
    if (Date.now() > end) throw new Error('etcd did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  engine = new EtcdMetaStore({ etcd, clock: new SystemClock(), ttlS: 10 });
});

after(async () => {
  await engine?.close().catch(() => undefined);
  etcd?.close();
  proc?.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const opts = { skip: !hasEtcd && 'no etcd binary' };

test('the v2 records the engine writes are what resiliency and the replica map read; deleting a vdisk takes its records and owner key', opts, async () => {
  const meta = new StorageMeta(etcd, () => 2);
  await meta.initPool(poolOf([]), { name: 'default-container', replicationFactor: 2, createdAt: '' });
  await meta.createContainer({ name: 'scratch', replicationFactor: 1 });
  const a = await meta.createVdisk({ name: 'a', size: '1G' });
  const b = await meta.createVdisk({ name: 'b', size: '1G', container: 'scratch' });
  const { epoch } = await engine.acquireOwner(a.uuid, { node: 'n1', cvmIp: 'ip-n1' });
  await engine.createEgroup(a.uuid, 2, epoch, rec(['n1', 'n2']));
  await engine.createEgroup(a.uuid, 0, epoch, rec(['n1'], ['n3']));
  await engine.createEgroup(a.uuid, 10, epoch, rec(['n2', 'n3']));
  const eb = await engine.acquireOwner(b.uuid, { node: 'n2', cvmIp: 'ip-n2' });
  await engine.createEgroup(b.uuid, 0, eb.epoch, rec(['n2']));
  // a record of the first cut's data path (one per 1 MiB block): not read, deleted with its vdisk
  await etcd.put(`/converge/egroups/${a.uuid}/5`).value(JSON.stringify([loc('n1')]));

  const all = await meta.egroupRecords();
  assert.deepEqual(all.map((r) => [r.vdisk, r.egroup, r.record.replicas.length, r.record.stale.length]).sort(), [[a.uuid, 0, 1, 1], [a.uuid, 10, 2, 0], [a.uuid, 2, 2, 0], [b.uuid, 0, 1, 0]].sort());

  const map = await meta.replicaMap('a');
  assert.deepEqual({ ...map, egroups: [] }, { vdisk: 'a', uuid: a.uuid, replicationFactor: 2, egroupBytes: EGROUP_BYTES, egroups: [] });
  assert.deepEqual(map.egroups.map((e) => e.egroup), [0, 2, 10], 'in order');
  assert.deepEqual(map.egroups[0], { egroup: 0, replicas: [loc('n1')], stale: [loc('n3')] });
  assert.equal((await meta.replicaMap('b')).replicationFactor, 1);

  await meta.deleteVdisk('a');
  assert.deepEqual(await etcd.getAll().prefix(KEYS.egroupsOf(a.uuid)).keys(), []);
  assert.equal(await etcd.get(KEYS.owner(a.uuid)).string(), null, 'its owner key');
  assert.deepEqual(await etcd.getAll().prefix(`/converge/egroups/${a.uuid}/`).keys(), []);
  assert.deepEqual((await meta.egroupRecords()).map((r) => r.vdisk), [b.uuid], 'the other vdisk\'s records stay');
  assert.notEqual(await etcd.get(KEYS.owner(b.uuid)).string(), null);
  // the deposed owner changes nothing any more
  assert.equal((await engine.createEgroup(a.uuid, 3, epoch, rec(['n1']))).ok, false);
  await assert.rejects(meta.replicaMap('a'), NotFoundError);
});

test('a record that does not parse is an UnavailableError naming its key', opts, async () => {
  const meta = new StorageMeta(etcd, () => 2);
  const c = await meta.createVdisk({ name: 'c', size: '1G' });
  await etcd.put(KEYS.egroup(c.uuid, 4)).value(JSON.stringify({ replicas: [loc('n1')] }));
  await assert.rejects(meta.replicaMap('c'), (e: unknown) => e instanceof UnavailableError && e.message.includes(KEYS.egroup(c.uuid, 4)) && /stale/.test(e.message));
  await meta.deleteVdisk('c');
});
