/**
 * @module
 * Fakes of Prism's ports (STYLE.md C11), for tests of the API without a cluster: accounts and
 * tasks in memory, sessions over core/auth.ts's store, a fixed snapshot, a CVM API that checks
 * what the real one checks, and a TLS certificate made on the spot. `testPrism()` builds the app
 * with them; tests call it with `inject()` or listen on a loopback port.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { ConflictError, InputError, NotFoundError, PreconditionError } from '../../shared/errors.ts';
import { createCa, type Pem } from '../../shared/tls.ts';
import type { Vdisk } from '../../cvm/protocol/storage.ts';
import type { Accepted, Image, Subnet, Task, Vm, VmCreateRequest, VmDisk, VmUpdateRequest } from '../../cvm/protocol/vms.ts';
import type { CallOptions } from '../../cvm/protocol/client.ts';
import { SessionStore, type Session } from '../core/auth.ts';
import { snapshot } from '../core/fixtures.ts';
import type { ClusterSnapshot } from '../core/snapshot.ts';
import type { PrismTask } from '../protocol/prism.ts';
import type { NodeInventory, StoredBundle, UpgradeRecord } from '../../lcm/protocol/lcm.ts';
import { checkNewPassword } from './accounts.ts';
import { createPrismApi, type PrismDeps } from './server.ts';
import type { HealthPort } from './health.ts';
import { changeAlert, reconcile, runChecks, type Alert, type CheckResult, type HealthInput } from '../core/health.ts';

export const ADMIN = { user: 'admin', password: 'lab-secret-1' } as const;
export const basicAuth = (user: string = ADMIN.user, password: string = ADMIN.password): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

export class FakeAccounts implements Pick<PrismDeps['accounts'], 'check' | 'changePassword'> {
  readonly passwords = new Map<string, string>([[ADMIN.user, ADMIN.password]]);

  check(user: string, password: string): Promise<boolean> {
    return Promise.resolve(this.passwords.get(user) === password);
  }

  changePassword(user: string, oldPassword: string, newPassword: unknown): Promise<void> {
    const next = checkNewPassword('newPassword', newPassword);
    if (next === oldPassword) throw new InputError('newPassword', 'must differ from the current password');
    if (!this.passwords.has(user)) throw new NotFoundError('user', user);
    this.passwords.set(user, next);
    return Promise.resolve();
  }
}

export class FakeTasks implements Pick<PrismDeps['tasks'], 'get' | 'start' | 'list'> {
  readonly tasks = new Map<string, PrismTask>();

  list(): Promise<PrismTask[]> {
    return Promise.resolve([...this.tasks.values()].reverse());
  }

  get(uuid: string): Promise<PrismTask> {
    const t = this.tasks.get(uuid);
    return t ? Promise.resolve(t) : Promise.reject(new NotFoundError('task', uuid));
  }

  /** Records the task; its work is not run (tests of the edge do not need it). */
  start(operationType: string, entities: PrismTask['entities']): Promise<string> {
    const t: PrismTask = { uuid: randomUUID(), operationType, status: 'QUEUED', percentage: 0, message: 'queued', entities, error: null, createdAt: '2026-01-01T00:00:00.000Z', startedAt: null, completedAt: null };
    this.tasks.set(t.uuid, t);
    return Promise.resolve(t.uuid);
  }
}

/** Sessions of one Prism, in memory, on a clock that stands still. */
export class FakeSessions implements Pick<PrismDeps['sessions'], 'use' | 'open' | 'close' | 'closeAllOf'> {
  private readonly store = new SessionStore(() => 0, 900_000, () => randomUUID());

  open(user: string): Session {
    return this.store.open(user);
  }

  use(token: string): Promise<Session | undefined> {
    return Promise.resolve(this.store.use(token));
  }

  close(token: string): Promise<void> {
    this.store.close(token);
    return Promise.resolve();
  }

  closeAllOf(user: string): Promise<void> {
    this.store.closeAllOf(user);
    return Promise.resolve();
  }
}

