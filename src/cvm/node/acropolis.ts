/**
 * @module
 * The VM service (Acropolis's role, protocol/vms.ts): every CVM runs one; the one elected in the
 * cluster's etcd (VM_ELECTION) leads. The leader accepts mutations (followers forward theirs to it,
 * acropolis-routes.ts), keeps the host inventory (each member's host agent polled every ~2 s),
 * runs the tasks, and reconciles what hosts report with what each VM should be.
 *
 * A mutation is a Task, written `queued` to etcd and answered 202. The leader's runner takes each
 * entity's oldest open task; a new leader resumes queued and running ones, so every step is
 * idempotent: vdisk names, MACs and child tasks are derived from the task's uuid, claims and
 * leases name their holder, and records are written compare-and-swap on their mod revision.
 * ```
 *  request ─► leader: check ─► tasks/<uuid> queued ─► 202 { taskUuid, entityUuid }
 *  runner ─► running ─► steps (progress) ─► succeeded
 *                   └─ error or timeout ─► undo what the task made ─► failed { code, message, field }
 * ```
 * Invariants:
 *  1. Only the leader writes vms/, images/ and subnets/ records (tasks: the leader, and whoever
 *     enqueues through it); a task's record is written at its last read revision, so a former
 *     leader's late write fails instead of landing.
 *  2. A vdisk belongs to one VM or image at a time (claims/<vdisk>).
 *  3. A VM is placed with an epoch higher than any before; a host copy with a lower epoch than the
 *     record's is stale and is stopped.
 *  4. Stopping the service (or losing leadership) abandons running tasks without writing them:
 *     the next leader resumes them.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { request } from 'undici';
import type { Etcd3 } from 'etcd3';
import { SystemClock, type Clock } from '../../shared/clock.ts';
import { ConflictError, InputError, NotFoundError, PayloadTooLargeError, TimeoutError, UnavailableError, errorMessage } from '../../shared/errors.ts';
import { KeyedLock } from '../../shared/keyed-lock.ts';
import { agentOf, errorOfBody } from '../../shared/http-client.ts';
import type { Identity } from '../../shared/identity.ts';
import { cvmCall } from '../protocol/client.ts';
import { CVM_API_PORT } from '../protocol/cluster.ts';
import type { ConsoleChunk, HostNetwork, HostVm, HostVmSpec, MigrationResult, PowerAction } from '../../hypervisor/protocol/vms.ts';
import { FORWARDED_HEADER, IMAGE_CONTAINER, VM_ELECTION, type Accepted, type Image, type Subnet, type Task, type TaskEntity, type Vm, type VmCreateRequest, type VmDisk, type VmDiskRequest, type VmHost, type VmNic, type VmNicRequest, type VmPowerAction } from '../protocol/vms.ts';
import { DEFAULT_CONTAINER, type Vdisk } from '../core/storage.ts';
import { checkFixed, checkSubnet, nextFree } from '../core/ipam.ts';
import { failTask, isFinished, newTask, progressTask, runnable, startTask, succeedTask } from '../core/tasks.ts';
import { checkCapacity, chooseHost } from '../core/vm-placement.ts';
import { planEvacuation, planReturn, type FenceRecord, type HaOptions, type Liveness, type PlaceFn } from '../core/ha.ts';
import { chooseMigrationTarget, hostStateOf, migrationStep } from '../core/vm-migration.ts';
import { checkPowerAction, checkUpdate, parseClone, parseConsoleInput, parseMigrate, parseImageCreate, parseImageUpload, parsePowerAction, parseSubnetCreate, parseVmCreate, parseVmUpdate } from '../core/vm-spec.ts';
import { AcropolisStore, type Versioned } from './acropolis-store.ts';
import type { HostApi } from './host-api.ts';
import { convert, download, imageInfo, nbdUri } from './image-tools.ts';
import type { StorageMeta } from './storage-meta.ts';
import { Leadership } from '../../shared/leadership.ts';
import { BMCS_PREFIX, BmcFencing, type StoredBmc } from './fencer.ts';
import { HA_FENCES_PREFIX, HaMonitor, type HaEvent } from './ha-monitor.ts';

const MiB = 1 << 20;

export interface ClusterMember {
  serial: string;
  cvmIp: string;
  hostIp: string;
}

export interface VmServiceOptions {
  /** Host inventory poll period (default 2000 ms). */
  pollMs?: number;
  /** A host that has not answered for this long is down (default 6000 ms). */
  downAfterMs?: number;
  /** The leadership lease (default 10 s). */
  electionTtlS?: number;
  /** How often the runner looks for tasks when nothing told it (default 1000 ms). */
  runnerMs?: number;
  /** Per-operation timeouts, ms (defaults below). */
  timeouts?: Partial<Record<string, number>>;
  /** How long a host may take to report a VM running or off after asked (default 60 s; shutdown: 120 s). */
  powerWaitMs?: number;
  /** The largest upload (default 8 GiB). */
  uploadLimitBytes?: number;
  /** Tasks run at once (default 4). */
  concurrency?: number;
  /** HA on the leader (docs/ha.md): the monitor's poll and timeouts, and the tracker's options. */
  ha?: Partial<HaOptions> & { pollMs?: number; pollTimeoutMs?: number; fenceTimeoutMs?: number; restartTimeoutMs?: number };
}

/** How HA powers a host off (and on) by its serial: BmcFencing over Redfish with the stored credentials, or a test's fake. */
export interface Fencing {
  fence(serial: string, signal?: AbortSignal): Promise<unknown>;
  powerOn(serial: string, signal?: AbortSignal): Promise<unknown>;
}

export interface VmServiceDeps {
  etcd: Etcd3;
  storage: StorageMeta;
  self: { cvmIp: string; serial: string };
  members: () => readonly ClusterMember[];
  hosts: HostApi;
  /** The CVM's plain NBD Unix socket (the link socket): vdisks for local clients (qemu-img). */
  nbdSocket: string | undefined;
  /** Where downloads and uploads wait for their import. */
  tmpDir: string;
  /** What this CVM presents to its peers' APIs when it forwards to the leader (its member certificate, trusting the deployment and cluster CAs). */
  identity: Identity;
  clock?: Clock;
  log: (m: string) => void;
  options?: VmServiceOptions;
  /** Default: BmcFencing with the credentials under acropolis/bmcs/<serial>. */
  fencing?: Fencing;
}

/** A live migration under way, kept on the VM's record (a new leader carries on from it). */
interface Migrating {
  task: string;
  from: { serial: string; hostIp: string };
  to: { serial: string; hostIp: string };
  /** The epoch the source runs the VM at (the record's again if the migration fails). */
  fromEpoch: number;
  /** The record's epoch meanwhile: the target's. */
  epoch: number;
  /** The target's incoming port, once it answered. */
  port: number | null;
  /** What the source reported when the migration ended. */
  result: MigrationResult | null;
}

/** A VM as stored: the API's Vm, plus the vdisks it owns and the task that last changed it. */
interface VmRecord extends Vm {
  /** vdisks the VM owns (deleted with it). */
  owned: string[];
  lastTask: string | null;
  migrating?: Migrating | null;
}

/** A host's flags (etcd hosts/<serial>): maintenance, and the VMs its evacuation moved away. */
interface HostFlags {
  maintenance?: boolean;
  /** Maintenance entered, its VMs not all moved yet (entering-maintenance). */
  evacuating?: boolean;
  /** The VMs moved away by entering maintenance, in order (moved back on exit). */
  movedAway?: string[];
}

interface HostState {
  member: ClusterMember;
  view: VmHost;
  vms: HostVm[];
  lastOk: number | null;
  /** Whether it answered within downAfterMs. */
  answers: boolean;
  flags: HostFlags;
  /** Resources charged to placements since the last poll. */
  reserved: { memoryMiB: number; vcpus: number };
  /** What the host can give VMs at most (its memory and CPUs less the CVM's share), once it has reported. */
  capacity?: { memoryMiB: number; vcpus: number };
  /** The host agent's start it last reported (HostResources.bootId). */
  bootId?: string;
}

const DEFAULT_TIMEOUTS: Record<string, number> = {
  'vm.create': 60 * 60_000, 'vm.clone': 60 * 60_000, 'vm.update': 60 * 60_000, 'vm.delete': 10 * 60_000,
  'vm.power': 5 * 60_000, 'vm.migrate': 30 * 60_000, 'image.import': 2 * 60 * 60_000, 'host.maintenance': 4 * 60 * 60_000, 'host.power-on': 5 * 60_000,
};

/** A stop (or a lost leadership): the task is left as it is for the next leader. */
class Abandoned extends Error {}

/** What a task's steps get: its record, an abort signal (timeout, stop), progress. */
interface TaskRun {
  task: Task;
  signal: AbortSignal;
  progress(percent: number, message?: string): void;
}

interface Handler {
  run(r: TaskRun): Promise<Record<string, unknown> | null>;
  /** Removes what a failed run made (each step tolerates what is already gone). */
  undo?(r: TaskRun): Promise<void>;
}

/** A disk a task makes or attaches, resolved from a request. */
type DiskPlan =
  | { kind: 'new'; vdisk: string; sizeBytes: number; container: string; bus: 'virtio-blk' | 'virtio-scsi'; image: string | null; copyFrom: string | null }
  | { kind: 'cdrom'; vdisk: string; sizeBytes: number; image: string }
  | { kind: 'attach'; vdisk: string; sizeBytes: number; bus: 'virtio-blk' | 'virtio-scsi'; field: string };

interface NicPlan {
  subnet: Subnet;
  mac: string;
  ip: string | undefined;
  field: string;
}

/** A deterministic uuid-shaped name from parts (child tasks a resumed task makes again). */
function derivedUuid(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('/')).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A locally administered unicast MAC derived from the task and the NIC's index (the same on a resumed run). */
function macOf(taskUuid: string, i: number): string {
  const h = createHash('sha256').update(`${taskUuid}/nic/${i}`).digest();
  return ['52', '54', '00', h[0], h[1], h[2]].map((b) => (typeof b === 'number' ? b.toString(16).padStart(2, '0') : b)).join(':');
}

function publicVm(r: VmRecord): Vm {
  const { owned: _o, lastTask: _l, migrating: _m, ...vm } = r;
  return vm;
}

