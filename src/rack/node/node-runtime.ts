/**
 * @module
 * One emulated node: its hardware, its power and boot state machine (core/power.ts), what it runs
 * (a child process of the rack), its serial console, its system event log, virtual media and
 * injected faults. Everything a node knows is persisted in its folder (node/layout.ts), so a rack
 * that stops and starts again finds every node as it was.
 *
 * Invariants:
 *  1. At most one program runs per node; a new boot starts only after the previous program exited
 *     and every process it started, in its process group or not (the CVM), is gone (node-processes.ts).
 *  2. Commands from the state machine run one at a time, in order (`chain`).
 *  3. Every state change is persisted before the next command runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, fstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, type WriteStream } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { extract } from 'tar';
import type { Clock, Disposable } from '../../shared/clock.ts';
import type { Random } from '../../shared/random.ts';
import { errorMessage, InputError } from '../../shared/errors.ts';
import { readJson, writeJson } from '../../shared/json-file.ts';
import { formatDisk, setDiskFailed, DiskVolume } from '../../shared/disk-volume.ts';
import { processAlive } from '../../shared/processes.ts';
import { killAll, processesWithEnv } from './node-processes.ts';
import {
  delaysFor, initialPowerState, setBootOverride, step,
  type PowerCommand, type PowerEvent, type PowerMachineState, type ResetType,
} from '../core/power.ts';
import { inventoryFor, type HardwareModel, type NodeIdentity, type NodeInventory } from '../core/models.ts';
import { BOOT_MANIFEST, HARDWARE_ENV, type BootManifest, type NodeHardware } from '../protocol/hardware.ts';
import type { NodeLayout } from './layout.ts';
import type { RackFaults } from '../protocol/control.ts';
import { onLines } from '../../shared/lines.ts';
import { basicAuth, DownloadTooLarge, readLimited, redactUrl, splitUserInfo, type Credentials } from './http-util.ts';

export interface Account {
  id: string;
  userName: string;
  passwordHash: string;
  roleId: 'Administrator' | 'Operator' | 'ReadOnly';
  enabled: boolean;
  locked: boolean;
}

export interface VirtualMediaState {
  /** The image URL, without user-info (credentials are kept apart, never shown or logged). */
  image: string | null;
  inserted: boolean;
  writeProtected: boolean;
  transferProtocolType: string | null;
  /** InsertMedia UserName/Password (or the URL's user-info): sent as HTTP Basic when fetching. */
  credentials?: Credentials;
}

/** A node's injected faults: the control API's shape (protocol/control.ts). */
export type NodeFaults = RackFaults;

export const NO_FAULTS: NodeFaults = {
  bmcUnreachable: false, bmcSlowMs: 0, failedDisks: [], powerOnFailure: false, bootFailure: false, nicLinkDown: [], installerCrashAtPercent: null,
};

export interface BmcNetwork {
  hostName: string;
  address: string;
  subnetMask: string;
  gateway: string;
  dhcp: boolean;
}

export interface NodeState {
  power: PowerMachineState;
  virtualMedia: VirtualMediaState;
  firmware: { bios: string; bmc: string };
  bmcNetwork: BmcNetwork;
  accounts: Account[];
  biosAttributes: Record<string, string | number | boolean>;
  assetTag: string;
  indicatorLed: 'Off' | 'Lit' | 'Blinking';
  faults: NodeFaults;
  /** Id of the first line of console.log (line Ids survive its rotation). */
  consoleFirstId?: number;
  /** CA certificates the BMC trusts for HTTPS image downloads (UpdateService RemoteServerCertificates). */
  remoteCertificates?: { id: string; pem: string }[];
}

export interface EventEntry {
  id: number;
  created: string;
  severity: 'OK' | 'Warning' | 'Critical';
  message: string;
}

export interface NodeRuntimeDeps {
  clock: Clock;
  random: Random;
  pace: number;
  layout: NodeLayout;
  bmcUrl: string;
  /** The first administrator of a new node's BMC (the hash is computed once per rack). */
  initialAccount: { userName: string; passwordHash: string };
  log: (msg: string) => void;
  /** The Node binary that runs what a node boots (tests replace it). */
  execPath?: string;
  /** Largest virtual media image the node downloads (default MAX_MEDIA_BYTES). */
  maxMediaBytes?: number;
}