/** The local CVM's API as far as Prism calls it, with the checks the real one makes. */
export const fakeCvm = <T>(path: string, o: CallOptions = {}): Promise<T> => {
  const body = (o.body ?? {}) as Record<string, unknown>;
  if (path === '/storage/containers' && o.body !== undefined) {
    if (typeof body['name'] !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(body['name'])) return Promise.reject(new InputError('name', 'must be 1 to 64 letters, digits, dots, dashes or underscores'));
    if (![1, 2, 3].includes(body['replicationFactor'] as number)) return Promise.reject(new InputError('replicationFactor', 'must be 1, 2 or 3'));
    return Promise.resolve({} as T);
  }
  if (path === '/storage/vdisks' && o.body !== undefined) {
    const vd: Vdisk = { name: String(body['name']), container: String(body['container']), sizeBytes: Number(body['size']), uuid: randomUUID(), createdAt: '2026-01-01T00:00:00.000Z' };
    return Promise.resolve(vd as T);
  }
  if (path.startsWith('/storage/vdisks/') && o.method === 'DELETE') return Promise.resolve({} as T);
  return Promise.reject(new NotFoundError('CVM API path', path));
};

/**
 * LCM as Prism calls it (lcm/node/routes.ts), in memory, for the fixture's three nodes at 1.0.0 /
 * storage OS 2.0.0 and a repository holding bundle 1.1.0: an upgrade starts (refused naming `to`
 * for a version not in the repository), `advance()` moves it a step, pause / resume / abort as
 * LCM answers them.
 */
export class FakeLcm {
  readonly calls: string[] = [];
  record: UpgradeRecord | null = null;
  readonly bundles: StoredBundle[] = [{
    offer: { version: '1.1.0', hypervisor: '1.1.0', nos: '2.1.0', compatibility: { '2.1.0': ['1.1.0'] }, minFirmware: { bmc: '3.0.0' }, upgradeFrom: ['1.0.0'], sha256: 'a'.repeat(64) },
    size: 10 << 20, file: 'converge-1.1.0.tar.gz', uploadedAt: '2026-01-01T00:00:00.000Z', holders: ['10.0.1.1', '10.0.1.2', '10.0.1.3'],
  }];
  readonly inventory: NodeInventory[] = [1, 2, 3].map((i) => ({
    serial: `SN${i}`, hostname: `node-${i}`, hostIp: `10.0.0.${i}`, cvmIp: `10.0.1.${i}`, hypervisor: '1.0.0', nos: '2.0.0', bundle: '1.0.0',
    firmware: { bmc: '2.5.0', bios: '1.2.0', disks: [0, 1].map((slot) => ({ id: `Disk.Bay.${slot}`, model: 'Samsung PM893 1.92TB', version: 'JXTC104Q' })) },
  }));
  private readonly steps = ['enter-maintenance', 'stop-cvm', 'install', 'restart', 'rejoin', 'resiliency', 'exit-maintenance'] as const;

  private start(to: string): UpgradeRecord {
    if (this.record && ['running', 'paused', 'failed'].includes(this.record.state)) throw new ConflictError(`an upgrade to ${this.record.to} is ${this.record.state}`);
    if (!this.bundles.some((b) => b.offer.version === to)) throw new InputError('to', `no bundle ${to} in the cluster's repository`);
    const now = new Date().toISOString();
    this.record = {
      id: randomUUID(), to, bundleSha256: 'a'.repeat(64), state: 'running', pauseRequested: false, token: 'SN1', startedAt: now, updatedAt: now, finishedAt: null, error: null,
      plan: { to, current: [], nodes: this.inventory.map((n) => ({ serial: n.serial, hostname: n.hostname, from: { hypervisor: n.hypervisor, nos: n.nos, bundle: n.bundle }, steps: this.steps.map((kind) => ({ kind, detail: kind })) })) },
      nodes: this.inventory.map((n, i) => ({ serial: n.serial, state: i === 0 ? 'running' : 'pending', step: i === 0 ? 0 : -1, since: now, error: null, issuedBy: i === 0 ? '10.0.1.2/x' : null })),
      events: [{ at: now, node: null, message: `upgrade to ${to} started: 3 node(s)` }],
    };
    return this.record;
  }

  /** One step further (the next node's first step after a node's last). */
  advance(): void {
    const r = this.record;
    const n = r?.nodes.find((x) => x.state === 'running');
    if (!r || !n) return;
    if (n.step < this.steps.length - 1) n.step++;
    else {
      n.state = 'done';
      const next = r.nodes.find((x) => x.state === 'pending');
      if (next) Object.assign(next, { state: 'running', step: 0 });
      else Object.assign(r, { state: 'succeeded', token: null, finishedAt: '2026-01-01T01:00:00.000Z' });
      r.token = next?.serial ?? null;
    }
  }

