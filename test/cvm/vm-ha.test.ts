/**
 * Live migration, maintenance mode and HA of the VM service (src/cvm/node/acropolis.ts) on a real
 * etcd, with two CVM APIs over mutual TLS and three fake host agents (in-process Fastify servers
 * answering the host contract, incoming and migrate included, with TLS). A host "stops answering"
 * by dropping every connection while it keeps its VMs (a cut, not a crash); a fake BMC behind the
 * service's Fencing port powers a host off (its VMs end) for the hosts that have one, and the real
 * BmcFencing (credentials under acropolis/bmcs/, none stored) answers for the others.
 * Addresses: 127.108.x.x.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { taskEnded, until } from '../drivers/until.ts';
import { startEtcd } from '../drivers/etcd.ts';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { FastifyInstance } from 'fastify';
import { createInternalApi } from '../../src/shared/http-api.ts';
import { callInternal } from '../../src/shared/http-client.ts';
import { SystemClock } from '../../src/shared/clock.ts';
import { createCa, issueCert } from '../../src/shared/tls.ts';
import { memberIdentities, type Identity } from '../../src/shared/identity.ts';
import { StorageMeta } from '../../src/cvm/node/storage-meta.ts';
import { VmService, type ClusterMember, type Fencing } from '../../src/cvm/node/acropolis.ts';
import { registerVmServiceRoutes } from '../../src/cvm/node/acropolis-routes.ts';
import { hostApiOf } from '../../src/cvm/node/host-api.ts';
import { BMCS_PREFIX, BmcFencing, type StoredBmc } from '../../src/cvm/node/fencer.ts';
import { CVM_API_PORT } from '../../src/cvm/protocol/cluster.ts';
import { HOST_AGENT_PORT } from '../../src/hypervisor/protocol/node-config.ts';
import { MIGRATION_PORT_BASE, type HostVm, type HostVmSpec, type MigrationResult } from '../../src/hypervisor/protocol/vms.ts';
import type { Accepted, Task, Vm, VmHost } from '../../src/cvm/protocol/vms.ts';

const ETCD_IP = '127.108.0.9';
const CVMS = ['127.108.0.1', '127.108.0.2', '127.108.0.3'];
const HOSTS = ['127.108.1.1', '127.108.1.2', '127.108.1.3'];
const MiB = 1 << 20;

const dir = mkdtempSync(join(tmpdir(), 'vmha-'));
let etcdProc: ChildProcess;
let operator: Identity;
const members: ClusterMember[] = CVMS.map((cvmIp, i) => ({ serial: `N${i + 1}`, cvmIp, hostIp: HOSTS[i] ?? '' }));
const services: VmService[] = [];
const apis: FastifyInstance[] = [];
const hostApps: FastifyInstance[] = [];
const clients: Etcd3[] = [];
const err = (status: number, code: string, message: string) => ({ status, body: { error: { code, message } } });

/** A host agent as the contract says: VMs run once defined; incoming and migrate move them between fake hosts. */
class FakeHost {
  vms = new Map<string, HostVm>();
  /** The highest epoch seen per VM (a lower one is refused, as the real agent does). */
  seen = new Map<string, number>();
  answering = true;
  powered = true;
  /** The next migration sent from here fails (QEMU reports the migration failed). */
  failNextMigration = false;
  migrateMs = 400;
  consoleInput: string[] = [];
  defined: { uuid: string; epoch: number; at: number }[] = [];
  private nextPort = MIGRATION_PORT_BASE;
  constructor(readonly serial: string, readonly ip: string, readonly memoryMiB: number) {}
  resources() {
    const active = [...this.vms.values()].filter((v) => !['off', 'crashed', 'migrated'].includes(v.state));
    const vmMemoryMiB = active.reduce((a, v) => a + v.spec.memoryMiB, 0);
    const vmVcpus = active.reduce((a, v) => a + v.spec.vcpus, 0);
    return { memoryMiB: this.memoryMiB, cvmMemoryMiB: 1024, vmMemoryMiB, freeMemoryMiB: this.memoryMiB - 1024 - vmMemoryMiB, vcpus: 8, cvmVcpus: 1, vmVcpus, accelerator: 'tcg' as const };
  }
  /** Refuses a spec below the highest epoch seen; records the new one. */
  accept(spec: HostVmSpec): ReturnType<typeof err> | undefined {
    const seen = this.seen.get(spec.uuid) ?? -1;
    if (spec.epoch < seen) return err(409, 'CVG_ERR_CONFLICT', `epoch ${spec.epoch} is below ${seen}, seen for this VM`);
    this.seen.set(spec.uuid, spec.epoch);
    return undefined;
  }
  incomingPort(uuid: string): number {
    const p = this.nextPort++;
    ports.set(`${this.ip}:${p}`, { host: this, uuid });
    return p;
  }
  /** Powered off by its BMC: its VMs end with it. */
  powerOff(): void {
    this.powered = false;
    this.answering = false;
    this.vms.clear();
  }
}
const ports = new Map<string, { host: FakeHost; uuid: string }>();
const fakeHosts = [new FakeHost('N1', HOSTS[0] ?? '', 16384), new FakeHost('N2', HOSTS[1] ?? '', 8192), new FakeHost('N3', HOSTS[2] ?? '', 8192)];
const hostOf = (serial: string): FakeHost => fakeHosts.find((h) => h.serial === serial) as FakeHost;

