/**
 * The VM service (src/cvm/node/acropolis.ts) on a real etcd, with two CVM APIs over mutual TLS,
 * fake host agents (in-process Fastify servers answering the host contract with TLS), images
 * served over HTTP, and a real NBD server (shared/nbd, memory-backed vdisks) on a Unix socket that
 * qemu-img writes the imports and copies through. Addresses: 127.104.x.x.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { taskEnded, until } from '../drivers/until.ts';
import { startEtcd } from '../drivers/etcd.ts';
import { InputError } from '../../src/shared/errors.ts';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { FastifyInstance } from 'fastify';
import { createInternalApi } from '../../src/shared/http-api.ts';
import { agentOf, callInternal } from '../../src/shared/http-client.ts';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { createCa, issueCert } from '../../src/shared/tls.ts';
import { memberIdentities, type Identity } from '../../src/shared/identity.ts';
import { NbdServer } from '../../src/shared/nbd/server.ts';
import { MemoryBackend } from '../../src/shared/nbd/backend.ts';
import { StorageMeta } from '../../src/cvm/node/storage-meta.ts';
import { VmService, type ClusterMember } from '../../src/cvm/node/acropolis.ts';
import { registerVmServiceRoutes } from '../../src/cvm/node/acropolis-routes.ts';
import { hostApiOf } from '../../src/cvm/node/host-api.ts';
import { CVM_API_PORT } from '../../src/cvm/protocol/cluster.ts';
import { HOST_AGENT_PORT } from '../../src/hypervisor/protocol/node-config.ts';
import type { HostVm, HostVmSpec, HostNetwork } from '../../src/hypervisor/protocol/vms.ts';
import type { Accepted, Image, Subnet, Task, Vm, VmHost } from '../../src/cvm/protocol/vms.ts';

const ETCD_IP = '127.104.0.9';
const CVMS = ['127.104.0.1', '127.104.0.2'];
const HOSTS = ['127.104.1.1', '127.104.1.2'];
const WEB = '127.104.2.1';
const MiB = 1 << 20;

const dir = mkdtempSync(join(tmpdir(), 'vmsvc-'));
const sock = join(dir, 'nbd.sock');
let etcdProc: ChildProcess;
let operator: Identity;
const members: ClusterMember[] = CVMS.map((cvmIp, i) => ({ serial: `N${i + 1}`, cvmIp, hostIp: HOSTS[i] ?? '' }));
const services: VmService[] = [];
const apis: FastifyInstance[] = [];
const hostApps: FastifyInstance[] = [];
const clients: Etcd3[] = [];
const backends = new Map<string, MemoryBackend>();
let nbd: NbdServer;
let web: Server;
const imageData = Buffer.alloc(3 * MiB);
for (let i = 0; i < imageData.length; i += 512) imageData.writeUInt32BE(i / 512, i);

/** A host agent as the contract says, with VMs that run as soon as they are defined. */
class FakeHost {
  vms = new Map<string, HostVm>();
  network: HostNetwork | null = null;
  /** A new one when the agent "restarts" (its switch then starts empty). */
  bootId = 'boot-1';
  constructor(readonly memoryMiB: number, readonly vcpus: number) {}
  resources() {
    const active = [...this.vms.values()].filter((v) => v.state === 'running' || v.state === 'paused');
    const vmMemoryMiB = active.reduce((a, v) => a + v.spec.memoryMiB, 0);
    const vmVcpus = active.reduce((a, v) => a + v.spec.vcpus, 0);
    return { memoryMiB: this.memoryMiB, cvmMemoryMiB: 1024, vmMemoryMiB, freeMemoryMiB: this.memoryMiB - 1024 - vmMemoryMiB, vcpus: this.vcpus, cvmVcpus: 1, vmVcpus, accelerator: 'tcg' as const, bootId: this.bootId };
  }
}
const fakeHosts = [new FakeHost(4096, 4), new FakeHost(3072, 4)];

