/**
 * @module
 * The VM service's records in the cluster's etcd, under ACROPOLIS_PREFIX (protocol/vms.ts):
 * `vms/<uuid>`, `images/<uuid>`, `subnets/<uuid>`, `tasks/<uuid>`, `hosts/<serial>` (flags), and
 * `claims/<vdisk>` (which VM or image a vdisk belongs to: one owner at a time). Each record is JSON
 * with its mod revision; writes that two writers could race are compare-and-swap on it.
 */
import type { Etcd3 } from 'etcd3';
import { ConflictError } from '../../shared/errors.ts';
import { ACROPOLIS_PREFIX } from '../protocol/vms.ts';
import { rangeAll } from '../../shared/etcd-range.ts';

export type Kind = 'vms' | 'images' | 'subnets' | 'tasks' | 'hosts' | 'claims' | 'subnet-names';

export interface Versioned<T> {
  value: T;
  /** etcd's mod revision of the key (0: absent). */
  rev: string;
  /** The record's id (the key's last part). */
  id: string;
}

export function keyOf(kind: Kind, id: string): string {
  return `${ACROPOLIS_PREFIX}${kind}/${id}`;
}

export class AcropolisStore {
  constructor(readonly etcd: Etcd3) {}

  async get<T>(kind: Kind, id: string): Promise<Versioned<T> | undefined> {
    const r = await this.etcd.get(keyOf(kind, id)).exec();
    const kv = r.kvs[0];
    return kv ? { value: JSON.parse(kv.value.toString()) as T, rev: kv.mod_revision, id } : undefined;
  }

  /** Every record of a kind, in the order they were created. */
  async list<T>(kind: Kind): Promise<Versioned<T>[]> {
    const prefix = keyOf(kind, '');
    const kvs = (await rangeAll(this.etcd, prefix)).sort((a, b) => Number(BigInt(a.create_revision) - BigInt(b.create_revision)));
    return kvs.map((kv) => ({ value: JSON.parse(kv.value.toString()) as T, rev: kv.mod_revision, id: kv.key.toString().slice(prefix.length) }));
  }

  /** Writes when the key is still at `rev` ('0': when it does not exist); the new revision, or undefined when it moved on. */
  async swap(kind: Kind, id: string, value: unknown, rev: string): Promise<string | undefined> {
    const key = keyOf(kind, id);
    const r = await this.etcd.if(key, 'Mod', '==', Number(rev)).then(this.etcd.put(key).value(JSON.stringify(value))).commit();
    return r.succeeded ? r.header.revision : undefined;
  }

  /** swap that refuses (ConflictError) when someone else wrote first. */
  async update(kind: Kind, id: string, value: unknown, rev: string, what: string): Promise<string> {
    const r = await this.swap(kind, id, value, rev);
    if (r === undefined) throw new ConflictError(`${what} changed while this was done; try again`);
    return r;
  }

  async put(kind: Kind, id: string, value: unknown): Promise<void> {
    await this.etcd.put(keyOf(kind, id)).value(JSON.stringify(value));
  }

  async delete(kind: Kind, id: string): Promise<void> {
    await this.etcd.delete().key(keyOf(kind, id));
  }

  /** Deletes when the key is still at `rev`. */
  async deleteAt(kind: Kind, id: string, rev: string): Promise<boolean> {
    const key = keyOf(kind, id);
    const r = await this.etcd.if(key, 'Mod', '==', Number(rev)).then(this.etcd.delete().key(key)).commit();
    return r.succeeded;
  }

  /**
   * Claims a vdisk for `owner` (a VM uuid, or `image:<uuid>`): succeeds when it is free or already
   * the owner's; otherwise a ConflictError naming the owner.
   */
  async claim(vdisk: string, owner: string, field: string): Promise<void> {
    const key = keyOf('claims', vdisk);
    const r = await this.etcd.if(key, 'Create', '==', 0).then(this.etcd.put(key).value(owner)).commit();
    if (r.succeeded) return;
    const held = await this.etcd.get(key).string();
    if (held !== null && held !== owner) throw new ConflictError(`${field}: vdisk ${vdisk} belongs to ${held.startsWith('image:') ? `image ${held.slice(6)}` : `VM ${held}`}`);
  }

  async claimOf(vdisk: string): Promise<string | null> {
    return this.etcd.get(keyOf('claims', vdisk)).string();
  }

  /** Releases a vdisk's claim if `owner` holds it. */
  async release(vdisk: string, owner: string): Promise<void> {
    const key = keyOf('claims', vdisk);
    await this.etcd.if(key, 'Value', '==', owner).then(this.etcd.delete().key(key)).commit();
  }
}