function hostApp(h: FakeHost, id: Identity, anchors: { deployment: string; cluster: string }): FastifyInstance {
  const app = createInternalApi({ tls: { identity: id, anchors }, log: () => undefined });
  // a host that does not answer: every connection dropped (the CVM sees no answer)
  app.addHook('onRequest', (req, _reply, done) => {
    if (!h.answering) req.raw.socket.destroy();
    else done();
  });
  const roles = { config: { roles: ['cvm', 'operator'] as const } };
  const vmOf = (req: { params: unknown }): HostVm | undefined => h.vms.get((req.params as { uuid: string }).uuid);
  app.get('/resources', roles, () => h.resources());
  app.get('/vms', roles, () => [...h.vms.values()]);
  app.put('/vms/:uuid', roles, (req, reply) => {
    const spec = req.body as HostVmSpec;
    const cur = h.vms.get(spec.uuid);
    if (cur && !['off', 'crashed', 'migrated'].includes(cur.state)) return reply.status(409).send(err(409, 'CVG_ERR_CONFLICT', 'it runs').body);
    const refused = h.accept(spec);
    if (refused) return reply.status(refused.status).send(refused.body);
    const vm: HostVm = { spec, state: 'running', pid: 1, startedAt: new Date().toISOString(), events: [], exit: null, consoleBytes: 0 };
    h.vms.set(spec.uuid, vm);
    h.defined.push({ uuid: spec.uuid, epoch: spec.epoch, at: Date.now() });
    return reply.status(201).send(vm);
  });
  app.post('/vms/:uuid/power', roles, (req, reply) => {
    const vm = vmOf(req);
    if (!vm) return reply.status(404).send(err(404, 'CVG_ERR_NOT_FOUND', 'no such VM').body);
    const action = (req.body as { action: string }).action;
    vm.state = action === 'pause' ? 'paused' : action === 'off' || action === 'shutdown' ? 'off' : 'running';
    return vm;
  });
  app.delete('/vms/:uuid', roles, (req, reply) => {
    const vm = vmOf(req);
    if (vm && !['off', 'crashed', 'migrated'].includes(vm.state)) return reply.status(409).send(err(409, 'CVG_ERR_CONFLICT', `it is ${vm.state}`).body);
    h.vms.delete((req.params as { uuid: string }).uuid);
    return { ok: true };
  });
  app.post('/vms/:uuid/console/input', roles, (req, reply) => {
    if (!vmOf(req)) return reply.status(404).send(err(404, 'CVG_ERR_NOT_FOUND', 'no such VM').body);
    h.consoleInput.push((req.body as { data: string }).data);
    return { ok: true };
  });
  app.put('/vms/:uuid/incoming', roles, (req, reply) => {
    const spec = req.body as HostVmSpec;
    const cur = h.vms.get(spec.uuid);
    if (cur && !['off', 'crashed', 'migrated'].includes(cur.state)) return reply.status(409).send(err(409, 'CVG_ERR_CONFLICT', `it is ${cur.state} here`).body);
    const refused = h.accept(spec);
    if (refused) return reply.status(refused.status).send(refused.body);
    h.vms.set(spec.uuid, { spec, state: 'incoming', pid: 2, startedAt: new Date().toISOString(), events: [], exit: null, consoleBytes: 0 });
    return { port: h.incomingPort(spec.uuid) };
  });
  app.post('/vms/:uuid/migrate', roles, async (req, reply) => {
    const vm = vmOf(req);
    if (!vm || vm.state !== 'running') return reply.status(409).send(err(409, 'CVG_ERR_CONFLICT', `the VM is ${vm?.state ?? 'not here'}`).body);
    const { targetHostIp, port } = req.body as { targetHostIp: string; port: number };
    const dest = ports.get(`${targetHostIp}:${port}`);
    const incoming = dest?.host.vms.get(vm.spec.uuid);
    if (!dest || dest.uuid !== vm.spec.uuid || incoming?.state !== 'incoming') return reply.status(503).send(err(503, 'CVG_ERR_UNAVAILABLE', `nothing waits for it at ${targetHostIp}:${port}`).body);
    vm.state = 'migrating';
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, h.migrateMs));
    if (h.failNextMigration || incoming.state !== 'incoming') {
      h.failNextMigration = false;
      vm.state = 'running'; // QEMU carries on at the source when a migration fails
      return reply.status(503).send(err(503, 'CVG_ERR_UNAVAILABLE', 'migration failed: the target closed the connection').body);
    }
    incoming.state = 'running';
    vm.state = 'migrated';
    return { downtimeMs: 17, totalMs: Date.now() - t0, transferredBytes: vm.spec.memoryMiB * MiB } satisfies MigrationResult;
  });
  app.put('/network', roles, () => ({ ok: true }));
  return app;
}