/** One line of the serial console, with an Id that stays the same across console.log rotation. */
export interface ConsoleEntry {
  id: number;
  line: string;
}

export const DEFAULT_BIOS_ATTRIBUTES: Readonly<Record<string, string | number | boolean>> = {
  BootMode: 'Uefi',
  SecureBoot: 'Disabled',
  ProcessorHyperThreading: 'Enabled',
  ProcessorVirtualization: 'Enabled',
  SriovGlobalEnable: 'Enabled',
  IommuSupport: 'Enabled',
  PowerProfile: 'MaxPerformance',
  PxeRetryCount: 3,
};

const MAX_EVENTS = 500;
/** console.log is rotated to console.log.1 when it reaches this size. */
export const CONSOLE_ROTATE_BYTES = 1 << 20;
/** Console lines kept in memory for LogServices/Console/Entries. */
export const CONSOLE_TAIL_LINES = 1000;
/** Virtual media larger than this is refused (the boot fails with "image too large"). */
export const MAX_MEDIA_BYTES = 1024 ** 3;

/** How long power off waits for the killed processes of a node to be gone before the node reports it. */
export const PROCESS_STOP_TIMEOUT_MS = 10_000;

/** The user-visible reason of a media download failure. */
function mediaError(e: unknown): string {
  if (e instanceof DownloadTooLarge) return `image too large (${e.message})`;
  return errorMessage(e);
}

/** The lines of a console log file; nothing for what is missing or not a regular file. */
function readLines(path: string): string[] {
  try {
    return existsSync(path) && statSync(path).isFile() ? readFileSync(path, 'utf8').split('\n').filter((l) => l.length > 0) : [];
  } catch {
    return [];
  }
}

