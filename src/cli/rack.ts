/**
 * @module
 * `converge rack ...`: bring an emulated rack up and down, show it, add nodes, inject faults,
 * read a node's console.
 */
import { spawn } from 'node:child_process';
import { openSync, readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { AuthError, InputError, RackNotRunningError } from '../shared/errors.ts';
import { readJson } from '../shared/json-file.ts';
import { SystemClock } from '../shared/clock.ts';
import { SeededRandom } from '../shared/random.ts';
import type * as RackRuntime from '../rack/node/rack.ts';
import type { RackConfig } from '../rack/node/rack.ts';
import { RackLayout, defaultDataDir } from '../rack/node/layout.ts';
import { BUILTIN_MODELS, parseHardwareModel, parseBmcNetwork } from '../rack/core/models.ts';
import { RackApiError, RackClient } from '../rack/protocol/client.ts';
import { controlTokenPath, rackEndpoint, readControlToken, type RackEndpoint } from '../rack/protocol/access.ts';
import type { FaultPatch, RackNodeSummary, RackStatus } from '../rack/protocol/control.ts';
import type { DaemonInfo, runRackDaemon } from '../rack/main.ts';
import { fail, printJson, table } from './output.ts';
import { processAlive } from '../shared/processes.ts';

export const BIN = resolve(fileURLToPath(import.meta.url), '../../../bin/converge.js');

interface Common {
  dataDir?: string;
  json?: boolean;
}

const dataDirOf = (o: Common): string => resolve(o.dataDir ?? defaultDataDir());

function number(v: string, field: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InputError(field, `"${v}" is not a number`);
  return n;
}

function configOf(dataDir: string): RackConfig {
  const cfg = readJson<RackConfig>(new RackLayout(dataDir).rackJson);
  if (!cfg) throw new RackNotRunningError(`no rack in ${dataDir}; create one with: converge rack up --nodes 4`);
  return cfg;
}

/** The control API's URL and token, from the data dir. */
function endpointOf(dataDir: string): RackEndpoint {
  configOf(dataDir);
  const ep = rackEndpoint(dataDir);
  if (!ep) throw new RackNotRunningError(`the rack in ${dataDir} has no control token (${controlTokenPath(dataDir)}); converge rack up creates one`);
  return ep;
}

function clientOf(dataDir: string): RackClient {
  return new RackClient(endpointOf(dataDir), 120_000);
}

/** The running rack's status; undefined when it is not running. A rack that refuses our token is an error. */
async function running(dataDir: string): Promise<RackStatus | undefined> {
  if (!existsSync(new RackLayout(dataDir).daemonJson)) return undefined;
  const ep = rackEndpoint(dataDir);
  if (!ep) return undefined;
  try {
    return await new RackClient(ep, 3000).status();
  } catch (e) {
    if (e instanceof RackApiError && e.status === 401) {
      throw new AuthError(`the rack in ${dataDir} runs but refuses the token in ${controlTokenPath(dataDir)} (was the file replaced while it ran?); stop it with kill ${readJson<DaemonInfo>(new RackLayout(dataDir).daemonJson)?.pid ?? '<pid in daemon.json>'}, then converge rack up`);
    }
    return undefined;
  }
}

async function requireRunning(dataDir: string): Promise<RackClient> {
  if (!(await running(dataDir))) throw new RackNotRunningError(`the rack in ${dataDir} is not running; start it with: converge rack up`);
  return clientOf(dataDir);
}

function printNodes(nodes: readonly RackNodeSummary[]): void {
  const rows = [['SERIAL', 'BLOCK/POS', 'MODEL', 'BMC', 'BMC MAC', 'POWER', 'STATE']];
  for (const n of nodes) {
    const f = n.faults;
    const faults = [f.bmcUnreachable && 'bmc-unreachable', f.bmcSlowMs > 0 && `bmc-slow ${f.bmcSlowMs}ms`, ...f.failedDisks.map((d) => `disk-failed ${d}`),
      f.powerOnFailure && 'power-on-failure', f.bootFailure && 'boot-failure', ...f.nicLinkDown.map((x) => `${x} down`),
      f.installerCrashAtPercent !== null && `installer-crash@${f.installerCrashAtPercent}%`].filter(Boolean).join(', ');
    const state = n.running ? `${n.running.name} ${n.running.version}` : n.bootProgress;
    rows.push([n.serial, `${n.block}/${n.position}`, n.model, n.bmc.url, n.bmc.mac, n.power, state + (faults ? `  [faults: ${faults}]` : '')]);
  }
  process.stdout.write(table(rows) + '\n');
}

function printStatus(s: RackStatus, password?: string): void {
  printNodes(s.nodes);
  process.stdout.write(`\n${s.nodes.length} nodes · BMC user ${s.bmcUser}${password ? ` / password ${password}` : ''} · CA ${s.caCert}\n`);
  process.stdout.write(`control API ${s.controlUrl}/rack (token: converge rack token) · SSDP discovery ${s.ssdp ? 'on' : 'off'} · pace ${s.pace} · data ${s.dataDir}\n`);
}

/** Resolves a node given as serial, 1-based index or BMC IP. */
function pick(s: RackStatus, which: string): RackNodeSummary {
  const byIndex = /^\d+$/.test(which) ? s.nodes[Number(which) - 1] : undefined;
  const n = byIndex ?? s.nodes.find((x) => x.serial === which || x.bmc.ip === which);
  if (!n) throw new InputError('node', `no node "${which}" in the rack (give a serial, a 1-based index or a BMC IP)`, s.nodes.map((x) => x.serial));
  return n;
}

async function waitUp(dataDir: string, pid: number, timeoutMs: number): Promise<RackStatus> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const s = await running(dataDir);
    const info = readJson<DaemonInfo>(new RackLayout(dataDir).daemonJson);
    if (s && info?.pid === pid) return s;
    if (!processAlive(pid)) {
      const log = new RackLayout(dataDir).log;
      const tail = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-8).join('\n') : '';
      throw new Error(`the rack daemon exited while starting:\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the rack did not come up within ${timeoutMs / 1000} s; see ${new RackLayout(dataDir).log}`);
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (!processAlive(pid)) return true; // exited, reaped or not
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

export interface UpOptions extends Common {
  nodes?: string;
  model?: string;
  modelFile?: string;
  bmcUser?: string;
  bmcPassword?: string;
  pace?: string;
  bmcNetwork?: string;
  foreground?: boolean;
}

export interface UpResult {
  status: RackStatus;
  /** The generated BMC password of a rack created now (shown once). */
  password?: string;
  alreadyRunning: boolean;
}

/** Brings the rack of a data dir up in the background (creating it first if needed). */
export async function bringUp(o: UpOptions): Promise<UpResult> {
  const dataDir = dataDirOf(o);
  const already = await running(dataDir);
  if (already) return { status: already, alreadyRunning: true };
  const password = await prepare(o, dataDir);
  const logFd = openSync(new RackLayout(dataDir).log, 'a');
  const child = spawn(process.execPath, [BIN, 'rack', 'daemon', '--data-dir', dataDir], { detached: true, stdio: ['ignore', logFd, logFd] });
  child.unref();
  const status = await waitUp(dataDir, child.pid ?? -1, 60_000);
  return password ? { status, password, alreadyRunning: false } : { status, alreadyRunning: false };
}

// the rack's runtime is loaded by the commands that run or change it (every other command starts faster without it)
const rackRuntime = (): Promise<typeof RackRuntime> => import('../rack/node/rack.ts');
const rackDaemon = async (...a: Parameters<typeof runRackDaemon>): Promise<void> => (await import('../rack/main.ts')).runRackDaemon(...a);

/** Checks the options against an existing rack, or creates the rack; returns a new rack's password. */
async function prepare(o: UpOptions, dataDir: string): Promise<string | undefined> {
  const { Rack } = await rackRuntime();
  let created = false;
  if (Rack.exists(dataDir)) {
    const cfg = configOf(dataDir);
    if (o.nodes !== undefined && number(o.nodes, 'nodes') !== cfg.nodes.length) {
      throw new InputError('nodes', `the rack in ${dataDir} has ${cfg.nodes.length} nodes; rack up restores it as it was (add nodes with: converge rack add --nodes N)`);
    }
  } else {
    const c: Parameters<typeof Rack.create>[1] = { nodes: o.nodes === undefined ? 4 : number(o.nodes, 'nodes') };
    if (o.model) c.model = o.model;
    if (o.modelFile) c.modelFile = parseHardwareModel(JSON.parse(readFileSync(o.modelFile, 'utf8')));
    if (o.bmcUser) c.bmcUser = o.bmcUser;
    if (o.bmcPassword) c.bmcPassword = o.bmcPassword;
    if (o.pace !== undefined) c.pace = number(o.pace, 'pace');
    if (o.bmcNetwork) c.bmcNetwork = parseBmcNetwork(o.bmcNetwork);
    Rack.create({ dataDir, clock: new SystemClock(), random: new SeededRandom(1), log: () => undefined }, c);
    created = true;
  }
  return created ? configOf(dataDir).bmc.password : undefined;
}

async function up(o: UpOptions): Promise<void> {
  const dataDir = dataDirOf(o);
  if (!o.foreground) {
    const r = await bringUp(o);
    if (o.json) printJson({ ...r.status, ...(r.password ? { bmcPassword: r.password } : {}), ...(r.alreadyRunning ? { alreadyRunning: true } : {}) });
    else {
      if (r.alreadyRunning) process.stdout.write('The rack is already up.\n\n');
      printStatus(r.status, r.password);
      if (r.password) process.stdout.write('\nThe BMC password is shown once here; it is also in rack.json (mode 0600) in the data dir.\n');
    }
    return;
  }
  if (await running(dataDir)) throw new InputError('foreground', `the rack in ${dataDir} is already running in the background`);
  const password = await prepare(o, dataDir);
  await rackDaemon(dataDir, (rack) => {
    if (o.json) printJson(rack.status());
    else {
      printStatus(rack.status(), password);
      process.stdout.write('\nRunning in the foreground; Ctrl-C stops the rack.\n');
    }
  });
}

export { configOf, dataDirOf, clientOf, printNodes };

export function registerRack(program: Command): Command {
  const rack = program.command('rack').description('an emulated rack of bare-metal nodes with Redfish BMCs');
  const common = (c: Command): Command => c.option('--data-dir <dir>', 'where the rack lives (default ~/.converge, or $CONVERGE_DATA_DIR)').option('--json', 'machine-readable output');

  common(rack.command('up'))
    .description('start the rack (creating it on first use) and return once every BMC answers')
    .option('--nodes <n>', 'number of nodes of a new rack (default 4)')
    .option('--model <name>', `hardware model of a new rack (${BUILTIN_MODELS.map((m) => m.name).join(', ')})`)
    .option('--model-file <file>', 'a hardware model in JSON (docs/rack.md)')
    .option('--bmc-user <user>', 'BMC administrator of a new rack (default admin)')
    .option('--bmc-password <pw>', 'BMC password of a new rack (default: generated, shown once)')
    .option('--pace <factor>', 'hardware delays as a fraction of real time (0 = instant; default 0.02)')
    .option('--bmc-network <127.N>', 'loopback /16 for the BMCs (default 127.10)')
    .option('--foreground', 'stay attached; Ctrl-C stops the rack')
    .action((o: UpOptions) => up(o).catch((e: unknown) => fail(e, o.json === true)));

  common(rack.command('status'))
    .description('show every node: serial, block/position, model, BMC, power, what it runs')
    .action(async (o: Common) => {
      try {
        const dataDir = dataDirOf(o);
        const s = await running(dataDir);
        if (!s) {
          configOf(dataDir);
          if (o.json) printJson({ running: false, dataDir });
          else process.stdout.write(`The rack in ${dataDir} is down. Start it with: converge rack up --data-dir ${dataDir}\n`);
          return;
        }
        if (o.json) printJson({ running: true, ...s });
        else printStatus(s);
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  common(rack.command('down'))
    .description('stop the rack; everything stays in the data dir for the next rack up')
    .action(async (o: Common) => {
      try {
        const dataDir = dataDirOf(o);
        const s = await running(dataDir);
        if (!s) {
          if (o.json) printJson({ stopped: false, reason: 'not running' });
          else process.stdout.write('The rack is not running.\n');
          return;
        }
        await clientOf(dataDir).shutdown();
        const gone = await waitGone(s.pid, 60_000);
        if (!gone) throw new Error(`the rack daemon (pid ${s.pid}) did not stop within 60 s`);
        if (o.json) printJson({ stopped: true, nodes: s.nodes.length });
        else process.stdout.write(`Rack stopped (${s.nodes.length} nodes); its state is kept in ${dataDir}.\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  common(rack.command('add'))
    .description('rack new nodes into the running rack')
    .option('--nodes <n>', 'how many', '1')
    .option('--model <name>', 'hardware model (default: that of the last node)')
    .option('--model-file <file>', 'a hardware model in JSON')
    .action(async (o: Common & { nodes: string; model?: string; modelFile?: string }) => {
      try {
        const client = await requireRunning(dataDirOf(o));
        const mf = o.modelFile ? parseHardwareModel(JSON.parse(readFileSync(o.modelFile, 'utf8'))) : undefined;
        const added = await client.addNodes(number(o.nodes, 'nodes'), o.model, mf);
        if (o.json) printJson({ nodes: added });
        else {
          process.stdout.write(`Racked ${added.length} node(s):\n\n`);
          printNodes(added);
        }
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  interface FaultOptions extends Common {
    bmcUnreachable?: boolean;
    bmcSlow?: string;
    diskFailed?: string[];
    powerOnFailure?: boolean;
    bootFailure?: boolean;
    nicDown?: string[];
    installerCrashAt?: string;
    clear?: boolean;
  }
  common(rack.command('fault'))
    .description('inject or clear hardware faults on a node')
    .argument('<node>', 'serial, 1-based index or BMC IP')
    .option('--bmc-unreachable', 'the BMC stops answering')
    .option('--bmc-slow <ms>', 'every BMC response is delayed this long (0 clears)')
    .option('--disk-failed <serial...>', 'these data disks fail: Redfish health Critical, I/O errors to their owner')
    .option('--power-on-failure', 'POST fails: the node powers off again')
    .option('--boot-failure', 'the boot device fails')
    .option('--nic-down <id...>', 'these NICs lose link (NIC1, NIC2, ...)')
    .option('--installer-crash-at <percent>', 'the installer booted on this node crashes at this percent')
    .option('--clear', 'clear every fault of the node (alone, or before applying the others)')
    .action(async (which: string, o: FaultOptions) => {
      try {
        const dataDir = dataDirOf(o);
        const client = await requireRunning(dataDir);
        const n = pick(await client.status(), which);
        if (o.clear) await client.clearFaults(n.serial);
        const p: FaultPatch = {};
        if (o.bmcUnreachable) p.bmcUnreachable = true;
        if (o.bmcSlow !== undefined) p.bmcSlowMs = number(o.bmcSlow, 'bmc-slow');
        if (o.diskFailed) p.failedDisks = [...new Set([...(o.clear ? [] : n.faults.failedDisks), ...o.diskFailed])];
        if (o.powerOnFailure) p.powerOnFailure = true;
        if (o.bootFailure) p.bootFailure = true;
        if (o.nicDown) p.nicLinkDown = [...new Set([...(o.clear ? [] : n.faults.nicLinkDown), ...o.nicDown])];
        if (o.installerCrashAt !== undefined) p.installerCrashAtPercent = number(o.installerCrashAt, 'installer-crash-at');
        if (!o.clear && Object.keys(p).length === 0) throw new InputError('fault', 'name at least one fault to inject, or --clear');
        const faults = Object.keys(p).length > 0 ? await client.setFaults(n.serial, p) : (await client.node(n.serial)).faults;
        if (o.json) printJson({ serial: n.serial, faults });
        else process.stdout.write(`${n.serial}: ${JSON.stringify(faults)}\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  common(rack.command('token'))
    .description("print the control API's bearer token (kept in <data-dir>/rack/control-token, mode 0600)")
    .option('--rotate', 'replace it first (running or not); the old token stops working at once')
    .action(async (o: Common & { rotate?: boolean }) => {
      try {
        const dataDir = dataDirOf(o);
        configOf(dataDir);
        if (o.rotate) {
          if (await running(dataDir)) await clientOf(dataDir).rotateToken();
          else (await import('../rack/node/control-api.ts')).writeControlToken(new RackLayout(dataDir).controlToken);
        }
        const token = readControlToken(dataDir);
        if (token === undefined) throw new RackNotRunningError(`the rack in ${dataDir} has no control token yet; converge rack up creates one (or rack token --rotate)`);
        if (o.json) printJson({ token, file: controlTokenPath(dataDir), rotated: o.rotate === true });
        else process.stdout.write(`${token}\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  common(rack.command('console'))
    .description("print a node's serial console log")
    .argument('<node>', 'serial, 1-based index or BMC IP')
    .option('--lines <n>', 'the last N lines', '50')
    .action((which: string, o: Common & { lines: string }) => {
      try {
        const dataDir = dataDirOf(o);
        const cfg = configOf(dataDir);
        const byIndex = /^\d+$/.test(which) ? cfg.nodes[Number(which) - 1] : undefined;
        const id = byIndex ?? cfg.nodes.find((x) => x.serial === which || x.bmcIp === which);
        if (!id) throw new InputError('node', `no node "${which}" in the rack`, cfg.nodes.map((x) => x.serial));
        const file = new RackLayout(dataDir).node(id.serial).console;
        const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(-number(o.lines, 'lines')) : [];
        if (o.json) printJson({ serial: id.serial, lines });
        else process.stdout.write(lines.join('\n') + (lines.length ? '\n' : ''));
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  rack.command('models')
    .description('list the built-in hardware models')
    .option('--json', 'machine-readable output')
    .action((o: { json?: boolean }) => {
      if (o.json) return printJson(BUILTIN_MODELS);
      const rows = [['MODEL', 'CPU', 'RAM', 'DISKS', 'NODES/BLOCK', 'DESCRIPTION']];
      for (const m of BUILTIN_MODELS) {
        rows.push([m.name, `${m.cpu.sockets}x${m.cpu.coresPerSocket}c`, `${(m.memory.dimms * m.memory.dimmSizeGiB)} GiB`,
          m.disks.map((d) => `${d.count}x${d.mediaType}(${d.capacityGiB}G)`).join('+'), String(m.nodesPerBlock), m.description]);
      }
      process.stdout.write(table(rows) + '\n');
    });

  rack.command('daemon', { hidden: true })
    .description('run the rack of a data dir (started by rack up)')
    .requiredOption('--data-dir <dir>')
    .action(async (o: { dataDir: string }) => {
      try {
        await rackDaemon(resolve(o.dataDir));
      } catch (e) {
        process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
        process.exit(1);
      }
    });

  common(rack.command('destroy'))
    .description('delete a stopped rack and all its disks')
    .option('--yes', 'really delete')
    .action(async (o: Common & { yes?: boolean }) => {
      try {
        const dataDir = dataDirOf(o);
        if (await running(dataDir)) throw new InputError('rack', 'the rack is running; run converge rack down first');
        if (!o.yes) throw new InputError('yes', `this deletes every disk of the rack in ${dataDir}; add --yes`);
        (await rackRuntime()).Rack.destroy(dataDir);
        if (o.json) printJson({ destroyed: true });
        else process.stdout.write(`Rack in ${dataDir} destroyed.\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });
  return rack;
}