/** The fake BMCs: hosts listed here are powered off when fenced; the others go to the real BmcFencing (no credentials stored). */
const bmcHosts = new Set(['N3']);
const fenceCalls: { serial: string; at: number }[] = [];
let realBmcs: BmcFencing;
const fencing: Fencing = {
  fence: (serial, signal) => {
    fenceCalls.push({ serial, at: Date.now() });
    if (!bmcHosts.has(serial)) return realBmcs.fence(serial, signal);
    hostOf(serial).powerOff();
    return Promise.resolve({ sent: true, tookMs: 1 });
  },
  powerOn: (serial, signal) => {
    if (!bmcHosts.has(serial)) return realBmcs.powerOn(serial, signal);
    const h = hostOf(serial);
    h.powered = true;
    h.answering = true;
    return Promise.resolve({ sent: true });
  },
};

const call = <T>(ip: string, path: string, o: { method?: string; body?: unknown } = {}): Promise<T> => callInternal<T>(ip, CVM_API_PORT, path, { ...o, identity: operator });

function finished(ip: string, taskUuid: string, ms = 30_000): Promise<Task> {
  return taskEnded((path) => call<Task>(ip, path), taskUuid, ms);
}

const leaderIndex = (): number => services.findIndex((s) => s.isLeader);
const leader = (): string => CVMS[leaderIndex()] ?? '';
const follower = (): string => CVMS[leaderIndex() === 0 ? 1 : 0] ?? '';
const getVm = (uuid: string): Promise<Vm> => call<Vm>(follower(), `/vms/${uuid}`);
const hostState = async (serial: string): Promise<string | undefined> => (await call<VmHost[]>(follower(), '/hosts')).find((h) => h.serial === serial)?.state;

/** A running VM (no disks), placed where the service chooses; its record once running. */
async function runningVm(name: string, o: { memoryMiB?: number; ha?: boolean } = {}): Promise<Vm> {
  const a = await call<Accepted>(follower(), '/vms', { body: { name, vcpus: 1, memoryMiB: o.memoryMiB ?? 256, disks: [], ha: o.ha ?? true, powerOn: true } });
  assert.equal((await finished(follower(), a.taskUuid)).state, 'succeeded');
  return until(`${name} running`, async () => {
    const v = await getVm(a.entityUuid);
    return v.runtimeState === 'running' ? v : undefined;
  });
}

async function migrate(uuid: string, host?: string): Promise<Task> {
  const a = await call<Accepted>(follower(), `/vms/${uuid}/migrate`, { body: host === undefined ? {} : { host } });
  return finished(follower(), a.taskUuid);
}

