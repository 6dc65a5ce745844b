/**
 * @module
 * The CVM process: owns the node's passed-through disks, runs its services under supervision
 * (genesis = this process; etcd when it is a store member), answers its API on cvmIp:2100, forms
 * clusters with its peers, and announces itself to Foundation.
 *
 * Cluster creation, driven by the member that receives the request:
 * ```
 *  check every member answers and is unconfigured ─► prepare (store members start etcd)
 *    ─► wait for the store's quorum ─► write the cluster record ─► commit on every member
 *  any failure ─► destroy on every member (back to unconfigured), and report why
 * ```
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { SystemClock } from '../../shared/clock.ts';
import { within } from '../../shared/async.ts';
import { DiskVolume } from '../../shared/disk-volume.ts';
import { ConflictError, ForbiddenError, InputError, NotFoundError, errorMessage, UnavailableError } from '../../shared/errors.ts';
import { createInternalApi, setAnchors } from '../../shared/http-api.ts';
import { anchorList, memberIdentities, peerOfCert, readIdentity, type Anchors, type Identity, type MemberIdentities, type Role } from '../../shared/identity.ts';
import { parseWith } from '../../shared/schema.ts';
import type { CvmConfig } from '../../hypervisor/protocol/node-config.ts';
import type { CvmAnnounce } from '../../foundation/protocol/installer.ts';
import { parseCreateRequest, storeMembers, initialCluster } from '../core/cluster.ts';
import { BMCS_PREFIX, type StoredBmc } from './fencer.ts';
import { CLUSTER_KEY, CVM_API_PORT, ETCD_CLIENT_PORT, ETCD_PEER_PORT, MEMBER_IDENTITIES_FILE, MEMBER_PKI_DIR, NBD_PORT, type ClusterInfo, type CreatedCluster, type CvmStatus, type MemberHealth, type PrepareRequest, type PoolView, type ResiliencyReport, type ServiceView, type StoreHealth } from '../protocol/cluster.ts';
import { cvmCall } from '../protocol/client.ts';
import { storeClient } from '../protocol/store.ts';
import { Supervised } from './supervisor.ts';
import { LocalEgroups, parseEgroupList } from './egroups.ts';
import { ReplicationClient, ReplicationServer, type MemberTls } from './replication.ts';
import { EngineReplicaIo, LocalReplicas } from './engine-replicas.ts';
import { OwnerRegistry } from './owners.ts';
import { CopyBudget, EngineRepairer, balanceDiskOf } from './engine-repair.ts';
import { committedBytes } from '../core/engine/place.ts';
import { Liveness, etcdLivenessStore, LIVENESS_TTL_S } from './liveness.ts';
import { NbdServer } from '../../shared/nbd/server.ts';
import type { ExportProvider } from '../../shared/nbd/connection.ts';
import type { Pool } from '../core/storage.ts';
import { StorageMeta } from './storage-meta.ts';
import { createCa, type Pem } from '../../shared/tls.ts';
import { generatePassword, hashPassword } from '../../shared/passwords.ts';
import { ADMIN_USER, PRISM_CA_KEY, PRISM_USERS_PREFIX, type PrismConfig, type PrismUser } from '../../prism/protocol/prism.ts';
import { usageOf, type LiveDisk } from '../core/usage.ts';
import { memberHealthOf, resiliencyOf } from '../core/resiliency.ts';
import { DEFAULT_CONTAINER, poolOf, type PoolDisk } from '../core/storage.ts';
import { VmService } from './acropolis.ts';
import { registerVmServiceRoutes } from './acropolis-routes.ts';
import type { LcmConfig } from '../../lcm/protocol/lcm.ts';
import { hostApiOf } from './host-api.ts';
import { rangeStrings } from '../../shared/etcd-range.ts';
import { IoStats, STEP_MS as STATS_STEP_MS } from '../core/io-stats.ts';
import { withIoStats } from './io-stats-backend.ts';


interface SavedState {
  cluster: ClusterInfo;
  store: PrepareRequest['store'];
  committed: boolean;
}

/** A prepare request's shape (member to member); the cluster record is the creating member's. */
const pemSchema = z.string().min(1).max(16_384);
const prepareSchema = z.object({
  cluster: z.object({
    clusterId: z.string().uuid(), name: z.string().min(1).max(63), redundancyFactor: z.union([z.literal(1), z.literal(2), z.literal(3)]), vip: z.string().max(15).nullable(),
    members: z.array(z.object({ serial: z.string().max(64), cvmIp: z.string().max(15), hostIp: z.string().max(15) })).min(1).max(32),
    store: z.array(z.string().max(15)).min(1).max(5), createdAt: z.string().max(40),
  }),
  store: z.object({ name: z.string().max(64), initialCluster: z.string().max(4096), token: z.string().max(64) }).nullable(),
  identities: z.object({ ca: pemSchema, cvm: z.object({ cert: pemSchema, key: pemSchema }), host: z.object({ cert: pemSchema, key: pemSchema }) }),
});
const clusterIdSchema = z.object({ clusterId: z.string().max(64).optional() }).optional();
/** GET /stats/vdisks: since when (ms since the epoch), and which vdisks (repeatable). */
const statsQuery = z.object({ since: z.coerce.number().int().min(0).optional(), vdisk: z.union([z.string().max(64), z.array(z.string().max(64)).max(256)]).optional() });
const nameParam = z.object({ name: z.string().min(1).max(255) });

/** Who may call what (ADR 013): the operator everything; nodes of the deployment take part in forming clusters; members and hosts serve the fabric. */
const ANY: readonly Role[] = ['operator', 'node', 'cvm', 'host'];
const OPERATOR: readonly Role[] = ['operator'];
const FORMING: readonly Role[] = ['operator', 'node'];
const STORAGE_WRITE: readonly Role[] = ['operator', 'cvm'];
const PEERS: readonly Role[] = ['node', 'cvm'];
/** Who reaches vdisks over the network: the operator, a member's hypervisor (its redirector) or CVM. */
const NBD_ROLES: readonly Role[] = ['operator', 'host', 'cvm'];

