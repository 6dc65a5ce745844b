/**
 * @module
 * A MetaStore in memory (ports.ts): one owner, records with versions, compare-and-swap. For
 * benchmarks and tests that exercise the owner over real replicas without an etcd; it has no
 * lease (leaseValid() is always true) and never loses ownership.
 */
import { ConflictError } from '../../../shared/errors.ts';
import type { EgroupRecord } from './layout.ts';
import type { CasResult, MetaStore, Versioned } from './ports.ts';

export class MemoryMetaStore implements MetaStore {
  readonly records = new Map<string, Versioned<EgroupRecord>>();
  private readonly owners = new Map<string, { node: string; epoch: number }>();
  private rev = 1;

  private key(vdisk: string, egroup: number): string {
    return `${vdisk}/${egroup}`;
  }

  private put(vdisk: string, egroup: number, record: EgroupRecord): CasResult {
    const v = { value: structuredClone(record), version: ++this.rev };
    this.records.set(this.key(vdisk, egroup), v);
    return { ok: true, record: structuredClone(v) };
  }

  getEgroup(vdisk: string, egroup: number): Promise<Versioned<EgroupRecord> | null> {
    const r = this.records.get(this.key(vdisk, egroup));
    return Promise.resolve(r ? structuredClone(r) : null);
  }

  listEgroups(vdisk: string): Promise<Map<number, Versioned<EgroupRecord>>> {
    const out = new Map<number, Versioned<EgroupRecord>>();
    for (const [k, v] of this.records) if (k.startsWith(`${vdisk}/`)) out.set(Number(k.slice(vdisk.length + 1)), structuredClone(v));
    return Promise.resolve(out);
  }

  createEgroup(vdisk: string, egroup: number, epoch: number, record: EgroupRecord): Promise<CasResult> {
    if (this.owners.get(vdisk)?.epoch !== epoch) return Promise.resolve({ ok: false, reason: 'epoch' });
    if (this.records.has(this.key(vdisk, egroup))) return Promise.resolve({ ok: false, reason: 'exists' });
    return Promise.resolve(this.put(vdisk, egroup, record));
  }

  casEgroup(vdisk: string, egroup: number, epoch: number, version: number, record: EgroupRecord): Promise<CasResult> {
    if (this.owners.get(vdisk)?.epoch !== epoch) return Promise.resolve({ ok: false, reason: 'epoch' });
    if (this.records.get(this.key(vdisk, egroup))?.version !== version) return Promise.resolve({ ok: false, reason: 'version' });
    return Promise.resolve(this.put(vdisk, egroup, record));
  }

  acquireOwner(vdisk: string, owner: { node: string }): Promise<{ epoch: number }> {
    const held = this.owners.get(vdisk);
    if (held && held.node !== owner.node) return Promise.reject(new ConflictError(`vdisk ${vdisk} is owned by ${held.node}`));
    const o = held ?? { node: owner.node, epoch: ++this.rev };
    this.owners.set(vdisk, o);
    return Promise.resolve({ epoch: o.epoch });
  }

  releaseOwner(vdisk: string, epoch: number): Promise<void> {
    if (this.owners.get(vdisk)?.epoch === epoch) this.owners.delete(vdisk);
    return Promise.resolve();
  }

  leaseValid(): boolean {
    return true;
  }
}