function hostApp(h: FakeHost, id: Identity, anchors: { deployment: string; cluster: string }): FastifyInstance {
  const app = createInternalApi({ tls: { identity: id, anchors }, log: () => undefined });
  const roles = { config: { roles: ['cvm', 'operator'] as const } };
  app.get('/resources', roles, () => h.resources());
  app.get('/vms', roles, () => [...h.vms.values()]);
  app.put('/vms/:uuid', roles, (req, reply) => {
    const spec = req.body as HostVmSpec;
    const cur = h.vms.get(spec.uuid);
    if (cur && cur.state === 'running') return reply.status(409).send({ error: { code: 'CVG_ERR_CONFLICT', message: 'it runs' } });
    const vm: HostVm = { spec, state: 'running', pid: 1, startedAt: new Date().toISOString(), events: [], exit: null, consoleBytes: 0 };
    h.vms.set(spec.uuid, vm);
    return reply.status(201).send(vm);
  });
  app.post('/vms/:uuid/power', roles, (req, reply) => {
    const vm = h.vms.get((req.params as { uuid: string }).uuid);
    if (!vm) return reply.status(404).send({ error: { code: 'CVG_ERR_NOT_FOUND', message: 'no such VM' } });
    const action = (req.body as { action: string }).action;
    vm.state = action === 'pause' ? 'paused' : action === 'off' || action === 'shutdown' ? 'off' : 'running';
    return vm;
  });
  app.delete('/vms/:uuid', roles, (req) => {
    h.vms.delete((req.params as { uuid: string }).uuid);
    return { ok: true };
  });
  app.put('/network', roles, (req) => {
    h.network = req.body as HostNetwork;
    return { ok: true };
  });
  return app;
}

/** A CVM member's identity, as Prism beside that CVM calls the VM service. */
let prismIdentity: Identity | undefined;
const call = <T>(ip: string, path: string, o: { method?: string; body?: unknown } = {}): Promise<T> => callInternal<T>(ip, CVM_API_PORT, path, { ...o, identity: operator });

function finished(ip: string, taskUuid: string, ms = 30_000): Promise<Task> {
  return taskEnded((path) => call<Task>(ip, path), taskUuid, ms);
}

const leaderIndex = (): number => services.findIndex((s) => s.isLeader);
const follower = (): string => CVMS[leaderIndex() === 0 ? 1 : 0] ?? '';

