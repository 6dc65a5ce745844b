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
import { createServer, get as httpGet } from 'node:http';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DiskVolume } from '../shared/disk-volume.ts';
import { errorMessage } from '../shared/errors.ts';
import { onLines } from '../shared/lines.ts';
import { HARDWARE_ENV, stopOnPowerLoss, type NodeHardware } from '../rack/protocol/hardware.ts';
import { NODE_CONFIG_PATH, CVM_ENTRY, HOST_AGENT_PORT, CVM_STATUS_PORT, type NodeConfig, type CvmConfig, type HostStatus } from './protocol/node-config.ts';
import { Redirector, REDIRECTOR_PORT } from './redirector.ts';

const root = process.cwd();
const hw = JSON.parse(readFileSync(process.env[HARDWARE_ENV] ?? '', 'utf8')) as NodeHardware;
let cfg = JSON.parse(readFileSync(join(root, NODE_CONFIG_PATH), 'utf8')) as NodeConfig;
const log = (m: string): void => console.log(`hypervisor: ${m}`);
const started = Date.now();

stopOnPowerLoss();
log(`converge hypervisor ${cfg.versions.hypervisor} booting on ${hw.serial} as ${cfg.hostname}`);

let cvm: ChildProcess | undefined;
let cvmState: 'starting' | 'running' | 'restarting' | 'stopped' = 'starting';
let restarts = 0;
let stopping = false;
let backoffMs = 1000;
let restartTimer: NodeJS.Timeout | undefined;

