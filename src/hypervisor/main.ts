/**
 * @module
 * The hypervisor's host agent (AHV in the reference platform): what a node boots into once
 * installed. It reads the node configuration from the boot disk, brings up the host address (its
 * agent answers on hostIp:8100), and autostarts the CVM as its child with the storage HBA's disks
 * passed through, restarting it with backoff if it dies. SIGTERM shuts the host down cleanly.
 *
 * The internal host↔CVM link is a pair of Unix sockets only this node's processes reach (its state
 * is in GET /status); the NBD redirector reaches the local CVM through it.
 */
import { get as httpGet } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DiskVolume } from '../shared/disk-volume.ts';
import { ConflictError, InputError, errorMessage } from '../shared/errors.ts';
import { createInternalApi, setAnchors } from '../shared/http-api.ts';
import { useIdentity } from '../shared/http-client.ts';
import { readIdentity, writeIdentity, type Anchors, type Identity, type MemberIdentities } from '../shared/identity.ts';
import { parseWith } from '../shared/schema.ts';
import { cvmCall } from '../cvm/protocol/client.ts';
import { MEMBER_IDENTITIES_FILE } from '../cvm/protocol/cluster.ts';
import { onLines } from '../shared/lines.ts';
import { EXIT_REBOOT, HARDWARE_ENV, stopOnPowerLoss, type NodeHardware } from '../rack/protocol/hardware.ts';
import { stageBundle, stagedVersions, switchTo } from './slots.ts';
import { NODE_CONFIG_PATH, NODE_IDENTITY_PATH, CVM_ENTRY, HOST_AGENT_PORT, HOST_VDISK_SOCKET, type NodeConfig, type CvmConfig, type HostStatus } from './protocol/node-config.ts';
import { Redirector } from './redirector.ts';
import { VirtualSwitch } from './vswitch/node/virtual-switch.ts';
import { VSWITCH_TUNNEL_PORT } from './protocol/vms.ts';
import { writeQemuTlsDir } from './vm/migration-tls.ts';
import { registerVmRoutes } from './vm/routes.ts';
import { VmRuntime, accelSetting, socketDir } from './vm/runtime.ts';

const root = process.cwd();
/** This release's software: the boot disk's root as the installer laid it out, or a staged release's slot (slots.ts). */
const release = resolve(dirname(process.argv[1] ?? join(root, 'hypervisor', 'hypervisor.mjs')), '..');
const hw = JSON.parse(readFileSync(process.env[HARDWARE_ENV] ?? '', 'utf8')) as NodeHardware;
let cfg = JSON.parse(readFileSync(join(root, NODE_CONFIG_PATH), 'utf8')) as NodeConfig;
const log = (m: string): void => console.log(`hypervisor: ${m}`);
const started = Date.now();

stopOnPowerLoss();
const bootRoot = DiskVolume.open(hw.bootDevice.path).root;
const identityPath = join(bootRoot, NODE_IDENTITY_PATH);
const firstId = readIdentity(identityPath);
if (!firstId) {
  log(`no node identity at ${identityPath}: this node was not imaged by Foundation; re-image it`);
  process.exit(1);
}
/** The node's identity (a reconfiguration that moves the node brings a new one). */
let nodeId: Identity = firstId;
useIdentity(nodeId);
log(`converge hypervisor ${cfg.versions.hypervisor} booting on ${hw.serial} as ${cfg.hostname}`);

let cvm: ChildProcess | undefined;
let cvmState: 'starting' | 'running' | 'restarting' | 'stopped' = 'starting';
let restarts = 0;
let stopping = false;
let backoffMs = 1000;
let restartTimer: NodeJS.Timeout | undefined;
/** Stopped on purpose (LCM's stop-cvm step, POST /lcm/cvm): not restarted until asked or the node restarts. */
let cvmHeld = false;

