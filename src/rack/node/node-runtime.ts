/**
 * @module
 * One emulated node: its hardware, its power and boot state machine (core/power.ts), what it runs
 * (a child process of the rack), its serial console, its system event log, virtual media and
 * injected faults. Everything a node knows is persisted in its folder (node/layout.ts), so a rack
 * that stops and starts again finds every node as it was.
 *
 * Invariants:
 *  1. At most one program runs per node; a new boot starts only after the previous program exited.
 *  2. Commands from the state machine run one at a time, in order (`chain`).
 *  3. Every state change is persisted before the next command runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, type WriteStream } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { extract } from 'tar';
import type { Clock, Disposable } from '../../shared/clock.ts';
import type { Random } from '../../shared/random.ts';
import { errorMessage, InputError } from '../../shared/errors.ts';
import { readJson, writeJson } from '../../shared/json-file.ts';
import { formatDisk, setDiskFailed, DiskVolume } from '../../shared/disk-volume.ts';
import {
  delaysFor, initialPowerState, setBootOverride, step,
  type PowerCommand, type PowerEvent, type PowerMachineState, type ResetType,
} from '../core/power.ts';
import { inventoryFor, type HardwareModel, type NodeIdentity, type NodeInventory } from '../core/models.ts';
import { BOOT_MANIFEST, HARDWARE_ENV, type BootManifest, type NodeHardware } from '../protocol/hardware.ts';
import type { NodeLayout } from './layout.ts';

export interface Account {
  id: string;
  userName: string;
  passwordHash: string;
  roleId: 'Administrator' | 'Operator' | 'ReadOnly';
  enabled: boolean;
  locked: boolean;
}

export interface VirtualMediaState {
  image: string | null;
  inserted: boolean;
  writeProtected: boolean;
  transferProtocolType: string | null;
}

export interface NodeFaults {
  bmcUnreachable: boolean;
  /** Extra latency added to every BMC response, in ms. */
  bmcSlowMs: number;
  failedDisks: string[];
  powerOnFailure: boolean;
  bootFailure: boolean;
  /** NIC ids (NIC1...) whose link is down. */
  nicLinkDown: string[];
  installerCrashAtPercent: number | null;
}

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
  /** Extra CA (PEM) trusted when fetching virtual media over HTTPS. */
  log: (msg: string) => void;
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

