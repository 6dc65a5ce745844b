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
import type { ConsoleChunk, HostNetwork, HostVm, HostVmSpec, PowerAction } from '../../hypervisor/protocol/vms.ts';
import { IMAGE_CONTAINER, type Accepted, type Image, type Subnet, type Task, type TaskEntity, type Vm, type VmCreateRequest, type VmDisk, type VmDiskRequest, type VmHost, type VmNic, type VmNicRequest, type VmPowerAction } from '../protocol/vms.ts';
import { DEFAULT_CONTAINER, type Vdisk } from '../core/storage.ts';
import { checkFixed, checkSubnet, nextFree } from '../core/ipam.ts';
import { failTask, isFinished, newTask, progressTask, runnable, startTask, succeedTask } from '../core/tasks.ts';
import { chooseHost } from '../core/vm-placement.ts';
import { checkPowerAction, checkUpdate, parseClone, parseImageCreate, parseImageUpload, parsePowerAction, parseSubnetCreate, parseVmCreate, parseVmUpdate } from '../core/vm-spec.ts';
import { AcropolisStore, type Versioned } from './acropolis-store.ts';
import type { HostApi } from './host-api.ts';
import { convert, download, imageInfo, nbdUri } from './image-tools.ts';
import type { StorageMeta } from './storage-meta.ts';
import { VmLeadership } from './vm-election.ts';

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
}

/** A VM as stored: the API's Vm, plus the vdisks it owns and the task that last changed it. */
interface VmRecord extends Vm {
  /** vdisks the VM owns (deleted with it). */
  owned: string[];
  lastTask: string | null;
}

interface HostFlags {
  maintenance?: boolean;
  fenced?: boolean;
}

interface HostState {
  member: ClusterMember;
  view: VmHost;
  vms: HostVm[];
  lastOk: number | null;
  /** Resources charged to placements since the last poll. */
  reserved: { memoryMiB: number; vcpus: number };
}