export class Cvm {
  private state: SavedState | null;
  private etcd: Supervised | undefined;
  private prism: Supervised | undefined;
  private lcm: Supervised | undefined;
  private disks: CvmStatus['disks'];
  /** The node's identity from the deployment CA: the API's certificate, and what this CVM presents to its peers' APIs. */
  private readonly nodeId: Identity;
  /** This member's certificates from the cluster CA (while it is in a cluster). */
  private member: MemberIdentities | undefined;
  private readonly api: FastifyInstance;
  /** The same API on the host↔CVM link (a Unix socket only this node reaches; callers are its host). */
  private readonly linkApi: FastifyInstance;
  private etcdClient: Etcd3 | undefined;
  private local: LocalEgroups;
  private replication: ReplicationServer;
  /** Storage engine v2: this CVM's replicas (its own EngineReplicaIo and the replication server share it). */
  readonly replicas: LocalReplicas;
  private nbd: NbdServer | undefined;
  private nbdLink: NbdServer | undefined;
  private owners: OwnerRegistry | undefined;
  /** Client I/O per vdisk through this CVM's NBD front end (Prism's performance charts). */
  private readonly ioStats = new IoStats(() => Date.now());
  private statsTimer: NodeJS.Timeout | undefined;
  private repairer: EngineRepairer | undefined;
  private spaceCache: { at: number; disks: DiskSpace[] } | undefined;
  private committedCache: { at: number; bytes: Map<string, number> } | undefined;
  private diskHealth: string | undefined;
  private poolCapacity = new Map<string, number>();
  /** This CVM's part of the cluster's failure detector (while stargate runs). */
  private liveness: Liveness | undefined;
  /** Why stargate did not start (shown in its status until it does). */
  private stargateError: string | undefined;
  /** The VM service (protocol/vms.ts), while this CVM is in a cluster. */
  private vmService: VmService | undefined;

  /** The storage metadata of this CVM's cluster (a client of the cluster's store). */
  private meta(): StorageMeta {
    const st = this.state;
    const m = this.member;
    if (!st?.committed || !m) throw new ConflictError(`this CVM (${this.cfg.cvmIp}) belongs to no cluster; create one first`);
    this.etcdClient ??= storeClient(st.cluster.store, this.storeTls(m));
    return new StorageMeta(this.etcdClient, () => st.cluster.redundancyFactor);
  }
  private announceTimer: NodeJS.Timeout | undefined;

  constructor(private readonly cfg: CvmConfig, private readonly log: (m: string) => void, private readonly etcdBin = process.env['CONVERGE_ETCD'] ?? 'etcd') {
    mkdirSync(cfg.stateDir, { recursive: true });
    const id = readIdentity(cfg.identity);
    if (!id) throw new UnavailableError(`no node identity at ${cfg.identity}: this node was not imaged by Foundation (re-image it)`);
    this.nodeId = id;
    this.state = existsSync(this.statePath) ? (JSON.parse(readFileSync(this.statePath, 'utf8')) as SavedState) : null;
    const memberFile = join(cfg.stateDir, MEMBER_IDENTITIES_FILE);
    this.member = this.state && existsSync(memberFile) ? (JSON.parse(readFileSync(memberFile, 'utf8')) as MemberIdentities) : undefined;
    if (this.state && !this.member) this.log(`this CVM's cluster certificates are missing (${memberFile}): it cannot reach its cluster's store or peers; destroy the cluster and create it again`);
    const oplogMib = Number(process.env['CONVERGE_OPLOG_MIB']); // per disk; 0: no oplog
    this.local = new LocalEgroups(cfg.disks, `the CVM at ${cfg.cvmIp}`, process.env['CONVERGE_OPLOG_MIB'] !== undefined && Number.isFinite(oplogMib) ? { oplogBytes: oplogMib * 2 ** 20 } : {});
    // storage engine v2's replica side (one per CVM: its epoch floors are cached), served to peers as protocol v2
    this.replicas = new LocalReplicas(this.local.store, this.local.volumes);
    this.replication = new ReplicationServer(this.local, this.log, this.replicas);
    this.disks = cfg.disks.map((d) => {
      try {
        const v = DiskVolume.open(d.path);
        return { serial: d.serial, mediaType: d.mediaType, capacityBytes: v.capacityBytes, usedBytes: v.used(), ok: true };
      } catch (e) {
        this.log(`disk ${d.serial}: ${errorMessage(e)}`);
        return { serial: d.serial, mediaType: d.mediaType, capacityBytes: d.capacityBytes, usedBytes: 0, ok: false };
      }
    });
    // image uploads (PUT /images/upload) take as long as their body keeps arriving
    this.api = createInternalApi({ tls: { identity: this.nodeId, anchors: this.anchors() }, bodyLimit: 1 << 20, longBodyIdleMs: 60_000, log: this.log });
    this.linkApi = createInternalApi({ localPeer: { role: 'host', name: cfg.serial }, bodyLimit: 1 << 20, log: this.log });
    this.routes(this.api);
    this.routes(this.linkApi);
  }

  private get statePath(): string {
    return join(this.cfg.stateDir, 'cluster.json');
  }

  private save(s: SavedState | null): void {
    this.state = s;
    if (s) writeFileSync(this.statePath, JSON.stringify(s, null, 2));
    else rmSync(this.statePath, { force: true });
  }

  /** Whom this CVM's API admits: nodes and the operator of its deployment, and its cluster's members. */
  private anchors(): Anchors {
    return { deployment: this.nodeId.ca[0], cluster: this.member?.ca };
  }

  private memberTls(): MemberTls | undefined {
    const m = this.member;
    return m ? { identity: m.cvm, clusterCa: m.ca } : undefined;
  }

  private storeTls(m: MemberIdentities): { ca: string; cert: string; key: string } {
    return { ca: m.ca, cert: m.cvm.cert, key: m.cvm.key };
  }