before(async () => {
  etcdProc = await startEtcd(ETCD_IP, 'vmsvc', dir);

  // the deployment CA (server certificates of CVMs and hosts, the operator) and the cluster CA (members)
  const dca = await createCa('vmsvc deployment');
  const cca = await createCa('vmsvc cluster');
  const op = await issueCert(dca, { cn: 'operator', ou: 'operator', usage: 'client' });
  operator = { cert: op.cert, key: op.key, ca: [dca.cert] };
  const anchors = { deployment: dca.cert, cluster: cca.cert };

  // the fabric: memory-backed vdisks named as in the store, on one plain NBD Unix socket
  const meta = new StorageMeta(new Etcd3({ hosts: `http://${ETCD_IP}:2379` }), () => 1);
  nbd = new NbdServer({
    list: async () => (await meta.vdisks()).map((v) => v.name),
    open: async (name) => {
      const vd = (await meta.vdisks()).find((v) => v.name === name);
      if (!vd) return undefined;
      let be = backends.get(name);
      if (!be || be.sizeBytes !== vd.sizeBytes) backends.set(name, (be = new MemoryBackend(vd.sizeBytes)));
      // a vdisk outlives its NBD connections (MemoryBackend's close drops its pages)
      const kept = be;
      return Object.assign(Object.create(kept) as MemoryBackend, { close: () => Promise.resolve() });
    },
  });
  await nbd.listenPath(sock);

  for (const [i, h] of fakeHosts.entries()) {
    const ip = HOSTS[i] ?? '';
    const node = await issueCert(dca, { cn: `N${i + 1}`, ou: 'node', ips: [ip], usage: 'both' });
    const app = hostApp(h, { ...node, ca: [dca.cert] }, anchors);
    await app.listen({ host: ip, port: HOST_AGENT_PORT });
    hostApps.push(app);
  }
  for (const [i, m] of members.entries()) {
    const node = await issueCert(dca, { cn: m.serial, ou: 'node', ips: [m.cvmIp], usage: 'both' });
    const mid = await memberIdentities(cca, m);
    const identity: Identity = { cert: mid.cvm.cert, key: mid.cvm.key, ca: [dca.cert, cca.cert] };
    prismIdentity ??= identity; // Prism calls with its CVM's member certificate
    const etcd = new Etcd3({ hosts: `http://${ETCD_IP}:2379` });
    clients.push(etcd);
    const svc = new VmService({
      etcd, storage: new StorageMeta(etcd, () => 1), self: { cvmIp: m.cvmIp, serial: m.serial }, members: () => members, hosts: hostApiOf(identity),
      nbdSocket: sock, tmpDir: join(dir, `tmp-${i}`), identity, log: () => undefined, options: { pollMs: 300, electionTtlS: 2, runnerMs: 200, powerWaitMs: 5000 },
    });
    services.push(svc);
    const api = createInternalApi({ tls: { identity: node, anchors }, log: () => undefined });
    registerVmServiceRoutes(api, () => svc);
    await api.listen({ host: m.cvmIp, port: CVM_API_PORT });
    apis.push(api);
    svc.start();
  }

  // images over HTTP: a qcow2, a slow raw one, and 404 for anything else
  writeFileSync(join(dir, 'src.raw'), imageData);
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', join(dir, 'src.raw'), join(dir, 'src.qcow2')]);
  const qcow = readFileSync(join(dir, 'src.qcow2'));
  web = createServer((req, res) => {
    if (req.url === '/disk.qcow2') {
      res.writeHead(200, { 'content-length': qcow.length });
      res.end(qcow);
    } else if (req.url === '/slow.raw') {
      // 3 MiB in 64 KiB pieces every 40 ms: about 2 s
      res.writeHead(200, { 'content-length': imageData.length });
      let off = 0;
      const t = setInterval(() => {
        if (res.destroyed) return clearInterval(t);
        res.write(imageData.subarray(off, off + 65536));
        off += 65536;
        if (off >= imageData.length) {
          clearInterval(t);
          res.end();
        }
      }, 40);
    } else {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise<void>((r) => web.listen(8080, WEB, r));
});

after(async () => {
  await Promise.all(services.map((s) => s.stop()));
  for (const c of clients) c.close();
  await Promise.all([...apis, ...hostApps].map((a) => a.close()));
  await nbd?.close();
  web?.closeAllConnections();
  await new Promise((r) => web?.close(r));
  etcdProc?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('one of two VM services leads; the other forwards a subnet to it, and every host gets it on its switch', async () => {
  await until('a leader', () => (services.filter((s) => s.isLeader).length === 1 ? true : undefined));
  await until('the follower to know the leader', async () => ((await services[leaderIndex() === 0 ? 1 : 0]?.leaderIp()) === CVMS[leaderIndex()] ? true : undefined));
  const s = await call<Subnet>(follower(), '/subnets', { body: { name: 'lan', vlanId: 10, cidr: '10.10.0.0/24', gateway: '10.10.0.1', pool: { start: '10.10.0.10', end: '10.10.0.20' } } });
  assert.equal(s.name, 'lan');
  await assert.rejects(call(follower(), '/subnets', { body: { name: 'lan', vlanId: 11 } }), /named lan exists/);
  await assert.rejects(call(follower(), '/subnets', { body: { name: 'bad', vlanId: 12, cidr: '10.20.0.0/24', pool: { start: '10.20.0.0', end: '10.20.0.5' } } }), (e: unknown) => (e as { field?: string }).field === 'pool.start');
  await until('PUT /network on both hosts', () => (fakeHosts.every((h) => h.network?.subnets.some((x) => x.name === 'lan')) ? true : undefined));
  assert.deepEqual(fakeHosts[0]?.network?.peers, [HOSTS[1]]);
  const hosts = await call<VmHost[]>(follower(), '/hosts');
  assert.deepEqual(hosts.map((h) => [h.serial, h.state, h.freeMemoryMiB]), [['N1', 'up', 3072], ['N2', 'up', 2048]]);
  const asPrism = await callInternal<VmHost[]>(follower(), CVM_API_PORT, '/hosts', { identity: prismIdentity! });
  assert.deepEqual(asPrism.map((h) => h.serial), ['N1', 'N2'], 'Prism (a member certificate, no forwarded header) gets the leader\'s view from a follower');
});

test('a host agent that restarted between two polls (a new bootId, its switch empty) gets its subnets again', async () => {
  const h = fakeHosts[1];
  assert.ok(h);
  assert.ok(h.network?.subnets.some((x) => x.name === 'lan'));
  // as an LCM restart does: the agent back within seconds, never seen down
  h.network = null;
  h.bootId = 'boot-2';
  await until('PUT /network again on the restarted host', () => (h.network?.subnets.some((x) => x.name === 'lan') ? true : undefined));
});

test('an image imported from a URL through qemu-img onto a vdisk over NBD (the task made on the follower, run by the leader)', async () => {
  const a = await call<Accepted>(follower(), '/images', { body: { name: 'disk', url: `http://${WEB}:8080/disk.qcow2` } });
  const t = await finished(follower(), a.taskUuid);
  assert.equal(t.state, 'succeeded', JSON.stringify(t.error));
  assert.equal(t.percent, 100);
  const img = (await call<Image[]>(CVMS[0] ?? '', '/images')).find((i) => i.uuid === a.entityUuid);
  assert.equal(img?.state, 'ready');
  assert.equal(img?.sizeBytes, 3 * MiB);
  const be = backends.get(img?.vdisk ?? '');
  assert.ok(be, 'the image vdisk was written over NBD');
  assert.ok((await be.pread(0, imageData.length)).equals(imageData), 'the vdisk holds the image\'s data (qcow2 converted to raw)');
});

test('an image URL that answers 404: the task fails naming url, and no vdisk is left behind', async () => {
  const a = await call<Accepted>(follower(), '/images', { body: { name: 'missing', url: `http://${WEB}:8080/nope.qcow2` } });
  const t = await finished(follower(), a.taskUuid);
  assert.equal(t.state, 'failed');
  assert.equal(t.error?.field, 'url');
  assert.match(t.error?.message ?? '', /404/);
  const vdisks = await new StorageMeta(clients[0] as Etcd3, () => 1).vdisks();
  assert.ok(!vdisks.some((v) => v.name === `image-${a.entityUuid}`));
  assert.ok(!(await call<Image[]>(follower(), '/images')).some((i) => i.name === 'missing'), 'and no image record');
});

test('a NIC on a missing subnet fails the create naming nics[0].subnet, and nothing is left', async () => {
  const before = (await new StorageMeta(clients[0] as Etcd3, () => 1).vdisks()).length;
  const a = await call<Accepted>(follower(), '/vms', { body: { name: 'lost', vcpus: 1, memoryMiB: 128, disks: [{ sizeBytes: MiB }], nics: [{ subnet: 'nowhere' }] } });
  const t = await finished(follower(), a.taskUuid);
  assert.equal(t.state, 'failed');
  assert.equal(t.error?.field, 'nics[0].subnet');
  assert.equal((await new StorageMeta(clients[0] as Etcd3, () => 1).vdisks()).length, before);
  await assert.rejects(call(follower(), `/vms/${a.entityUuid}`), /not found/);
});

let vm: Vm;

test('a VM from the image: its disk a copy of the image, an address from the pool; its vdisk cannot be another VM\'s; the image cannot go while in use', async () => {
  const a = await call<Accepted>(follower(), '/vms', { body: { name: 'web-1', vcpus: 1, memoryMiB: 256, disks: [{ image: 'disk', sizeBytes: 4 * MiB }, { sizeBytes: 2 * MiB }], nics: [{ subnet: 'lan' }] } });
  const t = await finished(follower(), a.taskUuid);
  assert.equal(t.state, 'succeeded', JSON.stringify(t.error));
  vm = await call<Vm>(follower(), `/vms/${a.entityUuid}`);
  assert.equal(vm.powerState, 'off');
  assert.equal(vm.disks[0]?.sizeBytes, 4 * MiB, 'max(image size, sizeBytes)');
  assert.equal(vm.nics[0]?.ip, '10.10.0.10');
  const copy = backends.get(vm.disks[0]?.vdisk ?? '');
  assert.ok(copy && (await copy.pread(0, imageData.length)).equals(imageData), 'the disk holds the image');
  const lan = (await call<Subnet[]>(follower(), '/subnets')).find((s) => s.name === 'lan');
  assert.equal(lan?.leases['10.10.0.10'], vm.nics[0]?.mac);

  await assert.rejects(call(follower(), '/vms', { body: { name: 'thief', vcpus: 1, memoryMiB: 128, disks: [{ vdisk: vm.disks[1]?.vdisk }] } }), (e: unknown) => /disks\[0\]\.vdisk: vdisk .* belongs to VM/.test((e as Error).message));
  const img = (await call<Image[]>(follower(), '/images')).find((i) => i.name === 'disk');
  await assert.rejects(call(follower(), `/images/${img?.uuid ?? ''}`, { method: 'DELETE' }), /in use by VM\(s\) web-1/);
  await assert.rejects(call(follower(), '/subnets/' + (lan?.uuid ?? ''), { method: 'DELETE' }), /used by NICs of VM\(s\) web-1/);
});

test('power: a VM larger than any host is refused at create naming memoryMiB; a fitting one is placed on the host with the most free memory, then powered off', async () => {
  // larger than any host could give a VM (4096 MiB less the CVM's 1024): refused at once, nothing made
  await assert.rejects(call(follower(), '/vms', { body: { name: 'big', vcpus: 1, memoryMiB: 8192, disks: [], powerOn: true } }), (e: unknown) => e instanceof InputError && e.field === 'memoryMiB' && /the largest host has 3072 MiB for VMs/.test(e.message));
  assert.ok(!(await call<Vm[]>(follower(), '/vms')).some((v) => v.name === 'big'));

  const a = await call<Accepted>(follower(), `/vms/${vm.uuid}/power`, { body: { action: 'on' } });
  const t = await finished(follower(), a.taskUuid);
  assert.equal(t.state, 'succeeded', JSON.stringify(t.error));
  const running = await call<Vm>(follower(), `/vms/${vm.uuid}`);
  assert.deepEqual(running.host, { serial: 'N1', hostIp: HOSTS[0] });
  assert.equal(running.epoch, 1);
  const hv = fakeHosts[0]?.vms.get(vm.uuid);
  assert.equal(hv?.spec.epoch, 1);
  assert.deepEqual(hv?.spec.disks.map((d) => d.vdisk), vm.disks.map((d) => d.vdisk));
  assert.deepEqual(hv?.spec.nics, [{ mac: vm.nics[0]?.mac, subnetUuid: vm.nics[0]?.subnetUuid, ip: '10.10.0.10' }]);
  await assert.rejects(call(follower(), `/vms/${vm.uuid}`, { method: 'PUT', body: { specVersion: running.specVersion, memoryMiB: 512 } }), /memoryMiB: the VM web-1 must be off/);

  // the guest powers itself off: the reconcile loop records it
  if (hv) hv.state = 'off';
  await until('the VM recorded off', async () => ((await call<Vm>(follower(), `/vms/${vm.uuid}`)).powerState === 'off' ? true : undefined));
});

test('the leader stopped mid-task: the other CVM becomes leader and finishes the task', async () => {
  const old = leaderIndex();
  const a = await call<Accepted>(follower(), '/images', { body: { name: 'slow', url: `http://${WEB}:8080/slow.raw` } });
  await until('the download to be under way', async () => {
    const t = await call<Task>(follower(), `/tasks/${a.taskUuid}`);
    return t.state === 'running' && t.percent > 0 ? true : undefined;
  });
  const stoppedAt = Date.now();
  await services[old]?.stop();
  const other = old === 0 ? 1 : 0;
  await until('the other CVM to lead', () => (services[other]?.isLeader ? true : undefined));
  const t = await finished(CVMS[other] ?? '', a.taskUuid);
  assert.equal(t.state, 'succeeded', JSON.stringify(t.error));
  assert.ok(Date.parse(t.startedAt ?? '') < stoppedAt && Date.parse(t.finishedAt ?? '') > stoppedAt, 'started under the first leader, finished under the second');
  const img = (await call<Image[]>(CVMS[other] ?? '', '/images')).find((i) => i.uuid === a.entityUuid);
  assert.equal(img?.state, 'ready');
  assert.ok((await backends.get(img?.vdisk ?? '')?.pread(0, imageData.length))?.equals(imageData));
  // the stopped one's API forwards to the new leader
  const d = await call<Accepted>(CVMS[old] ?? '', `/vms/${vm.uuid}`, { method: 'DELETE' });
  assert.equal((await finished(CVMS[other] ?? '', d.taskUuid)).state, 'succeeded');
  const vdisks = await new StorageMeta(clients[other] as Etcd3, () => 1).vdisks();
  assert.ok(!vdisks.some((v) => v.name.startsWith(`vm-${vm.uuid}`)), 'its own vdisks are gone');
  const lan = (await call<Subnet[]>(CVMS[other] ?? '', '/subnets')).find((s) => s.name === 'lan');
  assert.deepEqual(lan?.leases, {}, 'its address is released');
});

test('an image uploaded to the follower is streamed on to the leader and imported', async () => {
  const r = await request(`https://${follower()}:${CVM_API_PORT}/images/upload?name=uploaded&format=raw`, {
    method: 'PUT', body: Readable.from([imageData.subarray(0, MiB), imageData.subarray(MiB)]), headers: { 'content-type': 'application/octet-stream' }, dispatcher: agentOf(operator),
  });
  const a = (await r.body.json()) as Accepted;
  assert.equal(r.statusCode, 202, JSON.stringify(a));
  const t = await finished(follower(), a.taskUuid);
  assert.equal(t.state, 'succeeded', JSON.stringify(t.error));
  const img = (await call<Image[]>(follower(), '/images')).find((i) => i.uuid === a.entityUuid);
  assert.equal(img?.sizeBytes, 3 * MiB);
  assert.ok((await backends.get(img?.vdisk ?? '')?.pread(0, imageData.length))?.equals(imageData));
  const empty = await request(`https://${follower()}:${CVM_API_PORT}/images/upload?name=nothing`, { method: 'PUT', body: '', headers: { 'content-type': 'application/octet-stream' }, dispatcher: agentOf(operator) });
  assert.equal(empty.statusCode, 400);
  assert.equal(((await empty.body.json()) as { error: { field: string } }).error.field, 'body');
});

test('fuzz: random bodies to every mutation of the VM service never get an internal error, and bad ones make nothing', async () => {
  const fc = (await import('fast-check')).default;
  const imagesBefore = (await call<Image[]>(follower(), '/images')).length;
  const value = fc.oneof(fc.string({ maxLength: 40 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }), fc.constant({ image: 'nope' }), fc.constant([{ sizeBytes: -1 }]));
  const body = fc.oneof(
    fc.dictionary(fc.constantFrom('name', 'vcpus', 'memoryMiB', 'disks', 'nics', 'powerOn', 'ha', 'specVersion', 'action', 'vlanId', 'cidr', 'gateway', 'pool', 'url', 'format', 'host', 'enter', 'data'), value, { maxKeys: 6 }),
    value,
  );
  const route = fc.constantFrom(['POST', '/vms'], ['PUT', '/vms/x'], ['POST', '/vms/x/power'], ['POST', '/vms/x/clone'], ['POST', '/vms/x/migrate'], ['POST', '/vms/x/console/input'], ['POST', '/subnets'], ['POST', '/images'], ['POST', '/hosts/N1/maintenance'], ['DELETE', '/subnets/x'], ['DELETE', '/images/x']);
  await fc.assert(fc.asyncProperty(route, body, async ([method, path], b) => {
    const r = await request(`https://${follower()}:${CVM_API_PORT}${path ?? ''}`, { method: method as 'POST', body: JSON.stringify(b), headers: { 'content-type': 'application/json' }, dispatcher: agentOf(operator) });
    const j = (await r.body.json()) as { error?: { code: string; message: string } };
    assert.ok(r.statusCode < 500, `${method ?? ''} ${path ?? ''} ${JSON.stringify(b)} → ${r.statusCode} ${JSON.stringify(j)}`);
    if (r.statusCode >= 400) assert.ok(j.error && typeof j.error.message === 'string' && j.error.code.startsWith('CVG_ERR_'), JSON.stringify(j));
  }), { numRuns: 150 });
  // whatever was accepted ran as a task; nothing with a bad body was made
  await until('open tasks to end', async () => ((await call<Task[]>(follower(), '/tasks')).every((t) => ['succeeded', 'failed', 'aborted'].includes(t.state)) ? true : undefined), 60_000);
  assert.equal((await call<Image[]>(follower(), '/images')).length, imagesBefore, 'no image from a random body (no URL answers)');
});