/** Kills a node program and every process it started (power lost: nothing on the node survives). */
function killGroup(child: ChildProcess): void {
  try {
    if (child.pid) process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

export class NodeRuntime {
  readonly inventory: NodeInventory;
  state: NodeState;
  private events: EventEntry[];
  private child: ChildProcess | undefined;
  /** Resolves once the running program has exited and every process of its boot is gone. */
  private childExit: Promise<void> = Promise.resolve();
  /** Processes of the last boot that SIGKILL did not end within PROCESS_STOP_TIMEOUT_MS (none, normally). */
  private survivors: number[] = [];
  private chain: Promise<void> = Promise.resolve();
  private timers = new Set<Disposable>();
  private console: WriteStream | undefined;
  /** Bytes in console.log (for rotation). */
  private consoleBytes = 0;
  private consoleNextId = 1;
  /** The last CONSOLE_TAIL_LINES lines, oldest first. */
  private consoleTail: ConsoleEntry[] = [];
  /** Aborts the virtual media download of the boot in progress (ForceOff, a reset, rack down). */
  private bootAbort: AbortController | undefined;
  private currentBmcUrl: string;
  private disposed = false;

  constructor(readonly identity: NodeIdentity, readonly model: HardwareModel, private readonly deps: NodeRuntimeDeps) {
    this.inventory = inventoryFor(model, identity);
    const L = deps.layout;
    mkdirSync(L.dir, { recursive: true });
    formatDisk(L.bootDisk, { serial: this.inventory.bootDevice.serial, model: this.inventory.bootDevice.model, mediaType: 'SSD', capacityBytes: this.inventory.bootDevice.capacityBytes });
    for (const d of this.inventory.disks) {
      formatDisk(L.disk(d.slot, d.serial), { serial: d.serial, model: d.model, mediaType: d.mediaType, capacityBytes: d.capacityBytes });
    }
    const saved = readJson<NodeState>(L.state);
    this.state = saved ? { ...this.freshState(), ...saved, faults: { ...NO_FAULTS, ...saved.faults } } : this.freshState();
    this.events = readJson<EventEntry[]>(L.events) ?? [];
    this.currentBmcUrl = deps.bmcUrl;
    this.loadConsole();
    this.openConsole();
    this.persist();
  }

  /** The console's tail and next line Id, from console.log (and console.log.1 if the tail needs it). */
  private loadConsole(): void {
    const L = this.deps.layout;
    const firstId = this.state.consoleFirstId ?? 1;
    const cur = readLines(L.console);
    let entries: ConsoleEntry[] = cur.map((line, i) => ({ id: firstId + i, line }));
    if (entries.length < CONSOLE_TAIL_LINES) {
      const prev = readLines(`${L.console}.1`);
      const older = prev.map((line, i) => ({ id: firstId - prev.length + i, line }));
      entries = [...older.slice(-(CONSOLE_TAIL_LINES - entries.length)), ...entries];
    }
    this.consoleTail = entries.slice(-CONSOLE_TAIL_LINES);
    this.consoleNextId = firstId + cur.length;
  }

  /** Opens console.log for appending. A console that cannot be written is logged, never fatal. */
  private openConsole(): void {
    const path = this.deps.layout.console;
    try {
      const fd = openSync(path, 'a', 0o644);
      this.consoleBytes = fstatSync(fd).size;
      const stream = createWriteStream(path, { fd });
      stream.on('error', (e) => {
        this.deps.log(`node ${this.serial}: console log ${path}: ${e.message}`);
        if (this.console === stream) this.console = undefined;
      });
      this.console = stream;
    } catch (e) {
      this.console = undefined;
      this.deps.log(`node ${this.serial}: cannot open the console log ${path}: ${errorMessage(e)}`);
    }
  }

  /** console.log → console.log.1 (the previous .1 is dropped); line Ids go on where they were. */
  private rotateConsole(): void {
    const L = this.deps.layout;
    try {
      // persisted first: after a crash mid-rotation Ids may skip ahead, but never repeat
      this.state.consoleFirstId = this.consoleNextId;
      this.persist();
      const old = this.console;
      this.console = undefined;
      old?.end();
      rmSync(`${L.console}.1`, { force: true });
      renameSync(L.console, `${L.console}.1`);
    } catch (e) {
      this.deps.log(`node ${this.serial}: cannot rotate the console log: ${errorMessage(e)}`);
    }
    this.openConsole();
    if (this.consoleBytes >= CONSOLE_ROTATE_BYTES) this.consoleBytes = 0; // rotation failed: try again after another MiB
  }

  /** Runs f, logging instead of throwing: for timers and process events, where a throw would kill the rack. */
  private safely(what: string, f: () => void): void {
    try {
      f();
    } catch (e) {
      this.deps.log(`node ${this.serial}: ${what}: ${errorMessage(e)}`);
    }
  }

  private freshState(): NodeState {
    const now = this.deps.clock.now();
    return {
      power: initialPowerState(now),
      virtualMedia: { image: null, inserted: false, writeProtected: true, transferProtocolType: null },
      firmware: { ...this.model.firmware },
      bmcNetwork: { hostName: `bmc-${this.identity.serial.toLowerCase()}`, address: this.identity.bmcIp, subnetMask: '255.0.0.0', gateway: '127.0.0.1', dhcp: false },
      accounts: [{ id: '1', userName: this.deps.initialAccount.userName, passwordHash: this.deps.initialAccount.passwordHash, roleId: 'Administrator', enabled: true, locked: false }],
      biosAttributes: { ...DEFAULT_BIOS_ATTRIBUTES },
      assetTag: '',
      indicatorLed: 'Off',
      faults: { ...NO_FAULTS },
    };
  }

  get serial(): string {
    return this.identity.serial;
  }

  get layout(): NodeLayout {
    return this.deps.layout;
  }

  get bmcUrl(): string {
    return this.currentBmcUrl;
  }

  /** The BMC moved (ipmi_config); what the running program is told follows. */
  bmcMoved(url: string): void {
    this.currentBmcUrl = url;
    if (this.child) this.safely('hardware.json', () => this.writeHardware(this.state.power.running?.source ?? 'Hdd'));
  }

  /** Where a data disk of this node lives. */
  diskPath(serial: string): string | undefined {
    const d = this.inventory.disks.find((x) => x.serial === serial);
    return d ? this.deps.layout.disk(d.slot, d.serial) : undefined;
  }

  /** state.json holds the BMC accounts' password hashes and media credentials: owner-only. */
  persist(): void {
    writeJson(this.deps.layout.state, this.state, 0o600);
  }

  /** Applies an event to the state machine and queues its commands. */
  private apply(event: PowerEvent): void {
    const ctx = { now: this.deps.clock.now(), delays: delaysFor(this.deps.pace, this.deps.random), faults: { powerOnFailure: this.state.faults.powerOnFailure } };
    const { state, commands } = step(this.state.power, event, ctx);
    const abandoned = state.epoch !== this.state.power.epoch || commands.some((c) => c.kind === 'stop');
    this.state.power = state;
    // a boot that is downloading its media is abandoned at once, not after the download
    if (abandoned) this.bootAbort?.abort(new Error('the boot was abandoned'));
    this.persist();
    for (const c of commands) this.chain = this.chain.then(() => this.run(c)).catch((e: unknown) => this.deps.log(`node ${this.serial}: ${errorMessage(e)}`));
  }

  /** Redfish ComputerSystem.Reset. Throws ConflictError where the reset makes no sense now. */
  reset(type: ResetType): void {
    this.apply({ kind: 'reset', type });
  }

  /** Called once when the rack starts: a node that was on is powered again. */
  restore(): void {
    this.apply({ kind: 'restore' });
  }

  setBootOverride(target: unknown, enabled: unknown): void {
    this.state.power = setBootOverride(this.state.power, target, enabled);
    this.persist();
  }

  /** Resolves once the queued commands have run (for tests and shutdown). */
  async settled(): Promise<void> {
    let c: Promise<void>;
    do {
      c = this.chain;
      await c;
    } while (c !== this.chain);
  }

  consoleLine(text: string): void {
    if (this.disposed) return;
    const line = `[${new Date(this.deps.clock.now()).toISOString()}] ${text.replace(/\r?\n/g, ' ')}`;
    this.consoleTail.push({ id: this.consoleNextId++, line });
    if (this.consoleTail.length > CONSOLE_TAIL_LINES) this.consoleTail.splice(0, this.consoleTail.length - CONSOLE_TAIL_LINES);
    const data = `${line}\n`;
    this.console?.write(data);
    this.consoleBytes += Buffer.byteLength(data);
    if (this.consoleBytes >= CONSOLE_ROTATE_BYTES) this.rotateConsole();
  }

  addEvent(severity: EventEntry['severity'], message: string): void {
    const id = (this.events[this.events.length - 1]?.id ?? 0) + 1;
    this.events.push({ id, created: new Date(this.deps.clock.now()).toISOString(), severity, message });
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    writeJson(this.deps.layout.events, this.events);
  }

  eventLog(): readonly EventEntry[] {
    return this.events;
  }

  clearEventLog(): void {
    this.events = [];
    writeJson(this.deps.layout.events, this.events);
  }

  /** The serial console as lines, oldest first (at most the last `max`, from memory). */
  consoleLines(max = CONSOLE_TAIL_LINES): string[] {
    return this.consoleTail.slice(-max).map((e) => e.line);
  }

  /** The last CONSOLE_TAIL_LINES console lines with their stable Ids, oldest first. */
  consoleEntries(): readonly ConsoleEntry[] {
    return this.consoleTail;
  }

  /**
   * Inserts virtual media. Credentials (InsertMedia UserName/Password, or the URL's user-info) are
   * kept for the download and never shown: the image is stored, shown and logged without user-info.
   */
  insertMedia(image: string, writeProtected: boolean, transferProtocolType: string | null, credentials?: Credentials): void {
    let url: URL;
    try {
      url = new URL(image);
    } catch {
      throw new InputError('Image', `"${redactUrl(image)}" is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InputError('Image', `scheme ${url.protocol} is not supported; use http or https`, ['HTTP', 'HTTPS']);
    const split = splitUserInfo(image);
    const vm: VirtualMediaState = { image: split.url, inserted: true, writeProtected, transferProtocolType };
    const creds = credentials ?? split.credentials;
    if (creds) vm.credentials = creds;
    this.state.virtualMedia = vm;
    this.persist();
    this.addEvent('OK', `Virtual media inserted: ${split.url}`);
  }

  ejectMedia(): void {
    this.state.virtualMedia = { image: null, inserted: false, writeProtected: true, transferProtocolType: null };
    this.persist();
    this.addEvent('OK', 'Virtual media ejected');
  }

  setFaults(f: Partial<NodeFaults>): void {
    const next = { ...this.state.faults, ...f };
    for (const s of next.failedDisks) {
      if (!this.diskPath(s)) throw new InputError('disk', `node ${this.serial} has no disk ${s}`, this.inventory.disks.map((d) => d.serial));
    }
    for (const n of next.nicLinkDown) {
      if (!this.inventory.nics.some((x) => x.id === n)) throw new InputError('nic', `node ${this.serial} has no NIC ${n}`, this.inventory.nics.map((x) => x.id));
    }
    for (const d of this.inventory.disks) {
      const failed = next.failedDisks.includes(d.serial);
      const was = this.state.faults.failedDisks.includes(d.serial);
      setDiskFailed(this.deps.layout.disk(d.slot, d.serial), failed);
      if (failed && !was) this.addEvent('Critical', `Drive ${d.serial} in slot ${d.slot} failed`);
      if (!failed && was) this.addEvent('OK', `Drive ${d.serial} in slot ${d.slot} restored`);
    }
    for (const n of this.inventory.nics) {
      const down = next.nicLinkDown.includes(n.id);
      if (down !== this.state.faults.nicLinkDown.includes(n.id)) this.addEvent(down ? 'Warning' : 'OK', `${n.id} link ${down ? 'down' : 'up'}`);
    }
    this.state.faults = next;
    this.persist();
    if (this.child) this.writeHardware(this.state.power.running?.source ?? 'Hdd');
  }

  /** The hardware description handed to what the node runs. */
  hardware(bootSource: 'Cd' | 'Hdd'): NodeHardware {
    const inv = this.inventory;
    const L = this.deps.layout;
    const f = this.state.faults;
    const hw: NodeHardware = {
      serial: this.identity.serial,
      uuid: this.identity.uuid,
      model: this.model.name,
      vendor: this.model.vendor,
      block: { serial: this.identity.blockSerial, position: this.identity.position },
      bmc: { ip: this.state.bmcNetwork.address, url: this.currentBmcUrl, mac: inv.bmcMac },
      cpu: inv.cpu,
      memory: { totalMiB: inv.dimms.reduce((a, d) => a + d.sizeMiB, 0), dimms: inv.dimms },
      nics: inv.nics.map((n) => ({ ...n, linkUp: !f.nicLinkDown.includes(n.id) })),
      bootDevice: { ...inv.bootDevice, path: L.bootDisk },
      hba: inv.hba,
      disks: inv.disks.map((d) => ({ ...d, health: f.failedDisks.includes(d.serial) ? 'Critical' : 'OK', path: L.disk(d.slot, d.serial) })),
      firmware: { ...this.state.firmware },
      faults: f.installerCrashAtPercent === null ? {} : { installerCrashAtPercent: f.installerCrashAtPercent },
      consoleLog: L.console,
      bootSource,
    };
    if (bootSource === 'Cd' && this.state.virtualMedia.image) hw.mediaUrl = this.state.virtualMedia.image;
    return hw;
  }

  private writeHardware(source: 'Cd' | 'Hdd'): void {
    writeJson(this.deps.layout.hardware, this.hardware(source));
  }

  private async run(c: PowerCommand): Promise<void> {
    if (this.disposed) return;
    switch (c.kind) {
      case 'console':
        this.consoleLine(c.line);
        return;
      case 'event':
        this.addEvent(c.severity, c.message);
        return;
      case 'timer': {
        const t = this.deps.clock.setTimeout(() => {
          this.timers.delete(t);
          if (!this.disposed) this.safely(`timer ${c.name}`, () => this.apply({ kind: 'timer', name: c.name, epoch: c.epoch }));
        }, c.ms);
        this.timers.add(t);
        return;
      }
      case 'nmi':
        this.child?.kill('SIGUSR2');
        return;
      case 'stop':
        await this.stopProgram(c.force);
        return;
      case 'boot':
        await this.boot(c.target, c.epoch);
        return;
    }
  }

  private async stopProgram(force: boolean): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (!force) {
      child.kill('SIGTERM');
      return;
    }
    killGroup(child);
    await this.childExit;
  }

  private async boot(target: 'Cd' | 'Hdd' | 'Pxe', epoch: number): Promise<void> {
    // A boot belongs to one power-on (its epoch): after every wait, a boot that ForceOff, a reset or
    // rack down overtook is abandoned without a word (the state machine has moved on).
    const stale = (): boolean => this.disposed || this.state.power.epoch !== epoch;
    await this.childExit; // invariant 1
    if (stale()) return;
    const fail = (reason: string): void => this.apply({ kind: 'bootFailed', epoch, reason });
    this.survivors = this.survivors.filter(processAlive);
    if (this.survivors.length > 0) return fail(`process ${this.survivors.join(', ')} of the previous boot still runs after power off`);
    if (this.state.faults.bootFailure) return fail(`${target === 'Cd' ? 'virtual CD' : target === 'Pxe' ? 'PXE' : 'boot disk'}: device error (injected boot failure)`);
    let dir: string;
    switch (target) {
      case 'Pxe':
        this.consoleLine('PXE: DHCP discover on NIC1 ...');
        return fail('PXE: no DHCP offer received on NIC1');
      case 'Cd': {
        const vm = this.state.virtualMedia;
        const image = vm.inserted ? vm.image : null;
        if (!image) return fail('no virtual media inserted (boot override Cd)');
        const shown = redactUrl(image);
        this.consoleLine(`virtual CD: reading ${shown}`);
        const abort = new AbortController();
        this.bootAbort = abort;
        try {
          dir = await this.fetchMedia(image, vm.credentials, abort.signal);
        } catch (e) {
          if (stale()) return;
          return fail(`virtual CD: cannot read ${shown}: ${mediaError(e)}`);
        } finally {
          if (this.bootAbort === abort) this.bootAbort = undefined;
        }
        if (stale()) return;
        break;
      }
      case 'Hdd': {
        const disk = DiskVolume.open(this.deps.layout.bootDisk);
        dir = disk.root;
        disk.close();
        if (!existsSync(join(dir, BOOT_MANIFEST))) return fail(`no bootable device: the boot disk ${this.inventory.bootDevice.serial} holds no ${BOOT_MANIFEST}`);
        break;
      }
    }
    let manifest: BootManifest;
    try {
      manifest = JSON.parse(readFileSync(join(dir, BOOT_MANIFEST), 'utf8')) as BootManifest;
      if (typeof manifest.entry !== 'string' || typeof manifest.name !== 'string' || typeof manifest.version !== 'string') throw new Error('name, version and entry must be strings');
    } catch (e) {
      return fail(`invalid ${BOOT_MANIFEST}: ${errorMessage(e)}`);
    }
    const entry = resolve(dir, manifest.entry);
    if (!entry.startsWith(resolve(dir) + sep) || !existsSync(entry)) return fail(`${BOOT_MANIFEST}: entry ${manifest.entry} not found`);
    const source = target;
    this.writeHardware(source);
    this.consoleLine(`loading ${manifest.name} ${manifest.version}`);
    let child: ChildProcess;
    try {
      child = spawn(this.deps.execPath ?? process.execPath, [entry], {
        cwd: dir,
        env: { ...process.env, [HARDWARE_ENV]: this.deps.layout.hardware, CONVERGE_NODE_SERIAL: this.identity.serial },
        // stdin is the node's power rail (stopOnPowerLoss): it closes when the rack process dies
        stdio: ['pipe', 'pipe', 'pipe'],
        // its own process group: power off stops everything the node runs, not only its first process
        detached: true,
      });
    } catch (e) {
      return fail(`cannot start ${manifest.entry}: ${errorMessage(e)}`);
    }
    this.child = child;
    child.stdin?.on('error', () => undefined); // the power rail: nothing is written; a dead child is not an error
    // A program that cannot be started (ENOENT, EAGAIN) emits 'error' and 'close' but no 'exit':
    // whichever comes first ends it, once.
    let spawned = false;
    let ended = false;
    let exited!: () => void;
    this.childExit = new Promise<void>((res) => (exited = res));
    const end = (): boolean => {
      if (ended) return false;
      ended = true;
      if (this.child === child) this.child = undefined;
      // the program is gone: so is everything else the node ran (its CVM, in a group of its own)
      void this.stopTheRest().then(exited, exited);
      return true;
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      killGroup(child); // the node's program is gone (off, reboot, crash): so is everything it started
      if (end() && !this.disposed) this.safely('program exit', () => this.apply({ kind: 'exited', epoch, code, signal }));
    };
    let started!: () => void;
    const startedOrFailed = new Promise<void>((res) => (started = res));
    child.once('spawn', () => {
      spawned = true;
      started();
      if (!this.disposed) this.safely('program start', () => this.apply({ kind: 'booted', epoch, source, name: manifest.name, version: manifest.version }));
    });
    child.once('exit', onExit);
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      if (spawned) onExit(code, signal);
      else if (end()) started();
    });
    child.on('error', (e) => {
      if (spawned) {
        this.deps.log(`node ${this.serial}: program: ${e.message}`);
        return;
      }
      const first = end();
      started();
      if (first && !this.disposed) this.safely('program start', () => fail(`cannot start ${manifest.entry}: ${e.message}`));
    });
    child.stdout?.on('error', () => undefined);
    child.stderr?.on('error', () => undefined);
    onLines(child.stdout, (l) => this.consoleLine(l));
    onLines(child.stderr, (l) => this.consoleLine(l));
    await startedOrFailed;
  }

  /**
   * Kills every process still running from the node's last boot (found by the node's hardware file
   * in their environment) and waits until each has exited (reaped or not: shared/processes.ts). What
   * SIGKILL did not end within PROCESS_STOP_TIMEOUT_MS is logged and kept in `survivors`: the next
   * boot fails rather than run beside it.
   */
  private async stopTheRest(): Promise<void> {
    const left = processesWithEnv(HARDWARE_ENV, this.deps.layout.hardware);
    if (left.length === 0) return;
    killAll(left);
    const deadline = this.deps.clock.now() + PROCESS_STOP_TIMEOUT_MS;
    for (;;) {
      const alive = left.filter(processAlive);
      if (alive.length === 0) return;
      if (this.deps.clock.now() >= deadline) {
        this.survivors = alive;
        const what = `process ${alive.join(', ')} of the last boot did not stop within ${PROCESS_STOP_TIMEOUT_MS / 1000} s of power off`;
        this.deps.log(`node ${this.serial}: ${what}`);
        this.consoleLine(`power: ${what}`);
        return;
      }
      await this.deps.clock.sleep(20);
    }
  }

  /**
   * Downloads virtual media (a tar archive, optionally gzip, holding boot.json) into the media
   * folder and unpacks it. Refuses what is not an image from its first bytes, and images larger
   * than maxMediaBytes; `signal` abandons the download.
   */
  private async fetchMedia(url: string, credentials: Credentials | undefined, signal: AbortSignal): Promise<string> {
    const split = splitUserInfo(url);
    const creds = credentials ?? split.credentials;
    const max = this.deps.maxMediaBytes ?? MAX_MEDIA_BYTES;
    const dir = join(this.deps.layout.media, createHash('sha256').update(split.url).digest('hex').slice(0, 16));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const headers: Record<string, string> = {};
    if (creds) headers['Authorization'] = basicAuth(creds);
    const file = join(dir, '.image');
    try {
      const res = await fetch(split.url, { headers, signal: AbortSignal.any([signal, AbortSignal.timeout(120_000)]) });
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        throw new Error(`HTTP ${res.status}`);
      }
      const out = await open(file, 'w');
      let head = Buffer.alloc(0);
      let checked = false;
      const check = (): void => {
        checked = true;
        const isGzip = head[0] === 0x1f && head[1] === 0x8b;
        const isTar = head.length > 262 && head.subarray(257, 262).toString('latin1') === 'ustar';
        if (!isGzip && !isTar) throw new Error('not a bootable image (expected a tar archive with boot.json)');
      };
      try {
        await readLimited(res, max, async (chunk) => {
          if (!checked) {
            head = Buffer.concat([head, chunk]);
            if (head.length > 262) check();
          }
          await out.write(chunk);
        });
        if (!checked) check();
      } finally {
        await out.close();
      }
      if (signal.aborted) throw signal.reason;
      await extract({ file, cwd: dir, strict: true });
      rmSync(file);
      return dir;
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * Stops what the node runs and its timers, leaving the persisted state as it is (rack down). A boot
   * in progress is abandoned (its download aborted); queued commands are drained, doing nothing.
   */
  async shutdown(): Promise<void> {
    for (const t of this.timers) t.dispose();
    this.timers.clear();
    this.disposed = true;
    this.bootAbort?.abort(new Error('the rack is stopping'));
    const child = this.child;
    if (child) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => killGroup(child), 5000);
      await this.childExit;
      clearTimeout(killer);
    }
    await this.settled();
    const stream = this.console;
    this.console = undefined;
    if (stream && !stream.destroyed) await new Promise<void>((res) => stream.end(res));
  }
}
