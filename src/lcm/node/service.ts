/**
 * @module
 * LCM in a CVM (ADR 018): every member runs one, like the VM service. Any of them answers the API
 * (inventory, the bundle repository, plan, pre-checks, starting, pausing, resuming and aborting an
 * upgrade: all read from and written to etcd); the one elected (LCM_ELECTION) drives a running
 * upgrade. The driver looks at the cluster every couple of seconds, moves the record on with
 * core/upgrade.ts's `advance`, writes it back (compare-and-swap: two drivers never both write), then
 * carries out what it asked for: the host into maintenance through the VM service, the CVM stopped
 * by its host, the bundle streamed to the host's boot disk, the switch and restart, the host out of
 * maintenance. A driver that dies is replaced by another CVM's, which finds the record and asks again.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { parseWith } from '../../shared/schema.ts';
import type { Etcd3 } from 'etcd3';
import { cvmCall } from '../../cvm/protocol/client.ts';
import type { PoolView, ResiliencyReport } from '../../cvm/protocol/cluster.ts';
import type { Task, Vm } from '../../cvm/protocol/vms.ts';
import type { BmcAccess } from '../../cvm/protocol/bmcs.ts';
import { lcmCall } from '../protocol/client.ts';
import { hostCall } from '../../hypervisor/protocol/client.ts';
import { ConflictError, InputError, NotFoundError, UnavailableError, errorMessage } from '../../shared/errors.ts';
import type { Identity } from '../../shared/identity.ts';
import { Leadership } from '../../shared/leadership.ts';
import { cvmStatusOf, inventoryOf, observationOf, precheckInputOf, type ClusterSnapshot, type MemberRef } from '../core/inventory.ts';
import { planUpgrade } from '../core/plan.ts';
import { prechecks } from '../core/prechecks.ts';
import { advance, noteEvent, pauseUpgrade, resumeUpgrade, startUpgrade, STEP_LIMITS, type Action, type UpgradeTarget } from '../core/upgrade.ts';
import { LCM_ELECTION, LCM_UPGRADE_KEY, type StepKind, type NodeInventory, type PrecheckResult, type Refusal, type StoredBundle, type UpgradePlan, type UpgradeRecord } from '../protocol/lcm.ts';
import { BundleRepository } from './repository.ts';
import { FirmwareFlasher } from './firmware.ts';
import { openBundle } from '../../shared/bundle/archive.ts';
import type { Pem } from '../../shared/tls.ts';
import { RedfishClient } from '../../rack/protocol/redfish-client.ts';
import { bmcBaseUrl } from '../../cvm/protocol/bmcs.ts';
import { lookAt, type LookNeeds } from './observe.ts';
import { tasksOfUpgrade } from '../core/tasks.ts';
import { nameUuid } from '../../shared/name-uuid.ts';

export interface LcmDeps {
  etcd: Etcd3;
  /** The cluster (the entity of the upgrade's tasks). */
  cluster: { uuid: string; name: string };
  self: { cvmIp: string; serial: string };
  members: () => readonly MemberRef[];
  /** This CVM's member certificate (peers' and hosts' APIs). */
  identity: Identity;
  /** Where this CVM keeps its copies of bundles. */
  bundleDir: string;
  bmc: (serial: string) => Promise<BmcAccess | undefined>;
  /** The cluster's CA: it signs the certificate firmware images are served with (node/firmware.ts). */
  imageCa: () => Promise<Pem>;
  log: (m: string) => void;
  /** How often the driver looks (default 2 s). */
  lookMs?: number;
  leaseTtlS?: number;
  now?: () => number;
}

const TERMINAL = new Set(['succeeded', 'aborted']);
/** Set on a bundle a member copies to its peers: they keep it without copying it on. */
export const REPLICA_HEADER = 'x-converge-replica';

const STEP_KINDS = Object.keys(STEP_LIMITS) as [StepKind, ...StepKind[]];
/** POST /lcm/upgrade's body: the target, and time limits for steps other than the defaults (seconds). */
const upgradeSchema = z.object({
  to: z.string().min(1).max(64),
  stepTimeoutsS: z.partialRecord(z.enum(STEP_KINDS), z.number().int().min(10).max(7 * 86_400)).optional(),
}).strict();