/** The host↔CVM link's sockets: under the node's own disk, or (a path too long for a socket) a private temp dir. */
function linkDir(bootRoot: string): string {
  let dir = join(bootRoot, 'link');
  if (dir.length > 90) dir = join(tmpdir(), `cvg-link-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}
function linkPaths(bootRoot: string): { api: string; nbd: string } {
  const dir = linkDir(bootRoot);
  return { api: join(dir, 'cvm-api.sock'), nbd: join(dir, 'cvm-nbd.sock') };
}
/** Where the redirector serves this host's clients (VMs, the operator on this host): a Unix socket beside the link's. */
const vdiskSocket = join(linkDir(bootRoot), HOST_VDISK_SOCKET);
let link: { api: string; nbd: string } | undefined;

/**
 * The host's virtual switch (vswitch/, docs/networking.md): a port socket per subnet for the VMs'
 * NICs, DHCP answered from IPAM, tunnels to the other hosts over mutual TLS once this node is a
 * cluster member (a new cluster's certificates: a new switch). The VM service sends its subnets
 * and peers (PUT /network).
 */
let vswitch = new VirtualSwitch({ socketDir: socketDir(join(bootRoot, 'vswitch')), log });
let switchCa: string | undefined;
async function linkSwitch(): Promise<void> {
  const m = memberIdentities();
  if (m?.ca === switchCa) return;
  if (switchCa !== undefined) {
    const old = vswitch;
    vswitch = new VirtualSwitch({ socketDir: socketDir(join(bootRoot, 'vswitch')), log });
    await old.close();
  }
  switchCa = m?.ca;
  if (m) {
    await vswitch.listen(cfg.hostIp, { identity: m.host, clusterCa: m.ca });
    log(`virtual switch: tunnels on ${cfg.hostIp}:${VSWITCH_TUNNEL_PORT}`);
  }
}

/** The VMs of this host: QEMU processes that die with this agent (vm/runtime.ts); logs under the boot disk's vms/. */
const vms = new VmRuntime({
  hostIp: () => cfg.hostIp,
  vdiskSocket,
  stateDir: join(bootRoot, 'vms'),
  capacity: () => ({
    memoryMiB: hw.memory.totalMiB,
    vcpus: hw.cpu.sockets * hw.cpu.coresPerSocket * hw.cpu.threadsPerCore,
    cvmMemoryMiB: Math.round(cfg.cvm.ramGiB * 1024),
    cvmVcpus: cfg.cvm.vcpus,
  }),
  nicSocket: (subnet) => vswitch.portPath(subnet),
  attachNic: (nic) => vswitch.setLease(nic.subnetUuid, nic.mac, nic.ip),
  // CONVERGE_VM_ACCEL=kvm|tcg forces one (docs/vms.md); by default kvm where it works, else tcg
  accel: accelSetting(process.env['CONVERGE_VM_ACCEL']),
  // the host's cluster certificate, as QEMU reads it, for migration streams (none before the node joins a cluster)
  migrationTlsDir: () => {
    const m = memberIdentities();
    return m ? writeQemuTlsDir(join(bootRoot, 'vms', 'tls'), { ca: m.ca, cert: m.host.cert, key: m.host.key }) : undefined;
  },
  log,
});

/** Whether the CVM answers over the host↔CVM link (its API on the link's socket). */
function probeLink(): Promise<{ state: 'up' | 'down'; detail: string }> {
  const l = link;
  if (!l) return Promise.resolve({ state: 'down', detail: 'no link configured' });
  return new Promise((resolve) => {
    const req = httpGet({ socketPath: l.api, path: '/status', timeout: 1500 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? { state: 'up', detail: l.api } : { state: 'down', detail: `HTTP ${res.statusCode ?? 0}` });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ state: 'down', detail: e.message }));
  });
}

async function writeCvmConfig(): Promise<string> {
  const boot = DiskVolume.open(hw.bootDevice.path);
  const c: CvmConfig = {
    serial: hw.serial,
    cvmIp: cfg.cvmIp,
    hostIp: cfg.hostIp,
    foundationUrl: cfg.foundationUrl,
    ...(cfg.foundationToken ? { foundationToken: cfg.foundationToken } : {}),
    versions: { hypervisor: cfg.versions.hypervisor, nos: cfg.versions.nos },
    disks: hw.disks.map((d) => ({ serial: d.serial, path: d.path, mediaType: d.mediaType, capacityBytes: d.capacityBytes })),
    cvm: cfg.cvm,
    stateDir: join(boot.root, 'cvm-state'),
    identity: identityPath,
    link: linkPaths(boot.root),
  };
  link = c.link;
  await boot.writeFile('config/cvm.json', JSON.stringify(c, null, 2));
  return join(boot.root, 'config/cvm.json');
}

function startCvm(configPath: string): void {
  if (stopping || cvmHeld) return;
  const entry = resolve(release, CVM_ENTRY);
  log(`starting the CVM (${cfg.cvm.vcpus} vCPU, ${cfg.cvm.ramGiB} GiB, HBA ${cfg.hbaPciAddress} passed through: ${hw.disks.length} disks) at ${cfg.cvmIp}`);
  // CONVERGE_CVM_EXEC_ARGV: extra node flags for the CVM (profiling: "--cpu-prof --cpu-prof-dir=/tmp/prof")
  const execArgv = (process.env['CONVERGE_CVM_EXEC_ARGV'] ?? '').split(' ').filter((x) => x !== '');
  // The CVM is a VM: its own process group (its services are in it), and stdin is its host's
  // lifeline (the CVM stops at once when this hypervisor is gone; rack/protocol stopOnPowerLoss).
  // libuv's thread pool runs the CVM's file I/O (and its fdatasyncs, which hold a thread for a
  // while): 4 threads for crypto/dns/zlib plus 4 per passed-through disk, at most 64 (ADR 015)
  const threads = process.env['UV_THREADPOOL_SIZE'] ?? String(Math.min(64, 4 + 4 * hw.disks.length));
  const child = spawn(process.execPath, [...execArgv, entry], { cwd: root, env: { ...process.env, CONVERGE_CVM_CONFIG: configPath, UV_THREADPOOL_SIZE: threads }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  cvm = child;
  cvmState = 'starting';
  const t0 = Date.now();
  const line = (p: string): void => {
    console.log(`cvm: ${p}`);
    if (p.includes('CVM up')) cvmState = 'running';
  };
  onLines(child.stdout, line);
  onLines(child.stderr, line);
  child.on('exit', (code, signal) => {
    cvm = undefined;
    // the VM is gone, and with it every process in it (etcd, Prism) whatever killed its main one
    if (child.pid) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // nothing left in the group
      }
    }
    if (restarting) return;
    if (stopping || cvmHeld) {
      cvmState = 'stopped';
      return;
    }
    if (Date.now() - t0 > 60_000) backoffMs = 1000;
    restarts++;
    cvmState = 'restarting';
    log(`the CVM exited (${signal ?? `code ${code}`}); restarting in ${backoffMs / 1000} s (restart ${restarts})`);
    restartTimer = setTimeout(() => startCvm(configPath), backoffMs);
    backoffMs = Math.min(backoffMs * 2, 30_000);
  });
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const ip = z.string().regex(IPV4, 'must be a dotted IPv4 address');

/** A configuration sent by Foundation to a pre-imaged node (POST /configure). */
const configureSchema = z.object({
  hostname: z.string().regex(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/, 'must be a DNS label'),
  hostIp: ip, hostNetmask: ip, hostGateway: ip, cvmIp: ip, cvmNetmask: ip, cvmGateway: ip,
  dns: z.array(ip).max(8).optional(), ntp: z.array(z.string().max(255)).max(8).optional(),
  foundationUrl: z.string().url().max(2048),
  cvm: z.object({ vcpus: z.number().int().min(1).max(256), ramGiB: z.number().min(1).max(4096) }),
  /** The node's identity for its new addresses (issued by the deployment CA the agent already trusts). */
  identity: z.object({ cert: z.string().min(1).max(16_384), key: z.string().min(1).max(16_384), ca: z.array(z.string().min(1).max(16_384)).min(1).max(4) }).optional(),
});
type ConfigureRequest = z.output<typeof configureSchema>;

/** PUT /network's shape (the switch checks addresses, VLANs and uniqueness, naming the field). */
const networkSchema = z.object({
  subnets: z.array(z.object({
    uuid: z.string().max(64), name: z.string().max(255), vlanId: z.number().int(),
    cidr: z.string().max(18).nullable(), gateway: z.string().max(15).nullable(), dns: z.array(z.string().max(15)).max(8),
  })).max(4096),
  peers: z.array(z.string().max(15)).max(64),
});

/** Applies a new configuration: persists it, stops the CVM, moves the host address, starts the CVM again. */
async function reconfigure(b: ConfigureRequest): Promise<void> {
  const next: NodeConfig = {
    ...cfg,
    hostname: b.hostname, hostIp: b.hostIp, hostNetmask: b.hostNetmask, hostGateway: b.hostGateway,
    cvmIp: b.cvmIp, cvmNetmask: b.cvmNetmask, cvmGateway: b.cvmGateway,
    dns: b.dns ?? cfg.dns, ntp: b.ntp ?? cfg.ntp, foundationUrl: b.foundationUrl, cvm: b.cvm,
  };
  const boot = DiskVolume.open(hw.bootDevice.path);
  await boot.writeFile(NODE_CONFIG_PATH, JSON.stringify(next, null, 2));
  if (b.identity) {
    writeIdentity(identityPath, b.identity);
    nodeId = b.identity;
    useIdentity(nodeId);
  }
  log(`reconfigured by Foundation: ${next.hostname}, host ${next.hostIp}, CVM ${next.cvmIp}`);
  const moveHost = next.hostIp !== cfg.hostIp;
  cfg = next;
  restarting = true;
  const child = cvm;
  if (child) {
    await new Promise<void>((r) => {
      child.once('exit', () => r());
      child.kill('SIGTERM');
    });
  }
  restarting = false;
  if (moveHost) {
    await agent.close();
    agent = buildAgent();
    await agent.listen({ port: HOST_AGENT_PORT, host: cfg.hostIp });
    log(`host address ${cfg.hostIp} up (agent on :${HOST_AGENT_PORT})`);

  }
  clusterCvms = [];
  startCvm(await writeCvmConfig());
}

let restarting = false;

/** The cluster identities the CVM took at cluster create (its state on this boot disk), if it is a member. */
function memberIdentities(): MemberIdentities | undefined {
  try {
    return JSON.parse(readFileSync(join(bootRoot, 'cvm-state', MEMBER_IDENTITIES_FILE), 'utf8')) as MemberIdentities;
  } catch {
    return undefined;
  }
}

/** Whether this node's CVM has joined (or is joining) a cluster: its saved state names one. */
function clusterMember(): boolean {
  try {
    const st = JSON.parse(readFileSync(join(bootRoot, 'cvm-state', 'cluster.json'), 'utf8')) as { cluster?: { clusterId?: unknown } | null };
    return typeof st.cluster?.clusterId === 'string';
  } catch {
    return false;
  }
}

/** Whom the agent admits: the deployment's operator and nodes, and its cluster's members (ADR 013). */
function anchors(): Anchors {
  return { deployment: nodeId.ca[0], cluster: memberIdentities()?.ca };
}

async function hostStatus(): Promise<HostStatus> {
  const l = await probeLink();
  const c = hw.cpu;
  return {
    serial: hw.serial, hostname: cfg.hostname, hostIp: cfg.hostIp, hypervisorVersion: cfg.versions.hypervisor, bundleVersion: cfg.versions.bundle,
    uptimeS: Math.round((Date.now() - started) / 1000), cvm: { ip: cfg.cvmIp, state: cvmState, pid: cvm?.pid ?? null, restarts, nosVersion: cfg.versions.nos },
    link: l,
    vdiskSocket,
    vms: vms.live,
    hardware: {
      model: hw.model, block: hw.block, bmcIp: hw.bmc.ip, memoryMiB: hw.memory.totalMiB,
      cpu: { model: c.model, sockets: c.sockets, cores: c.sockets * c.coresPerSocket, threads: c.sockets * c.coresPerSocket * c.threadsPerCore, speedMHz: c.speedMHz },
    },
  };
}

/** The largest release bundle the agent stages (held in memory while it is verified; a bundle is ~10 MB). */
const STAGE_LIMIT = 256 << 20;
const switchSchema = z.object({ version: z.string().max(64) }).strict();
const cvmPowerSchema = z.object({ state: z.enum(['stopped', 'running']) }).strict();

/** Stops the CVM and holds it stopped (LCM's stop-cvm step), or lets it run again. */
async function holdCvm(state: 'stopped' | 'running'): Promise<void> {
  if (state === 'running') {
    if (!cvmHeld) return;
    cvmHeld = false;
    log('the CVM is let run again');
    if (!cvm) startCvm(join(bootRoot, 'config/cvm.json'));
    return;
  }
  if (vms.live > 0) throw new ConflictError(`${vms.live} VM(s) run on this host: put it in maintenance first`);
  if (!cvmHeld) log('stopping the CVM and holding it stopped (LCM)');
  cvmHeld = true;
  if (restartTimer) clearTimeout(restartTimer);
  const child = cvm;
  if (!child) {
    cvmState = 'stopped';
    return;
  }
  await stopCvmProcess(child);
}

/** The CVM asked to stop (SIGTERM), killed when it has not within 20 s; resolves once it has exited. */
function stopCvmProcess(child: ChildProcess): Promise<void> {
  return new Promise<void>((r) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', () => {
      clearTimeout(killer);
      r();
    });
    child.kill('SIGTERM');
  });
}

/** The host agent's API on hostIp:8100: HTTPS, a client certificate required. */
function buildAgent(): FastifyInstance {
  const app = createInternalApi({ tls: { identity: nodeId, anchors: anchors() }, bodyLimit: 64 << 10, longBodyIdleMs: 60_000, log });
  // a client certificate refused: perhaps of the cluster just created, whose CA the 5 s refresh has
  // not read yet (Prism asked within seconds of the create); the next handshake finds it trusted
  app.server.on('tlsClientError', () => trustCurrentCluster());
  app.get('/status', { config: { roles: ['operator', 'node', 'cvm', 'host'] } }, () => hostStatus());
  registerVmRoutes(app, vms);
  app.put('/network', { config: { roles: ['cvm', 'operator'] } }, async (req) => {
    await vswitch.configure(parseWith(networkSchema, req.body));
    return vswitch.stats();
  });
  // LCM (ADR 018): a release staged beside the running one, then switched to at a restart
  const lcm = { config: { roles: ['operator', 'cvm'] as const } };
  app.get('/lcm/slots', lcm, async () => ({ running: cfg.versions.bundle, staged: await stagedVersions(DiskVolume.open(hw.bootDevice.path)) }));
  app.put('/lcm/stage', { config: { roles: ['operator', 'cvm'], longBody: true }, bodyLimit: STAGE_LIMIT }, async (req) => {
    if (!Buffer.isBuffer(req.body)) throw new InputError('body', 'must be the release bundle (application/octet-stream)');
    const staged = await stageBundle(DiskVolume.open(hw.bootDevice.path), req.body, cfg.versions.bundle);
    log(`staged release ${staged.version} (hypervisor ${staged.hypervisor}, storage OS ${staged.nos}, ${staged.files} files)`);
    return staged;
  });
  app.post('/lcm/cvm', lcm, async (req) => {
    const { state } = parseWith(cvmPowerSchema, req.body);
    await holdCvm(state);
    return { state: cvmState, held: cvmHeld };
  });
  app.post('/lcm/switch', lcm, async (req, reply) => {
    const { version } = parseWith(switchSchema, req.body);
    if (vms.live > 0) throw new ConflictError(`${vms.live} VM(s) run on this host: put it in maintenance first`);
    // this process goes on reporting what it runs; the node's next start reads the new configuration
    await switchTo(DiskVolume.open(hw.bootDevice.path), version, cfg);
    log(`switched to release ${version}: restarting the node into it`);
    reply.raw.once('finish', () => shutdown(EXIT_REBOOT));
    return reply.status(202).send({ version, restarting: true });
  });
  app.post('/configure', { config: { roles: ['operator'] } }, async (req, reply) => {
    const b = parseWith(configureSchema, req.body);
    if (clusterMember()) throw new ConflictError('this node belongs to a cluster; remove it from the cluster before reconfiguring it');
    if (b.identity && b.identity.ca[0] !== nodeId.ca[0]) throw new ConflictError('identity: issued by another deployment CA than the one this node trusts');
    reconfigure(b).catch((e: unknown) => log(`reconfiguration failed: ${errorMessage(e)}`));
    return reply.status(202).send({ accepted: true });
  });
  return app;
}
let agent = buildAgent();
let trustedCluster = memberIdentities()?.ca;

// ---- the I/O redirector: vdisks for local clients, through the local CVM or a healthy remote one ----
let clusterCvms: string[] = [];
let trustCheckedAt = 0;
/** The cluster's CA changes at cluster create and destroy: the agent trusts the current one (read at most every 250 ms). */
function trustCurrentCluster(): void {
  const now = Date.now();
  if (now - trustCheckedAt < 250) return;
  trustCheckedAt = now;
  const ca = memberIdentities()?.ca;
  if (ca !== trustedCluster) {
    trustedCluster = ca;
    setAnchors(agent, anchors());
    log(ca ? 'trusting the cluster CA (members admitted)' : 'no cluster CA trusted (no longer a member)');
  }
}
async function refreshCluster(): Promise<void> {
  trustCurrentCluster();
  await linkSwitch().catch((e: unknown) => log(`virtual switch: ${errorMessage(e)}`));
  try {
    const st = await cvmCall<{ cluster?: { members: { cvmIp: string }[] } | null }>(cfg.cvmIp, '/status', { timeoutMs: 2000 });
    const ips = st.cluster?.members.map((m) => m.cvmIp) ?? [];
    clusterCvms = [cfg.cvmIp, ...ips.filter((ip) => ip !== cfg.cvmIp)];
  } catch {
    // the local CVM is down: keep the last known members
  }
}
const clusterTimer = setInterval(() => void refreshCluster(), 5000);
const redirector = new Redirector({
  localCvmIp: () => cfg.cvmIp,
  localLink: () => link?.nbd,
  tls: () => {
    const m = memberIdentities();
    return m ? { cert: m.host.cert, key: m.host.key, ca: m.ca } : undefined;
  },
  cvms: () => (clusterCvms.length > 0 ? clusterCvms : [cfg.cvmIp]),
  vdisks: async () => {
    for (const ip of clusterCvms.length > 0 ? clusterCvms : [cfg.cvmIp]) {
      try {
        return (await cvmCall<{ name: string }[]>(ip, '/storage/vdisks', { timeoutMs: 3000 })).map((v) => v.name);
      } catch {
        // next CVM
      }
    }
    return [];
  },
  log,
});

/** Stops the VMs and the CVM, then exits: powered off (0), or restarted by the node's firmware (EXIT_REBOOT). */
function shutdown(code = 0): void {
  if (stopping) return;
  stopping = true;
  log(`${code === EXIT_REBOOT ? 'restart' : 'shutdown'} requested: stopping ${vms.live} VM(s) and the CVM`);
  vms.killAll();
  if (restartTimer) clearTimeout(restartTimer);
  clearInterval(clusterTimer);
  void redirector.close();
  void vswitch.close();
  void agent.close();
  const child = cvm;
  if (!child) process.exit(code);
  void stopCvmProcess(child).then(() => {
    log(code === EXIT_REBOOT ? 'host restarting' : 'host halted');
    process.exit(code);
  });
}

process.on('SIGTERM', () => shutdown());
process.on('SIGINT', () => shutdown());
process.on('SIGUSR2', () => log(`NMI: cvm ${cvmState}, pid ${cvm?.pid ?? '-'}, restarts ${restarts}`));

agent.listen({ port: HOST_AGENT_PORT, host: cfg.hostIp }).then(() => {
  log(`host address ${cfg.hostIp} up (agent on :${HOST_AGENT_PORT})`);
  redirector.listen(vdiskSocket).then(() => log(`redirector: vdisks for this host's clients at ${vdiskSocket}`), (e: unknown) => log(`redirector: ${errorMessage(e)}`));
  void refreshCluster();
  writeCvmConfig().then(startCvm, (e: unknown) => {
    log(`cannot prepare the CVM: ${errorMessage(e)}`);
    process.exit(1);
  });
}, (e: unknown) => {
  log(`cannot bring up the host address ${cfg.hostIp}:${HOST_AGENT_PORT}: ${errorMessage(e)}`);
  process.exit(1);
});