  /** Takes the cluster's certificates (prepare): files for etcd and Prism, trust for the API and replication. */
  private async adoptMember(m: MemberIdentities | undefined): Promise<void> {
    const dir = join(this.cfg.stateDir, MEMBER_PKI_DIR);
    this.member = m;
    if (m) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(join(this.cfg.stateDir, MEMBER_IDENTITIES_FILE), JSON.stringify(m, null, 2), { mode: 0o600 });
      writeFileSync(join(dir, 'ca.crt'), m.ca, { mode: 0o600 });
      writeFileSync(join(dir, 'cvm.crt'), m.cvm.cert, { mode: 0o600 });
      writeFileSync(join(dir, 'cvm.key'), m.cvm.key, { mode: 0o600 });
    } else {
      rmSync(dir, { recursive: true, force: true });
    }
    setAnchors(this.api, this.anchors());
    await this.replication.close();
    const tls = this.memberTls();
    if (tls) await this.replication.listen(this.cfg.cvmIp, tls);
  }

  async start(): Promise<void> {
    if (this.state?.store) this.startEtcd(this.state.store);
    await this.api.listen({ port: CVM_API_PORT, host: this.cfg.cvmIp });
    const tls = this.memberTls();
    if (tls) await this.replication.listen(this.cfg.cvmIp, tls);
    const link = this.cfg.link;
    if (link) {
      rmSync(link.api, { force: true });
      await this.linkApi.listen({ path: link.api });
    }
    if (this.state?.committed) {
      // a stargate that cannot start at boot fails the CVM, and its hypervisor starts it again (with backoff)
      await this.startStargate();
      this.startVmService();
      this.startPrism();
      this.startLcm();
    }
    const c = this.state?.committed ? this.state.cluster : null;
    this.log(`CVM up: storage OS ${this.cfg.versions.nos} at ${this.cfg.cvmIp}, ${this.disks.filter((d) => d.ok).length}/${this.disks.length} disks, ${c ? `in cluster ${c.name}` : 'unconfigured'}`);
    void this.announce(0);
  }

  async stop(): Promise<void> {
    if (this.announceTimer) clearTimeout(this.announceTimer);
    await this.prism?.stop();
    await this.lcm?.stop();
    await this.stopVmService();
    await this.stopStargate();
    await this.replication.close();
    this.local.release();
    this.etcdClient?.close();
    await this.etcd?.stop();
    await this.api.close();
    await this.linkApi.close();
  }

  status(): CvmStatus {
    const committed = this.state?.committed === true;
    const services = [
      // this process; its restarts are its hypervisor's to count (the host's status: cvm.restarts)
      { name: 'genesis', state: 'up', pid: process.pid, restarts: null },
      ...(this.etcd ? [this.etcd.status()] : []),
      ...(this.prism ? [this.prism.status()] : []),
      ...(this.lcm ? [this.lcm.status()] : []),
      ...(committed ? [this.stargateView()] : []),
    ];
    const live = new Map(this.local.space().map((x) => [x.serial, x]));
    // bytes per vdisk on each disk, from the extent store's count (no disk I/O; absent until counted once)
    const perVdisk = this.local.vdiskBytes();
    const disks = this.disks.map((d) => {
      const l = live.get(d.serial);
      return l ? { ...d, usedBytes: l.usedBytes, ok: l.ok, ...(perVdisk ? { vdiskBytes: Object.fromEntries(perVdisk.get(d.serial) ?? []) } : {}) } : d;
    });
    return {
      serial: this.cfg.serial, cvmIp: this.cfg.cvmIp, hostIp: this.cfg.hostIp, hypervisorVersion: this.cfg.versions.hypervisor, nosVersion: this.cfg.versions.nos,
      configured: committed, clusterId: committed ? this.state?.cluster.clusterId ?? null : null, cluster: committed ? this.state?.cluster ?? null : null,
      services, disks,
      ...(this.repairer ? { repair: this.repairer.stats } : {}),
    };
  }

  /** Stargate as what it is: a part of this process (its NBD server and repair loop), up while both run. */
  private stargateView(): ServiceView {
    const owners = this.owners;
    const state = this.nbd && owners ? 'up' : this.stargateError ? 'down' : 'starting';
    const nbd = this.nbd ? `NBD on ${this.cfg.cvmIp}:${NBD_PORT}${this.nbdLink ? ' and the host link' : ''}` : 'NBD not listening';
    const held = owners ? `owns ${owners.held().length} vdisk(s)` : 'owns no vdisks';
    const loop = this.repairer ? `repair loop pass ${this.repairer.stats.passes}` : 'repair loop not running';
    const why = state === 'down' && this.stargateError ? ` (${this.stargateError})` : '';
    return { name: 'stargate', state, pid: process.pid, restarts: null, partOf: 'genesis', detail: `${nbd}, ${held}, ${loop}${why}` };
  }

  private async announce(delayMs: number): Promise<void> {
    const s = this.status();
    const a: CvmAnnounce = { serial: s.serial, cvmIp: s.cvmIp, hostIp: s.hostIp, hypervisorVersion: s.hypervisorVersion, nosVersion: s.nosVersion, configured: s.configured, clusterId: s.clusterId };
    let next = 60_000;
    try {
      // the node's credential with Foundation (its install configuration's foundationToken)
      const auth = this.cfg.foundationToken ? { Authorization: `Bearer ${this.cfg.foundationToken}` } : {};
      const r = await fetch(new URL('/foundation/cvm_announce', this.cfg.foundationUrl), { method: 'POST', headers: { 'Content-Type': 'application/json', ...auth }, body: JSON.stringify(a), signal: AbortSignal.timeout(10_000) });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      if (delayMs === 0) this.log(`announced to Foundation at ${this.cfg.foundationUrl}`);
    } catch (e) {
      next = Math.min(Math.max(delayMs * 2, 500), 30_000);
      if (delayMs === 0) this.log(`cannot reach Foundation yet (${errorMessage(e)}); retrying`);
    }
    if (this.announceTimer) clearTimeout(this.announceTimer);
    this.announceTimer = setTimeout(() => void this.announce(next), next);
  }

  /** A previous CVM process killed without a chance to stop its etcd leaves it running: stop it. */
  private reapStaleEtcd(): void {
    const pidFile = join(this.cfg.stateDir, 'etcd.pid');
    if (!existsSync(pidFile)) return;
    const pid = Number(readFileSync(pidFile, 'utf8'));
    try {
      if (pid > 1 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(join(this.cfg.stateDir, 'etcd'))) {
        process.kill(pid, 'SIGKILL');
        this.log(`stopped a stale etcd (pid ${pid}) left by an earlier CVM process`);
      }
    } catch {
      // not running
    }
    rmSync(pidFile, { force: true });
  }

  private startEtcd(store: NonNullable<PrepareRequest['store']>): void {
    this.reapStaleEtcd();
    const dataDir = join(this.cfg.stateDir, 'etcd');
    const ip = this.cfg.cvmIp;
    const pki = join(this.cfg.stateDir, MEMBER_PKI_DIR);
    const ca = join(pki, 'ca.crt');
    const cert = join(pki, 'cvm.crt');
    const key = join(pki, 'cvm.key');
    // TLS both ways, clients and peers alike: only the cluster's members get in (ADR 013)
    const args = [
      '--name', store.name, '--data-dir', dataDir,
      '--listen-client-urls', `https://${ip}:${ETCD_CLIENT_PORT}`, '--advertise-client-urls', `https://${ip}:${ETCD_CLIENT_PORT}`,
      '--listen-peer-urls', `https://${ip}:${ETCD_PEER_PORT}`, '--initial-advertise-peer-urls', `https://${ip}:${ETCD_PEER_PORT}`,
      '--initial-cluster', store.initialCluster, '--initial-cluster-token', store.token, '--initial-cluster-state', 'new',
      '--cert-file', cert, '--key-file', key, '--trusted-ca-file', ca, '--client-cert-auth',
      '--peer-cert-file', cert, '--peer-key-file', key, '--peer-trusted-ca-file', ca, '--peer-client-cert-auth',
      '--heartbeat-interval', '100', '--election-timeout', '1000', '--log-level', 'warn',
    ];
    this.etcd = new Supervised('etcd', this.etcdBin, args, this.log, { pidFile: join(this.cfg.stateDir, 'etcd.pid') });
    this.etcd.start();
    this.log(`etcd member ${store.name} starting at ${ip}:${ETCD_CLIENT_PORT}`);
  }

  // ---- stargate: vdisks over NBD on the fabric -----------------------------------------------

  /**
   * Every pool disk's used bytes, health and bytes per vdisk: this CVM's live, the others' from their
   * status (a CVM that does not answer: its disks count as failed, their bytes per vdisk unknown).
   */
  private async liveDisks(pool: Pool): Promise<Map<string, LiveDisk>> {
    const of = (d: CvmStatus['disks'][number]): LiveDisk => ({ usedBytes: d.usedBytes, ok: d.ok, ...(d.vdiskBytes ? { vdiskBytes: d.vdiskBytes } : {}) });
    const live = new Map<string, LiveDisk>(this.status().disks.map((x) => [x.serial, of(x)]));
    const members = this.state?.cluster.members ?? [];
    await Promise.all(members.filter((m) => m.cvmIp !== this.cfg.cvmIp).map(async (m) => {
      try {
        const s = await cvmCall<CvmStatus>(m.cvmIp, '/status', { timeoutMs: 2000 });
        for (const d of s.disks) live.set(d.serial, of(d));
      } catch {
        for (const d of pool.disks) if (d.cvmIp === m.cvmIp) live.set(d.serial, { usedBytes: live.get(d.serial)?.usedBytes ?? 0, ok: false });
      }
    }));
    return live;
  }

  private async poolRecord(): Promise<Pool> {
    const raw = await this.etcdClient?.get('/converge/pool').string();
    return raw ? (JSON.parse(raw) as Pool) : poolOf([]);
  }

  /** Free space of every disk of the pool, for placement (5 s cache; placements are charged to it). */
  private async space(): Promise<DiskSpace[]> {
    const now = Date.now();
    if (this.spaceCache && now - this.spaceCache.at < 5000) return this.spaceCache.disks;
    const pool = await this.poolRecord();
    const live = await this.liveDisks(pool);
    for (const d of pool.disks) this.poolCapacity.set(d.serial, d.capacityBytes);
    const committed = await this.committed();
    // free for placement: what the disk holds, or what its extent groups may come to hold (place.ts egroupReserve), whichever is more
    const disks = pool.disks.map((d) => ({ serial: d.serial, node: d.node, cvmIp: d.cvmIp, freeBytes: d.capacityBytes - Math.max(live.get(d.serial)?.usedBytes ?? 0, committed.get(d.serial) ?? 0), ok: live.get(d.serial)?.ok ?? true, mediaType: d.mediaType, capacityBytes: d.capacityBytes }));
    this.spaceCache = { at: now, disks };
    // a disk failed or came back: the repair loop tries what it had given up on
    const health = disks.map((d) => `${d.serial}:${d.ok ? 1 : 0}`).join(',');
    if (this.diskHealth !== undefined && health !== this.diskHealth) this.repairer?.poolChanged();
    this.diskHealth = health;
    return disks;
  }

  /**
   * Per disk, what the recorded extent groups may come to hold, from every record (5 s cache, as
   * the disks' usage; the owners also charge their own placements to their view meanwhile). A
   * listing of every record is 8,192 keys per TiB written: fine for a lab, a per-disk counter at scale.
   */
  private async committed(): Promise<Map<string, number>> {
    const now = Date.now();
    if (this.committedCache && now - this.committedCache.at < 5000) return this.committedCache.bytes;
    const meta = this.meta();
    const [records, vdisks] = await Promise.all([meta.egroupRecords(), meta.vdisks()]);
    const sizes = new Map(vdisks.map((v) => [v.uuid, v.sizeBytes]));
    const bytes = committedBytes(records, (uuid) => sizes.get(uuid));
    this.committedCache = { at: now, bytes };
    return bytes;
  }

  /** The pool with its capacity accounting per disk, node and container. */
  private async poolView(): Promise<PoolView> {
    const meta = this.meta();
    const summary = await meta.pool();
    const [live, containers, vdisks] = await Promise.all([this.liveDisks(summary.pool), meta.containers(), meta.vdisks()]);
    return { ...summary, usage: usageOf(summary.pool, live, containers, vdisks) };
  }

  /** Every member as seen from here: up only when it answers as a member of this cluster, with its disks' health. */
  private async memberHealth(): Promise<MemberHealth[]> {
    const c = this.state?.cluster;
    if (!c) return [];
    return Promise.all(c.members.map(async (m) => {
      try {
        const s = m.cvmIp === this.cfg.cvmIp ? this.status() : await cvmCall<CvmStatus>(m.cvmIp, '/status', { timeoutMs: 2000 });
        return memberHealthOf(c.clusterId, m, s);
      } catch (e) {
        return memberHealthOf(c.clusterId, m, null, errorMessage(e));
      }
    }));
  }

  /** Data resiliency measured from the v2 extent-group records (in-sync and stale replicas) and the members' health (core/resiliency.ts). */
  private async resiliency(): Promise<ResiliencyReport> {
    const meta = this.meta();
    const rf = this.state?.cluster.redundancyFactor ?? 1;
    const [records, vdisks, containers, members] = await Promise.all([meta.egroupRecords(), meta.vdisks(), meta.containers(), this.memberHealth()]);
    return resiliencyOf(records, vdisks, containers, members, rf);
  }

  /** Stargate could not start: its status says why (down), and the CVM's API still answers. */
  private stargateFailed(e: unknown): void {
    this.stargateError = errorMessage(e);
    this.log(`stargate: ${this.stargateError}`);
  }

  private async startStargate(): Promise<void> {
    if (this.nbd) return;
    const meta = this.meta();
    const etcd = this.etcdClient;
    const cluster = this.state?.cluster;
    const m = this.member;
    if (!etcd || !cluster || !m) return;
    // the cluster's one failure detector (ADR 015): before serving, so writes know who is down
    const ttl = Number(process.env['CONVERGE_LIVENESS_TTL_S'] ?? LIVENESS_TTL_S);
    const ttlS = Number.isInteger(ttl) && ttl > 0 ? ttl : LIVENESS_TTL_S;
    const liveness = new Liveness({
      store: etcdLivenessStore(etcd), clock: new SystemClock(), self: { node: this.cfg.serial, cvmIp: this.cfg.cvmIp }, members: () => cluster.members.map((x) => x.serial), log: this.log, ttlS,
    });
    await liveness.start();
    this.liveness = liveness;
    // writes this CVM acknowledged before a crash may be in the page cache only: durable before serving again
    await this.replicas.syncAll();
    // repair copies share one budget per CVM, so client I/O keeps its share (ADR 015); with no client
    // I/O through this CVM in the last second, copies go at disk speed
    const clock = new SystemClock();
    const budget = new CopyBudget({
      clock, mibPerSec: envNumber('CONVERGE_REPAIR_MIBPS', 8), dutyCycle: Math.min(envNumber('CONVERGE_REPAIR_DUTY', 0.5), 1), busy: () => this.owners?.clientIoWithin(1000) ?? true,
    });
    // the vdisks' owners (storage engine v2): one lease for this CVM, forwarding to owners elsewhere
    const client = new ReplicationClient(() => this.memberTls());
    const owners = new OwnerRegistry({
      self: { node: this.cfg.serial, cvmIp: this.cfg.cvmIp }, etcd, clock: new SystemClock(), io: new EngineReplicaIo({ node: this.cfg.serial }, this.replicas, client), client, liveness,
      space: async () => {
        const disks = (await this.space()).map((d) => ({ serial: d.serial, node: d.node, cvmIp: d.cvmIp, freeBytes: d.freeBytes, ok: d.ok, media: d.mediaType?.toUpperCase() === 'SSD' ? 'ssd' as const : 'hdd' as const }));
        return { disks, asOf: this.committedCache?.at ?? 0 };
      },
      vdisk: async (uuid) => {
        const vd = (await meta.vdisks()).find((v) => v.uuid === uuid);
        if (!vd) return undefined;
        const c = (await meta.containers()).find((x) => x.name === vd.container);
        return { vdisk: vd, rf: c?.replicationFactor ?? cluster.redundancyFactor };
      },
      // a replica slower than 5 s goes stale (a node that is down fails at once, once declared: 3-6 s)
      log: this.log, leaseTtlS: ttlS, copyThrottle: (bytes) => budget.throttle(bytes), copyWindow: budget.window, callTimeoutMs: 5000, storeTimeoutMs: 1500,
    });
    await owners.start();
    this.owners = owners;
    this.replication.forward = owners;
    const exportsFor = (local: boolean): ExportProvider => ({
      list: async () => (await meta.vdisks()).map((v) => v.name),
      open: async (name: string) => {
        const vd = (await meta.vdisks()).find((v) => v.name === name);
        return vd ? withIoStats(owners.open(vd, { local }), vd.uuid, this.ioStats) : undefined;
      },
      description: (name: string) => `Converge vdisk ${name}`,
    });
    // on the network: NBD over TLS, a client certificate of the operator, a member's host or CVM (ADR 013)
    const server = new NbdServer(exportsFor(false), this.log, {
      tls: { cert: m.cvm.cert, key: m.cvm.key, ca: anchorList(this.anchors()), require: true },
      authorize: (p) => NBD_ROLES.includes(peerOfCert(p.certificate.toString(), this.anchors())?.role ?? 'node'),
    });
    await server.listen(NBD_PORT, this.cfg.cvmIp);
    // on the host link (a Unix socket only this node reaches): its hypervisor's redirector, in plain NBD
    if (this.cfg.link) {
      const link = new NbdServer(exportsFor(true), this.log);
      await link.listenPath(this.cfg.link.nbd);
      this.nbdLink = link;
    }
    // a sample of the I/O rates every step, at the step's boundaries
    const sample = (): void => {
      this.ioStats.sample();
      this.statsTimer = setTimeout(sample, STATS_STEP_MS - (Date.now() % STATS_STEP_MS) + 5);
    };
    clearTimeout(this.statsTimer);
    this.statsTimer = setTimeout(sample, STATS_STEP_MS - (Date.now() % STATS_STEP_MS) + 5);
    this.nbd = server;
    // re-protection, rebalancing, scrub and the orphan sweep (the owners this CVM holds; the leader takes the unowned)
    this.repairer = new EngineRepairer({
      clock, node: this.cfg.serial, owners, liveness, budget, log: this.log,
      members: () => cluster.members.map((x) => x.serial),
      list: (prefix) => rangeStrings(etcd, prefix),
      pool: async () => (await this.space()).filter((d) => d.ok).map((d) => balanceDiskOf({ ...d, mediaType: d.mediaType ?? 'hdd', capacityBytes: d.capacityBytes ?? this.poolCapacity.get(d.serial) ?? 0 })),
      vdisks: async () => {
        const [v, c] = await Promise.all([meta.vdisks(), meta.containers()]);
        const rf = new Map(c.map((x) => [x.name, x.replicationFactor]));
        return v.map((x) => ({ uuid: x.uuid, rf: rf.get(x.container) ?? cluster.redundancyFactor }));
      },
      local: this.local.store,
    });
    this.repairer.start();
    this.stargateError = undefined;
    this.log(`stargate: serving vdisks over NBD at ${this.cfg.cvmIp}:${NBD_PORT} (storage engine v2); repair loop on`);
  }

  /** The VM service: every member runs one; the one elected in the store leads (acropolis.ts). */
  private startVmService(): void {
    const m = this.member;
    if (this.vmService || !this.state?.committed || !m) return;
    const storage = this.meta();
    const etcd = this.etcdClient;
    if (!etcd) return;
    // to its peers' APIs (their server certificates: the deployment's) and hosts as a member (role cvm)
    const identity: Identity = { cert: m.cvm.cert, key: m.cvm.key, ca: [...this.nodeId.ca, m.ca] };
    this.vmService = new VmService({
      etcd, storage, self: { cvmIp: this.cfg.cvmIp, serial: this.cfg.serial }, members: () => this.state?.cluster.members ?? [],
      hosts: hostApiOf(identity), nbdSocket: this.cfg.link?.nbd, tmpDir: join(this.cfg.stateDir, 'vm-service'), identity, log: this.log,
    });
    this.vmService.start();
  }

  private async stopVmService(): Promise<void> {
    const s = this.vmService;
    this.vmService = undefined;
    await s?.stop();
  }

  private vms(): VmService {
    if (!this.vmService) throw new ConflictError(`the VM service does not run on this CVM (${this.cfg.cvmIp}): ${this.state?.committed ? 'its storage service has not started' : 'it belongs to no cluster'}`);
    return this.vmService;
  }

  /**
   * A service of this CVM that runs as its own process (a crash of it takes nothing else down): its
   * `<name>.mjs` beside this CVM's (or `entryEnv`), its configuration in `configEnv`. Not started
   * when this CVM's software lacks it (running from source).
   */
  private supervise(name: string, entryEnv: string, configEnv: string, config: unknown): Supervised | undefined {
    const entry = process.env[entryEnv] ?? join(dirname(process.argv[1] ?? '.'), `${name}.mjs`);
    if (!existsSync(entry)) {
      this.log(`${name}: not started: ${entry} is missing from this CVM's software`);
      return undefined;
    }
    const child = new Supervised(name, process.execPath, [entry], this.log, { env: { ...process.env, [configEnv]: JSON.stringify(config) }, echo: true });
    child.start();
    return child;
  }

  /** Prism (prism/main.ts). */
  private startPrism(): void {
    const c = this.state?.cluster;
    if (this.prism || !c) return;
    const pc: PrismConfig = {
      cvmIp: this.cfg.cvmIp, vip: c.vip, clusterId: c.clusterId, store: c.store, stateDir: join(this.cfg.stateDir, 'prism'),
      pki: { member: join(this.cfg.stateDir, MEMBER_IDENTITIES_FILE), node: this.cfg.identity },
    };
    const ttl = Number(process.env['CONVERGE_PRISM_LEASE_S']);
    if (Number.isInteger(ttl) && ttl > 0) pc.leaseTtlS = ttl;
    this.prism = this.supervise('prism', 'CONVERGE_PRISM_ENTRY', 'CONVERGE_PRISM_CONFIG', pc);
  }

  /** LCM (lcm/main.ts; ADR 018). */
  private startLcm(): void {
    const c = this.state?.cluster;
    if (this.lcm || !c) return;
    const lc: LcmConfig = {
      cvmIp: this.cfg.cvmIp, serial: this.cfg.serial, clusterId: c.clusterId, clusterName: c.name, store: c.store, members: c.members.map((m) => ({ serial: m.serial, cvmIp: m.cvmIp, hostIp: m.hostIp })),
      stateDir: join(this.cfg.stateDir, 'lcm'), pki: { member: join(this.cfg.stateDir, MEMBER_IDENTITIES_FILE), node: this.cfg.identity },
    };
    this.lcm = this.supervise('lcm', 'CONVERGE_LCM_ENTRY', 'CONVERGE_LCM_CONFIG', lc);
  }

  private async stopStargate(): Promise<void> {
    this.stargateError = undefined;
    clearTimeout(this.statsTimer);
    const n = this.nbd;
    this.nbd = undefined;
    await n?.close();
    await this.nbdLink?.close();
    await this.repairer?.stop();
    this.repairer = undefined;
    this.replication.forward = undefined;
    await this.owners?.close();
    this.owners = undefined;
    await this.liveness?.stop();
    this.liveness = undefined;
    this.nbdLink = undefined;
  }

  /** The configuration store's health as each member sees it (quorum = a majority with one leader). */
  private async storeHealth(): Promise<StoreHealth> {
    const st = this.state;
    const m = this.member;
    if (!st?.committed || !m) throw new ConflictError(`this CVM (${this.cfg.cvmIp}) belongs to no cluster`);
    const members = await Promise.all(st.cluster.store.map(async (ip) => {
      const c = storeClient([ip], this.storeTls(m), 2000);
      try {
        const s = await within(c.maintenance.status(), 3000, `store member ${ip}`);
        return { cvmIp: ip, healthy: true, leader: s.leader !== '0', detail: `raft term ${s.raftTerm}, index ${s.raftIndex}` };
      } catch (e) {
        return { cvmIp: ip, healthy: false, leader: false, detail: errorMessage(e) };
      } finally {
        c.close();
      }
    }));
    const healthy = members.filter((m) => m.healthy && m.leader).length;
    return { members, healthy, quorum: healthy > st.cluster.store.length / 2 };
  }

  // ---- cluster formation -------------------------------------------------------------------

  private async create(body: unknown): Promise<CreatedCluster> {
    const req = parseCreateRequest(body);
    if (!req.cvmIps.includes(this.cfg.cvmIp)) throw new InputError('cvmIps', `must include this CVM (${this.cfg.cvmIp}); send the request to a member`);
    if (this.state) throw new ConflictError(`this CVM (${this.cfg.cvmIp}) is already part of a cluster (${this.state.cluster.name}); destroy it first`);
    const statuses = await Promise.all(req.cvmIps.map(async (ip) => {
      try {
        return await cvmCall<CvmStatus>(ip, '/status', { timeoutMs: 5000 });
      } catch (e) {
        throw new UnavailableError(`CVM ${ip} does not answer (${errorMessage(e)})`);
      }
    }));
    const taken = statuses.find((s) => s.configured || s.clusterId !== null);
    if (taken) throw new ConflictError(`CVM ${taken.cvmIp} (${taken.serial}) is already part of a cluster (${taken.cluster?.name ?? taken.clusterId ?? ''})`);
    const versions = new Set(statuses.map((s) => s.nosVersion));
    if (versions.size > 1) throw new ConflictError(`the CVMs run different storage OS versions (${[...versions].join(', ')}); upgrade them to one first`);
    const clusterId = randomUUID();
    const password = req.adminPassword ?? generatePassword();
    const storeIps = storeMembers(req.cvmIps, req.redundancyFactor);
    const members = statuses.map((s) => ({ serial: s.serial, cvmIp: s.cvmIp, hostIp: s.hostIp }));
    const info: ClusterInfo = { clusterId, name: req.name, redundancyFactor: req.redundancyFactor, vip: req.vip, members, store: storeIps, createdAt: new Date().toISOString() };
    const ic = initialCluster(storeIps.map((ip) => ({ name: statuses.find((s) => s.cvmIp === ip)?.serial ?? ip, ip })), ETCD_PEER_PORT);
    this.log(`creating cluster ${req.name} (${clusterId}): ${members.length} nodes, RF${req.redundancyFactor}, store on ${storeIps.join(', ')}`);
    // the cluster's certificate authority: a certificate for every member's CVM and host (ADR 013)
    const ca = await createCa(`Converge cluster ${req.name} (${clusterId})`);
    const ids = new Map(await Promise.all(members.map(async (m) => [m.cvmIp, await memberIdentities(ca, m)] as const)));
    try {
      // a member's refusal is a conflict naming the member (its own field names mean nothing to the caller)
      await Promise.all(statuses.map((s) => cvmCall(s.cvmIp, '/cluster/prepare', {
        body: { cluster: info, store: storeIps.includes(s.cvmIp) ? { name: s.serial, initialCluster: ic, token: clusterId } : null, identities: ids.get(s.cvmIp) },
      }).catch((e: unknown) => {
        throw e instanceof InputError || e instanceof ConflictError ? new ConflictError(`CVM ${s.cvmIp} refused to join: ${errorMessage(e)}`) : e;
      })));
      const mine = ids.get(this.cfg.cvmIp);
      if (!mine) throw new ConflictError(`this CVM (${this.cfg.cvmIp}) is not among the members`);
      const client = storeClient(storeIps, this.storeTls(mine), 2000);
      try {
        const deadline = Date.now() + 30_000;
        for (;;) {
          try {
            await client.put(CLUSTER_KEY).value(JSON.stringify({ ...info, dns: req.dns, ntp: req.ntp }));
            break;
          } catch (e) {
            if (Date.now() > deadline) throw new UnavailableError(`the configuration store did not reach quorum in 30 s (${errorMessage(e)})`);
            await new Promise((r) => setTimeout(r, 250));
          }
        }
        // one storage pool of every data disk, and the default container at the cluster's RF
        const disks: PoolDisk[] = statuses.flatMap((s) => s.disks.filter((d) => d.ok).map((d) => ({ serial: d.serial, node: s.serial, cvmIp: s.cvmIp, mediaType: d.mediaType, capacityBytes: d.capacityBytes })));
        await new StorageMeta(client, () => req.redundancyFactor).initPool(poolOf(disks), { name: DEFAULT_CONTAINER, replicationFactor: req.redundancyFactor, createdAt: info.createdAt });
        // the cluster's CA (Prism issues its certificates from it; readable by members only) and the admin account (a hash only)
        await client.put(PRISM_CA_KEY).value(JSON.stringify(ca satisfies Pem));
        const admin: PrismUser = { name: ADMIN_USER, passwordHash: hashPassword(password), initial: true, updatedAt: info.createdAt };
        await client.put(PRISM_USERS_PREFIX + ADMIN_USER).value(JSON.stringify(admin));
        // each member's BMC, for fencing (docs/ha.md): a secret, in the store only (members read it; no API answers it)
        for (const b of req.bmcs) {
          const serial = statuses.find((s) => s.cvmIp === b.cvmIp)?.serial ?? b.cvmIp;
          await client.put(BMCS_PREFIX + serial).value(JSON.stringify({ serial, cvmIp: b.cvmIp, address: b.address, user: b.user, password: b.password, ca: b.ca } satisfies StoredBmc));
        }
      } finally {
        client.close();
      }
      await Promise.all(statuses.map((s) => cvmCall(s.cvmIp, '/cluster/commit', { body: { clusterId } })));
    } catch (e) {
      this.log(`cluster creation failed: ${errorMessage(e)}; returning the members to unconfigured`);
      await Promise.all(statuses.map((s) => cvmCall(s.cvmIp, '/cluster/destroy', { body: { clusterId } }).catch(() => undefined)));
      throw e;
    }
    this.log(`cluster ${req.name} created`);
    return req.adminPassword === null ? { ...info, initialAdminPassword: password } : info;
  }

  private async prepare(body: unknown): Promise<void> {
    const p: PrepareRequest = parseWith(prepareSchema, body);
    if (this.state && this.state.cluster.clusterId !== p.cluster.clusterId) throw new ConflictError(`this CVM is already part of a cluster (${this.state.cluster.name})`);
    if (this.state) return; // a repeated prepare of the same cluster
    if (!p.cluster.members.some((m) => m.cvmIp === this.cfg.cvmIp)) throw new InputError('cluster.members', `must include this CVM (${this.cfg.cvmIp})`);
    await this.adoptMember(p.identities);
    this.save({ cluster: p.cluster, store: p.store, committed: false });
    if (p.store) {
      rmSync(join(this.cfg.stateDir, 'etcd'), { recursive: true, force: true });
      this.startEtcd(p.store);
    }
  }

  private commit(id: string | undefined): void {
    if (!this.state || this.state.cluster.clusterId !== id) throw new ConflictError(`no prepared cluster ${String(id)} on this CVM`);
    this.save({ ...this.state, committed: true });
    this.log(`joined cluster ${this.state.cluster.name} (${this.state.cluster.clusterId})`);
    void this.startStargate().then(() => this.startVmService(), (e: unknown) => this.stargateFailed(e));
    this.startPrism();
    this.startLcm();
    void this.announce(1);
  }

  /**
   * Leaves the cluster: stops its services, forgets its store data and certificates. `clusterId`,
   * when given, must be this CVM's cluster; a node (not the operator) may only undo a creation
   * that was never committed.
   */
  private async destroy(clusterId: string | undefined, by: Role): Promise<void> {
    const st = this.state;
    if (clusterId !== undefined && st && st.cluster.clusterId !== clusterId) throw new ConflictError(`this CVM belongs to cluster ${st.cluster.name} (${st.cluster.clusterId}), not ${clusterId}`);
    if (by !== 'operator' && (st?.committed || clusterId === undefined)) throw new ForbiddenError('only the operator destroys a cluster; a node may only undo a creation it took part in');
    const was = st?.cluster.name;
    await this.prism?.stop();
    this.prism = undefined;
    await this.lcm?.stop();
    this.lcm = undefined;
    await this.stopVmService();
    await this.stopStargate();
    this.etcdClient?.close();
    this.etcdClient = undefined;
    await this.etcd?.stop();
    this.etcd = undefined;
    rmSync(join(this.cfg.stateDir, 'etcd'), { recursive: true, force: true });
    rmSync(join(this.cfg.stateDir, 'prism'), { recursive: true, force: true });
    rmSync(join(this.cfg.stateDir, 'lcm'), { recursive: true, force: true });
    await this.adoptMember(undefined);
    this.save(null);
    if (was) this.log(`left cluster ${was}: unconfigured, its certificates removed`);
    void this.announce(1);
  }

  // ---- HTTP ------------------------------------------------------------------------------

  /** The API's routes (the same on the network, over mutual TLS, and on the host link). */
  private routes(app: FastifyInstance): void {
    const vdiskName = (params: unknown): string => parseWith(nameParam, params).name;
    const roles = (r: readonly Role[]): { config: { roles: readonly Role[] } } => ({ config: { roles: r } });
    app.get('/status', roles(ANY), () => this.status());
    app.get('/storage/pool', roles(ANY), () => this.poolView());
    app.get('/storage/resiliency', roles(ANY), () => this.resiliency());
    app.get('/stats/vdisks', roles(ANY), (req) => {
      const q = parseWith(statsQuery, req.query);
      return this.ioStats.query(q.since ?? Date.now() - 3_600_000, q.vdisk === undefined ? undefined : [q.vdisk].flat());
    });
    app.get('/storage/containers', roles(ANY), () => this.meta().containers());
    app.post('/storage/containers', roles(STORAGE_WRITE), async (req, reply) => reply.status(201).send(await this.meta().createContainer(objectOf(req.body))));
    app.delete('/storage/containers/:name', roles(STORAGE_WRITE), async (req) => {
      const name = vdiskName(req.params);
      await this.meta().deleteContainer(name);
      return { deleted: name };
    });
    app.get('/storage/vdisks', roles(ANY), () => this.meta().vdisks());
    app.post('/storage/vdisks', roles(STORAGE_WRITE), async (req, reply) => reply.status(201).send(await this.meta().createVdisk(objectOf(req.body))));
    app.delete('/storage/vdisks/:name', roles(STORAGE_WRITE), async (req) => {
      const name = vdiskName(req.params);
      await this.meta().deleteVdisk(name);
      return { deleted: name };
    });
    app.get('/storage/vdisks/:name/replicas', roles(ANY), (req) => this.meta().replicaMap(vdiskName(req.params)));
    app.get('/cluster/ca', roles(ANY), async () => {
      this.meta(); // refuses when this CVM is in no cluster
      const raw = await this.etcdClient?.get(PRISM_CA_KEY).string();
      if (!raw) throw new NotFoundError('cluster certificate authority', this.state?.cluster.name ?? '');
      return { cert: (JSON.parse(raw) as Pem).cert };
    });
    app.get('/cluster/health', roles(ANY), () => this.storeHealth());
    app.post('/cluster/create', roles(OPERATOR), (req) => this.create(req.body));
    app.post('/cluster/prepare', roles(FORMING), async (req) => {
      await this.prepare(req.body);
      return { ok: true };
    });
    app.post('/cluster/commit', roles(FORMING), (req) => {
      this.commit(parseWith(clusterIdSchema, req.body)?.clusterId);
      return { ok: true };
    });
    app.post('/cluster/destroy', roles(FORMING), async (req) => {
      await this.destroy(parseWith(clusterIdSchema, req.body)?.clusterId, req.peer?.role ?? 'node');
      return { ok: true };
    });
    registerVmServiceRoutes(app, () => this.vms());
    app.post('/egroup/sync-many', { config: { roles: PEERS }, bodyLimit: 8 << 20 }, async (req, reply) => {
      await this.local.syncMany(parseEgroupList(req.body ?? null));
      return reply.status(204).send();
    });
  }
}

function objectOf(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new InputError('body', 'must be a JSON object');
  return body as Record<string, unknown>;
}

/** A pool disk's free space for placement, as this CVM sees it. */
interface DiskSpace {
  serial: string;
  node: string;
  cvmIp: string;
  freeBytes: number;
  ok: boolean;
  /** 'SSD' or 'HDD' (the pool's record of the disk). */
  mediaType?: string;
  capacityBytes?: number;
}

/** A positive number from the environment, or the default. */
function envNumber(name: string, dflt: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : dflt;
}