export class NodeRuntime {
  readonly inventory: NodeInventory;
  state: NodeState;
  private events: EventEntry[];
  private child: ChildProcess | undefined;
  private childExit: Promise<void> = Promise.resolve();
  private chain: Promise<void> = Promise.resolve();
  private timers = new Set<Disposable>();
  private console: WriteStream;
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
    this.console = createWriteStream(L.console, { flags: 'a' });
    this.persist();
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
    return this.deps.bmcUrl;
  }

  /** Where a data disk of this node lives. */
  diskPath(serial: string): string | undefined {
    const d = this.inventory.disks.find((x) => x.serial === serial);
    return d ? this.deps.layout.disk(d.slot, d.serial) : undefined;
  }

  persist(): void {
    writeJson(this.deps.layout.state, this.state);
  }

  /** Applies an event to the state machine and queues its commands. */
  private apply(event: PowerEvent): void {
    const ctx = { now: this.deps.clock.now(), delays: delaysFor(this.deps.pace, this.deps.random), faults: { powerOnFailure: this.state.faults.powerOnFailure } };
    const { state, commands } = step(this.state.power, event, ctx);
    this.state.power = state;
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

  consoleLine(line: string): void {
    if (this.disposed) return;
    this.console.write(`[${new Date(this.deps.clock.now()).toISOString()}] ${line}\n`);
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

  /** The serial console as lines, oldest first (at most the last `max`). */
  consoleLines(max = 1000): string[] {
    if (!existsSync(this.deps.layout.console)) return [];
    const lines = readFileSync(this.deps.layout.console, 'utf8').split('\n').filter((l) => l.length > 0);
    return lines.slice(-max);
  }

  insertMedia(image: string, writeProtected: boolean, transferProtocolType: string | null): void {
    let url: URL;
    try {
      url = new URL(image);
    } catch {
      throw new InputError('Image', `"${image}" is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InputError('Image', `scheme ${url.protocol} is not supported; use http or https`, ['HTTP', 'HTTPS']);
    this.state.virtualMedia = { image, inserted: true, writeProtected, transferProtocolType };
    this.persist();
    this.addEvent('OK', `Virtual media inserted: ${image}`);
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
      bmc: { ip: this.identity.bmcIp, url: this.deps.bmcUrl, mac: inv.bmcMac },
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
          this.apply({ kind: 'timer', name: c.name, epoch: c.epoch });
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
    child.kill(force ? 'SIGKILL' : 'SIGTERM');
    if (force) await this.childExit;
  }

  private async boot(target: 'Cd' | 'Hdd' | 'Pxe', epoch: number): Promise<void> {
    await this.childExit; // invariant 1
    const fail = (reason: string): void => this.apply({ kind: 'bootFailed', epoch, reason });
    if (this.state.faults.bootFailure) return fail(`${target === 'Cd' ? 'virtual CD' : target === 'Pxe' ? 'PXE' : 'boot disk'}: device error (injected boot failure)`);
    let dir: string;
    switch (target) {
      case 'Pxe':
        this.consoleLine('PXE: DHCP discover on NIC1 ...');
        return fail('PXE: no DHCP offer received on NIC1');
      case 'Cd': {
        const image = this.state.virtualMedia.inserted ? this.state.virtualMedia.image : null;
        if (!image) return fail('no virtual media inserted (boot override Cd)');
        this.consoleLine(`virtual CD: reading ${image}`);
        try {
          dir = await this.fetchMedia(image);
        } catch (e) {
          return fail(`virtual CD: cannot read ${image}: ${errorMessage(e)}`);
        }
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
    const child = spawn(process.execPath, [entry], {
      cwd: dir,
      env: { ...process.env, [HARDWARE_ENV]: this.deps.layout.hardware, CONVERGE_NODE_SERIAL: this.identity.serial },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.childExit = new Promise<void>((res) => {
      child.once('exit', (code, signal) => {
        if (this.child === child) this.child = undefined;
        res();
        if (!this.disposed) this.apply({ kind: 'exited', epoch, code, signal });
      });
    });
    const pipe = (s: NodeJS.ReadableStream | null): void => {
      let rest = '';
      s?.setEncoding('utf8');
      s?.on('data', (chunk: string) => {
        const parts = (rest + chunk).split('\n');
        rest = parts.pop() ?? '';
        for (const p of parts) this.consoleLine(p);
      });
    };
    pipe(child.stdout);
    pipe(child.stderr);
    await new Promise<void>((res) => {
      child.once('spawn', () => {
        this.apply({ kind: 'booted', epoch, source, name: manifest.name, version: manifest.version });
        res();
      });
      child.once('error', (e) => {
        fail(`cannot start ${manifest.entry}: ${e.message}`);
        res();
      });
    });
  }

  /** Downloads virtual media (a tar archive holding boot.json) and unpacks it; cached by URL. */
  private async fetchMedia(url: string): Promise<string> {
    const dir = join(this.deps.layout.media, createHash('sha256').update(url).digest('hex').slice(0, 16));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const res = await fetch(url, { signal: AbortSignal.timeout(120_000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = Buffer.from(await res.arrayBuffer());
    const isGzip = body[0] === 0x1f && body[1] === 0x8b;
    const isTar = body.length > 262 && body.subarray(257, 262).toString('latin1') === 'ustar';
    if (!isGzip && !isTar) throw new Error('not a bootable image (expected a tar archive with boot.json)');
    const file = join(dir, '.image');
    await writeFile(file, body);
    await extract({ file, cwd: dir, strict: true });
    rmSync(file);
    return dir;
  }

  /** Stops what the node runs and its timers, leaving the persisted state as it is (rack down). */
  async shutdown(): Promise<void> {
    for (const t of this.timers) t.dispose();
    this.timers.clear();
    this.disposed = true;
    const child = this.child;
    if (child) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await this.childExit;
      clearTimeout(killer);
    }
    await new Promise<void>((res) => this.console.end(res));
  }
}