  /** LCM's GET /lcm/tasks: the upgrade, then each step reached (done or under way), as LCM derives them. */
  private tasks(): Task[] {
    const r = this.record;
    if (!r) return [];
    const reached = r.nodes.flatMap((n) => (n.state === 'pending' ? [] : this.steps.slice(0, n.state === 'done' ? this.steps.length : n.step + 1).map((kind, i) => ({ n, kind, i }))));
    const done = reached.filter((x) => x.n.state === 'done' || x.i < x.n.step).length;
    const task = (uuid: string, operation: string, state: Task['state'], percent: number, message: string, parent: string | null): Task => ({
      uuid, operation, state, percent, message, parent, entity: { kind: 'cluster', uuid: 'fake', name: '' }, error: null, result: null, request: {},
      createdAt: r.startedAt, startedAt: r.startedAt, finishedAt: state === 'succeeded' ? r.finishedAt ?? r.updatedAt : null,
    });
    const state = r.state === 'running' ? 'running' : r.state === 'paused' ? 'paused' : r.state;
    return [
      task(r.id, 'LcmUpgrade', state, r.state === 'succeeded' ? 100 : Math.round((100 * done) / (this.steps.length * r.nodes.length)), `upgrade to ${r.to}`, null),
      ...reached.map((x) => {
        const over = x.n.state === 'done' || x.i < x.n.step;
        const hostname = r.plan.nodes.find((p) => p.serial === x.n.serial)?.hostname ?? '';
        return task(`${r.id}-${x.n.serial}-${x.i}`, 'LcmUpgradeStep', over ? 'succeeded' : 'running', over ? 100 : 0, `${hostname}: ${x.kind}`, r.id);
      }),
    ];
  }

  readonly call = <T>(path: string, o: CallOptions = {}): Promise<T> => {
    this.calls.push(`${o.method ?? (o.body === undefined && o.stream === undefined ? 'GET' : 'POST')} ${path}`);
    const [p = '', q = ''] = path.split('?');
    const to = new URLSearchParams(q).get('to') ?? '';
    try {
      const r = ((): unknown => {
        switch (p) {
          case '/lcm/inventory': return this.inventory;
          case '/lcm/bundles': return this.bundles;
          case '/lcm/plan': return { plan: { to, current: [], nodes: this.inventory.map((n) => ({ serial: n.serial, hostname: n.hostname, from: { hypervisor: n.hypervisor, nos: n.nos, bundle: n.bundle }, steps: this.steps.map((kind) => ({ kind, detail: kind })) })) }, refusals: [] };
          case '/lcm/precheck': return [{ id: 'cluster/nodes_up', title: 'every node up', status: 'PASS', detail: '3 of 3' }];
          case '/lcm/tasks': return this.tasks();
          case '/lcm/upgrade':
            if (o.body !== undefined) return this.start(String((o.body as { to?: unknown }).to));
            if (!this.record) throw new NotFoundError('upgrade', 'none has run in this cluster');
            return this.record;
          case '/lcm/upgrade/pause':
            if (this.record?.state !== 'running') throw new ConflictError('not running');
            this.record.pauseRequested = true;
            return this.record;
          case '/lcm/upgrade/resume':
          case '/lcm/upgrade/abort':
            if (!this.record || !['paused', 'failed'].includes(this.record.state)) throw new ConflictError('only a paused or failed upgrade');
            this.record.state = p.endsWith('abort') ? 'aborted' : 'running';
            return this.record;
          default: throw new NotFoundError('LCM API path', path);
        }
      })();
      return Promise.resolve(structuredClone(r) as T);
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  };
}

/**
 * The VM service's API as Prism calls it (GET/POST /vms, GET/PUT/DELETE /vms/:uuid, power, /images, /subnets,
 * /tasks), in memory: a create makes the VM at once and a task that has succeeded; a power
 * action changes the state; unknown images and subnets are refused naming the field.
 */
export class FakeVmService {
  readonly vms = new Map<string, Vm>();
  readonly tasks = new Map<string, Task>();
  readonly subnets: Subnet[] = [{ uuid: '5ab0e7e1-0000-4000-8000-000000000001', name: 'red', vlanId: 10, cidr: '10.10.0.0/24', gateway: '10.10.0.1', pool: { start: '10.10.0.10', end: '10.10.0.99' }, dns: [], leases: {} }];
  readonly images: Image[] = [{ uuid: '1a6e0000-0000-4000-8000-000000000001', name: 'guest', format: 'raw', vdisk: 'image-guest', sizeBytes: 64 << 20, state: 'ready', source: 'file', createdAt: '2026-12-01T00:00:00.000Z' }];
  /** Hosts in maintenance mode, by serial. */
  readonly maintenance = new Map<string, boolean>();
  /** Calls by path, for tests that count them. */
  readonly calls: string[] = [];