before(async () => {
  etcdProc = await startEtcd(ETCD_IP, 'vmha', dir);

  const dca = await createCa('vmha deployment');
  const cca = await createCa('vmha cluster');
  const op = await issueCert(dca, { cn: 'operator', ou: 'operator', usage: 'client' });
  operator = { cert: op.cert, key: op.key, ca: [dca.cert] };
  const anchors = { deployment: dca.cert, cluster: cca.cert };

  for (const [i, h] of fakeHosts.entries()) {
    const node = await issueCert(dca, { cn: h.serial, ou: 'node', ips: [h.ip], usage: 'both' });
    const app = hostApp(h, { ...node, ca: [dca.cert] }, anchors);
    await app.listen({ host: HOSTS[i] ?? '', port: HOST_AGENT_PORT });
    hostApps.push(app);
  }
  const bmcEtcd = new Etcd3({ hosts: `http://${ETCD_IP}:2379` });
  clients.push(bmcEtcd);
  realBmcs = new BmcFencing({ clock: new SystemClock(), read: async (serial) => {
    const v = await bmcEtcd.get(BMCS_PREFIX + serial).string();
    return v === null ? undefined : (JSON.parse(v) as StoredBmc);
  } });
  // two of the three CVMs run the VM service (enough for a leader and a follower)
  for (const [i, m] of members.slice(0, 2).entries()) {
    const node = await issueCert(dca, { cn: m.serial, ou: 'node', ips: [m.cvmIp], usage: 'both' });
    const mid = await memberIdentities(cca, m);
    const identity: Identity = { cert: mid.cvm.cert, key: mid.cvm.key, ca: [dca.cert, cca.cert] };
    const etcd = new Etcd3({ hosts: `http://${ETCD_IP}:2379` });
    clients.push(etcd);
    const svc = new VmService({
      etcd, storage: new StorageMeta(etcd, () => 1), self: { cvmIp: m.cvmIp, serial: m.serial }, members: () => members, hosts: hostApiOf(identity),
      nbdSocket: undefined, tmpDir: join(dir, `tmp-${i}`), identity, log: () => undefined, fencing,
      options: { pollMs: 300, downAfterMs: 1500, electionTtlS: 2, runnerMs: 200, powerWaitMs: 5000, ha: { pollMs: 300, pollTimeoutMs: 800, downAfterMs: 2000, fenceRetryMs: 500, restartRetryMs: 500 } },
    });
    services.push(svc);
    const api = createInternalApi({ tls: { identity: node, anchors }, longBodyIdleMs: 60_000, log: () => undefined });
    registerVmServiceRoutes(api, () => svc);
    await api.listen({ host: m.cvmIp, port: CVM_API_PORT });
    apis.push(api);
    svc.start();
  }
  await until('a leader', () => (services.filter((s) => s.isLeader).length === 1 ? true : undefined));
  await until('the follower to know the leader', async () => ((await services[leaderIndex() === 0 ? 1 : 0]?.leaderIp()) === leader() ? true : undefined));
  await until('three hosts up', async () => ((await call<VmHost[]>(follower(), '/hosts')).filter((h) => h.state === 'up').length === 3 ? true : undefined));
});

