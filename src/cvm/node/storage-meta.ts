/**
 * @module
 * Storage metadata in the cluster's configuration store (etcd): the pool, containers and vdisks.
 * Creates are etcd transactions that succeed only if the key does not exist, so two CVMs creating
 * the same name at once cannot both win.
 *
 * Keys: /converge/pool, /converge/containers/<name>, /converge/vdisks/<name>, and what the data
 * path writes (storage engine v2, core/engine/layout.ts KEYS): one record per written extent group
 * at /converge/v2/egroups/<vdisk uuid>/<egroup> (EgroupRecord: in-sync and stale replicas) and the
 * vdisk's owner at /converge/v2/owners/<vdisk uuid>. Status, resiliency and the replica map read
 * those records; deleting a vdisk deletes them with it.
 */
import { randomUUID } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { z } from 'zod';
import { ConflictError, NotFoundError, UnavailableError } from '../../shared/errors.ts';
import { checkName, checkRf, parseSize, type Container, type Pool, type Vdisk } from '../core/storage.ts';
import { EGROUP_BYTES, KEYS, type EgroupRecord } from '../core/engine/layout.ts';
import type { ReplicaMap } from '../protocol/cluster.ts';
import type { StoredEgroup } from '../core/resiliency.ts';
import { rangeStrings } from '../../shared/etcd-range.ts';

const POOL = '/converge/pool';
const CONTAINERS = '/converge/containers/';
const VDISKS = '/converge/vdisks/';
/** Every vdisk's extent-group records (KEYS.egroupsOf(uuid) is one vdisk's). */
const V2_EGROUPS = '/converge/v2/egroups/';
/** The first cut's block records (one per 1 MiB): deleted with their vdisk while that data path may still have written them. */
const V1_EGROUPS = '/converge/egroups/';

const locSchema = z.object({ node: z.string(), cvmIp: z.string(), disk: z.string() });
const recordSchema = z.object({ replicas: z.array(locSchema), stale: z.array(locSchema) });

/** An extent-group record as stored; one that does not parse is an UnavailableError naming its key. */
function parseRecord(key: string, raw: string): EgroupRecord {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new UnavailableError(`configuration store: ${key} is not JSON`);
  }
  const r = recordSchema.safeParse(json);
  if (!r.success) throw new UnavailableError(`configuration store: ${key} is not an extent-group record: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

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

  /** Every extent group's record: its vdisk (uuid), index and replicas (what resiliency is measured from). */
  async egroupRecords(): Promise<StoredEgroup[]> {
    const all = await rangeStrings(this.etcd, V2_EGROUPS);
    return Object.entries(all).map(([k, v]) => {
      const [vdisk = '', egroup = ''] = k.slice(V2_EGROUPS.length).split('/');
      return { vdisk, egroup: Number(egroup), record: parseRecord(k, v) };
    });
  }

  /** A vdisk's written extent groups (in order) and where their in-sync and stale replicas are. */
  async replicaMap(name: string): Promise<ReplicaMap> {
    checkName('name', name);
    const raw = await this.etcd.get(VDISKS + name).string();
    if (!raw) throw new NotFoundError('vdisk', name);
    const v = JSON.parse(raw) as Vdisk;
    const c = (await this.containers()).find((x) => x.name === v.container);
    const prefix = KEYS.egroupsOf(v.uuid);
    const all = await rangeStrings(this.etcd, prefix);
    const egroups = Object.entries(all).map(([k, val]) => ({ egroup: Number(k.slice(prefix.length)), ...parseRecord(k, val) })).sort((a, b) => a.egroup - b.egroup);
    return { vdisk: name, uuid: v.uuid, replicationFactor: c?.replicationFactor ?? this.clusterRf(), egroupBytes: EGROUP_BYTES, egroups };
  }

  async containers(): Promise<Container[]> {
    const all = await rangeStrings(this.etcd, CONTAINERS);
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
    const all = await rangeStrings(this.etcd, VDISKS);
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

  /**
   * Deletes a vdisk, its extent-group records and its owner key in one transaction (each CVM's
   * sweep then frees the replica files). An owner still serving it is deposed: its record changes
   * compare the owner key and fail from now on.
   */
  async deleteVdisk(name: string): Promise<void> {
    checkName('name', name);
    const raw = await this.etcd.get(VDISKS + name).string();
    if (!raw) throw new NotFoundError('vdisk', name);
    const v = JSON.parse(raw) as Vdisk;
    const r = await this.etcd.if(VDISKS + name, 'Value', '==', raw).then(
      this.etcd.delete().key(VDISKS + name),
      this.etcd.delete().prefix(KEYS.egroupsOf(v.uuid)),
      this.etcd.delete().key(KEYS.owner(v.uuid)),
      this.etcd.delete().prefix(`${V1_EGROUPS}${v.uuid}/`),
    ).commit();
    if (!r.succeeded) throw new NotFoundError('vdisk', name);
  }
}