export class LcmService {
  readonly repository: BundleRepository;
  private readonly firmware: FirmwareFlasher;
  private readonly leadership: Leadership;
  /** This driver's name in the record: a CVM started again is another driver (it asks again). */
  private readonly driver: string;
  private timer: NodeJS.Timeout | undefined;
  private readonly stopping = new AbortController();
  private looking: Promise<void> | undefined;
  /** An action that failed: asked again after a pause (every action is safe to repeat). */
  private failed: { key: string; at: number } | undefined;
  private lastWrite = 0;
  /** Maintenance tasks whose failure was already said. */
  private readonly seenTasks = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly d: LcmDeps) {
    this.now = d.now ?? Date.now;
    this.driver = `${d.self.cvmIp}/${randomUUID().slice(0, 8)}`;
    this.repository = new BundleRepository({
      etcd: d.etcd, dir: d.bundleDir, self: d.self.cvmIp, log: d.log,
      fetch: (holder, version) => lcmCall<Buffer>(holder, `/lcm/bundles/${encodeURIComponent(version)}/file`, { identity: d.identity, binary: true, timeoutMs: 300_000 }),
    });
    this.firmware = new FirmwareFlasher({ self: d.self.cvmIp, bmc: d.bmc, ca: d.imageCa, log: d.log });
    this.leadership = new Leadership(d.etcd, { election: LCM_ELECTION, self: d.self.cvmIp, ttlS: d.leaseTtlS ?? 5, what: 'LCM', log: d.log }, {
      elected: () => this.schedule(0),
      lost: () => undefined,
    });
  }

  start(): void {
    this.leadership.start();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    clearTimeout(this.timer);
    this.firmware.close();
    // not waiting for a look in flight: it may be this CVM's own stop that LCM asked its host for
    await this.leadership.stop();
  }

  get isLeader(): boolean {
    return this.leadership.isLeader;
  }

  /**
   * A bundle uploaded: verified and kept here, then copied to every other member (so that any CVM
   * that comes to drive the upgrade, and any node's turn, finds it without the uploader). A copy a
   * member did not take is logged: that member fetches it from a holder when it needs it.
   */
  async addBundle(archive: Buffer, fromPeer: boolean): Promise<StoredBundle> {
    const entry = await this.repository.add(archive);
    if (fromPeer) return entry;
    for (const m of this.d.members()) {
      if (m.cvmIp === this.d.self.cvmIp || entry.holders.includes(m.cvmIp)) continue;
      await lcmCall(m.cvmIp, '/lcm/bundles', { identity: this.d.identity, method: 'PUT', stream: archive, headers: { [REPLICA_HEADER]: '1' }, timeoutMs: 120_000 })
        .catch((e: unknown) => this.d.log(`bundle ${entry.offer.version}: no copy on ${m.cvmIp} for now (${errorMessage(e)})`));
    }
    return this.repository.get(entry.offer.version);
  }

  // ---- reading the cluster ----------------------------------------------------------------

  private look(need: LookNeeds): Promise<ClusterSnapshot> {
    return lookAt({ self: this.d.self.cvmIp, identity: this.d.identity, members: this.d.members, bmc: this.d.bmc }, need);
  }

  private static inventory(s: ClusterSnapshot): NodeInventory[] {
    return inventoryOf(s.members, cvmStatusOf(s), (serial) => s.firmware[serial] ?? { bmc: null, bios: null }, (serial) => s.host[serial] ?? null);
  }

  async inventory(): Promise<NodeInventory[]> {
    return LcmService.inventory(await this.look({ firmware: true }));
  }

  /** The upgrade order: by serial, the node of the CVM that drives last (its CVM stops last). */
  private order(members: readonly MemberRef[]): string[] {
    const driver = members.find((m) => m.cvmIp === (this.leadership.leader ?? this.d.self.cvmIp))?.serial;
    const serials = members.map((m) => m.serial).sort();
    return [...serials.filter((s) => s !== driver), ...(driver ? [driver] : [])];
  }

  async plan(to: string): Promise<{ plan: UpgradePlan; refusals: Refusal[]; bundle: StoredBundle }> {
    const bundle = await this.bundle(to);
    const s = await this.look({ firmware: true });
    return { ...planUpgrade(LcmService.inventory(s), bundle.offer, { order: this.order(s.members), ...(bundle.offer.firmwareImages ? { firmware: bundle.offer.firmwareImages } : {}) }), bundle };
  }

  async precheck(to: string): Promise<PrecheckResult[]> {
    await this.bundle(to); // refuses a version not in the repository
    const problems: string[] = [];
    await this.repository.bytes(to).catch((e: unknown) => problems.push(errorMessage(e)));
    const [s, vms, pool, resiliency, current] = await Promise.all([
      this.look({}),
      cvmCall<Vm[]>(this.d.self.cvmIp, '/vms', { identity: this.d.identity, timeoutMs: 10_000 }).catch(() => [] as Vm[]),
      cvmCall<PoolView>(this.d.self.cvmIp, '/storage/pool', { identity: this.d.identity, timeoutMs: 10_000 }).catch(() => null),
      cvmCall<ResiliencyReport>(this.d.self.cvmIp, '/storage/resiliency', { identity: this.d.identity, timeoutMs: 60_000 }).catch(() => null),
      this.record(),
    ]);
    const live = current && !TERMINAL.has(current.value.state) ? current.value : null;
    return prechecks(precheckInputOf({
      members: s.members, status: cvmStatusOf(s),
      hosts: s.vmHosts, vms, resiliency, pool, bundleProblems: problems,
      token: { holder: live?.token ?? null, upgradeRunning: live !== null },
    }));
  }

  private async bundle(to: string): Promise<StoredBundle> {
    if (!/^\d+\.\d+\.\d+$/.test(to)) throw new InputError('to', 'must be a release version (1.2.3)', undefined, to);
    const b = await this.repository.find(to);
    if (!b) throw new InputError('to', `no bundle ${to} in the cluster's repository (upload it first: converge lcm bundle upload FILE)`);
    return b;
  }

  // ---- the record -------------------------------------------------------------------------

  private async record(): Promise<{ value: UpgradeRecord; rev: string } | null> {
    const r = await this.d.etcd.get(LCM_UPGRADE_KEY).exec();
    const kv = r.kvs[0];
    return kv ? { value: JSON.parse(kv.value.toString()) as UpgradeRecord, rev: kv.mod_revision } : null;
  }

  /** Writes when the record is still at `rev` ('0': absent); false when another writer moved it on. */
  private async write(rev: string, value: UpgradeRecord): Promise<boolean> {
    const r = await this.d.etcd.if(LCM_UPGRADE_KEY, 'Mod', '==', Number(rev)).then(this.d.etcd.put(LCM_UPGRADE_KEY).value(JSON.stringify(value))).commit();
    return r.succeeded;
  }

  /** The current (or last) upgrade as tasks: the upgrade and each step reached (none: no upgrade has run). */
  async tasks(): Promise<Task[]> {
    const r = await this.record();
    return r ? tasksOfUpgrade(r.value, this.d.cluster, (u, serial, step) => nameUuid(u, `${serial}/${step}`)) : [];
  }

  async status(): Promise<UpgradeRecord> {
    const r = await this.record();
    if (!r) throw new NotFoundError('upgrade', 'none has run in this cluster');
    return r.value;
  }

  /** Starts an upgrade after its plan and pre-checks pass; refused (nothing changed) otherwise. */
  async upgrade(body: unknown): Promise<UpgradeRecord> {
    const { to, stepTimeoutsS } = parseWith(upgradeSchema, body ?? {});
    const limits = Object.fromEntries(Object.entries(stepTimeoutsS ?? {}).map(([k, v]) => [k, v * 1000]));
    const current = await this.record();
    if (current && !TERMINAL.has(current.value.state)) {
      throw new ConflictError(`an upgrade to ${current.value.to} is ${current.value.state}: ${current.value.state === 'running' ? 'wait for it, or pause it' : 'resume or abort it'} first`);
    }
    const { plan, refusals, bundle } = await this.plan(to);
    if (refusals.length > 0) throw new InputError('to', `the compatibility matrix refuses an upgrade to ${to}: ${refusals.map((r) => `${r.field}: ${r.reason}`).join('; ')}`);
    if (plan.nodes.length === 0) throw new ConflictError(`every node already runs ${to}`);
    const failed = (await this.precheck(to)).filter((c) => c.status === 'FAIL');
    if (failed.length > 0) throw new ConflictError(`pre-checks failed, nothing was changed: ${failed.map((c) => `${c.id}: ${c.detail}`).join('; ')}`);
    const rec = startUpgrade(randomUUID(), plan, bundle.offer.sha256, this.now(), limits);
    if (!(await this.write(current?.rev ?? '0', rec))) throw new ConflictError('another upgrade was started meanwhile');
    this.d.log(`upgrade to ${to} started: ${plan.nodes.map((n) => n.hostname).join(', ')}`);
    this.schedule(0);
    return rec;
  }

  /** Pause, resume or abort, as another writer may move the record too. */
  private async change(f: (r: UpgradeRecord) => UpgradeRecord): Promise<UpgradeRecord> {
    for (let i = 0; i < 10; i++) {
      const cur = await this.record();
      if (!cur) throw new NotFoundError('upgrade', 'none has run in this cluster');
      const next = f(cur.value);
      if (next === cur.value || (await this.write(cur.rev, next))) {
        this.schedule(0);
        return next;
      }
    }
    throw new ConflictError('the upgrade record kept changing; try again');
  }

  pause(): Promise<UpgradeRecord> {
    return this.change((r) => {
      if (r.state !== 'running') throw new ConflictError(`the upgrade to ${r.to} is ${r.state}, not running`);
      return pauseUpgrade(r, this.now());
    });
  }

  resume(): Promise<UpgradeRecord> {
    return this.change((r) => {
      if (r.state !== 'paused' && r.state !== 'failed') throw new ConflictError(`the upgrade to ${r.to} is ${r.state}: only a paused or failed upgrade resumes`);
      return resumeUpgrade(r, this.now());
    });
  }

  /**
   * Ends a paused or failed upgrade. A node it stopped keeps what it has: if its CVM was held
   * stopped, it is let run again; its host stays in maintenance until the operator takes it out.
   */
  async abort(): Promise<UpgradeRecord> {
    const rec = await this.change((r) => {
      if (r.state !== 'paused' && r.state !== 'failed') throw new ConflictError(`the upgrade to ${r.to} is ${r.state}: pause it first (it stops between nodes), or abort it once it failed`);
      const holder = r.plan.nodes.find((n) => n.serial === r.token)?.hostname;
      return noteEvent({ ...r, state: 'aborted', finishedAt: new Date(this.now()).toISOString(), error: r.error ?? 'aborted by the operator' }, null,
        `aborted${holder ? `; ${holder} stays as it is (its host in maintenance: converge host exit-maintenance)` : ''}`, this.now());
    });
    const m = this.d.members().find((x) => x.serial === rec.token);
    if (m) await hostCall(m.hostIp, '/lcm/cvm', { identity: this.d.identity, body: { state: 'running' } }).catch((e: unknown) => this.d.log(`abort: could not let the CVM of ${m.serial} run: ${errorMessage(e)}`));
    return rec;
  }

  // ---- the driver -------------------------------------------------------------------------

  private schedule(ms: number): void {
    if (this.stopping.signal.aborted) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (this.looking) return this.schedule(200);
      this.looking = this.drive().catch((e: unknown) => this.d.log(`LCM: ${errorMessage(e)}`)).finally(() => {
        this.looking = undefined;
        if (this.leadership.isLeader) this.schedule(this.d.lookMs ?? 2000);
      });
    }, ms);
  }

  /** One look while leading: the record moved on as far as the cluster shows, then its actions carried out. */
  private async drive(): Promise<void> {
    if (!this.leadership.isLeader || this.stopping.signal.aborted) return;
    const cur = await this.record();
    if (!cur || cur.value.state !== 'running') return;
    const rec = cur.value;
    const bundle = await this.repository.get(rec.to);
    const target: UpgradeTarget = { version: bundle.offer.version, hypervisor: bundle.offer.hypervisor, nos: bundle.offer.nos, firmware: bundle.offer.firmwareImages ?? {} };
    const node = rec.nodes.find((n) => n.state === 'running');
    const kind = node ? rec.plan.nodes.find((p) => p.serial === node.serial)?.steps[node.step]?.kind : undefined;
    const flashing = kind === 'firmware-bmc' || kind === 'firmware-bios';
    if (!flashing) this.firmware.close();
    const snap = await this.look({ slots: kind === 'install', resiliency: kind === 'resiliency', firmware: flashing });
    const { record: next, actions } = advance(rec, observationOf(snap, rec.to, this.now()), target, this.driver);
    const moved = actions.length > 0 || next.state !== rec.state || JSON.stringify({ ...next, updatedAt: '' }) !== JSON.stringify({ ...rec, updatedAt: '' });
    if (moved || this.now() - this.lastWrite > 10_000) {
      if (!(await this.write(cur.rev, next))) return;
      this.lastWrite = this.now();
    }
    for (const a of actions) await this.act(a, next);
    if (actions.length === 0 && node && (kind === 'enter-maintenance' || kind === 'exit-maintenance')) await this.maintenanceFailed(node.serial, kind, node.since, next);
    // an action that failed is asked again after 10 s (the step's time limit still runs)
    const f = this.failed;
    if (actions.length === 0 && f && node && kind && f.key === `${node.serial}/${kind}` && this.now() >= f.at) await this.act({ kind, node: node.serial }, next);
  }

  /** A maintenance task (the VM service's) that failed since the step began: said, and asked again like a failed action. */
  private async maintenanceFailed(serial: string, kind: StepKind, since: string, rec: UpgradeRecord): Promise<void> {
    const tasks = await cvmCall<Task[]>(this.d.self.cvmIp, `/tasks?entity=${encodeURIComponent(serial)}`, { identity: this.d.identity, timeoutMs: 5000 }).catch(() => [] as Task[]);
    const t = tasks.filter((x) => x.operation === 'host.maintenance' && x.createdAt >= since).sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0];
    if (!t || (t.state !== 'failed' && t.state !== 'aborted') || this.seenTasks.has(t.uuid)) return;
    this.seenTasks.add(t.uuid);
    await this.noteFailure({ kind, node: serial }, `its maintenance task failed: ${t.error?.message ?? t.message}`, rec);
  }

  private async noteFailure(a: Action, why: string, rec: UpgradeRecord): Promise<void> {
    const msg = `${a.kind} on ${a.node}: ${why} (asked again in 10 s)`;
    this.d.log(`LCM: ${msg}`);
    this.failed = { key: `${a.node}/${a.kind}`, at: this.now() + 10_000 };
    const cur = await this.record();
    if (cur && cur.value.id === rec.id && cur.value.events.at(-1)?.message !== msg) await this.write(cur.rev, noteEvent(cur.value, a.node, msg, this.now()));
  }

  private async act(a: Action, rec: UpgradeRecord): Promise<void> {
    const key = `${a.node}/${a.kind}`;
    try {
      await this.carryOut(a, rec);
      if (this.failed?.key === key) this.failed = undefined;
    } catch (e) {
      if (this.stopping.signal.aborted) return;
      await this.noteFailure(a, errorMessage(e), rec);
    }
  }

  private async carryOut(a: Action, rec: UpgradeRecord): Promise<void> {
    const m = this.d.members().find((x) => x.serial === a.node);
    if (!m) throw new NotFoundError('member', a.node);
    const o = { identity: this.d.identity, signal: this.stopping.signal };
    const maintenance = (enter: boolean): Promise<unknown> => cvmCall(this.d.self.cvmIp, `/hosts/${encodeURIComponent(a.node)}/maintenance`, { ...o, body: { enter } });
    switch (a.kind) {
      case 'enter-maintenance':
        await maintenance(true);
        return;
      case 'exit-maintenance':
        await maintenance(false);
        return;
      case 'stop-cvm':
        await hostCall(m.hostIp, '/lcm/cvm', { ...o, body: { state: 'stopped' }, timeoutMs: 60_000 });
        return;
      case 'install': {
        const bytes = await this.repository.bytes(rec.to);
        await hostCall(m.hostIp, '/lcm/stage', { ...o, method: 'PUT', stream: bytes, timeoutMs: 300_000 });
        return;
      }
      case 'restart':
        // into the staged release; a node whose software stays (firmware only) restarts through its BMC
        if (rec.plan.nodes.find((p) => p.serial === a.node)?.steps.some((x) => x.kind === 'install')) await hostCall(m.hostIp, '/lcm/switch', { ...o, body: { version: rec.to }, timeoutMs: 60_000 });
        else await restartThroughBmc(await this.d.bmc(a.node), a.node);
        return;
      case 'rejoin':
      case 'resiliency':
        return; // waited for: the CVM comes back by itself, the repair loop restores the replicas
      case 'firmware-bmc':
      case 'firmware-bios': {
        const part = a.kind === 'firmware-bmc' ? 'bmc' : 'bios';
        const b = await openBundle(await this.repository.bytes(rec.to), `bundle ${rec.to}`);
        const img = b.manifest.firmwareImages?.[part];
        const bytes = img ? b.files.get(img.file) : undefined;
        if (!img || !bytes) throw new ConflictError(`bundle ${rec.to} carries no ${part.toUpperCase()} firmware image`);
        await this.firmware.flash(a.node, part, bytes, img.file.slice(img.file.lastIndexOf('/') + 1));
        return;
      }
    }
  }
}

/** A host restarted through its BMC (Redfish GracefulRestart of its first system). */
async function restartThroughBmc(bmc: BmcAccess | undefined, serial: string): Promise<void> {
  if (!bmc) throw new UnavailableError(`no BMC is known for node ${serial}`);
  const client = new RedfishClient(bmcBaseUrl(bmc.address), bmc.user, bmc.password, bmc.ca ?? undefined, 15_000);
  try {
    const sys = await client.firstSystem();
    if (!sys) throw new UnavailableError(`${serial}'s BMC lists no system`);
    await client.reset(sys, 'GracefulRestart');
  } finally {
    await client.close();
  }
}