after(async () => {
  await Promise.all(services.map((s) => s.stop()));
  for (const c of clients) c.close();
  await Promise.all([...apis, ...hostApps].map((a) => a.close()));
  etcdProc?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

let m1: Vm;

test('migration: refusals name host; a live migration moves the record to the target at a raised epoch and reports its downtime', async () => {
  m1 = await runningVm('m1');
  assert.equal(m1.host?.serial, 'N1', 'the most free memory');
  const refuse = async (body: unknown, re: RegExp, field = 'host'): Promise<void> => {
    await assert.rejects(call(follower(), `/vms/${m1.uuid}/migrate`, { body }), (e: unknown) => (e as { field?: string }).field === field && re.test((e as Error).message));
  };
  await refuse({ host: 'N1' }, /runs on host N1 already/);
  await refuse({ host: 'N9' }, /no host N9/);
  await refuse({ host: 'N2', to: 1 }, /Unrecognized key: "to"/, 'body');
  const big = await runningVm('big', { memoryMiB: 7500 });
  assert.equal(big.host?.serial, 'N1');
  await assert.rejects(call(follower(), `/vms/${big.uuid}/migrate`, { body: { host: HOSTS[1] } }), (e: unknown) => (e as { field?: string }).field === 'host' && /has \d+ MiB free; VM big needs 7500 MiB/.test((e as Error).message));
  const d = await call<Accepted>(follower(), `/vms/${big.uuid}`, { method: 'DELETE' });
  assert.equal((await finished(follower(), d.taskUuid)).state, 'succeeded');

  const t = await migrate(m1.uuid, HOSTS[1]);
  assert.equal(t.state, 'succeeded', JSON.stringify(t.error));
  assert.equal(t.operation, 'vm.migrate');
  const res = t.result as { hostIp: string; serial: string; downtimeMs: number; totalMs: number; transferredBytes: number };
  assert.deepEqual([res.serial, res.hostIp, res.downtimeMs, res.transferredBytes], ['N2', HOSTS[1], 17, 256 * MiB]);
  assert.ok(res.totalMs >= 300, `totalMs ${res.totalMs}`);
  const moved = await getVm(m1.uuid);
  assert.deepEqual(moved.host, { serial: 'N2', hostIp: HOSTS[1] });
  assert.equal(moved.epoch, m1.epoch + 1);
  assert.equal(fakeHosts[1]?.vms.get(m1.uuid)?.spec.epoch, m1.epoch + 1, 'the target runs it at the new epoch');
  assert.equal(fakeHosts[1]?.vms.get(m1.uuid)?.state, 'running');
  assert.ok(!fakeHosts[0]?.vms.has(m1.uuid), 'the source forgot its migrated copy');
  // without a host: placement among the others (N1 has the most room)
  const back = await migrate(m1.uuid);
  assert.equal(back.state, 'succeeded', JSON.stringify(back.error));
  assert.equal((back.result as { serial: string }).serial, 'N1');
  m1 = await getVm(m1.uuid);
  assert.equal(m1.epoch, moved.epoch + 1);
});

test('a failing migration: the task fails with the reason, the VM keeps running on its source at its epoch, and the target is clean', async () => {
  const src = hostOf('N1');
  src.failNextMigration = true;
  const t = await migrate(m1.uuid, 'N3');
  assert.equal(t.state, 'failed');
  assert.match(t.error?.message ?? '', /migration failed: the target closed the connection/);
  const v = await getVm(m1.uuid);
  assert.deepEqual(v.host, { serial: 'N1', hostIp: HOSTS[0] });
  assert.equal(v.epoch, m1.epoch, 'the record is back at the epoch the source runs it at');
  assert.equal(v.powerState, 'on');
  assert.equal(src.vms.get(m1.uuid)?.state, 'running');
  assert.ok(!hostOf('N3').vms.has(m1.uuid), 'the target dropped its incoming QEMU (off, deleted)');
  // and it still migrates afterwards
  const again = await migrate(m1.uuid, 'N3');
  assert.equal(again.state, 'succeeded', JSON.stringify(again.error));
  m1 = await getVm(m1.uuid);
  assert.equal(m1.host?.serial, 'N3');
});

test('console input: relayed to the host that runs the VM; over 4 KiB refused naming data', async () => {
  const r = await call<{ bytes: number }>(follower(), `/vms/${m1.uuid}/console/input`, { body: { data: 'root\n' } });
  assert.equal(r.bytes, 5);
  assert.deepEqual(hostOf('N3').consoleInput, ['root\n']);
  await assert.rejects(call(follower(), `/vms/${m1.uuid}/console/input`, { body: { data: 'x'.repeat(4097) } }), (e: unknown) => (e as { field?: string }).field === 'data');
});

test('maintenance: enter moves 3 VMs off a host (child tasks, entering-maintenance meanwhile), nothing new lands there; exit brings them back', async () => {
  const vms = [await runningVm('a'), await runningVm('b'), await runningVm('c')];
  assert.deepEqual(vms.map((v) => v.host?.serial), ['N1', 'N1', 'N1']);
  const a = await call<Accepted>(follower(), '/hosts/N1/maintenance', { body: { enter: true } });
  const seen = new Set<string>();
  const t = await until('the maintenance task', async () => {
    seen.add((await hostState('N1')) ?? '');
    const x = await call<Task>(follower(), `/tasks/${a.taskUuid}`);
    return ['succeeded', 'failed'].includes(x.state) ? x : undefined;
  }, 30_000);
  assert.equal(t.state, 'succeeded', JSON.stringify(t.error));
  assert.ok(seen.has('entering-maintenance'), `states seen: ${[...seen].join(', ')}`);
  await until('N1 in maintenance', async () => ((await hostState('N1')) === 'maintenance' ? true : undefined));
  const children = (await call<Task[]>(follower(), '/tasks')).filter((x) => x.parent === a.taskUuid);
  assert.deepEqual(children.map((x) => [x.operation, x.state]), [['vm.migrate', 'succeeded'], ['vm.migrate', 'succeeded'], ['vm.migrate', 'succeeded']]);
  for (const v of vms) assert.notEqual((await getVm(v.uuid)).host?.serial, 'N1');
  assert.equal([...hostOf('N1').vms.values()].filter((v) => v.state === 'running').length, 0);
  assert.deepEqual(new Set((t.result as { movedAway: string[] }).movedAway), new Set(vms.map((v) => v.uuid)));
  const d = await runningVm('d');
  assert.notEqual(d.host?.serial, 'N1', 'no new placement on a host in maintenance');
  await assert.rejects(migrate(d.uuid, 'N1'), (e: unknown) => (e as { field?: string }).field === 'host' && /N1 is maintenance/.test((e as Error).message));

  const x = await call<Accepted>(follower(), '/hosts/N1/maintenance', { body: { enter: false } });
  const xt = await finished(follower(), x.taskUuid, 30_000);
  assert.equal(xt.state, 'succeeded', JSON.stringify(xt.error));
  for (const v of vms) assert.equal((await getVm(v.uuid)).host?.serial, 'N1', `${v.name} back`);
  assert.equal((await getVm(d.uuid)).host?.serial === 'N1', false, 'a VM that was never there stays');
  assert.equal(await hostState('N1'), 'up');
  assert.equal((await call<Task[]>(follower(), '/tasks')).filter((y) => y.parent === x.taskUuid && y.state === 'succeeded').length, 3);
  for (const v of [...vms, d]) {
    const off = await call<Accepted>(follower(), `/vms/${v.uuid}`, { method: 'DELETE' });
    assert.equal((await finished(follower(), off.taskUuid)).state, 'succeeded');
  }
});

test('HA: a host stops answering → its BMC fences it before its VM starts elsewhere at a raised epoch; then powered on through the cluster it returns', async (tc) => {
  // m1 runs on N3, whose (fake) BMC can fence
  assert.equal((await getVm(m1.uuid)).host?.serial, 'N3');
  const n3 = hostOf('N3');
  const cutAt = Date.now();
  n3.answering = false; // cut off, still running its VMs
  const moved = await until('m1 restarted elsewhere', async () => {
    const v = await getVm(m1.uuid);
    return v.host && v.host.serial !== 'N3' && v.runtimeState === 'running' ? v : undefined;
  }, 30_000);
  const fence = fenceCalls.find((f) => f.serial === 'N3');
  assert.ok(fence, 'the BMC was asked to fence N3');
  const started = hostOf(moved.host?.serial ?? '').defined.find((x) => x.uuid === m1.uuid && x.epoch === moved.epoch);
  assert.ok(started && started.at >= fence.at, 'started elsewhere only after the fence');
  assert.equal(moved.epoch, m1.epoch + 1, 'the epoch raised');
  assert.ok(!n3.powered, 'N3 powered off');
  assert.equal(await hostState('N3'), 'fenced');
  const tasks = await call<Task[]>(follower(), '/tasks');
  const fenceTask = tasks.find((t) => t.operation === 'host.fence' && t.entity.uuid === 'N3');
  assert.equal(fenceTask?.state, 'succeeded');
  const restart = await until('the restart task done', async () => (await call<Task[]>(follower(), `/tasks?entity=${m1.uuid}`)).find((t) => t.operation === 'vm.ha-restart' && t.state === 'succeeded'));
  assert.equal(restart.parent, fenceTask?.uuid);
  assert.ok(Date.now() - cutAt < 20_000);
  tc.diagnostic(`cut → fence asked ${fence.at - cutAt} ms, → running elsewhere ${started.at - cutAt} ms (HA downAfterMs 2000, poll 300 ms)`);

  // powered on through the cluster: it answers with no VM running, and is up again
  const p = await call<Accepted>(follower(), '/hosts/N3/power-on', { method: 'POST' });
  assert.equal((await finished(follower(), p.taskUuid)).state, 'succeeded');
  assert.ok(n3.powered);
  await until('N3 up again', async () => ((await hostState('N3')) === 'up' ? true : undefined), 20_000);
  await assert.rejects(call(follower(), '/hosts/N3/power-on', { method: 'POST' }), /not fenced/);
  m1 = moved;
});

test('HA without BMC credentials: the host is not fenced, nothing restarts, and the VM says why; when it answers again it keeps its VM', async () => {
  const hv = await runningVm('h2');
  let v = hv;
  if (v.host?.serial !== 'N2') {
    assert.equal((await migrate(v.uuid, 'N2')).state, 'succeeded');
    v = await getVm(v.uuid);
  }
  const n2 = hostOf('N2');
  n2.answering = false;
  const blocked = await until('h2 ha-blocked', async () => {
    const x = await getVm(v.uuid);
    return x.haBlocked ? x : undefined;
  }, 30_000);
  assert.match(blocked.haBlocked ?? '', /no BMC is known for host N2/);
  assert.equal(blocked.host?.serial, 'N2', 'not restarted elsewhere');
  assert.equal(blocked.epoch, v.epoch);
  assert.equal(await hostState('N2'), 'down');
  const t = (await call<Task[]>(follower(), `/tasks?entity=${v.uuid}`)).find((x) => x.operation === 'vm.ha-restart');
  assert.equal(t?.state, 'failed');
  assert.match(t?.error?.message ?? '', /ha-blocked: .*no BMC is known for host N2/);
  assert.ok(!fakeHosts.some((h) => h !== n2 && h.vms.get(v.uuid)), 'no second copy anywhere');
  assert.equal(n2.vms.get(v.uuid)?.state, 'running', 'it still runs where it was');

  n2.answering = true;
  await until('N2 up', async () => ((await hostState('N2')) === 'up' ? true : undefined), 20_000);
  const back = await until('h2 unblocked', async () => {
    const x = await getVm(v.uuid);
    return x.haBlocked === undefined && x.runtimeState === 'running' ? x : undefined;
  }, 20_000);
  assert.equal(back.host?.serial, 'N2');
});

test('a leader stopped mid-migration: the new leader carries the migration on and finishes it', async () => {
  const v = await getVm(m1.uuid);
  const from = v.host?.serial ?? '';
  const to = from === 'N1' ? 'N3' : 'N1';
  hostOf(from).migrateMs = 2500;
  const a = await call<Accepted>(follower(), `/vms/${v.uuid}/migrate`, { body: { host: to } });
  await until('the migration under way', () => (hostOf(from).vms.get(v.uuid)?.state === 'migrating' ? true : undefined), 10_000);
  const old = leaderIndex();
  await services[old]?.stop();
  const other = old === 0 ? 1 : 0;
  await until('the other CVM to lead', () => (services[other]?.isLeader ? true : undefined));
  const t = await finished(CVMS[other] ?? '', a.taskUuid, 30_000);
  assert.equal(t.state, 'succeeded', JSON.stringify(t.error));
  const after = await call<Vm>(CVMS[other] ?? '', `/vms/${v.uuid}`);
  assert.equal(after.host?.serial, to);
  assert.equal(after.epoch, v.epoch + 1);
  assert.equal(hostOf(to).vms.get(v.uuid)?.state, 'running');
  assert.ok(!['running', 'migrating'].includes(hostOf(from).vms.get(v.uuid)?.state ?? 'gone'), 'one copy runs');
});

test('maintenance refused: a VM that fits on no other host fails the task naming it, nothing moves, and the host is up again', async () => {
  const ip = CVMS[services.findIndex((s) => s.isLeader)] ?? '';
  const a = await call<Accepted>(ip, '/vms', { body: { name: 'huge', vcpus: 1, memoryMiB: 7200, disks: [], powerOn: true } });
  assert.equal((await finished(ip, a.taskUuid)).state, 'succeeded');
  const huge = await until('huge running', async () => {
    const v = await call<Vm>(ip, `/vms/${a.entityUuid}`);
    return v.runtimeState === 'running' ? v : undefined;
  });
  assert.equal(huge.host?.serial, 'N1');
  const m = await call<Accepted>(ip, '/hosts/N1/maintenance', { body: { enter: true } });
  const t = await finished(ip, m.taskUuid);
  assert.equal(t.state, 'failed');
  assert.equal(t.error?.field, 'host');
  assert.match(t.error?.message ?? '', /cannot enter maintenance: VM huge \(.*\) fits on no other host: no host has 7200 MiB free/);
  assert.equal((await call<Vm>(ip, `/vms/${huge.uuid}`)).host?.serial, 'N1');
  assert.equal((await call<Task[]>(ip, '/tasks')).filter((x) => x.parent === m.taskUuid).length, 0, 'nothing moved');
  await until('N1 up again', async () => ((await call<VmHost[]>(ip, '/hosts')).find((h) => h.serial === 'N1')?.state === 'up' ? true : undefined));
});