/** The host↔CVM link's sockets: under the node's own disk, or (a path too long for a socket) a private temp dir. */
function linkPaths(bootRoot: string): { api: string; nbd: string } {
  let dir = join(bootRoot, 'link');
  if (dir.length > 90) dir = join(tmpdir(), `cvg-link-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return { api: join(dir, 'cvm-api.sock'), nbd: join(dir, 'cvm-nbd.sock') };
}
let link: { api: string; nbd: string } | undefined;

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
    link: linkPaths(boot.root),
  };
  link = c.link;
  await boot.writeFile('config/cvm.json', JSON.stringify(c, null, 2));
  return join(boot.root, 'config/cvm.json');
}

function startCvm(configPath: string): void {
  if (stopping) return;
  const entry = resolve(root, CVM_ENTRY);
  log(`starting the CVM (${cfg.cvm.vcpus} vCPU, ${cfg.cvm.ramGiB} GiB, HBA ${cfg.hbaPciAddress} passed through: ${hw.disks.length} disks) at ${cfg.cvmIp}`);
  // CONVERGE_CVM_EXEC_ARGV: extra node flags for the CVM (profiling: "--cpu-prof --cpu-prof-dir=/tmp/prof")
  const execArgv = (process.env['CONVERGE_CVM_EXEC_ARGV'] ?? '').split(' ').filter((x) => x !== '');
  // The CVM is a VM: its own process group (its services are in it), and stdin is its host's
  // lifeline (the CVM stops at once when this hypervisor is gone; rack/protocol stopOnPowerLoss).
  const child = spawn(process.execPath, [...execArgv, entry], { cwd: root, env: { ...process.env, CONVERGE_CVM_CONFIG: configPath }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
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
    if (stopping) {
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

/** Checks a configuration sent by Foundation to a pre-imaged node; returns the problem, if any. */
function checkConfig(b: Record<string, unknown>): string | null {
  for (const f of ['hostIp', 'hostNetmask', 'hostGateway', 'cvmIp', 'cvmNetmask', 'cvmGateway']) {
    if (typeof b[f] !== 'string' || !IPV4.test(b[f])) return `${f}: must be a dotted IPv4 address`;
  }
  if (typeof b['hostname'] !== 'string' || !/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(b['hostname'])) return 'hostname: must be a DNS label';
  if (typeof b['foundationUrl'] !== 'string') return 'foundationUrl: is required';
  const c = b['cvm'] as { vcpus?: unknown; ramGiB?: unknown } | undefined;
  if (!c || typeof c.vcpus !== 'number' || typeof c.ramGiB !== 'number') return 'cvm: needs vcpus and ramGiB numbers';
  return null;
}

/** Applies a new configuration: persists it, stops the CVM, moves the host address, starts the CVM again. */
async function reconfigure(b: Record<string, unknown>): Promise<void> {
  const next: NodeConfig = {
    ...cfg,
    hostname: b['hostname'] as string, hostIp: b['hostIp'] as string, hostNetmask: b['hostNetmask'] as string, hostGateway: b['hostGateway'] as string,
    cvmIp: b['cvmIp'] as string, cvmNetmask: b['cvmNetmask'] as string, cvmGateway: b['cvmGateway'] as string,
    dns: Array.isArray(b['dns']) ? (b['dns'] as string[]) : cfg.dns, ntp: Array.isArray(b['ntp']) ? (b['ntp'] as string[]) : cfg.ntp,
    foundationUrl: b['foundationUrl'] as string, cvm: b['cvm'] as NodeConfig['cvm'],
  };
  const boot = DiskVolume.open(hw.bootDevice.path);
  await boot.writeFile(NODE_CONFIG_PATH, JSON.stringify(next, null, 2));
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
    await new Promise<void>((r) => agent.close(() => r()));
    await new Promise<void>((r, j) => {
      agent.once('error', j);
      agent.listen(HOST_AGENT_PORT, cfg.hostIp, () => r());
    });
    log(`host address ${cfg.hostIp} up (agent on :${HOST_AGENT_PORT})`);
    await redirector.close();
    await redirector.listen(cfg.hostIp);
  }
  clusterCvms = [];
  startCvm(await writeCvmConfig());
}

let restarting = false;

function clusterMember(): boolean {
  try {
    const st = JSON.parse(readFileSync(join(DiskVolume.open(hw.bootDevice.path).root, 'cvm-state', 'cluster.json'), 'utf8')) as { clusterId?: string | null };
    return typeof st.clusterId === 'string';
  } catch {
    return false;
  }
}

const agent = createServer((req, res) => {
  const send = (status: number, body: unknown): void => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.method === 'POST' && req.url === '/configure') {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      raw += c;
      if (raw.length > 65536) req.destroy();
    });
    req.on('end', () => {
      let b: Record<string, unknown>;
      try {
        b = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        send(400, { error: { code: 'CVG_ERR_INPUT', field: 'body', message: 'malformed JSON' } });
        return;
      }
      const problem = b && typeof b === 'object' ? checkConfig(b) : 'body: must be a JSON object';
      if (problem) {
        send(400, { error: { code: 'CVG_ERR_INPUT', field: problem.split(':')[0], message: problem } });
        return;
      }
      if (clusterMember()) {
        send(409, { error: { code: 'CVG_ERR_CONFLICT', message: 'this node belongs to a cluster; remove it from the cluster before reconfiguring it' } });
        return;
      }
      send(202, { accepted: true });
      reconfigure(b).catch((e: unknown) => log(`reconfiguration failed: ${errorMessage(e)}`));
    });
    return;
  }
  if (req.method === 'GET' && req.url === '/status') {
    void probeLink().then((l) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      const c = hw.cpu;
      const body: HostStatus = {
        serial: hw.serial, hostname: cfg.hostname, hostIp: cfg.hostIp, hypervisorVersion: cfg.versions.hypervisor, bundleVersion: cfg.versions.bundle,
        uptimeS: Math.round((Date.now() - started) / 1000), cvm: { ip: cfg.cvmIp, state: cvmState, pid: cvm?.pid ?? null, restarts, nosVersion: cfg.versions.nos },
        link: l,
        hardware: {
          model: hw.model, block: hw.block, bmcIp: hw.bmc.ip, memoryMiB: hw.memory.totalMiB,
          cpu: { model: c.model, sockets: c.sockets, cores: c.sockets * c.coresPerSocket, threads: c.sockets * c.coresPerSocket * c.threadsPerCore, speedMHz: c.speedMHz },
        },
      };
      res.end(JSON.stringify(body));
    });
    return;
  }
  res.writeHead(404, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ error: { code: 'CVG_ERR_NOT_FOUND', message: `no ${req.method ?? ''} ${req.url ?? ''}` } }));
});

// ---- the I/O redirector: vdisks for local clients, through the local CVM or a healthy remote one ----
let clusterCvms: string[] = [];
async function refreshCluster(): Promise<void> {
  try {
    const r = await fetch(`http://${cfg.cvmIp}:${CVM_STATUS_PORT}/status`, { signal: AbortSignal.timeout(2000) });
    const st = (await r.json()) as { cluster?: { members: { cvmIp: string }[] } | null };
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
  cvms: () => (clusterCvms.length > 0 ? clusterCvms : [cfg.cvmIp]),
  vdisks: async () => {
    for (const ip of clusterCvms.length > 0 ? clusterCvms : [cfg.cvmIp]) {
      try {
        const r = await fetch(`http://${ip}:${CVM_STATUS_PORT}/storage/vdisks`, { signal: AbortSignal.timeout(3000) });
        if (r.ok) return ((await r.json()) as { name: string }[]).map((v) => v.name);
      } catch {
        // next CVM
      }
    }
    return [];
  },
  log,
});

function shutdown(): void {
  if (stopping) return;
  stopping = true;
  log('shutdown requested: stopping the CVM');
  if (restartTimer) clearTimeout(restartTimer);
  clearInterval(clusterTimer);
  void redirector.close();
  agent.close();
  const child = cvm;
  if (!child) process.exit(0);
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  child.once('exit', () => {
    clearTimeout(killer);
    log('host halted');
    process.exit(0);
  });
  child.kill('SIGTERM');
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.on('SIGUSR2', () => log(`NMI: cvm ${cvmState}, pid ${cvm?.pid ?? '-'}, restarts ${restarts}`));

agent.on('error', (e) => {
  log(`cannot bring up the host address ${cfg.hostIp}:${HOST_AGENT_PORT}: ${e.message}`);
  process.exit(1);
});
agent.listen(HOST_AGENT_PORT, cfg.hostIp, () => {
  log(`host address ${cfg.hostIp} up (agent on :${HOST_AGENT_PORT})`);
  redirector.listen(cfg.hostIp).then(() => log(`redirector: vdisks for local clients at ${cfg.hostIp}:${REDIRECTOR_PORT}`), (e: unknown) => log(`redirector: ${errorMessage(e)}`));
  void refreshCluster();
  writeCvmConfig().then(startCvm, (e: unknown) => {
    log(`cannot prepare the CVM: ${errorMessage(e)}`);
    process.exit(1);
  });
});