/** `p`, or the signal's reason once it aborts first. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export class VmService {
  private readonly store: AcropolisStore;
  private readonly leadership: Leadership;
  private readonly clock: Clock;
  private readonly o: Required<Omit<VmServiceOptions, 'timeouts'>> & { timeouts: Record<string, number> };
  private readonly inventory = new Map<string, HostState>();
  private readonly running = new Map<string, { ac: AbortController; entity: string; done: Promise<void> }>();
  private readonly placement = new KeyedLock();
  /** What PUT /network last carried to each host (pushed again when it changes or the host comes back). */
  private readonly pushed = new Map<string, string>();
  private pollTimer: NodeJS.Timeout | undefined;
  private runTimer: NodeJS.Timeout | undefined;
  private ticking = false;
  private stopped = false;
  private readonly handlers: Record<string, Handler>;
  /** HA on the leader (started when elected, stopped when leadership is lost). */
  private ha: HaMonitor | undefined;
  private haStopping: Promise<void> = Promise.resolve();
  private readonly fencing: Fencing;
  /** Tasks this leader's HA writes itself (host.fence, vm.ha-restart): the runner leaves them alone. */
  private readonly haOwned = new Set<string>();
  /** The open host.fence task per host, the last one per host (a restart's parent), the open vm.ha-restart per VM. */
  private readonly fenceTask = new Map<string, string>();
  private readonly lastFenceTask = new Map<string, string>();
  private readonly restartTask = new Map<string, string>();
  /** VMs HA is starting now (the reconcile leaves them alone). */
  private readonly haRestarting = new Set<string>();
  /** HA's task writes, in the order of its events. */
  private haWrites: Promise<void> = Promise.resolve();

  constructor(private readonly d: VmServiceDeps) {
    this.store = new AcropolisStore(d.etcd);
    this.clock = d.clock ?? new SystemClock();
    const o = d.options ?? {};
    this.o = {
      pollMs: o.pollMs ?? 2000, downAfterMs: o.downAfterMs ?? 6000, electionTtlS: o.electionTtlS ?? 10, runnerMs: o.runnerMs ?? 1000,
      powerWaitMs: o.powerWaitMs ?? 60_000, uploadLimitBytes: o.uploadLimitBytes ?? 8 * 1024 ** 3, concurrency: o.concurrency ?? 4, ha: o.ha ?? {},
      timeouts: { ...DEFAULT_TIMEOUTS, ...Object.fromEntries(Object.entries(o.timeouts ?? {}).filter((e): e is [string, number] => typeof e[1] === 'number')) },
    };
    this.leadership = new Leadership(d.etcd, { election: VM_ELECTION, self: d.self.cvmIp, ttlS: this.o.electionTtlS, what: 'VM service', log: d.log }, { elected: () => this.onElected(), lost: () => this.onLost() });
    mkdirSync(d.tmpDir, { recursive: true });
    this.fencing = d.fencing ?? new BmcFencing({
      clock: this.clock,
      read: async (serial) => {
        const v = await d.etcd.get(BMCS_PREFIX + serial).string();
        return v === null ? undefined : (JSON.parse(v) as StoredBmc);
      },
    });
    const haGone = (what: string): Handler => ({ run: () => Promise.reject(new UnavailableError(`the leader that ran this ${what} stepped down; HA on the new leader decides again (docs/ha.md)`)) });
    this.handlers = {
      'vm.create': { run: (r) => this.runCreate(r), undo: (r) => this.undoCreate(r) },
      'vm.clone': { run: (r) => this.runClone(r), undo: (r) => this.undoCreate(r) },
      'vm.update': { run: (r) => this.runUpdate(r), undo: (r) => this.undoUpdate(r) },
      'vm.delete': { run: (r) => this.runDelete(r) },
      'vm.power': { run: (r) => this.runPower(r), undo: (r) => this.undoPower(r) },
      'vm.migrate': { run: (r) => this.runMigrate(r), undo: (r) => this.undoMigrate(r) },
      'vm.ha-restart': haGone('restart'),
      'host.fence': haGone('fence'),
      'host.power-on': { run: (r) => this.runHostPowerOn(r) },
      'image.import': { run: (r) => this.runImport(r), undo: (r) => this.undoImport(r) },
      'host.maintenance': { run: (r) => this.runMaintenance(r), undo: (r) => this.undoMaintenance(r) },
    };
  }

  start(): void {
    this.leadership.start();
  }

  /** Steps down and abandons running tasks (the next leader resumes them). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.leadership.stop();
    this.onLost();
    await Promise.all([...this.running.values()].map((x) => x.done));
    await this.haStopping;
    await this.haWrites;
  }

  get isLeader(): boolean {
    return this.leadership.isLeader && !this.stopped;
  }

  /** The leader's CVM address (null: none elected). */
  leaderIp(): Promise<string | null> {
    return this.leadership.currentLeader();
  }

  /** The leader's address to forward to (UnavailableError while none is elected, or when it is this CVM that no longer leads). */
  private async leaderToForwardTo(): Promise<string> {
    const ip = await this.leadership.currentLeader();
    if (!ip || ip === this.d.self.cvmIp) throw new UnavailableError('no CVM leads the VM service yet; try again in a few seconds');
    return ip;
  }

  /** Passes a JSON request on to the leader's CVM API and returns its answer. */
  async forward<T>(method: string, path: string, body?: unknown): Promise<T> {
    const ip = await this.leaderToForwardTo();
    return cvmCall<T>(ip, path, { method, ...(body === undefined ? {} : { body }), identity: this.d.identity, timeoutMs: 30_000, headers: { [FORWARDED_HEADER]: '1' } });
  }

  /** Streams an upload on to the leader (PUT /images/upload), body and all. */
  async forwardUpload<T>(path: string, body: Readable, headers: Record<string, string>): Promise<T> {
    const ip = await this.leaderToForwardTo();
    const r = await request(`https://${ip}:${CVM_API_PORT}${path}`, { method: 'PUT', body, headers: { ...headers, [FORWARDED_HEADER]: '1' }, dispatcher: agentOf(this.d.identity), headersTimeout: 0, bodyTimeout: 0 }).catch((e: unknown) => {
      throw new UnavailableError(`the VM service leader ${ip} does not answer (${errorMessage((e as { cause?: unknown }).cause ?? e)})`);
    });
    const j = (await r.body.json().catch(() => undefined)) as (T & { error?: { code?: string; message?: string; field?: string } }) | undefined;
    if (r.statusCode >= 400) throw errorOfBody(r.statusCode, j?.error);
    return j as T;
  }

  private requireLeader(): void {
    if (!this.isLeader) throw new UnavailableError(`this CVM (${this.d.self.cvmIp}) does not lead the VM service${this.leadership.leader ? ` (${this.leadership.leader} does)` : ' (no leader is elected yet; try again in a few seconds)'}`);
  }

  private onElected(): void {
    if (this.stopped) return;
    const loop = (): void => {
      void this.poll().finally(() => {
        if (this.isLeader) this.pollTimer = setTimeout(loop, this.o.pollMs);
      });
    };
    loop();
    const run = (): void => {
      this.kick();
      if (this.isLeader) this.runTimer = setTimeout(run, this.o.runnerMs);
    };
    run();
    this.startHa();
  }

  private onLost(): void {
    if (this.pollTimer) clearTimeout(this.pollTimer);
    if (this.runTimer) clearTimeout(this.runTimer);
    this.pollTimer = undefined;
    this.runTimer = undefined;
    for (const x of this.running.values()) x.ac.abort(new Abandoned('this CVM no longer leads the VM service'));
    this.inventory.clear();
    this.pushed.clear();
    const ha = this.ha;
    this.ha = undefined;
    if (ha) this.haStopping = this.haStopping.then(() => ha.stop()).catch((e: unknown) => this.d.log(`VM service: stopping HA: ${errorMessage(e)}`));
  }

  // ---- reads (any CVM: from the store) --------------------------------------------------------

  async listVms(): Promise<Vm[]> {
    return (await this.store.list<VmRecord>('vms')).map((v) => publicVm(v.value));
  }

  async getVm(uuid: string): Promise<Vm> {
    return publicVm((await this.vmRecord(uuid)).value);
  }

  private async vmRecord(uuid: string): Promise<Versioned<VmRecord>> {
    const v = await this.store.get<VmRecord>('vms', uuid);
    if (!v) throw new NotFoundError('VM', uuid);
    return v;
  }

  async listImages(): Promise<Image[]> {
    return (await this.store.list<Image>('images')).map((v) => v.value);
  }

  async listSubnets(): Promise<Subnet[]> {
    return (await this.store.list<Subnet>('subnets')).map((v) => v.value);
  }

  async listTasks(entity?: string): Promise<Task[]> {
    const all = (await this.store.list<Task>('tasks')).map((v) => v.value);
    return entity ? all.filter((t) => t.entity.uuid === entity) : all;
  }

  async getTask(uuid: string): Promise<Task> {
    const t = await this.store.get<Task>('tasks', uuid);
    if (!t) throw new NotFoundError('task', uuid);
    return t.value;
  }

  /** What each host that has reported can give VMs at most. */
  private capacities(): { serial: string; memoryMiB: number; vcpus: number }[] {
    return [...this.inventory.values()].flatMap((h) => (h.capacity ? [{ serial: h.member.serial, ...h.capacity }] : []));
  }

  /** The hosts as the leader sees them (its poll of every member's host agent). */
  hosts(): VmHost[] {
    this.requireLeader();
    return [...this.inventory.values()].map((h) => ({ ...h.view })).sort((a, b) => a.serial.localeCompare(b.serial));
  }

  /** What each host reported last (the HA seam: which VMs a host ran when it was last seen). */
  hostVms(serial: string): HostVm[] {
    return this.inventory.get(serial)?.vms ?? [];
  }

  /** The serial console of a VM, from the host that runs it (off: the host where it last started). */
  async console(uuid: string, offset: number): Promise<ConsoleChunk> {
    const vm = (await this.vmRecord(uuid)).value;
    if (vm.host) return this.d.hosts.console(vm.host.hostIp, uuid, offset);
    const ran = await Promise.all(this.d.members().map(async (m) => {
      const mine = (await this.d.hosts.vms(m.hostIp).catch(() => [])).find((v) => v.spec.uuid === uuid);
      return mine?.startedAt ? { hostIp: m.hostIp, at: mine.startedAt } : undefined;
    }));
    const last = ran.filter((r) => r !== undefined).sort((a, b) => b.at.localeCompare(a.at))[0];
    if (!last) throw new ConflictError(`VM ${vm.name} is off and no host has its console (it has not run since its host started)`);
    return this.d.hosts.console(last.hostIp, uuid, offset);
  }

  // ---- mutations (the leader) -----------------------------------------------------------------

  private async enqueue(operation: string, entity: TaskEntity, request: Record<string, unknown>, parent: string | null = null, uuid: string = randomUUID()): Promise<Accepted> {
    const t = newTask({ uuid, operation, entity, request, parent }, this.clock.now());
    const rev = await this.store.swap('tasks', t.uuid, t, '0');
    if (rev === undefined && !(await this.store.get('tasks', uuid))) throw new ConflictError(`task ${uuid} could not be written`);
    this.kick();
    return { taskUuid: t.uuid, entityUuid: entity.uuid };
  }

  /** Open tasks' requests (what is about to be made: names and vdisks taken before their records exist). */
  private async openTasks(): Promise<Task[]> {
    return (await this.listTasks()).filter((t) => !isFinished(t));
  }

  async createVm(body: unknown): Promise<Accepted> {
    this.requireLeader();
    const spec = parseVmCreate(body);
    checkCapacity(this.capacities(), spec);
    const uuid = randomUUID();
    // a vdisk another VM (or an image) owns is refused now; the task claims it for good
    for (const [i, dk] of spec.disks.entries()) {
      if (!('vdisk' in dk)) continue;
      const owner = await this.store.claimOf(dk.vdisk);
      if (owner) throw new ConflictError(`disks[${i}].vdisk: vdisk ${dk.vdisk} belongs to ${owner.startsWith('image:') ? `image ${owner.slice(6)}` : `VM ${owner}`}`);
      const pending = (await this.openTasks()).find((t) => t.operation === 'vm.create' && ((t.request['spec'] as VmCreateRequest | undefined)?.disks ?? []).some((x) => 'vdisk' in x && x.vdisk === dk.vdisk));
      if (pending) throw new ConflictError(`disks[${i}].vdisk: vdisk ${dk.vdisk} is being attached to VM ${pending.entity.name} (task ${pending.uuid})`);
    }
    return this.enqueue('vm.create', { kind: 'vm', uuid, name: spec.name }, { spec });
  }

  async updateVm(uuid: string, body: unknown): Promise<Accepted> {
    this.requireLeader();
    const u = parseVmUpdate(body);
    const vm = (await this.vmRecord(uuid)).value;
    checkUpdate(vm, u);
    checkCapacity(this.capacities(), { memoryMiB: u.memoryMiB ?? vm.memoryMiB, vcpus: u.vcpus ?? vm.vcpus });
    return this.enqueue('vm.update', { kind: 'vm', uuid, name: vm.name }, { update: u });
  }

  async deleteVm(uuid: string): Promise<Accepted> {
    this.requireLeader();
    const vm = (await this.vmRecord(uuid)).value;
    return this.enqueue('vm.delete', { kind: 'vm', uuid, name: vm.name }, {});
  }

  async powerVm(uuid: string, body: unknown): Promise<Accepted> {
    this.requireLeader();
    const action = parsePowerAction(body);
    const vm = (await this.vmRecord(uuid)).value;
    checkPowerAction(vm.name, vm.powerState, action);
    return this.enqueue('vm.power', { kind: 'vm', uuid, name: vm.name }, { action });
  }

  async cloneVm(uuid: string, body: unknown): Promise<Accepted> {
    this.requireLeader();
    const { name } = parseClone(body);
    const src = (await this.vmRecord(uuid)).value;
    if (src.powerState !== 'off') throw new ConflictError(`VM ${src.name} is ${src.powerState}; power it off to clone it (its disks are copied as they are)`);
    return this.enqueue('vm.clone', { kind: 'vm', uuid: randomUUID(), name }, { source: uuid, name });
  }

  /** POST /vms/:uuid/migrate: moves a running VM to `host` (serial or host IP) or where placement says, live. */
  async migrateVm(uuid: string, body: unknown): Promise<Accepted> {
    this.requireLeader();
    const { host } = parseMigrate(body);
    const vm = (await this.vmRecord(uuid)).value;
    if (!vm.host || vm.powerState === 'off') throw new ConflictError(`VM ${vm.name} is off; only a running VM migrates (power it on where it should run)`);
    // refused now when it cannot be done; the task chooses again when it runs
    chooseMigrationTarget(this.placementView(), { ...vm, host: vm.host }, host);
    return this.enqueue('vm.migrate', { kind: 'vm', uuid, name: vm.name }, { host: host ?? null });
  }

  /** POST /vms/:uuid/console/input: typed on the VM's serial console (by any CVM: nothing is stored). */
  async consoleInput(uuid: string, body: unknown): Promise<{ bytes: number }> {
    const { data } = parseConsoleInput(body);
    const vm = (await this.vmRecord(uuid)).value;
    if (!vm.host) throw new ConflictError(`VM ${vm.name} runs on no host (it is off)`);
    await this.d.hosts.consoleInput(vm.host.hostIp, uuid, data);
    return { bytes: Buffer.byteLength(data) };
  }

  /** POST /hosts/:id/maintenance: enter (the host's VMs move away) or exit (they come back). */
  async setMaintenance(id: string, body: unknown): Promise<Accepted> {
    this.requireLeader();
    const enter = (body as { enter?: unknown } | null | undefined)?.enter;
    if (typeof enter !== 'boolean') throw new InputError('enter', 'must be true or false');
    const m = this.member(id);
    return this.enqueue('host.maintenance', { kind: 'host', uuid: m.serial, name: m.serial }, { enter });
  }

  /** POST /hosts/:id/power-on: a fenced host powered on through its BMC (it returns once it reports no running VM). */
  async powerOnHost(id: string): Promise<Accepted> {
    this.requireLeader();
    const m = this.member(id);
    const state = this.ha?.liveness(m.serial);
    if (state !== 'fenced') throw new ConflictError(`host ${m.serial} is not fenced (${state ?? 'not watched by HA'}); only a fenced host is powered on through the cluster`);
    return this.enqueue('host.power-on', { kind: 'host', uuid: m.serial, name: m.serial }, {});
  }

  private member(id: string): ClusterMember {
    const m = this.d.members().find((x) => x.serial === id || x.hostIp === id);
    if (!m) throw new NotFoundError('host', id);
    return m;
  }

  // ---- maintenance mode ---------------------------------------------------------------------------

  /** Writes a host's flags through `f` (compare-and-swap) and shows the new state at once. */
  private async setFlags(serial: string, f: (cur: HostFlags) => HostFlags): Promise<HostFlags> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const cur = await this.store.get<HostFlags>('hosts', serial);
      const next = f(cur?.value ?? {});
      if ((await this.store.swap('hosts', serial, next, cur?.rev ?? '0')) === undefined) continue;
      const st = this.inventory.get(serial);
      if (st) {
        st.flags = next;
        this.showState(st);
      }
      return next;
    }
    throw new ConflictError(`host ${serial}'s flags keep changing; try again`);
  }

  /** Waits for a task to finish (child tasks of a maintenance task). */
  private async waitTask(uuid: string, signal: AbortSignal): Promise<Task> {
    for (;;) {
      const t = await this.store.get<Task>('tasks', uuid);
      if (!t) throw new NotFoundError('task', uuid);
      if (isFinished(t.value)) return t.value;
      await sleep(300, signal);
    }
  }

  private readonly place: PlaceFn = (vm, hosts) => {
    try {
      return chooseHost(hosts, vm);
    } catch (e) {
      if (e instanceof InputError) return e;
      throw e;
    }
  };

  private async runMaintenance(r: TaskRun): Promise<Record<string, unknown>> {
    const serial = r.task.entity.uuid;
    return r.task.request['enter'] === true ? this.enterMaintenance(r, serial) : this.exitMaintenance(r, serial);
  }

  /**
   * Marks the host (nothing new placed there), then moves each VM running there to another host,
   * one at a time (child vm.migrate tasks), recording each moved VM on the host's flags. VMs that
   * are off lose their host (they power on elsewhere). A VM that fits nowhere, or a migration that
   * fails, fails the task naming the VM (see undoMaintenance for what the host is then).
   */
  private async enterMaintenance(r: TaskRun, serial: string): Promise<Record<string, unknown>> {
    // VMs a child of this task moved (a resumed run: one whose move was not recorded yet)
    const children = (await this.listTasks()).filter((t) => t.parent === r.task.uuid && t.operation === 'vm.migrate' && t.state === 'succeeded').map((t) => t.entity.uuid);
    let flags = await this.setFlags(serial, (f) => ({ ...f, maintenance: true, evacuating: true, movedAway: [...new Set([...(f.movedAway ?? []), ...children])] }));
    for (const v of await this.store.list<VmRecord>('vms')) {
      if (v.value.host?.serial === serial && v.value.powerState === 'off') await this.mutateVm(v.value.uuid, (x) => (x.host?.serial === serial && x.powerState === 'off' ? { ...x, host: null } : x));
    }
    let moved = children.length;
    for (let round = 0; ; round++) {
      const plan = planEvacuation(serial, await this.listVms(), this.placementView(), this.place);
      if (!plan.ok) throw new InputError('host', `host ${serial} cannot enter maintenance: ${plan.reason}`);
      if (plan.migrations.length === 0) break;
      if (round >= 5) throw new ConflictError(`host ${serial} keeps getting VMs while it enters maintenance (${plan.migrations.map((m) => m.name).join(', ')})`);
      const total = moved + plan.migrations.length;
      for (const m of plan.migrations) {
        r.progress((90 * moved) / total, `moving VM ${m.name} to host ${m.to} (${moved + 1} of ${total})`);
        const child = await this.enqueue('vm.migrate', { kind: 'vm', uuid: m.vm, name: m.name }, { host: m.to }, r.task.uuid, derivedUuid(r.task.uuid, 'evacuate', m.vm, String(round)));
        const t = await this.waitTask(child.taskUuid, r.signal);
        if (t.state !== 'succeeded') throw new UnavailableError(`VM ${m.name} could not move to host ${m.to} (task ${t.uuid}): ${t.error?.message ?? t.state}`);
        flags = await this.setFlags(serial, (f) => ({ ...f, movedAway: [...new Set([...(f.movedAway ?? []), m.vm])] }));
        moved++;
      }
    }
    flags = await this.setFlags(serial, (f) => ({ ...f, maintenance: true, evacuating: false }));
    return { maintenance: true, movedAway: flags.movedAway ?? [] };
  }

  /**
   * A failed enter: when no VM was moved away the host is up again (nothing changed); otherwise it
   * stays entering-maintenance (nothing placed there) until the operator enters again (the rest
   * move) or exits (the moved VMs come back).
   */
  private async undoMaintenance(r: TaskRun): Promise<void> {
    if (r.task.request['enter'] !== true) return;
    const serial = r.task.entity.uuid;
    await this.setFlags(serial, (f) => ((f.movedAway ?? []).length === 0 ? {} : f));
  }

  /** Unmarks the host, then moves back the VMs its evacuation moved away (planReturn; child vm.migrate tasks). */
  private async exitMaintenance(r: TaskRun, serial: string): Promise<Record<string, unknown>> {
    const flags = await this.setFlags(serial, (f) => ({ ...f, maintenance: false, evacuating: false }));
    const movedAway = flags.movedAway ?? [];
    const home = this.placementView().find((h) => h.serial === serial);
    const vms = await this.listVms();
    const plan = home ? planReturn(home, movedAway, vms, this.place) : { migrations: [], skipped: movedAway.map((vm) => ({ vm, name: vms.find((v) => v.uuid === vm)?.name ?? '', reason: `host ${serial} does not report to the leader` })) };
    const failed: string[] = [];
    const returned: string[] = [];
    for (const [i, m] of plan.migrations.entries()) {
      r.progress((90 * i) / plan.migrations.length, `moving VM ${m.name} back from host ${m.from} (${i + 1} of ${plan.migrations.length})`);
      const child = await this.enqueue('vm.migrate', { kind: 'vm', uuid: m.vm, name: m.name }, { host: serial }, r.task.uuid, derivedUuid(r.task.uuid, 'return', m.vm));
      const t = await this.waitTask(child.taskUuid, r.signal);
      if (t.state === 'succeeded') returned.push(m.vm);
      else failed.push(`${m.name}: ${t.error?.message ?? t.state}`);
    }
    await this.setFlags(serial, (f) => ({ ...(f.maintenance ? f : { ...f, movedAway: [] }) }));
    if (failed.length > 0) throw new UnavailableError(`host ${serial} is out of maintenance; VM(s) that could not move back: ${failed.join('; ')}`);
    return { maintenance: false, returned, skipped: plan.skipped };
  }

  async createImage(body: unknown): Promise<Accepted> {
    this.requireLeader();
    const req = parseImageCreate(body);
    return this.startImport({ name: req.name, source: req.url, ...(req.format ? { format: req.format } : {}), ...(req.container ? { container: req.container } : {}) });
  }

  /** PUT /images/upload: the body streamed to a temporary file here (the leader), then imported. */
  async uploadImage(query: unknown, body: Readable): Promise<Accepted> {
    this.requireLeader();
    const q = parseImageUpload(query);
    // what would refuse the import is refused before the body is read, not after gigabytes of it
    if (q.uuid && (await this.store.get<Image>('images', q.uuid))) throw new ConflictError(`uuid: an image ${q.uuid} exists`);
    if ((await this.listImages()).some((i) => i.name === q.name)) throw new ConflictError(`name: an image named ${q.name} exists`);
    const uuid = q.uuid ?? randomUUID();
    const file = join(this.d.tmpDir, `${uuid}.upload`);
    let bytes = 0;
    const limit = this.o.uploadLimitBytes;
    const count = new Transform({
      transform(chunk: Buffer, _e, done) {
        bytes += chunk.length;
        if (bytes > limit) done(new PayloadTooLargeError('body', limit, `is larger than an image upload may be (${limit} bytes); nothing was kept`));
        else done(null, chunk);
      },
    });
    try {
      await pipeline(body, count, createWriteStream(file));
    } catch (e) {
      rmSync(file, { force: true });
      throw e;
    }
    if (bytes === 0) {
      rmSync(file, { force: true });
      throw new InputError('body', 'is empty: send the image file as the body');
    }
    return this.startImport({ name: q.name, source: `upload (${bytes} bytes)`, ...(q.format ? { format: q.format } : {}), file, cvmIp: this.d.self.cvmIp }, uuid);
  }

  private async startImport(req: { name: string; source: string; format?: 'raw' | 'qcow2' | 'iso'; container?: string; file?: string; cvmIp?: string }, uuid: string = randomUUID()): Promise<Accepted> {
    const images = await this.listImages();
    if (images.some((i) => i.name === req.name)) throw new ConflictError(`name: an image named ${req.name} exists`);
    const image: Image = { uuid, name: req.name, format: req.format ?? 'raw', vdisk: `image-${uuid}`, sizeBytes: 0, state: 'importing', source: req.source, createdAt: new Date(this.clock.now()).toISOString() };
    await this.store.put('images', uuid, image);
    return this.enqueue('image.import', { kind: 'image', uuid, name: req.name }, { ...req, url: req.file ? null : req.source });
  }

  /** Deletes an image and its vdisk: refused while a VM disk was made from it or holds it. */
  async deleteImage(uuid: string): Promise<{ deleted: string }> {
    this.requireLeader();
    const img = await this.store.get<Image>('images', uuid);
    if (!img) throw new NotFoundError('image', uuid);
    const users = (await this.store.list<VmRecord>('vms')).filter((v) => v.value.disks.some((dk) => dk.image === uuid));
    if (users.length > 0) throw new ConflictError(`image ${img.value.name} is in use by VM(s) ${users.slice(0, 3).map((v) => v.value.name).join(', ')}; delete their disks first`);
    const pending = (await this.openTasks()).find((t) => t.entity.uuid === uuid || JSON.stringify(t.request).includes(`"${img.value.name}"`) || JSON.stringify(t.request).includes(uuid));
    if (pending) throw new ConflictError(`image ${img.value.name} is used by task ${pending.uuid} (${pending.operation}, ${pending.state})`);
    await this.deleteVdiskIfOwned(img.value.vdisk, `image:${uuid}`);
    await this.store.delete('images', uuid);
    return { deleted: uuid };
  }

  async createSubnet(body: unknown): Promise<Subnet> {
    this.requireLeader();
    const req = parseSubnetCreate(body);
    const addr = checkSubnet(req);
    const subnets = await this.listSubnets();
    if (subnets.some((s) => s.vlanId === req.vlanId)) throw new ConflictError(`vlanId: VLAN ${req.vlanId} is subnet ${subnets.find((s) => s.vlanId === req.vlanId)?.name ?? ''}'s`);
    const subnet: Subnet = { uuid: randomUUID(), name: req.name, vlanId: req.vlanId, ...addr, dns: req.dns ?? [], leases: {} };
    // the name index: two creates of one name cannot both win
    if ((await this.store.swap('subnet-names', req.name, subnet.uuid, '0')) === undefined) throw new ConflictError(`name: a subnet named ${req.name} exists`);
    await this.store.put('subnets', subnet.uuid, subnet);
    this.pushed.clear();
    return subnet;
  }

  async deleteSubnet(uuid: string): Promise<{ deleted: string }> {
    this.requireLeader();
    const s = await this.store.get<Subnet>('subnets', uuid);
    if (!s) throw new NotFoundError('subnet', uuid);
    const users = (await this.store.list<VmRecord>('vms')).filter((v) => v.value.nics.some((n) => n.subnetUuid === uuid));
    if (users.length > 0) throw new ConflictError(`subnet ${s.value.name} is used by NICs of VM(s) ${users.slice(0, 3).map((v) => v.value.name).join(', ')}`);
    if (Object.keys(s.value.leases).length > 0) throw new ConflictError(`subnet ${s.value.name} has ${Object.keys(s.value.leases).length} address(es) leased (a VM being made); try again when its task ends`);
    if (!(await this.store.deleteAt('subnets', uuid, s.rev))) throw new ConflictError(`subnet ${s.value.name} changed while it was deleted; try again`);
    await this.store.delete('subnet-names', s.value.name);
    this.pushed.clear();
    return { deleted: uuid };
  }

  // ---- the runner -------------------------------------------------------------------------------

  /** Looks for tasks to run now (the leader only). */
  kick(): void {
    if (!this.isLeader || this.ticking) return;
    this.ticking = true;
    void this.tick().catch((e: unknown) => this.d.log(`VM service: task runner: ${errorMessage(e)}`)).finally(() => {
      this.ticking = false;
    });
  }

  private async tick(): Promise<void> {
    const all = await this.store.list<Task>('tasks');
    const busy = new Set([...this.running.values()].map((x) => x.entity));
    const revs = new Map(all.map((v) => [v.value.uuid, v.rev]));
    for (const t of runnable(all.map((v) => v.value), busy)) {
      if (this.running.size >= this.o.concurrency || !this.isLeader) break;
      if (this.running.has(t.uuid) || this.haOwned.has(t.uuid)) continue;
      const rev = revs.get(t.uuid);
      if (rev !== undefined) this.runTask(t, rev);
    }
  }

  private runTask(first: Task, firstRev: string): void {
    const ac = new AbortController();
    const entry = { ac, entity: first.entity.uuid, done: Promise.resolve() };
    this.running.set(first.uuid, entry);
    entry.done = this.execute(first, firstRev, ac).finally(() => {
      this.running.delete(first.uuid);
      this.kick();
    });
  }

  private async execute(first: Task, firstRev: string, ac: AbortController): Promise<void> {
    let task = first;
    let rev = firstRev;
    let writes = Promise.resolve();
    /** Writes the task at its last revision; a write that finds it moved on abandons the run (another leader has it). */
    const save = (t: Task): Promise<void> => {
      task = t;
      writes = writes.then(async () => {
        if (ac.signal.aborted && ac.signal.reason instanceof Abandoned) return;
        const next = await this.store.swap('tasks', t.uuid, t, rev);
        if (next === undefined) ac.abort(new Abandoned(`task ${t.uuid} was changed by another writer`));
        else rev = next;
      }).catch((e: unknown) => this.d.log(`VM service: saving task ${t.uuid}: ${errorMessage(e)}`));
      return writes;
    };
    const handler = this.handlers[first.operation];
    const resumed = first.state === 'running';
    await save(startTask(first, this.clock.now(), resumed ? `resumed by ${this.d.self.cvmIp}` : `running on ${this.d.self.cvmIp}`));
    if (ac.signal.aborted) return;
    const limit = this.o.timeouts[first.operation] ?? 30 * 60_000;
    const elapsed = this.clock.now() - Date.parse(task.startedAt ?? task.createdAt);
    const timer = setTimeout(() => ac.abort(new TimeoutError(`${first.operation} did not finish in ${Math.round(limit / 1000)} s`)), Math.max(0, limit - elapsed));
    let lastWrite = 0;
    const run: TaskRun = {
      get task() {
        return task;
      },
      signal: ac.signal,
      progress: (percent, message) => {
        if (task.state !== 'running') return;
        const next = progressTask(task, percent, message);
        const now = this.clock.now();
        if (next.percent === task.percent && next.message === task.message) return;
        if (now - lastWrite < 500 && next.message === task.message) {
          task = next;
          return;
        }
        lastWrite = now;
        void save(next);
      },
    };
    try {
      if (!handler) throw new InputError('operation', `${first.operation} is not an operation this CVM knows (a newer version made it?)`);
      const result = await handler.run(run);
      if (ac.signal.aborted) throw ac.signal.reason;
      await writes;
      await save(succeedTask(task, this.clock.now(), result));
    } catch (err) {
      const e = ac.signal.aborted ? (ac.signal.reason as unknown) : err;
      if (e instanceof Abandoned || this.stopped || !this.isLeader) return;
      this.d.log(`VM service: task ${first.uuid} (${first.operation} ${first.entity.name}) failed: ${errorMessage(e)}`);
      if (handler?.undo) {
        const undoRun: TaskRun = { ...run, task, signal: AbortSignal.timeout(5 * 60_000), progress: () => undefined };
        await handler.undo(undoRun).catch((ue: unknown) => this.d.log(`VM service: undoing task ${first.uuid}: ${errorMessage(ue)}`));
      }
      await writes;
      await save(failTask(task, this.clock.now(), e));
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- disks and NICs -----------------------------------------------------------------------------

  private async imageByRef(ref: string, field: string): Promise<Image> {
    const images = await this.listImages();
    const img = images.find((i) => i.uuid === ref) ?? images.find((i) => i.name === ref);
    if (!img) throw new InputError(field, `no image named ${ref}`);
    if (img.state !== 'ready') throw new InputError(field, `image ${img.name} is ${img.state}, not ready`);
    return img;
  }

  private async subnetByRef(ref: string, field: string): Promise<Subnet> {
    const subnets = await this.listSubnets();
    const s = subnets.find((x) => x.uuid === ref) ?? subnets.find((x) => x.name === ref);
    if (!s) throw new InputError(field, `no subnet named ${ref}`);
    return s;
  }

  /** The disks a request asks for, resolved (images ready, vdisks and containers there); creates nothing. */
  private async planDisks(task: Task, reqs: readonly VmDiskRequest[], field: string, vdisks: readonly Vdisk[]): Promise<DiskPlan[]> {
    const containers = new Set((await this.d.storage.containers()).map((c) => c.name));
    const plans: DiskPlan[] = [];
    for (const [i, dk] of reqs.entries()) {
      const f = `${field}[${i}]`;
      const name = `vm-${task.entity.uuid}-${task.uuid.slice(0, 8)}-${i}`;
      if ('cdromImage' in dk) {
        const img = await this.imageByRef(dk.cdromImage, `${f}.cdromImage`);
        plans.push({ kind: 'cdrom', vdisk: img.vdisk, sizeBytes: img.sizeBytes, image: img.uuid });
      } else if ('vdisk' in dk) {
        const vd = vdisks.find((v) => v.name === dk.vdisk);
        if (!vd) throw new InputError(`${f}.vdisk`, `no vdisk named ${dk.vdisk}`);
        plans.push({ kind: 'attach', vdisk: vd.name, sizeBytes: vd.sizeBytes, bus: dk.bus ?? 'virtio-blk', field: `${f}.vdisk` });
      } else {
        const container = dk.container ?? DEFAULT_CONTAINER;
        if (!containers.has(container)) throw new InputError(`${f}.container`, `no container named ${container}`);
        if ('image' in dk) {
          const img = await this.imageByRef(dk.image, `${f}.image`);
          const size = Math.max(img.sizeBytes, dk.sizeBytes ?? 0);
          plans.push({ kind: 'new', vdisk: name, sizeBytes: Math.ceil(size / MiB) * MiB, container, bus: dk.bus ?? 'virtio-blk', image: img.uuid, copyFrom: img.vdisk });
        } else {
          plans.push({ kind: 'new', vdisk: name, sizeBytes: dk.sizeBytes, container, bus: dk.bus ?? 'virtio-blk', image: null, copyFrom: null });
        }
      }
    }
    return plans;
  }

  private async planNics(task: Task, reqs: readonly VmNicRequest[], field: string, offset = 0): Promise<NicPlan[]> {
    const plans: NicPlan[] = [];
    const macs = new Set((await this.store.list<VmRecord>('vms')).flatMap((v) => (v.value.uuid === task.entity.uuid ? [] : v.value.nics.map((n) => n.mac))));
    for (const [i, n] of reqs.entries()) {
      const f = `${field}[${i}]`;
      const subnet = await this.subnetByRef(n.subnet, `${f}.subnet`);
      const mac = n.mac ?? macOf(task.uuid, offset + i);
      if (macs.has(mac)) throw new ConflictError(`${f}.mac: ${mac} is another VM's NIC`);
      if (n.ip && !subnet.cidr) throw new InputError(`${f}.ip`, `subnet ${subnet.name} has no IPAM (no CIDR); a NIC on it takes no address`);
      plans.push({ subnet, mac, ip: n.ip, field: f });
    }
    return plans;
  }

  /** Makes the planned disks: creates, claims and fills the new vdisks (progress from `from` to `to` percent). */
  private async makeDisks(r: TaskRun, owner: string, plans: readonly DiskPlan[], from: number, to: number): Promise<VmDisk[]> {
    const copies = plans.filter((p) => p.kind === 'new' && p.copyFrom).length;
    let copied = 0;
    const out: VmDisk[] = [];
    for (const [i, p] of plans.entries()) {
      if (r.signal.aborted) throw r.signal.reason;
      if (p.kind === 'cdrom') {
        out.push({ vdisk: p.vdisk, bus: 'cdrom', sizeBytes: p.sizeBytes, image: p.image, bootIndex: i + 1 });
        continue;
      }
      if (p.kind === 'attach') {
        await this.store.claim(p.vdisk, owner, p.field);
        out.push({ vdisk: p.vdisk, bus: p.bus, sizeBytes: p.sizeBytes, image: null, bootIndex: i + 1 });
        continue;
      }
      await this.store.claim(p.vdisk, owner, 'disks');
      const exists = (await this.d.storage.vdisks()).some((v) => v.name === p.vdisk);
      if (!exists) await this.d.storage.createVdisk({ name: p.vdisk, size: p.sizeBytes, container: p.container });
      if (p.copyFrom) {
        const span = (to - from) / Math.max(1, copies);
        const base = from + span * copied;
        r.progress(base, `copying ${p.copyFrom} to ${p.vdisk}`);
        await convert(nbdUri(this.socket(), p.copyFrom), 'raw', nbdUri(this.socket(), p.vdisk), { signal: r.signal, onProgress: (pct) => r.progress(base + (span * pct) / 100) });
        copied++;
      }
      out.push({ vdisk: p.vdisk, bus: p.bus, sizeBytes: p.sizeBytes, image: p.image, bootIndex: i + 1 });
    }
    return out;
  }

  private socket(): string {
    const s = this.d.nbdSocket;
    if (!s) throw new UnavailableError(`this CVM (${this.d.self.cvmIp}) has no local NBD socket to copy vdisks through`);
    return s;
  }

  /** Leases the planned NICs' addresses (a lease already the NIC's is kept: a resumed run). */
  private async leaseNics(plans: readonly NicPlan[]): Promise<VmNic[]> {
    const out: VmNic[] = [];
    for (const p of plans) {
      if (!p.subnet.cidr) {
        out.push({ mac: p.mac, subnetUuid: p.subnet.uuid, ip: null });
        continue;
      }
      for (let attempt = 0; ; attempt++) {
        const cur = await this.store.get<Subnet>('subnets', p.subnet.uuid);
        if (!cur) throw new InputError(`${p.field}.subnet`, `subnet ${p.subnet.name} was deleted`);
        const s = cur.value;
        const mine = Object.entries(s.leases).find(([, mac]) => mac === p.mac)?.[0];
        let ip = mine;
        if (!ip) {
          if (p.ip) checkFixed(s, p.ip, p.mac, `${p.field}.ip`, s.name);
          ip = p.ip ?? nextFree(s, `${p.field}.ip`, s.name);
          if ((await this.store.swap('subnets', s.uuid, { ...s, leases: { ...s.leases, [ip]: p.mac } }, cur.rev)) === undefined) {
            if (attempt > 20) throw new ConflictError(`${p.field}: subnet ${s.name} keeps changing; try again`);
            continue;
          }
        }
        out.push({ mac: p.mac, subnetUuid: s.uuid, ip });
        break;
      }
    }
    return out;
  }

  private async releaseLeases(macs: ReadonlySet<string>): Promise<void> {
    if (macs.size === 0) return;
    for (const v of await this.store.list<Subnet>('subnets')) {
      for (let attempt = 0; attempt < 20; attempt++) {
        const cur = attempt === 0 ? v : await this.store.get<Subnet>('subnets', v.value.uuid);
        if (!cur) break;
        const leases = Object.fromEntries(Object.entries(cur.value.leases).filter(([, mac]) => !macs.has(mac)));
        if (Object.keys(leases).length === Object.keys(cur.value.leases).length) break;
        if ((await this.store.swap('subnets', cur.value.uuid, { ...cur.value, leases }, cur.rev)) !== undefined) break;
      }
    }
  }

  private async deleteVdiskIfOwned(vdisk: string, owner: string): Promise<void> {
    const held = await this.store.claimOf(vdisk);
    if (held !== null && held !== owner) return;
    await this.d.storage.deleteVdisk(vdisk).catch((e: unknown) => {
      if (!(e instanceof NotFoundError)) throw e;
    });
    await this.store.release(vdisk, owner);
  }

  // ---- VM tasks -------------------------------------------------------------------------------------

  private async runCreate(r: TaskRun): Promise<Record<string, unknown>> {
    const uuid = r.task.entity.uuid;
    const spec = r.task.request['spec'] as VmCreateRequest;
    const done = await this.store.get<VmRecord>('vms', uuid);
    if (done?.value.lastTask === r.task.uuid) return { vm: uuid };
    r.progress(1, 'checking the request');
    const diskPlans = await this.planDisks(r.task, spec.disks, 'disks', await this.d.storage.vdisks());
    const nicPlans = await this.planNics(r.task, spec.nics ?? [], 'nics');
    const disks = await this.makeDisks(r, uuid, diskPlans, 5, 90);
    r.progress(92, 'leasing addresses');
    const nics = await this.leaseNics(nicPlans);
    const rec: VmRecord = {
      uuid, name: spec.name, specVersion: 1, vcpus: spec.vcpus, memoryMiB: spec.memoryMiB, disks, nics, ha: spec.ha ?? true, powerState: 'off', host: null, epoch: 0,
      runtimeState: 'off', createdAt: new Date(this.clock.now()).toISOString(), owned: diskPlans.filter((p) => p.kind === 'new').map((p) => p.vdisk), lastTask: r.task.uuid,
    };
    if ((await this.store.swap('vms', uuid, rec, '0')) === undefined) throw new ConflictError(`VM ${uuid} exists`);
    if (spec.powerOn) await this.enqueue('vm.power', r.task.entity, { action: 'on' }, r.task.uuid, derivedUuid(r.task.uuid, 'power-on'));
    return { vm: uuid };
  }

  /** Removes what a create or clone made: its new vdisks, its claims, its leases, its record. */
  private async undoCreate(r: TaskRun): Promise<void> {
    const uuid = r.task.entity.uuid;
    const rec = await this.store.get<VmRecord>('vms', uuid);
    if (rec && rec.value.lastTask !== r.task.uuid) return; // not this task's VM
    const prefix = `vm-${uuid}-${r.task.uuid.slice(0, 8)}-`;
    for (const v of await this.d.storage.vdisks()) if (v.name.startsWith(prefix)) await this.deleteVdiskIfOwned(v.name, uuid);
    const spec = r.task.request['spec'] as VmCreateRequest | undefined;
    for (const dk of spec?.disks ?? []) if ('vdisk' in dk) await this.store.release(dk.vdisk, uuid);
    const count = spec?.nics?.length ?? (rec?.value.nics.length ?? 8);
    const macs = new Set([...Array.from({ length: Math.max(count, 8) }, (_, i) => macOf(r.task.uuid, i)), ...(spec?.nics ?? []).flatMap((n) => (n.mac ? [n.mac] : []))]);
    await this.releaseLeases(macs);
    if (rec) await this.store.deleteAt('vms', uuid, rec.rev);
  }

  private async runClone(r: TaskRun): Promise<Record<string, unknown>> {
    const uuid = r.task.entity.uuid;
    const done = await this.store.get<VmRecord>('vms', uuid);
    if (done?.value.lastTask === r.task.uuid) return { vm: uuid };
    const src = (await this.vmRecord(String(r.task.request['source']))).value;
    if (src.powerState !== 'off') throw new ConflictError(`VM ${src.name} is ${src.powerState}; power it off to clone it`);
    const vdisks = await this.d.storage.vdisks();
    const plans: DiskPlan[] = src.disks.map((dk, i) => {
      if (dk.bus === 'cdrom') return { kind: 'cdrom', vdisk: dk.vdisk, sizeBytes: dk.sizeBytes, image: dk.image ?? '' };
      const container = vdisks.find((v) => v.name === dk.vdisk)?.container ?? DEFAULT_CONTAINER;
      return { kind: 'new', vdisk: `vm-${uuid}-${r.task.uuid.slice(0, 8)}-${i}`, sizeBytes: dk.sizeBytes, container, bus: dk.bus, image: dk.image, copyFrom: dk.vdisk };
    });
    const nicPlans = await this.planNics(r.task, src.nics.map((n) => ({ subnet: n.subnetUuid })), 'nics');
    const disks = await this.makeDisks(r, uuid, plans, 5, 90);
    const nics = await this.leaseNics(nicPlans);
    const rec: VmRecord = {
      ...src, uuid, name: String(r.task.request['name']), specVersion: 1, disks, nics, powerState: 'off', host: null, epoch: 0, runtimeState: 'off',
      createdAt: new Date(this.clock.now()).toISOString(), owned: plans.filter((p) => p.kind === 'new').map((p) => p.vdisk), lastTask: r.task.uuid,
    };
    if ((await this.store.swap('vms', uuid, rec, '0')) === undefined) throw new ConflictError(`VM ${uuid} exists`);
    return { vm: uuid, source: src.uuid };
  }

  private async runUpdate(r: TaskRun): Promise<Record<string, unknown>> {
    const uuid = r.task.entity.uuid;
    const u = parseVmUpdate(r.task.request['update']);
    const cur = await this.vmRecord(uuid);
    if (cur.value.lastTask === r.task.uuid) return { specVersion: cur.value.specVersion };
    const vm = cur.value;
    checkUpdate(vm, u);
    const removeDisks = u.removeDisks ?? [];
    removeDisks.forEach((name, i) => {
      if (!vm.disks.some((dk) => dk.vdisk === name)) throw new InputError(`removeDisks[${i}]`, `VM ${vm.name} has no disk ${name}`);
    });
    const removeNics = u.removeNics ?? [];
    removeNics.forEach((mac, i) => {
      if (!vm.nics.some((n) => n.mac === mac)) throw new InputError(`removeNics[${i}]`, `VM ${vm.name} has no NIC ${mac}`);
    });
    const diskPlans = await this.planDisks(r.task, u.addDisks ?? [], 'addDisks', await this.d.storage.vdisks());
    const nicPlans = await this.planNics(r.task, u.addNics ?? [], 'addNics');
    const added = await this.makeDisks(r, uuid, diskPlans, 5, 80);
    const addedNics = await this.leaseNics(nicPlans);
    const keptDisks = vm.disks.filter((dk) => !removeDisks.includes(dk.vdisk));
    const next: VmRecord = {
      ...vm, specVersion: vm.specVersion + 1, lastTask: r.task.uuid,
      ...(u.name !== undefined ? { name: u.name } : {}), ...(u.vcpus !== undefined ? { vcpus: u.vcpus } : {}), ...(u.memoryMiB !== undefined ? { memoryMiB: u.memoryMiB } : {}),
      disks: [...keptDisks, ...added].map((dk, i) => ({ ...dk, bootIndex: i + 1 })),
      nics: [...vm.nics.filter((n) => !removeNics.includes(n.mac)), ...addedNics],
      owned: [...vm.owned.filter((x) => !removeDisks.includes(x)), ...diskPlans.filter((p) => p.kind === 'new').map((p) => p.vdisk)],
    };
    await this.store.update('vms', uuid, next, cur.rev, `VM ${vm.name}`);
    // what was taken away goes once the record no longer holds it
    for (const name of removeDisks) {
      if (vm.owned.includes(name)) await this.deleteVdiskIfOwned(name, uuid);
      else await this.store.release(name, uuid);
    }
    await this.releaseLeases(new Set(removeNics));
    return { specVersion: next.specVersion };
  }

  private async undoUpdate(r: TaskRun): Promise<void> {
    const uuid = r.task.entity.uuid;
    const rec = await this.store.get<VmRecord>('vms', uuid);
    if (!rec || rec.value.lastTask === r.task.uuid) return; // the change landed: nothing to undo
    const prefix = `vm-${uuid}-${r.task.uuid.slice(0, 8)}-`;
    for (const v of await this.d.storage.vdisks()) if (v.name.startsWith(prefix)) await this.deleteVdiskIfOwned(v.name, uuid);
    const u = r.task.request['update'] as { addDisks?: VmDiskRequest[]; addNics?: VmNicRequest[] } | undefined;
    for (const dk of u?.addDisks ?? []) if ('vdisk' in dk && !rec.value.disks.some((x) => x.vdisk === dk.vdisk)) await this.store.release(dk.vdisk, uuid);
    const mine = new Set(rec.value.nics.map((n) => n.mac));
    const macs = new Set([...(u?.addNics ?? []).map((n, i) => n.mac ?? macOf(r.task.uuid, i))].filter((m) => !mine.has(m)));
    await this.releaseLeases(macs);
  }

  private async runDelete(r: TaskRun): Promise<Record<string, unknown>> {
    const uuid = r.task.entity.uuid;
    const cur = await this.store.get<VmRecord>('vms', uuid);
    if (!cur) return { deleted: uuid }; // a resumed run that got this far
    if (cur.value.host) {
      r.progress(5, 'powering off');
      await this.stopOnHost(r, cur.value, 'off');
    }
    r.progress(40, 'deleting disks');
    const vm = (await this.vmRecord(uuid)).value;
    for (const dk of vm.disks) {
      if (dk.bus === 'cdrom') continue;
      if (vm.owned.includes(dk.vdisk)) await this.deleteVdiskIfOwned(dk.vdisk, uuid);
      else await this.store.release(dk.vdisk, uuid);
    }
    r.progress(80, 'releasing addresses');
    await this.releaseLeases(new Set(vm.nics.map((n) => n.mac)));
    // every host that ran it forgets it (its stopped copy and console log)
    await Promise.all(this.d.members().map((m) => this.d.hosts.forget(m.hostIp, uuid).catch(() => undefined)));
    await this.store.delete('vms', uuid);
    return { deleted: uuid };
  }

  /** Writes a VM record through `f`, again if someone wrote in between. */
  private async mutateVm(uuid: string, f: (vm: VmRecord) => VmRecord): Promise<VmRecord> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const cur = await this.vmRecord(uuid);
      const next = f(cur.value);
      if ((await this.store.swap('vms', uuid, next, cur.rev)) !== undefined) return next;
    }
    throw new ConflictError(`VM ${uuid} keeps changing; try again`);
  }

  private hostSpecOf(vm: VmRecord, epoch: number): HostVmSpec {
    return {
      uuid: vm.uuid, name: vm.name, vcpus: vm.vcpus, memoryMiB: vm.memoryMiB, epoch,
      disks: vm.disks.map((dk) => ({ vdisk: dk.vdisk, bus: dk.bus, ...(dk.bootIndex !== undefined ? { bootIndex: dk.bootIndex } : {}) })),
      nics: vm.nics.map((n) => ({ mac: n.mac, subnetUuid: n.subnetUuid, ip: n.ip })),
    };
  }

  /** Waits until the host reports the VM in one of `states` (or no longer has it, when `gone` counts). */
  private async waitOnHost(r: Pick<TaskRun, 'signal'>, hostIp: string, uuid: string, states: readonly string[], what: string, waitMs: number, gone = false): Promise<HostVm | undefined> {
    const deadline = this.clock.now() + waitMs;
    let last = 'no answer';
    for (;;) {
      try {
        const hv = (await this.d.hosts.vms(hostIp)).find((v) => v.spec.uuid === uuid);
        if (!hv && gone) return undefined;
        if (hv && states.includes(hv.state)) return hv;
        if (hv?.state === 'crashed' && !states.includes('crashed')) throw new UnavailableError(`the VM crashed on host ${hostIp}: ${hv.exit?.reason ?? 'QEMU ended'}`);
        last = hv ? hv.state : 'not there';
      } catch (e) {
        if (e instanceof UnavailableError && /crashed/.test(e.message)) throw e;
        last = errorMessage(e);
      }
      if (this.clock.now() > deadline) throw new TimeoutError(`host ${hostIp} did not report the VM ${what} in ${Math.round(waitMs / 1000)} s (last: ${last})`);
      await sleep(300, r.signal);
    }
  }

  /**
   * Powers a VM off (or shuts it down) on its host, waits for off, and records it off. The host
   * keeps the stopped VM (its console log: `vm console` of a VM that is off) until the VM is deleted.
   */
  private async stopOnHost(r: TaskRun, vm: VmRecord, action: 'off' | 'shutdown'): Promise<void> {
    const host = vm.host;
    if (host) {
      const hostUp = this.inventory.get(host.serial)?.view.state !== 'down';
      try {
        await this.d.hosts.power(host.hostIp, vm.uuid, action);
      } catch (e) {
        // the host does not have it (it ran elsewhere or the host restarted), or is down (HA's matter): off
        if (!(e instanceof NotFoundError) && !(e instanceof ConflictError) && hostUp) throw e;
      }
      if (hostUp) {
        await this.waitOnHost(r, host.hostIp, vm.uuid, ['off', 'crashed', 'migrated'], 'off', action === 'shutdown' ? this.o.powerWaitMs * 2 : this.o.powerWaitMs, true);
      }
    }
    await this.mutateVm(vm.uuid, (v) => ({ ...v, powerState: 'off', host: null, runtimeState: 'off', lastTask: r.task.uuid }));
  }

  private async runPower(r: TaskRun): Promise<Record<string, unknown>> {
    const uuid = r.task.entity.uuid;
    const action = r.task.request['action'] as VmPowerAction;
    const restart = r.task.request['restart'] === true;
    const exclude = (r.task.request['exclude'] as string[] | undefined) ?? [];
    const vm = (await this.vmRecord(uuid)).value;
    switch (action) {
      case 'on':
        return this.powerOn(r, vm, restart, exclude);
      case 'off':
      case 'shutdown':
        if (vm.powerState === 'off') return { powerState: 'off' };
        await this.stopOnHost(r, vm, action);
        return { powerState: 'off' };
      case 'reset':
      case 'pause':
      case 'resume': {
        if (!vm.host) throw new ConflictError(`action: the VM ${vm.name} is off`);
        const target = action === 'pause' ? 'paused' : 'on';
        await this.d.hosts.power(vm.host.hostIp, uuid, action satisfies PowerAction);
        const next = await this.mutateVm(uuid, (v) => ({ ...v, powerState: target, lastTask: r.task.uuid }));
        return { powerState: next.powerState };
      }
    }
  }

  private async powerOn(r: TaskRun, vm: VmRecord, restart: boolean, exclude: readonly string[]): Promise<Record<string, unknown>> {
    let rec = vm;
    if (rec.lastTask !== r.task.uuid || !rec.host) {
      if (rec.powerState !== 'off' && !restart) return { powerState: rec.powerState, host: rec.host };
      // placement and the record's change in one step per leader: two power-ons cannot take the same free memory
      rec = await this.placement.run('placement', async () => {
        const host = chooseHost(this.placementView(), { vcpus: vm.vcpus, memoryMiB: vm.memoryMiB }, exclude);
        const next = await this.mutateVm(vm.uuid, (v) => ({ ...v, powerState: 'on', host: { serial: host.serial, hostIp: host.hostIp }, epoch: v.epoch + 1, runtimeState: 'starting', lastTask: r.task.uuid }));
        const st = this.inventory.get(host.serial);
        if (st) st.reserved = { memoryMiB: st.reserved.memoryMiB + vm.memoryMiB, vcpus: st.reserved.vcpus + vm.vcpus };
        return next;
      });
    }
    const host = rec.host;
    if (!host) throw new ConflictError(`VM ${vm.name} lost its placement`);
    r.progress(30, `starting on host ${host.serial} (${host.hostIp})`);
    // the host's switch must know the VM's subnets: one created a moment ago reaches the hosts at the
    // leader's next poll, and a VM started before then failed ("subnet not found")
    await this.pushNetwork();
    try {
      await this.d.hosts.define(host.hostIp, this.hostSpecOf(rec, rec.epoch));
    } catch (e) {
      // a resumed run: the host runs it already (at this epoch)
      if (!(e instanceof ConflictError)) throw e;
      const hv = (await this.d.hosts.vms(host.hostIp)).find((v) => v.spec.uuid === vm.uuid);
      if (!hv || hv.spec.epoch !== rec.epoch) throw e;
    }
    r.progress(60, `waiting for host ${host.serial} to report it running`);
    await this.waitOnHost(r, host.hostIp, vm.uuid, ['running'], 'running', this.o.powerWaitMs);
    await this.mutateVm(vm.uuid, (v) => ({ ...v, runtimeState: 'running' }));
    return { powerState: 'on', host, epoch: rec.epoch };
  }

  /** A failed power-on: stop what may have started, and record the VM off. */
  private async undoPower(r: TaskRun): Promise<void> {
    if (r.task.request['action'] !== 'on') return;
    const cur = await this.store.get<VmRecord>('vms', r.task.entity.uuid);
    if (!cur || cur.value.lastTask !== r.task.uuid) return;
    const host = cur.value.host;
    if (host) {
      await this.d.hosts.power(host.hostIp, cur.value.uuid, 'off').catch(() => undefined);
      await this.d.hosts.forget(host.hostIp, cur.value.uuid).catch(() => undefined);
    }
    await this.mutateVm(cur.value.uuid, (v) => ({ ...v, powerState: 'off', host: null, runtimeState: 'off' }));
  }

  // ---- live migration -------------------------------------------------------------------------------

  /** What a host reports of a VM: `answered` false when it did not answer. */
  private async copyOn(hostIp: string, uuid: string): Promise<{ answered: boolean; copy: HostVm | undefined }> {
    try {
      return { answered: true, copy: (await this.d.hosts.vms(hostIp)).find((v) => v.spec.uuid === uuid) };
    } catch {
      return { answered: false, copy: undefined };
    }
  }

  /** Stops and forgets a host's copy of a VM (power off, then DELETE; tolerates what is gone already). */
  private async dropCopy(hostIp: string, uuid: string): Promise<void> {
    await this.d.hosts.power(hostIp, uuid, 'off').catch(() => undefined);
    const signal = AbortSignal.timeout(15_000);
    for (;;) {
      try {
        await this.d.hosts.forget(hostIp, uuid);
        return;
      } catch (e) {
        if (e instanceof NotFoundError) return;
        if (signal.aborted) throw e;
      }
      await sleep(300, signal).catch(() => undefined);
    }
  }

  /** Changes the record's migration if it is still this task's. */
  private async saveMigrating(uuid: string, task: string, change: Partial<Migrating>): Promise<Migrating> {
    const next = await this.mutateVm(uuid, (v) => (v.migrating?.task === task ? { ...v, migrating: { ...v.migrating, ...change } } : v));
    if (next.migrating?.task !== task) throw new ConflictError(`VM ${next.name} was placed again meanwhile (epoch ${next.epoch}, host ${next.host?.serial ?? 'none'}); the migration stops`);
    return next.migrating;
  }

  /** The move landed: the record's host is the target (the source's migrated copy is forgotten). */
  private async commitMigration(uuid: string, mig: Migrating, state: string): Promise<Record<string, unknown>> {
    const next = await this.mutateVm(uuid, (v) => (v.migrating?.task === mig.task ? { ...v, host: mig.to, epoch: mig.epoch, migrating: null, runtimeState: state, lastTask: mig.task } : v));
    if (next.host?.serial !== mig.to.serial || next.epoch !== mig.epoch) throw new ConflictError(`VM ${next.name} was placed again meanwhile (epoch ${next.epoch}); the migration stops`);
    await this.d.hosts.forget(mig.from.hostIp, uuid).catch(() => undefined);
    const res = mig.result;
    return { hostIp: mig.to.hostIp, serial: mig.to.serial, from: mig.from.serial, epoch: mig.epoch, downtimeMs: res?.downtimeMs ?? null, totalMs: res?.totalMs ?? null, transferredBytes: res?.transferredBytes ?? null };
  }

  /**
   * vm.migrate: the target chosen and the epoch raised on the record (compare-and-swap, with the
   * migration kept there), then step by step as migrationStep says from what both hosts report —
   * so a new leader resuming the task carries on (or just finishes when the target runs it).
   */
  private async runMigrate(r: TaskRun): Promise<Record<string, unknown>> {
    const uuid = r.task.entity.uuid;
    const wanted = (r.task.request['host'] as string | null | undefined) ?? undefined;
    const cur = await this.vmRecord(uuid);
    let mig = cur.value.migrating?.task === r.task.uuid ? cur.value.migrating : undefined;
    if (!mig) {
      const vm = cur.value;
      if (vm.lastTask === r.task.uuid && vm.host) return { hostIp: vm.host.hostIp, serial: vm.host.serial, epoch: vm.epoch, downtimeMs: null, totalMs: null, transferredBytes: null };
      const from = vm.host;
      if (!from || vm.powerState === 'off') throw new ConflictError(`VM ${vm.name} is off; only a running VM migrates`);
      if (vm.migrating) throw new ConflictError(`VM ${vm.name} is being migrated by task ${vm.migrating.task}`);
      // the target chosen and the record changed in one step per leader: two moves cannot take the same room
      mig = await this.placement.run('placement', async () => {
        const target = chooseMigrationTarget(this.placementView(), { ...vm, host: from }, wanted);
        const m: Migrating = { task: r.task.uuid, from, to: { serial: target.serial, hostIp: target.hostIp }, fromEpoch: vm.epoch, epoch: vm.epoch + 1, port: null, result: null };
        await this.store.update('vms', uuid, { ...vm, epoch: m.epoch, migrating: m, lastTask: r.task.uuid } satisfies VmRecord, cur.rev, `VM ${vm.name}`);
        const st = this.inventory.get(target.serial);
        if (st) st.reserved = { memoryMiB: st.reserved.memoryMiB + vm.memoryMiB, vcpus: st.reserved.vcpus + vm.vcpus };
        return m;
      });
    }
    r.progress(5, `moving from host ${mig.from.serial} to host ${mig.to.serial} (epoch ${mig.epoch})`);
    let waits = 0;
    let drops = 0;
    for (;;) {
      if (r.signal.aborted) throw r.signal.reason;
      const rec = (await this.vmRecord(uuid)).value;
      if (rec.migrating?.task !== r.task.uuid) throw new ConflictError(`VM ${rec.name} was placed again meanwhile (epoch ${rec.epoch}, host ${rec.host?.serial ?? 'none'}); the migration stops`);
      mig = rec.migrating;
      const [src, tgt] = await Promise.all([this.copyOn(mig.from.hostIp, uuid), this.copyOn(mig.to.hostIp, uuid)]);
      const copy = (c: HostVm | undefined): { epoch: number; state: string } | undefined => (c ? { epoch: c.spec.epoch, state: c.state } : undefined);
      const step = !src.answered || !tgt.answered
        ? { kind: 'wait' as const, reason: `host ${!src.answered ? mig.from.serial : mig.to.serial} does not answer` }
        : migrationStep(mig, copy(src.copy), copy(tgt.copy));
      switch (step.kind) {
        case 'prepare': {
          r.progress(10, `starting an incoming QEMU on host ${mig.to.serial}`);
          const { port } = await this.d.hosts.incoming(mig.to.hostIp, this.hostSpecOf(rec, mig.epoch));
          await this.saveMigrating(uuid, r.task.uuid, { port });
          break;
        }
        case 'send': {
          r.progress(20, `sending the VM from host ${mig.from.serial} to host ${mig.to.serial}:${step.port}`);
          const result = await this.d.hosts.migrate(mig.from.hostIp, uuid, { targetHostIp: mig.to.hostIp, port: step.port }, r.signal);
          await this.saveMigrating(uuid, r.task.uuid, { result });
          r.progress(90, `sent in ${result.totalMs} ms (downtime ${result.downtimeMs} ms)`);
          break;
        }
        case 'drop-target':
          if (++drops > 3) throw new UnavailableError(`host ${mig.to.serial} cannot take the VM: ${step.reason}`);
          await this.dropCopy(mig.to.hostIp, uuid);
          await this.saveMigrating(uuid, r.task.uuid, { port: null });
          break;
        case 'wait':
          // the source sending it: as long as the task's timeout allows; anything else: at most a minute
          if (!/sending/.test(step.reason) && ++waits > 200) throw new TimeoutError(`the migration did not settle in a minute: ${step.reason}`);
          await sleep(300, r.signal);
          break;
        case 'done': {
          // a guest stopped for the copy (TCG) waits paused on the target: it ran before, so it runs again
          let state = tgt.copy?.state ?? 'running';
          if (state === 'paused' && (mig.result?.resumeOnTarget ?? rec.runtimeState === 'running')) {
            const t0 = Date.now();
            await this.d.hosts.power(mig.to.hostIp, uuid, 'resume');
            state = 'running';
            if (mig.result) mig = { ...mig, result: { ...mig.result, downtimeMs: mig.result.downtimeMs + (Date.now() - t0) } };
          }
          return this.commitMigration(uuid, mig, state);
        }
        case 'lost':
          throw new UnavailableError(`VM ${rec.name} was lost in the migration: ${step.reason}`);
        default: {
          const never: never = step;
          throw new Error(`unknown migration step ${JSON.stringify(never)}`);
        }
      }
    }
  }

  /**
   * A failed migration: if the VM did arrive, the move is recorded after all; otherwise the
   * target's copy (its incoming QEMU) is dropped, and the record goes back to the source at the
   * epoch the source runs it at (or off, when the source answers that it no longer runs it).
   */
  private async undoMigrate(r: TaskRun): Promise<void> {
    const uuid = r.task.entity.uuid;
    const cur = await this.store.get<VmRecord>('vms', uuid);
    const mig = cur?.value.migrating;
    if (!mig || mig.task !== r.task.uuid) return; // nothing recorded, or placed since by someone else (a leftover copy is the reconcile's)
    const [src, tgt] = await Promise.all([this.copyOn(mig.from.hostIp, uuid), this.copyOn(mig.to.hostIp, uuid)]);
    if (src.answered && tgt.answered) {
      const step = migrationStep(mig, src.copy && { epoch: src.copy.spec.epoch, state: src.copy.state }, tgt.copy && { epoch: tgt.copy.spec.epoch, state: tgt.copy.state });
      if (step.kind === 'done') {
        await this.commitMigration(uuid, mig, tgt.copy?.state ?? 'running');
        return;
      }
    }
    if (!tgt.answered || (tgt.copy && tgt.copy.spec.epoch === mig.epoch)) await this.dropCopy(mig.to.hostIp, uuid).catch((e: unknown) => this.d.log(`VM service: dropping ${cur.value.name}'s incoming copy on host ${mig.to.serial}: ${errorMessage(e)}`));
    const s = src.copy;
    const gone = src.answered && !(s && s.spec.epoch === mig.fromEpoch && ['starting', 'running', 'paused', 'shutting-down', 'migrating'].includes(s.state));
    await this.mutateVm(uuid, (v) => (v.migrating?.task === mig.task ? { ...v, epoch: mig.fromEpoch, migrating: null, ...(gone ? { powerState: 'off' as const, host: null, runtimeState: s?.state ?? 'off' } : {}) } : v));
  }

  // ---- images -------------------------------------------------------------------------------------

  private async runImport(r: TaskRun): Promise<Record<string, unknown>> {
    const uuid = r.task.entity.uuid;
    const req = r.task.request as { name: string; source: string; url: string | null; format?: 'raw' | 'qcow2' | 'iso'; container?: string; file?: string; cvmIp?: string };
    const cur = await this.store.get<Image>('images', uuid);
    if (!cur) throw new NotFoundError('image', uuid);
    if (cur.value.state === 'ready') return { image: uuid };
    let file = req.file;
    const downloaded = join(this.d.tmpDir, `${uuid}.download`);
    try {
      if (req.url) {
        file = downloaded;
        r.progress(1, `downloading ${req.url}`);
        await download(req.url, file, { signal: r.signal, onProgress: (bytes, total) => r.progress(total ? (40 * bytes) / total : 1, `downloading ${req.url}: ${Math.round(bytes / MiB)} MiB${total ? ` of ${Math.round(total / MiB)}` : ''}`) });
      } else if (!file || req.cvmIp !== this.d.self.cvmIp) {
        throw new UnavailableError(`the uploaded file was kept by CVM ${req.cvmIp ?? '?'}, which no longer leads the VM service; upload it again`);
      }
      r.progress(40, 'reading the image');
      const info = await imageInfo(file, r.signal);
      const format = req.format === 'iso' ? 'raw' : info.format === 'qcow2' ? 'qcow2' : 'raw';
      if (req.format === 'qcow2' && info.format !== 'qcow2') throw new InputError('format', `the file is ${info.format}, not qcow2`);
      const sizeBytes = Math.ceil(info.virtualSize / MiB) * MiB;
      if (sizeBytes === 0) throw new InputError(req.url ? 'url' : 'body', 'the image is empty');
      const container = req.container ?? IMAGE_CONTAINER;
      if (!(await this.d.storage.containers()).some((c) => c.name === container)) {
        if (req.container) throw new InputError('container', `no container named ${container}`);
        await this.d.storage.createContainer({ name: container }).catch((e: unknown) => {
          if (!(e instanceof ConflictError)) throw e;
        });
      }
      const vdisk = cur.value.vdisk;
      await this.store.claim(vdisk, `image:${uuid}`, 'vdisk');
      if (!(await this.d.storage.vdisks()).some((v) => v.name === vdisk)) await this.d.storage.createVdisk({ name: vdisk, size: sizeBytes, container });
      r.progress(45, `writing ${vdisk}`);
      await convert(file, format, nbdUri(this.socket(), vdisk), { signal: r.signal, onProgress: (pct) => r.progress(45 + pct * 0.54, `writing ${vdisk}: ${Math.round(pct)} %`) });
      const image: Image = { ...cur.value, format: req.format ?? (format === 'qcow2' ? 'qcow2' : 'raw'), sizeBytes, state: 'ready' };
      await this.store.put('images', uuid, image);
      return { image: uuid, sizeBytes, format: info.format };
    } finally {
      rmSync(downloaded, { force: true });
      if (req.file && req.cvmIp === this.d.self.cvmIp) rmSync(req.file, { force: true });
    }
  }

  private async undoImport(r: TaskRun): Promise<void> {
    const uuid = r.task.entity.uuid;
    const cur = await this.store.get<Image>('images', uuid);
    if (!cur) return;
    await this.deleteVdiskIfOwned(cur.value.vdisk, `image:${uuid}`);
    // nothing half-made: the failed task says why; no image is left that holds nothing
    await this.store.delete('images', uuid);
  }

  // ---- HA (docs/ha.md): the monitor on the leader, behind HaPorts -------------------------------------

  private startHa(): void {
    const h = this.o.ha;
    const ha = new HaMonitor({
      clock: this.clock, place: this.place, log: this.d.log,
      ...(h.pollMs !== undefined ? { pollMs: h.pollMs } : {}), ...(h.pollTimeoutMs !== undefined ? { pollTimeoutMs: h.pollTimeoutMs } : {}),
      ...(h.fenceTimeoutMs !== undefined ? { fenceTimeoutMs: h.fenceTimeoutMs } : {}), ...(h.restartTimeoutMs !== undefined ? { restartTimeoutMs: h.restartTimeoutMs } : {}),
      ha: Object.fromEntries(Object.entries({ downAfterMs: h.downAfterMs, fenceRetryMs: h.fenceRetryMs, fenceRetryMaxMs: h.fenceRetryMaxMs, restartRetryMs: h.restartRetryMs }).filter((e) => e[1] !== undefined)),
      ports: {
        view: async () => ({ hosts: this.placementView(), vms: await this.listVms() }),
        pollHost: (host, signal) => untilAborted(this.d.hosts.vms(host.hostIp), signal).then((l) => l.map((v) => ({ uuid: v.spec.uuid, state: v.state }))),
        fence: (serial, signal) => this.fencing.fence(serial, signal),
        powerOn: (serial, signal) => this.fencing.powerOn(serial, signal),
        restartVm: (uuid, host, epoch) => this.haRestart(uuid, host, epoch),
        loadFenceRecords: async () => Object.values(await this.d.etcd.getAll().prefix(HA_FENCES_PREFIX).strings()).map((v) => JSON.parse(v) as FenceRecord),
        saveFenceRecord: async (rec) => {
          await this.d.etcd.put(HA_FENCES_PREFIX + rec.host).value(JSON.stringify(rec));
        },
        deleteFenceRecord: async (host) => {
          await this.d.etcd.delete().key(HA_FENCES_PREFIX + host);
        },
        record: (e) => this.haRecord(e),
      },
    });
    this.ha = ha;
    void ha.start().catch((e: unknown) => this.d.log(`VM service: HA did not start: ${errorMessage(e)}`));
  }

  /** A fenced host's state as HA sees it (undefined: not watched, e.g. on a follower). */
  haLiveness(serial: string): Liveness | undefined {
    return this.ha?.liveness(serial);
  }

  /**
   * HaPorts.restartVm: {host, epoch} stored on the VM's record only if its epoch is still epoch - 1
   * (one placement per epoch, whichever leader asks), then the VM started there; resolves once the
   * host reports it running.
   */
  private async haRestart(uuid: string, serial: string, epoch: number): Promise<void> {
    const m = this.d.members().find((x) => x.serial === serial);
    if (!m) throw new NotFoundError('host', serial);
    this.haRestarting.add(uuid);
    try {
      let rec: VmRecord | undefined;
      for (let attempt = 0; attempt < 20 && !rec; attempt++) {
        const cur = await this.vmRecord(uuid);
        if (cur.value.epoch === epoch && cur.value.host?.serial === serial) {
          rec = cur.value; // stored already (a retry)
          break;
        }
        if (cur.value.epoch !== epoch - 1) throw new ConflictError(`VM ${cur.value.name} is at epoch ${cur.value.epoch}, not ${epoch - 1}: placed by someone else meanwhile`);
        const { haBlocked: _h, ...rest } = cur.value;
        const next: VmRecord = { ...rest, host: { serial, hostIp: m.hostIp }, epoch, runtimeState: 'starting', migrating: null };
        if ((await this.store.swap('vms', uuid, next, cur.rev)) !== undefined) rec = next;
      }
      if (!rec) throw new ConflictError(`VM ${uuid} keeps changing; the restart is tried again`);
      const st = this.inventory.get(serial);
      if (st) st.reserved = { memoryMiB: st.reserved.memoryMiB + rec.memoryMiB, vcpus: st.reserved.vcpus + rec.vcpus };
      try {
        await this.d.hosts.define(m.hostIp, this.hostSpecOf(rec, epoch));
      } catch (e) {
        if (!(e instanceof ConflictError)) throw e;
        const hv = (await this.d.hosts.vms(m.hostIp)).find((v) => v.spec.uuid === uuid);
        if (!hv || hv.spec.epoch !== epoch) throw e;
      }
      await this.waitOnHost({ signal: AbortSignal.timeout(this.o.powerWaitMs) }, m.hostIp, uuid, ['running'], 'running', this.o.powerWaitMs);
      await this.mutateVm(uuid, (v) => (v.epoch === epoch ? { ...v, runtimeState: 'running' } : v));
    } finally {
      this.haRestarting.delete(uuid);
    }
  }

  /** HaPorts.record: HA's decisions and outcomes as tasks (host.fence, vm.ha-restart), host states and the VMs' haBlocked. */
  private haRecord(e: HaEvent): void {
    const write = (f: () => Promise<void>): void => {
      this.haWrites = this.haWrites.then(f).catch((err: unknown) => this.d.log(`VM service: recording HA's ${e.kind}: ${errorMessage(err)}`));
    };
    const vmEntity = (uuid: string, name: string): TaskEntity => ({ kind: 'vm', uuid, name });
    const hostEntity = (serial: string): TaskEntity => ({ kind: 'host', uuid: serial, name: serial });
    switch (e.kind) {
      case 'host-state': {
        const st = this.inventory.get(e.host);
        if (st) this.showState(st);
        return;
      }
      case 'fence': {
        const uuid = this.haTask(write, 'host.fence', hostEntity(e.host), { attempt: e.attempt }, null, `powering host ${e.host} off through its BMC (attempt ${e.attempt})`);
        this.fenceTask.set(e.host, uuid);
        this.lastFenceTask.set(e.host, uuid);
        return;
      }
      case 'fence-done': {
        const uuid = this.fenceTask.get(e.host);
        this.fenceTask.delete(e.host);
        if (uuid) this.haFinish(write, uuid, e.ok ? { ok: { host: e.host, tookMs: e.tookMs } } : { error: new UnavailableError(`host ${e.host} could not be fenced: ${e.reason ?? 'no reason'}`) });
        const st = this.inventory.get(e.host);
        if (st) this.showState(st);
        return;
      }
      case 'restart': {
        const uuid = this.haTask(write, 'vm.ha-restart', vmEntity(e.vm, e.name), { from: e.from, host: e.host, epoch: e.epoch }, this.lastFenceTask.get(e.from) ?? null, `starting on host ${e.host} at epoch ${e.epoch} (host ${e.from} was fenced)`);
        this.restartTask.set(e.vm, uuid);
        return;
      }
      case 'restart-done': {
        const uuid = this.restartTask.get(e.vm);
        this.restartTask.delete(e.vm);
        if (uuid) this.haFinish(write, uuid, e.ok ? { ok: { host: e.host, epoch: e.epoch } } : { error: new UnavailableError(`the restart on host ${e.host} failed: ${e.reason ?? 'no reason'}`) });
        return;
      }
      case 'ha-blocked':
        write(async () => {
          await this.mutateVm(e.vm, (v) => ({ ...v, haBlocked: e.reason }));
        });
        this.haFinish(write, this.haTask(write, 'vm.ha-restart', vmEntity(e.vm, e.name), { from: e.host }, this.lastFenceTask.get(e.host) ?? null, 'ha-blocked'), { error: new UnavailableError(`ha-blocked: ${e.reason}`) });
        return;
      case 'not-restarted':
        // the VM's host is fenced and its HA is off: it is off
        write(async () => {
          await this.mutateVm(e.vm, (v) => (v.host?.serial === e.host ? { ...v, powerState: 'off', host: null, runtimeState: 'off' } : v));
        });
        this.haFinish(write, this.haTask(write, 'vm.ha-restart', vmEntity(e.vm, e.name), { from: e.host }, this.lastFenceTask.get(e.host) ?? null, 'not restarted'), { error: new ConflictError(`not restarted: ${e.reason}; recorded off`) });
        return;
      case 'record-fence':
      case 'forget-fence':
        return; // the monitor persists them itself
      default: {
        const never: never = e;
        throw new Error(`unknown HA event ${JSON.stringify(never)}`);
      }
    }
  }

  /** A task HA writes itself, running (the runner skips it while this leader's HA has it). */
  private haTask(write: (f: () => Promise<void>) => void, operation: string, entity: TaskEntity, request: Record<string, unknown>, parent: string | null, message: string): string {
    const uuid = randomUUID();
    this.haOwned.add(uuid);
    const now = this.clock.now();
    write(async () => {
      await this.store.put('tasks', uuid, startTask(newTask({ uuid, operation, entity, request, parent }, now), now, message));
    });
    return uuid;
  }

  private haFinish(write: (f: () => Promise<void>) => void, uuid: string, outcome: { ok: Record<string, unknown> } | { error: unknown }): void {
    const now = this.clock.now();
    write(async () => {
      try {
        const t = await this.store.get<Task>('tasks', uuid);
        if (!t || isFinished(t.value)) return;
        await this.store.put('tasks', uuid, 'ok' in outcome ? succeedTask(t.value, now, outcome.ok) : failTask(t.value, now, outcome.error));
      } finally {
        this.haOwned.delete(uuid);
      }
    });
  }

  private async runHostPowerOn(r: TaskRun): Promise<Record<string, unknown>> {
    const serial = r.task.entity.uuid;
    const ha = this.ha;
    if (!ha) throw new UnavailableError('HA does not run on this CVM');
    if (ha.liveness(serial) !== 'fenced') return { host: serial, poweredOn: false, state: ha.liveness(serial) ?? 'unknown' };
    r.progress(10, `powering host ${serial} on through its BMC`);
    await ha.powerOn(serial);
    return { host: serial, poweredOn: true };
  }

  // ---- hosts: inventory, reconcile, network ------------------------------------------------------

  /** A host's state from its poll, its maintenance flags and HA's liveness (core/vm-migration.ts hostStateOf). */
  private showState(st: HostState): void {
    const state = hostStateOf({ answers: st.answers, maintenance: st.flags.maintenance === true, evacuating: st.flags.evacuating === true, liveness: this.ha?.liveness(st.member.serial) });
    if (state !== st.view.state) st.view = { ...st.view, state };
  }

  private placementView(): VmHost[] {
    return [...this.inventory.values()].map((h) => ({ ...h.view, freeMemoryMiB: h.view.freeMemoryMiB - h.reserved.memoryMiB, freeVcpus: h.view.freeVcpus - h.reserved.vcpus }));
  }

  private async poll(): Promise<void> {
    if (!this.isLeader) return;
    const members = this.d.members();
    const flags = new Map((await this.store.list<HostFlags>('hosts').catch(() => [])).map((v) => [v.id, v.value]));
    const now = this.clock.now();
    await Promise.all(members.map(async (m) => {
      const f = flags.get(m.serial) ?? {};
      let st = this.inventory.get(m.serial);
      if (!st) {
        st = { member: m, vms: [], lastOk: null, answers: false, flags: f, reserved: { memoryMiB: 0, vcpus: 0 }, view: { serial: m.serial, hostIp: m.hostIp, cvmIp: m.cvmIp, state: 'down', memoryMiB: 0, freeMemoryMiB: 0, vcpus: 0, freeVcpus: 0, vms: 0 } };
        this.inventory.set(m.serial, st);
      }
      st.flags = f;
      try {
        const [res, vms] = await Promise.all([this.d.hosts.resources(m.hostIp), this.d.hosts.vms(m.hostIp)]);
        const wasDown = !st.answers || st.view.state === 'down' || st.view.state === 'fenced';
        st.lastOk = now;
        st.answers = true;
        st.vms = vms;
        st.reserved = { memoryMiB: 0, vcpus: 0 };
        st.capacity = { memoryMiB: res.memoryMiB - res.cvmMemoryMiB, vcpus: res.vcpus - res.cvmVcpus };
        const active = vms.filter((v) => !['off', 'crashed', 'migrated'].includes(v.state));
        st.view = {
          serial: m.serial, hostIp: m.hostIp, cvmIp: m.cvmIp, state: 'up', memoryMiB: res.memoryMiB, freeMemoryMiB: res.freeMemoryMiB,
          vcpus: res.vcpus, freeVcpus: Math.max(0, res.vcpus - res.cvmVcpus - res.vmVcpus), vms: active.length,
        };
        // a host back from down, or restarted between two polls (its switch starts empty): its network again
        if (wasDown || (res.bootId !== undefined && st.bootId !== undefined && res.bootId !== st.bootId)) this.pushed.delete(m.hostIp);
        if (res.bootId !== undefined) st.bootId = res.bootId;
      } catch {
        if (st.lastOk === null || now - st.lastOk >= this.o.downAfterMs) st.answers = false;
      }
      this.showState(st);
    }));
    for (const serial of [...this.inventory.keys()]) if (!members.some((m) => m.serial === serial)) this.inventory.delete(serial);
    await this.reconcile().catch((e: unknown) => this.d.log(`VM service: reconcile: ${errorMessage(e)}`));
    await this.pushNetwork().catch((e: unknown) => this.d.log(`VM service: network: ${errorMessage(e)}`));
  }

  /**
   * What hosts report against what each VM should be: a VM its guest powered off (or that crashed)
   * is recorded off; a copy at a lower epoch than the record's (a stale placement) is stopped; a VM
   * whose host is down is left as it is (HA's matter: restartElsewhere).
   */
  private async reconcile(): Promise<void> {
    if (!this.isLeader) return;
    const open = new Set([...(await this.openTasks()).map((t) => t.entity.uuid), ...this.haRestarting]);
    const records = new Map((await this.store.list<VmRecord>('vms')).map((v) => [v.value.uuid, v.value]));
    for (const st of this.inventory.values()) {
      if (st.view.state === 'down' || st.view.state === 'fenced' || st.lastOk === null) continue;
      for (const hv of st.vms) {
        const rec = records.get(hv.spec.uuid);
        // a copy no record holds, below the record's epoch, or on another host than the record's (a
        // failed migration's incoming QEMU the target was not told to drop): stopped
        const stale = !rec || hv.spec.epoch < rec.epoch || rec.host?.serial !== st.member.serial;
        if (stale && !open.has(hv.spec.uuid) && !['off', 'crashed', 'migrated'].includes(hv.state)) {
          this.d.log(`VM service: host ${st.member.serial} runs ${hv.spec.name} (${hv.spec.uuid}) at epoch ${hv.spec.epoch}, ${rec ? `placed at epoch ${rec.epoch} on ${rec.host?.serial ?? 'no host'}` : 'which no record holds'}: stopping it`);
          await this.d.hosts.power(st.member.hostIp, hv.spec.uuid, 'off').catch(() => undefined);
        }
      }
    }
    for (const rec of records.values()) {
      if (!rec.host || open.has(rec.uuid)) continue;
      const st = this.inventory.get(rec.host.serial);
      if (!st || st.lastOk === null || st.view.state === 'down' || st.view.state === 'fenced') {
        if (rec.runtimeState !== 'unknown') await this.mutateVm(rec.uuid, (v) => ({ ...v, runtimeState: 'unknown' })).catch(() => undefined);
        continue;
      }
      const hv = st.vms.find((v) => v.spec.uuid === rec.uuid && v.spec.epoch === rec.epoch);
      const state = hv?.state ?? 'unknown';
      if (hv && (hv.state === 'off' || hv.state === 'crashed') && rec.powerState !== 'off') {
        this.d.log(`VM service: ${rec.name} is ${hv.state} on host ${rec.host.serial}${hv.exit ? ` (${hv.exit.reason})` : ''}: recorded off`);
        await this.mutateVm(rec.uuid, (v) => ({ ...v, powerState: 'off', host: null, runtimeState: hv.state })).catch(() => undefined);
        continue;
      }
      if (state !== rec.runtimeState || (rec.haBlocked !== undefined && state === 'running')) {
        await this.mutateVm(rec.uuid, (v) => {
          const { haBlocked: _h, ...rest } = v;
          return state === 'running' ? { ...rest, runtimeState: state } : { ...v, runtimeState: state };
        }).catch(() => undefined);
      }
    }
  }

  /** Every up host's switch gets the subnets and its peers (again when they change or the host came back). */
  private async pushNetwork(): Promise<void> {
    const subnets = (await this.listSubnets()).map((s) => ({ uuid: s.uuid, name: s.name, vlanId: s.vlanId, cidr: s.cidr, gateway: s.gateway, dns: s.dns }));
    const members = this.d.members();
    await Promise.all([...this.inventory.values()].filter((h) => h.view.state === 'up' || h.view.state === 'maintenance' || h.view.state === 'entering-maintenance').map(async (h) => {
      const net: HostNetwork = { subnets, peers: members.filter((m) => m.hostIp !== h.member.hostIp).map((m) => m.hostIp) };
      const body = JSON.stringify(net);
      if (this.pushed.get(h.member.hostIp) === body) return;
      try {
        await this.d.hosts.network(h.member.hostIp, net);
        this.pushed.set(h.member.hostIp, body);
      } catch (e) {
        this.d.log(`VM service: PUT /network on host ${h.member.serial}: ${errorMessage(e)}`);
        this.pushed.set(h.member.hostIp, body); // said once; tried again when the subnets or the host change
      }
    }));
  }
}