const DEFAULT_TIMEOUTS: Record<string, number> = {
  'vm.create': 60 * 60_000, 'vm.clone': 60 * 60_000, 'vm.update': 60 * 60_000, 'vm.delete': 10 * 60_000,
  'vm.power': 5 * 60_000, 'vm.ha-restart': 5 * 60_000, 'image.import': 2 * 60 * 60_000,
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
  const { owned: _o, lastTask: _l, ...vm } = r;
  return vm;
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
  private readonly leadership: VmLeadership;
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

  constructor(private readonly d: VmServiceDeps) {
    this.store = new AcropolisStore(d.etcd);
    this.clock = d.clock ?? new SystemClock();
    const o = d.options ?? {};
    this.o = {
      pollMs: o.pollMs ?? 2000, downAfterMs: o.downAfterMs ?? 6000, electionTtlS: o.electionTtlS ?? 10, runnerMs: o.runnerMs ?? 1000,
      powerWaitMs: o.powerWaitMs ?? 60_000, uploadLimitBytes: o.uploadLimitBytes ?? 8 * 1024 ** 3, concurrency: o.concurrency ?? 4,
      timeouts: { ...DEFAULT_TIMEOUTS, ...Object.fromEntries(Object.entries(o.timeouts ?? {}).filter((e): e is [string, number] => typeof e[1] === 'number')) },
    };
    this.leadership = new VmLeadership(d.etcd, d.self.cvmIp, this.o.electionTtlS, { elected: () => this.onElected(), lost: () => this.onLost() }, d.log);
    mkdirSync(d.tmpDir, { recursive: true });
    this.handlers = {
      'vm.create': { run: (r) => this.runCreate(r), undo: (r) => this.undoCreate(r) },
      'vm.clone': { run: (r) => this.runClone(r), undo: (r) => this.undoCreate(r) },
      'vm.update': { run: (r) => this.runUpdate(r), undo: (r) => this.undoUpdate(r) },
      'vm.delete': { run: (r) => this.runDelete(r) },
      'vm.power': { run: (r) => this.runPower(r), undo: (r) => this.undoPower(r) },
      'vm.ha-restart': { run: (r) => this.runPower(r), undo: (r) => this.undoPower(r) },
      'image.import': { run: (r) => this.runImport(r), undo: (r) => this.undoImport(r) },
      'host.maintenance': { run: (r) => this.runMaintenance(r) },
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
    return cvmCall<T>(ip, path, { method, ...(body === undefined ? {} : { body }), identity: this.d.identity, timeoutMs: 30_000 });
  }

  /** Streams an upload on to the leader (PUT /images/upload), body and all. */
  async forwardUpload<T>(path: string, body: Readable, headers: Record<string, string>): Promise<T> {
    const ip = await this.leaderToForwardTo();
    const r = await request(`https://${ip}:${CVM_API_PORT}${path}`, { method: 'PUT', body, headers, dispatcher: agentOf(this.d.identity), headersTimeout: 0, bodyTimeout: 0 }).catch((e: unknown) => {
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
  }

  private onLost(): void {
    if (this.pollTimer) clearTimeout(this.pollTimer);
    if (this.runTimer) clearTimeout(this.runTimer);
    this.pollTimer = undefined;
    this.runTimer = undefined;
    for (const x of this.running.values()) x.ac.abort(new Abandoned('this CVM no longer leads the VM service'));
    this.inventory.clear();
    this.pushed.clear();
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

  /** The hosts as the leader sees them (its poll of every member's host agent). */
  hosts(): VmHost[] {
    this.requireLeader();
    return [...this.inventory.values()].map((h) => ({ ...h.view })).sort((a, b) => a.serial.localeCompare(b.serial));
  }

  /** What each host reported last (the HA seam: which VMs a host ran when it was last seen). */
  hostVms(serial: string): HostVm[] {
    return this.inventory.get(serial)?.vms ?? [];
  }

  /** The serial console of a VM, from the host that runs it. */
  async console(uuid: string, offset: number): Promise<ConsoleChunk> {
    const vm = (await this.vmRecord(uuid)).value;
    if (!vm.host) throw new ConflictError(`VM ${vm.name} runs on no host (it is off)`);
    return this.d.hosts.console(vm.host.hostIp, uuid, offset);
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

  /**
   * The HA seam: places a VM again on another host than `excludeHost` (serial or host IP), with a
   * raised epoch. For a VM whose host failed (fenced); `parent` is the HA task that asks.
   */
  async restartElsewhere(vmUuid: string, excludeHost: string, parent: string | null = null): Promise<Accepted> {
    this.requireLeader();
    const vm = (await this.vmRecord(vmUuid)).value;
    return this.enqueue('vm.ha-restart', { kind: 'vm', uuid: vmUuid, name: vm.name }, { action: 'on', exclude: [excludeHost], restart: true }, parent);
  }

  /** Sets a host's flags (the HA helper: fenced; maintenance): placement skips hosts flagged either way. */
  async markHost(serial: string, flags: HostFlags): Promise<void> {
    const cur = (await this.store.get<HostFlags>('hosts', serial))?.value ?? {};
    await this.store.put('hosts', serial, { ...cur, ...flags });
  }

  /** POST /hosts/:id/maintenance: a host (serial or host IP) takes no new VMs while in maintenance. */
  async setMaintenance(id: string, body: unknown): Promise<Accepted> {
    this.requireLeader();
    const enter = (body as { enter?: unknown } | null | undefined)?.enter;
    if (typeof enter !== 'boolean') throw new InputError('enter', 'must be true or false');
    const m = this.d.members().find((x) => x.serial === id || x.hostIp === id);
    if (!m) throw new NotFoundError('host', id);
    return this.enqueue('host.maintenance', { kind: 'host', uuid: m.serial, name: m.serial }, { enter });
  }

  private async runMaintenance(r: TaskRun): Promise<Record<string, unknown>> {
    const serial = r.task.entity.uuid;
    const enter = r.task.request['enter'] === true;
    await this.markHost(serial, { maintenance: enter });
    const st = this.inventory.get(serial);
    if (st) st.view = { ...st.view, state: enter && st.view.state === 'up' ? 'maintenance' : !enter && st.view.state === 'maintenance' ? 'up' : st.view.state };
    // live migration is not built yet: the VMs there keep running, and nothing new is placed there
    const running = (await this.listVms()).filter((v) => v.host?.serial === serial).map((v) => v.name);
    return { maintenance: enter, vmsStillThere: running };
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
    const uuid = randomUUID();
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
      if (this.running.has(t.uuid)) continue;
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
  private async waitOnHost(r: TaskRun, hostIp: string, uuid: string, states: readonly string[], what: string, waitMs: number, gone = false): Promise<HostVm | undefined> {
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

  /** Powers a VM off (or shuts it down) on its host, waits for off, forgets it there, and records it off. */
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
        await this.d.hosts.forget(host.hostIp, vm.uuid).catch(() => undefined);
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
    await this.store.put('images', uuid, { ...cur.value, state: 'failed', sizeBytes: 0 } satisfies Image);
  }

  // ---- hosts: inventory, reconcile, network ------------------------------------------------------

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
        st = { member: m, vms: [], lastOk: null, reserved: { memoryMiB: 0, vcpus: 0 }, view: { serial: m.serial, hostIp: m.hostIp, cvmIp: m.cvmIp, state: 'down', memoryMiB: 0, freeMemoryMiB: 0, vcpus: 0, freeVcpus: 0, vms: 0 } };
        this.inventory.set(m.serial, st);
      }
      try {
        const [res, vms] = await Promise.all([this.d.hosts.resources(m.hostIp), this.d.hosts.vms(m.hostIp)]);
        const wasDown = st.view.state === 'down' || st.view.state === 'fenced';
        st.lastOk = now;
        st.vms = vms;
        st.reserved = { memoryMiB: 0, vcpus: 0 };
        const active = vms.filter((v) => !['off', 'crashed', 'migrated'].includes(v.state));
        st.view = {
          serial: m.serial, hostIp: m.hostIp, cvmIp: m.cvmIp, state: 'up', memoryMiB: res.memoryMiB, freeMemoryMiB: res.freeMemoryMiB,
          vcpus: res.vcpus, freeVcpus: Math.max(0, res.vcpus - res.cvmVcpus - res.vmVcpus), vms: active.length,
        };
        if (wasDown) this.pushed.delete(m.hostIp);
      } catch {
        if (st.lastOk === null || now - st.lastOk >= this.o.downAfterMs) st.view = { ...st.view, state: 'down' };
      }
      if (f.fenced) st.view = { ...st.view, state: 'fenced' };
      else if (f.maintenance && st.view.state === 'up') st.view = { ...st.view, state: 'maintenance' };
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
    const open = new Set((await this.openTasks()).map((t) => t.entity.uuid));
    const records = new Map((await this.store.list<VmRecord>('vms')).map((v) => [v.value.uuid, v.value]));
    for (const st of this.inventory.values()) {
      if (st.view.state === 'down' || st.view.state === 'fenced' || st.lastOk === null) continue;
      for (const hv of st.vms) {
        const rec = records.get(hv.spec.uuid);
        const stale = !rec || hv.spec.epoch < rec.epoch;
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
        await this.d.hosts.forget(st.member.hostIp, rec.uuid).catch(() => undefined);
        continue;
      }
      if (state !== rec.runtimeState) await this.mutateVm(rec.uuid, (v) => ({ ...v, runtimeState: state })).catch(() => undefined);
    }
  }

  /** Every up host's switch gets the subnets and its peers (again when they change or the host came back). */
  private async pushNetwork(): Promise<void> {
    const subnets = (await this.listSubnets()).map((s) => ({ uuid: s.uuid, name: s.name, vlanId: s.vlanId, cidr: s.cidr, gateway: s.gateway, dns: s.dns }));
    const members = this.d.members();
    await Promise.all([...this.inventory.values()].filter((h) => h.view.state === 'up' || h.view.state === 'maintenance').map(async (h) => {
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
