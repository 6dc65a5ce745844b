/**
 * @module
 * Storage metadata in the cluster's configuration store (etcd): the pool, containers and vdisks.
 * Creates are etcd transactions that succeed only if the key does not exist, so two CVMs creating
 * the same name at once cannot both win.
 *
 * Keys: /converge/pool, /converge/containers/<name>, /converge/vdisks/<name>,
 * /converge/egroups/<vdisk uuid>/<block> (replica locations, written by the data path).
 */
import { randomUUID } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { ConflictError, NotFoundError } from '../../shared/errors.ts';
import { checkName, checkRf, parseSize, type Container, type Pool, type Vdisk } from '../core/storage.ts';
import type { ReplicaMap } from '../protocol/cluster.ts';
import type { EgroupReplicas } from '../core/resiliency.ts';

const POOL = '/converge/pool';
const CONTAINERS = '/converge/containers/';
const VDISKS = '/converge/vdisks/';
const EGROUPS = '/converge/egroups/';

export class StorageMeta {
  constructor(private readonly etcd: Etcd3, private readonly clusterRf: () => 1 | 2 | 3) {}

  private async createOnce(key: string, value: unknown, what: string, name: string): Promise<void> {
    const r = await this.etcd.if(key, 'Create', '==', 0).then(this.etcd.put(key).value(JSON.stringify(value))).commit();
    if (!r.succeeded) throw new ConflictError(`${what} ${name} already exists`);
  }

  async initPool(pool: Pool, defaultContainer: Container): Promise<void> {
    await this.etcd.put(POOL).value(JSON.stringify(pool));
    await this.createOnce(CONTAINERS + defaultContainer.name, defaultContainer, 'container', defaultContainer.name);
  }

  async pool(): Promise<{ pool: Pool; provisionedBytes: number; containers: number; vdisks: number }> {
    const raw = await this.etcd.get(POOL).string();
    if (!raw) throw new NotFoundError('storage pool', 'default-pool');
    const vdisks = await this.vdisks();
    return { pool: JSON.parse(raw) as Pool, provisionedBytes: vdisks.reduce((a, v) => a + v.sizeBytes, 0), containers: (await this.containers()).length, vdisks: vdisks.length };
  }

  /** Per vdisk uuid, the number of replicas of each written block. */
  async replicaCounts(): Promise<Map<string, number[]>> {
    const all = await this.etcd.getAll().prefix(EGROUPS).strings();
    const out = new Map<string, number[]>();
    for (const [k, v] of Object.entries(all)) {
      const uuid = k.slice(EGROUPS.length).split('/')[0] ?? '';
      let list = out.get(uuid);
      if (!list) out.set(uuid, (list = []));
      list.push((JSON.parse(v) as unknown[]).length);
    }
    return out;
  }

  /** Every extent group's record: its vdisk (uuid), block and replica list (what resiliency is measured from). */
  async egroupRecords(): Promise<EgroupReplicas[]> {
    const all = await this.etcd.getAll().prefix(EGROUPS).strings();
    return Object.entries(all).map(([k, v]) => {
      const [vdisk = '', block = ''] = k.slice(EGROUPS.length).split('/');
      return { vdisk, block: Number(block), replicas: JSON.parse(v) as EgroupReplicas['replicas'] };
    });
  }

  async replicaMap(name: string): Promise<ReplicaMap> {
    checkName('name', name);
    const raw = await this.etcd.get(VDISKS + name).string();
    if (!raw) throw new NotFoundError('vdisk', name);
    const v = JSON.parse(raw) as Vdisk;
    const c = (await this.containers()).find((x) => x.name === v.container);
    const all = await this.etcd.getAll().prefix(`${EGROUPS}${v.uuid}/`).strings();
    const blocks = Object.entries(all).map(([k, val]) => ({ block: Number(k.split('/').pop()), replicas: JSON.parse(val) as ReplicaMap['blocks'][number]['replicas'] })).sort((a, b) => a.block - b.block);
    return { vdisk: name, replicationFactor: c?.replicationFactor ?? 1, blocks };
  }

  async containers(): Promise<Container[]> {
    const all = await this.etcd.getAll().prefix(CONTAINERS).strings();
    return Object.values(all).map((v) => JSON.parse(v) as Container).sort((a, b) => a.name.localeCompare(b.name));
  }

  async createContainer(body: Record<string, unknown>): Promise<Container> {
    const c: Container = { name: checkName('name', body['name']), replicationFactor: checkRf(body['replicationFactor'] ?? this.clusterRf(), this.clusterRf()), createdAt: new Date().toISOString() };
    await this.createOnce(CONTAINERS + c.name, c, 'container', c.name);
    return c;
  }

  async deleteContainer(name: string): Promise<void> {
    checkName('name', name);
    const used = (await this.vdisks()).filter((v) => v.container === name);
    if (used.length > 0) throw new ConflictError(`container ${name} holds ${used.length} vdisk(s) (${used.slice(0, 3).map((v) => v.name).join(', ')}); delete them first`);
    const r = await this.etcd.delete().key(CONTAINERS + name).exec();
    if (Number(r.deleted) === 0) throw new NotFoundError('container', name);
  }

  async vdisks(): Promise<Vdisk[]> {
    const all = await this.etcd.getAll().prefix(VDISKS).strings();
    return Object.values(all).map((v) => JSON.parse(v) as Vdisk).sort((a, b) => a.name.localeCompare(b.name));
  }

  async createVdisk(body: Record<string, unknown>): Promise<Vdisk> {
    const name = checkName('name', body['name']);
    const sizeBytes = parseSize('size', body['size']);
    const container = checkName('container', body['container'] ?? 'default-container');
    if (!(await this.etcd.get(CONTAINERS + container).string())) throw new NotFoundError('container', container);
    const v: Vdisk = { name, container, sizeBytes, uuid: randomUUID(), createdAt: new Date().toISOString() };
    await this.createOnce(VDISKS + name, v, 'vdisk', name);
    return v;
  }

  /** Deletes a vdisk and its extent-group records (each CVM's sweep then frees the replica files). */
  async deleteVdisk(name: string): Promise<void> {
    checkName('name', name);
    const raw = await this.etcd.get(VDISKS + name).string();
    if (!raw) throw new NotFoundError('vdisk', name);
    const v = JSON.parse(raw) as Vdisk;
    const r = await this.etcd.if(VDISKS + name, 'Value', '==', raw).then(this.etcd.delete().key(VDISKS + name), this.etcd.delete().prefix(`${EGROUPS}${v.uuid}/`)).commit();
    if (!r.succeeded) throw new NotFoundError('vdisk', name);
  }
}
