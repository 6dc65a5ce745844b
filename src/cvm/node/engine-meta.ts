/**
 * @module
 * The v2 engine's configuration store (ports.ts `MetaStore`) over etcd (docs/adr/015-storage-engine-v2.md):
 *  - `/converge/v2/owners/<vdisk>` (OwnerRecord JSON) is put under this store's etcd lease, create-if-absent;
 *    the owner's **epoch** is that key's create revision (etcd-assigned, cluster-wide monotonic).
 *  - `/converge/v2/egroups/<vdisk>/<egroup>` (EgroupRecord JSON) changes only in transactions that also
 *    compare the owner key's create revision with the caller's epoch: a deposed owner changes nothing.
 *    A record's version is its mod revision.
 *  - leaseValid() is local: true until (send time of the last answered keep-alive) + TTL − margin on the
 *    injected clock. The lease's expiry at etcd is counted from when etcd received that keep-alive, which
 *    is after it was sent, so the lease surely holds until then (etcd may only extend leases, e.g. on a
 *    leader change).
 *
 * One store = one lease. Once that lease is lost (etcd said so, or the keep-alives stopped past the TTL)
 * the store stays lost: leaseValid() is false for good and acquireOwner fails, because every owner opened
 * on it may have been replaced meanwhile. The CVM closes its owners and opens a new store (onLost tells it).
 */
import type { Etcd3, IKeyValue, Lease } from 'etcd3';
import { z } from 'zod';
import type { Clock } from '../../shared/clock.ts';
import { ConflictError, ConvergeError, UnavailableError, errorMessage } from '../../shared/errors.ts';
import { KEYS, type EgroupRecord, type OwnerRecord } from '../core/engine/layout.ts';
import type { CasResult, MetaStore, Versioned } from '../core/engine/ports.ts';
import { rangeAll } from '../../shared/etcd-range.ts';

/** The default TTL of the owner lease (seconds); as liveness's (LIVENESS_TTL_S). */
export const OWNER_LEASE_TTL_S = 3;
/** Subtracted from the TTL in leaseValid() (clock drift, scheduling delay). */
export const OWNER_LEASE_MARGIN_MS = 500;

export interface EtcdMetaStoreOptions {
  etcd: Etcd3;
  clock: Clock;
  ttlS?: number;
  marginMs?: number;
  /** Called once when the lease is lost (every ownership taken through this store is gone). */
  onLost?: (why: string) => void;
  log?: (m: string) => void;
}

const locSchema = z.object({ node: z.string(), cvmIp: z.string(), disk: z.string() });
const egroupSchema = z.object({ replicas: z.array(locSchema), stale: z.array(locSchema) });
const ownerSchema = z.object({ node: z.string(), cvmIp: z.string() });

/** Wraps transport failures (etcd unreachable, timeouts) as UnavailableError; typed errors pass through. */
async function etcdCall<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ConvergeError) throw e;
    throw new UnavailableError(`configuration store: ${what}: ${errorMessage(e)}`);
  }
}