  private task(operation: string, vm: Vm): Accepted {
    const t: Task = { uuid: randomUUID(), operation, entity: { kind: 'vm', uuid: vm.uuid, name: vm.name }, state: 'succeeded', percent: 100, message: 'done', error: null, result: null, createdAt: '2026-12-01T00:00:00.000Z', startedAt: '2026-12-01T00:00:00.000Z', finishedAt: '2026-12-01T00:00:01.000Z', parent: null, request: {} };
    this.tasks.set(t.uuid, t);
    return { taskUuid: t.uuid, entityUuid: vm.uuid };
  }

  readonly call = <T>(path: string, o: CallOptions = {}): Promise<T> => {
    const method = o.method ?? (o.body === undefined ? 'GET' : 'POST');
    this.calls.push(`${method} ${path}`);
    const body = (o.body ?? {}) as Partial<VmCreateRequest> & { action?: string };
    const ok = (x: unknown): Promise<T> => Promise.resolve(x as T);
    const m = /^\/vms\/([^/]+)(\/power)?$/.exec(path);
    if (path === '/vms' && method === 'GET') return ok([...this.vms.values()]);
    if (path === '/images') return ok(this.images);
    if (path === '/subnets' && method === 'GET') return ok(this.subnets);
    if (path === '/tasks') return ok([...this.tasks.values()]);
    const maint = /^\/hosts\/([^/]+)\/maintenance$/.exec(path);
    if (maint && method === 'POST') {
      const enter = (o.body as { enter?: unknown }).enter === true;
      this.maintenance.set(maint[1] ?? '', enter);
      const t: Task = { uuid: randomUUID(), operation: 'host.maintenance', entity: { kind: 'host', uuid: maint[1] ?? '', name: maint[1] ?? '' }, state: 'succeeded', percent: 100, message: enter ? 'entered' : 'left', error: null, result: null, createdAt: '2026-12-01T00:00:00.000Z', startedAt: '2026-12-01T00:00:00.000Z', finishedAt: '2026-12-01T00:00:01.000Z', parent: null, request: {} };
      this.tasks.set(t.uuid, t);
      return ok({ taskUuid: t.uuid, entityUuid: maint[1] ?? '' });
    }
    if (path === '/hosts') return ok(['SN1', 'SN2', 'SN3'].map((serial, i) => ({ serial, hostIp: `10.0.0.${i + 1}`, cvmIp: `10.0.1.${i + 1}`, state: this.maintenance.get(serial) ? 'maintenance' : 'up', memoryMiB: 65536, freeMemoryMiB: 60000, vcpus: 32, freeVcpus: 30, vms: 0 })));
    if (path.startsWith('/tasks/')) {
      const t = this.tasks.get(path.slice(7));
      return t ? ok(t) : Promise.reject(new NotFoundError('task', path.slice(7)));
    }
    if (path === '/vms' && method === 'POST') {
      const disks: VmDisk[] = (body.disks ?? []).map((d, i) => {
        const image = 'image' in d ? d.image : 'cdromImage' in d ? d.cdromImage : undefined;
        if (image !== undefined && !this.images.some((x) => x.uuid === image || x.name === image)) throw new InputError(`disks[${i}].image`, `no image ${image}`);
        return { vdisk: `vm-${body.name ?? ''}-${i}`, bus: 'cdromImage' in d ? 'cdrom' : ('bus' in d && d.bus) || 'virtio-scsi', sizeBytes: ('sizeBytes' in d ? d.sizeBytes : undefined) ?? 64 << 20, image: image ?? null };
      });
      const vm: Vm = { uuid: randomUUID(), name: body.name ?? '', specVersion: 1, vcpus: body.vcpus ?? 1, memoryMiB: body.memoryMiB ?? 256, disks, nics: [], ha: true, powerState: body.powerOn ? 'on' : 'off', host: null, epoch: 0, runtimeState: body.powerOn ? 'running' : 'off', createdAt: '2026-12-01T00:00:00.000Z' };
      this.vms.set(vm.uuid, vm);
      return ok(this.task('vm.create', vm));
    }
    if (m) {
      const vm = this.vms.get(m[1] ?? '');
      if (!vm) return Promise.reject(new NotFoundError('VM', m[1] ?? ''));
      if (m[2] && method === 'POST') {
        const on = body.action === 'on';
        Object.assign(vm, { powerState: on ? 'on' : 'off', runtimeState: on ? 'running' : 'off' });
        return ok(this.task(`vm.power.${body.action ?? ''}`, vm));
      }
      if (method === 'GET') return ok(vm);
      if (method === 'PUT') {
        const u = o.body as VmUpdateRequest;
        if (u.specVersion !== vm.specVersion) return Promise.reject(new PreconditionError(`specVersion: ${u.specVersion} is not the VM's (${vm.specVersion})`));
        if ((u.vcpus !== undefined || u.memoryMiB !== undefined) && vm.powerState !== 'off') return Promise.reject(new ConflictError(`VM ${vm.name}: changing its size needs it powered off`));
        Object.assign(vm, { ...(u.name ? { name: u.name } : {}), ...(u.vcpus ? { vcpus: u.vcpus } : {}), ...(u.memoryMiB ? { memoryMiB: u.memoryMiB } : {}), specVersion: vm.specVersion + 1 });
        return ok(this.task('vm.update', vm));
      }
      if (method === 'DELETE') {
        this.vms.delete(vm.uuid);
        return ok(this.task('vm.delete', vm));
      }
    }
    return Promise.reject(new NotFoundError('CVM API path', `${method} ${path}`));
  };
}

/** Health checks over a snapshot the test changes, alerts in memory (node/health.ts keeps them in the store). */
export class FakeHealth implements HealthPort {
  readonly byId = new Map<string, Alert>();
  now = Date.parse('2026-12-04T00:00:00Z');