function parseRecord(kv: IKeyValue): Versioned<EgroupRecord> {
  const key = kv.key.toString();
  let raw: unknown;
  try {
    raw = JSON.parse(kv.value.toString());
  } catch (e) {
    throw new UnavailableError(`configuration store: ${key} is not JSON: ${errorMessage(e)}`);
  }
  const r = egroupSchema.safeParse(raw);
  if (!r.success) throw new UnavailableError(`configuration store: ${key} is not an extent-group record: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return { value: r.data, version: Number(kv.mod_revision) };
}

export class EtcdMetaStore implements MetaStore {
  private lease: Lease | null = null;
  private leaseId = '';
  private granting: Promise<string> | null = null;
  /** Send times of keep-alives not yet answered, oldest first (one stream answers in order). */
  private unanswered: number[] = [];
  /** Send time of the last answered keep-alive (or of the grant); -Infinity: none. */
  private confirmedSentAt = -Infinity;
  private lostWhy: string | null = null;
  private closed = false;
  private readonly ttlMs: number;
  private readonly marginMs: number;

  constructor(private readonly o: EtcdMetaStoreOptions) {
    this.ttlMs = 1000 * (o.ttlS ?? OWNER_LEASE_TTL_S);
    this.marginMs = o.marginMs ?? OWNER_LEASE_MARGIN_MS;
  }

  /** The lease id (decimal string) once granted; '' before. */
  get leaseID(): string {
    return this.leaseId;
  }

  /** Why the lease was lost; null while it holds (or before it is granted). */
  get lost(): string | null {
    return this.lostWhy;
  }

  /** Grants the lease (acquireOwner does so on first use). */
  async start(): Promise<void> {
    await this.ensureLease();
  }

  leaseValid(): boolean {
    if (this.lostWhy !== null || this.closed || !this.lease) return false;
    return this.o.clock.now() < this.confirmedSentAt + this.ttlMs - this.marginMs;
  }

  private ensureLease(): Promise<string> {
    if (this.lostWhy !== null) return Promise.reject(new UnavailableError(`this CVM's owner lease was lost (${this.lostWhy}); open a new store`));
    if (this.closed) return Promise.reject(new UnavailableError('the owner store is closed'));
    if (this.leaseId) return Promise.resolve(this.leaseId);
    this.granting ??= this.grant().finally(() => (this.granting = null));
    return this.granting;
  }

  private async grant(): Promise<string> {
    const sentAt = this.o.clock.now();
    const lease = this.o.etcd.lease(this.ttlMs / 1000);
    this.lease = lease;
    lease.on('lost', (e: unknown) => this.markLost(errorMessage(e)));
    lease.on('keepaliveEstablished', () => void (this.unanswered = []));
    lease.on('keepaliveFired', () => void this.unanswered.push(this.o.clock.now()));
    lease.on('keepaliveSucceeded', () => {
      const at = this.unanswered.shift();
      if (at !== undefined) this.confirmedSentAt = Math.max(this.confirmedSentAt, at);
    });
    const id = await etcdCall('grant the owner lease', () => lease.grant());
    if (this.lostWhy !== null) throw new UnavailableError(`this CVM's owner lease was lost (${this.lostWhy})`);
    this.confirmedSentAt = Math.max(this.confirmedSentAt, sentAt);
    this.leaseId = id;
    return id;
  }

  private markLost(why: string): void {
    // a failed first grant is not a loss: grant() rejects and the next call tries a new lease
    if (this.lostWhy !== null || this.closed || !this.leaseId) return;
    this.lostWhy = why;
    this.o.log?.(`engine-meta: this CVM's owner lease ${this.leaseId || '(not granted)'} is lost: ${why}`);
    this.o.onLost?.(why);
  }

  async acquireOwner(vdisk: string, owner: { node: string; cvmIp: string }): Promise<{ epoch: number }> {
    const lease = await this.ensureLease();
    const key = KEYS.owner(vdisk);
    const rec: OwnerRecord = { node: owner.node, cvmIp: owner.cvmIp };
    const etcd = this.o.etcd;
    const r = await etcdCall(`acquire ${key}`, () => etcd.if(key, 'Create', '==', 0).then(etcd.put(key).value(JSON.stringify(rec)).lease(lease)).else(etcd.get(key)).commit());
    if (r.succeeded) return { epoch: Number(r.responses[0]!.response_put.header.revision) };
    const kv = r.responses[0]!.response_range.kvs[0];
    if (!kv) throw new UnavailableError(`configuration store: ${key} neither created nor read`);
    const held = ownerSchema.safeParse(safeJson(kv.value.toString()));
    const holder = held.success ? held.data : { node: '(unreadable)', cvmIp: '' };
    // idempotent for this CVM's own key (an answer lost on the way must not lock the vdisk until the lease ends)
    if (kv.lease === lease && holder.node === owner.node) return { epoch: Number(kv.create_revision) };
    throw new ConflictError(`vdisk ${vdisk} is owned by ${holder.node}${holder.cvmIp ? ` (${holder.cvmIp})` : ''} since revision ${kv.create_revision}`);
  }

  /** Who owns a vdisk now (its owner key), or null. */
  async ownerOf(vdisk: string): Promise<(OwnerRecord & { epoch: number }) | null> {
    const key = KEYS.owner(vdisk);
    const r = await etcdCall(`get ${key}`, () => this.o.etcd.get(key).exec());
    const kv = r.kvs[0];
    if (!kv) return null;
    const held = ownerSchema.safeParse(safeJson(kv.value.toString()));
    if (!held.success) throw new UnavailableError(`configuration store: ${key} is not an owner record`);
    return { ...held.data, epoch: Number(kv.create_revision) };
  }

  async releaseOwner(vdisk: string, epoch: number): Promise<void> {
    const key = KEYS.owner(vdisk);
    const etcd = this.o.etcd;
    await etcdCall(`release ${key}`, () => etcd.if(key, 'Create', '==', epoch).then(etcd.delete().key(key)).commit());
  }

  async getEgroup(vdisk: string, egroup: number): Promise<Versioned<EgroupRecord> | null> {
    const key = KEYS.egroup(vdisk, egroup);
    const r = await etcdCall(`get ${key}`, () => this.o.etcd.get(key).exec());
    const kv = r.kvs[0];
    return kv ? parseRecord(kv) : null;
  }

  async listEgroups(vdisk: string): Promise<Map<number, Versioned<EgroupRecord>>> {
    const prefix = KEYS.egroupsOf(vdisk);
    const kvs = await etcdCall(`list ${prefix}`, () => rangeAll(this.o.etcd, prefix));
    const out = new Map<number, Versioned<EgroupRecord>>();
    for (const kv of kvs) {
      const rest = kv.key.toString().slice(prefix.length);
      if (!/^\d+$/.test(rest)) continue; // not an extent-group key of this vdisk
      out.set(Number(rest), parseRecord(kv));
    }
    return out;
  }

  createEgroup(vdisk: string, egroup: number, epoch: number, record: EgroupRecord): Promise<CasResult> {
    return this.write(vdisk, egroup, epoch, 'Create', 0, record);
  }

  casEgroup(vdisk: string, egroup: number, epoch: number, version: number, record: EgroupRecord): Promise<CasResult> {
    return this.write(vdisk, egroup, epoch, 'Mod', version, record);
  }

  /** One transaction: owner key's create revision == epoch AND the record's `column` == `expect`. */
  private async write(vdisk: string, egroup: number, epoch: number, column: 'Create' | 'Mod', expect: number, record: EgroupRecord): Promise<CasResult> {
    const ownerKey = KEYS.owner(vdisk);
    const key = KEYS.egroup(vdisk, egroup);
    const etcd = this.o.etcd;
    const r = await etcdCall(`write ${key}`, () => etcd.if(ownerKey, 'Create', '==', epoch).and(key, column, '==', expect)
      .then(etcd.put(key).value(JSON.stringify(record)))
      .else(etcd.get(ownerKey))
      .commit());
    if (r.succeeded) return { ok: true, record: { value: structuredClone(record), version: Number(r.responses[0]!.response_put.header.revision) } };
    // the else branch read the owner key in the same transaction: if it still holds epoch, the record check failed
    const ownerKv = r.responses[0]!.response_range.kvs[0];
    if (Number(ownerKv?.create_revision ?? 0) !== epoch) return { ok: false, reason: 'epoch' };
    return { ok: false, reason: column === 'Create' ? 'exists' : 'version' };
  }

  /** Gives the lease back: every owner key under it goes at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.granting?.catch(() => undefined);
    await this.lease?.revoke().catch(() => undefined);
  }

  /** Stops the keep-alives without revoking: the lease runs out at etcd after its TTL (a crash, as etcd sees it). */
  abandon(): void {
    this.closed = true;
    this.lease?.release();
  }
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}