  constructor(public input: () => Omit<HealthInput, 'now'>) {}

  run(): Promise<CheckResult[]> {
    this.now += 30_000;
    const results = runChecks({ ...this.input(), now: this.now });
    for (const a of reconcile([...this.byId.values()], results, this.now)) this.byId.set(a.id, a);
    return Promise.resolve(results);
  }

  alerts(): Promise<Alert[]> {
    return Promise.resolve([...this.byId.values()]);
  }

  update(ids: readonly string[], change: 'acknowledge' | 'resolve', user: string): Promise<{ done: string[]; missing: string[] }> {
    const done = ids.filter((id) => this.byId.has(id));
    for (const id of done) this.byId.set(id, changeAlert(this.byId.get(id)!, change, user, new Date(this.now).toISOString()));
    return Promise.resolve({ done, missing: ids.filter((id) => !done.includes(id)) });
  }
}

/** The console as the repository builds it (web/prism/dist; scripts/build-web.mjs). */
export const CONSOLE_DIR = fileURLToPath(new URL('../../../web/prism/dist', import.meta.url));

let tls: Promise<Pem> | undefined;
/** A certificate for the test server (a self-signed CA's own: inject() does no TLS, clients pass it as their CA). */
export const testTls = (): Promise<Pem> => (tls ??= createCa('prism-test'));

export interface TestPrism {
  app: FastifyInstance;
  accounts: FakeAccounts;
  tasks: FakeTasks;
  sessions: FakeSessions;
  leadership: { isLeader: boolean; leader: string | null };
  logs: string[];
  tls: Pem;
}

/** Prism's API over fakes, leading, with the given snapshot; not listening. */
export async function testPrism(o: Partial<PrismDeps> & { snapshot?: ClusterSnapshot } = {}): Promise<TestPrism> {
  const { snapshot: given, ...deps } = o;
  const snap = given ?? snapshot();
  const logs: string[] = [];
  const accounts = new FakeAccounts();
  const tasks = new FakeTasks();
  const sessions = new FakeSessions();
  const leadership = { isLeader: true, leader: '10.0.1.2' };
  const pem = o.tls ?? (await testTls());
  const app = createPrismApi({
    cvmIp: '10.0.1.2', vip: '10.0.9.1', sessionTtlS: 900, log: (m) => logs.push(m),
    source: { get: () => Promise.resolve(snap), invalidate: () => undefined },
    accounts, tasks, sessions, leadership, cvm: fakeCvm, lcm: new FakeLcm().call, consoleDir: CONSOLE_DIR,
    ...deps,
    tls: pem,
  });
  return { app, accounts, tasks, sessions, leadership, logs, tls: pem };
}
