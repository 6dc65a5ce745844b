/**
 * @module
 * The host's VM runtime (protocol/vms.ts): each VM is one QEMU process, driven over QMP, that dies
 * with the host agent (spawned through `setpriv --pdeathsig KILL`).
 *
 * ```
 *   start(spec) ──spawn (-S)──▶ starting ──QMP up, cont──▶ running ◀──resume── paused
 *        │                                      │  ▲                 ──pause──▶
 *        │                            shutdown  ▼  │ (guest ignored it: powerdown-timeout)
 *        │                                 shutting-down ──guest powers off──▶ off
 *   incoming(spec) ──spawn (-incoming defer), migrate-incoming──▶ incoming ──stream arrives──▶ running
 *   migrate(uuid, ip, port): running|paused ──▶ migrating ──completed──▶ migrated (source QEMU quits)
 *                                                   └──failed──▶ running|paused as before
 *   QEMU exits: asked (off, guest shutdown, migrated) → off | migrated; unasked → crashed (exit says how)
 * ```
 * The serial console is a chardev socket QEMU listens on and logs (`console.log`, appended across
 * restarts); the host keeps one connection to it per VM, fans its bytes out to live streams and
 * writes typed input into it. Sockets live under a short directory (a Unix socket path has 108
 * bytes); logs under the state directory.
 *
 * Operations on one VM run one at a time (a KeyedLock per uuid); reads never wait.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { accessSync, constants as fsConstants, existsSync, mkdirSync, openSync, readSync, closeSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { SystemClock, type Clock, type Disposable } from '../../shared/clock.ts';
import { ConflictError, NotFoundError, TimeoutError, UnavailableError, errorMessage } from '../../shared/errors.ts';
import { KeyedLock } from '../../shared/keyed-lock.ts';
import { MIGRATION_PORT_BASE, type ConsoleChunk, type HostResources, type HostVm, type HostVmNic, type HostVmSpec, type HostVmState, type MigrationResult, type PowerAction } from '../protocol/vms.ts';
import { qemuArgs } from './qemu-args.ts';
import { QmpClient, type QmpEvent } from './qmp.ts';
import { checkSpec } from './spec.ts';

export interface VmRuntimeTimeouts {
  /** QEMU's QMP socket answering after spawn. */
  startMs: number;
  /** `quit` before SIGKILL (power off). */
  offMs: number;
  /** An ACPI power-button press the guest has not acted on: back to running, with a `powerdown-timeout` event. */
  shutdownMs: number;
  /** A live migration from start to completed (then cancelled: the VM stays here). */
  migrationMs: number;
  /** An incoming QEMU waiting for its stream to begin (then stopped). */
  incomingMs: number;
}

export interface HostCapacity {
  memoryMiB: number;
  vcpus: number;
  cvmMemoryMiB: number;
  cvmVcpus: number;
}

export interface VmRuntimeDeps {
  /** This host's address (migration streams arrive on it). */
  hostIp: () => string;
  /** The redirector's Unix socket: every vdisk is an NBD export of it. */
  vdiskSocket: string;
  /** Per-VM logs (`<stateDir>/<uuid>/console.log`); sockets go beside it when the path is short enough, else a private temp dir. */
  stateDir: string;
  /** The host's memory and logical CPUs, and the CVM's share of them (read at each use: a reconfiguration changes the CVM's). */
  capacity: () => HostCapacity;
  /** The Unix socket of this host's virtual switch port for a subnet. */
  nicSocket: (subnetUuid: string) => string;
  /** Called for each NIC before QEMU starts (or receives a migration): the switch learns its address (IPAM's reservation). */
  attachNic?: (nic: HostVmNic) => void;
  /**
   * A folder with this host's migration TLS credentials as QEMU reads them (ca-cert.pem,
   * server-cert.pem, server-key.pem, client-cert.pem, client-key.pem: writeQemuTlsDir), or
   * undefined when this host has none (not a cluster member): then it neither sends nor receives VMs.
   */
  migrationTlsDir: () => string | undefined;
  log: (m: string) => void;
  clock?: Clock;
  /**
   * kvm or tcg: always that one. auto (the default): kvm when /dev/kvm can be opened read-write
   * (`kvmProbe`), else tcg; and when a VM started under KVM fails with a KVM internal error (a
   * nested or partial KVM that cannot run the guest's code), the host switches to tcg for good and
   * starts that VM again under it.
   */
  accel?: 'kvm' | 'tcg' | 'auto';
  /** Whether /dev/kvm is there to use (default kvmUsable). */
  kvmProbe?: () => boolean;
  qemuBinary?: string;
  machine?: 'q35' | 'pc';
  migrationPortBase?: number;
  timeouts?: Partial<VmRuntimeTimeouts>;
}

const DEFAULT_TIMEOUTS: VmRuntimeTimeouts = { startMs: 20_000, offMs: 10_000, shutdownMs: 120_000, migrationMs: 600_000, incomingMs: 120_000 };
const MAX_EVENTS = 20;
const CONSOLE_READ_MAX = 64 << 10;
/** A live console stream whose reader lags this far behind is ended (it may reconnect and read the log). */
const STREAM_LAG_MAX = 1 << 20;
/** The migration TLS credentials' QOM object id. */
const TLS_OBJECT = 'mig-tls';
/** States in which a QEMU process exists. */
const LIVE: readonly HostVmState[] = ['starting', 'running', 'paused', 'shutting-down', 'incoming', 'migrating'];

interface Vm {
  spec: HostVmSpec;
  state: HostVmState;
  pid: number | null;
  startedAt: string | null;
  events: HostVm['events'];
  exit: HostVm['exit'];
  /** Bumped at each launch: callbacks of an earlier process are ignored. */
  gen: number;
  /** The accelerator its QEMU runs under. */
  accel?: 'kvm' | 'tcg';
  /** Its QEMU is being replaced (KVM failed): the exit leaves it starting, not off. */
  relaunching?: boolean;
  proc?: ChildProcess | undefined;
  qmp?: QmpClient | undefined;
  serial?: Socket | undefined;
  streams: Set<PassThrough>;
  /** Why the coming exit is expected (asked for, the guest powered off, migrated); unset: a crash. */
  expectExit?: string | undefined;
  stderr: string;
  exited?: Promise<void> | undefined;
  incomingPort?: number | undefined;
  timer?: Disposable | undefined;
}

/** Beside the VMs' state: this host's KVM failed to run a guest (kept across restarts of the agent). */
export const KVM_FAILED_FILE = 'kvm-failed';

/** Whether /dev/kvm can be used by this process. */
export function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', fsConstants.R_OK | fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The accelerator setting from its text (CONVERGE_VM_ACCEL): kvm, tcg or auto; anything else (or nothing) is auto. */
export function accelSetting(v: string | undefined): 'kvm' | 'tcg' | 'auto' {
  return v === 'kvm' || v === 'tcg' ? v : 'auto';
}

/** A directory for Unix sockets under `base`, or (too long for a socket path) a private temp dir named by its hash. */
export function socketDir(base: string, room = 48): string {
  let dir = join(base, 'sock');
  if (dir.length + room > 107) dir = join(tmpdir(), `cvg-vm-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** The end of a byte range that does not split a UTF-8 sequence (at most 3 bytes are held back). */
function utf8Boundary(b: Buffer, end: number): number {
  for (let back = 1; back <= Math.min(3, end); back++) {
    const c = b[end - back] ?? 0;
    if ((c & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return need > back ? end - back : end;
  }
  return end;
}

export class VmRuntime {
  private readonly vms = new Map<string, Vm>();
  /** The highest placement epoch seen per VM (kept after delete: a stale leader's order stays refused). */
  private readonly epochs = new Map<string, number>();
  private readonly lock = new KeyedLock();
  private readonly clock: Clock;
  private readonly t: VmRuntimeTimeouts;
  private accelNow: 'kvm' | 'tcg';
  private readonly sockDir: string;
  private closed = false;

  /** This start of the host agent (HostResources.bootId). */
  private readonly bootId = randomUUID();

  constructor(private readonly d: VmRuntimeDeps) {
    this.clock = d.clock ?? new SystemClock();
    this.t = { ...DEFAULT_TIMEOUTS, ...d.timeouts };
    const want = d.accel ?? 'auto';
    mkdirSync(d.stateDir, { recursive: true, mode: 0o700 });
    // a KVM found unable to run guests before this start (kvmFailed) is not tried again: a VM that
    // migrates in from a host running it under TCG would otherwise arrive under KVM and hang
    this.accelNow = want === 'auto' ? ((d.kvmProbe ?? kvmUsable)() && !existsSync(join(d.stateDir, KVM_FAILED_FILE)) ? 'kvm' : 'tcg') : want;
    this.sockDir = socketDir(d.stateDir);
  }

  // ---- reads ----------------------------------------------------------------------------

  /** The accelerator new QEMU processes get: kvm, or tcg (software emulation). */
  get accel(): 'kvm' | 'tcg' {
    return this.accelNow;
  }

  /** VMs with a QEMU process here. */
  get live(): number {
    return [...this.vms.values()].filter((v) => v.proc).length;
  }

  list(): HostVm[] {
    return [...this.vms.values()].map((v) => this.view(v));
  }

  get(uuid: string): HostVm {
    return this.view(this.find(uuid));
  }

  resources(): HostResources {
    let mem = 0;
    let cpus = 0;
    for (const v of this.vms.values()) {
      if (!LIVE.includes(v.state)) continue;
      mem += v.spec.memoryMiB;
      cpus += v.spec.vcpus;
    }
    const c = this.d.capacity();
    return {
      memoryMiB: c.memoryMiB, cvmMemoryMiB: c.cvmMemoryMiB, vmMemoryMiB: mem,
      freeMemoryMiB: Math.max(0, c.memoryMiB - c.cvmMemoryMiB - mem),
      vcpus: c.vcpus, cvmVcpus: c.cvmVcpus, vmVcpus: cpus, accelerator: this.accel, bootId: this.bootId,
    };
  }

  /** The console log from byte `offset` (at most 64 KiB, never splitting a UTF-8 character). */
  console(uuid: string, offset = 0): ConsoleChunk {
    this.find(uuid);
    const path = this.logPath(uuid);
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return { text: '', next: 0 };
    }
    try {
      const size = statSync(path).size;
      const from = Math.min(offset, size);
      const buf = Buffer.alloc(Math.min(CONSOLE_READ_MAX, size - from));
      const n = buf.length > 0 ? readSync(fd, buf, 0, buf.length, from) : 0;
      const end = from + n < size ? utf8Boundary(buf, n) : n;
      return { text: buf.subarray(0, end).toString('utf8'), next: from + end };
    } finally {
      closeSync(fd);
    }
  }

  /** The console's bytes from now on, live, until the VM stops or the reader goes away. */
  consoleStream(uuid: string): PassThrough {
    const vm = this.find(uuid);
    if (!vm.serial) throw new ConflictError(`VM ${uuid} has no live console (it is ${vm.state})`);
    const s = new PassThrough();
    vm.streams.add(s);
    const drop = (): void => {
      vm.streams.delete(s);
    };
    s.on('close', drop);
    s.on('error', drop);
    return s;
  }

  /** Types `data` on the VM's serial console. */
  async consoleInput(uuid: string, data: string): Promise<void> {
    const vm = this.find(uuid);
    const serial = vm.serial;
    if (!serial) throw new ConflictError(`VM ${uuid} has no live console (it is ${vm.state})`);
    await new Promise<void>((resolve, reject) => serial.write(data, (e) => (e ? reject(new UnavailableError(`console: ${e.message}`)) : resolve())));
  }

  // ---- lifecycle -----------------------------------------------------------------------

  /** Defines and powers on a VM (409 while it runs; a spec with a lower epoch than seen is refused). */
  async start(input: HostVmSpec): Promise<HostVm> {
    const spec = checkSpec(input);
    return this.lock.run(spec.uuid, async () => {
      const vm = this.admit(spec);
      await this.launch(vm, false);
      return this.view(vm);
    });
  }

  /** Starts QEMU waiting for this VM's live migration; answers the port the source sends to. */
  async incoming(input: HostVmSpec): Promise<{ port: number }> {
    const spec = checkSpec(input);
    return this.lock.run(spec.uuid, async () => {
      const tls = this.tlsDir();
      const vm = this.admit(spec);
      const port = await this.freePort();
      vm.incomingPort = port;
      await this.launch(vm, true);
      const qmp = vm.qmp;
      try {
        if (!qmp) throw new UnavailableError('QMP is not connected');
        await qmp.execute('object-add', { 'qom-type': 'tls-creds-x509', id: TLS_OBJECT, dir: tls, endpoint: 'server', 'verify-peer': true });
        await qmp.execute('migrate-set-parameters', { 'tls-creds': TLS_OBJECT });
        await qmp.execute('migrate-incoming', { uri: `tcp:${this.d.hostIp()}:${port}` });
      } catch (e) {
        await this.kill(vm, `the incoming migration could not be set up: ${errorMessage(e)}`);
        throw new UnavailableError(`VM ${spec.uuid}: cannot wait for its migration: ${errorMessage(e)}`);
      }
      const gen = vm.gen;
      vm.timer = this.clock.setTimeout(() => {
        if (vm.gen === gen && vm.state === 'incoming' && !vm.events.some((e) => e.event === 'MIGRATION' && (e.data as { status?: string } | undefined)?.status === 'active')) {
          void this.kill(vm, `no migration arrived in ${this.t.incomingMs / 1000} s`);
        }
      }, this.t.incomingMs);
      this.d.log(`VM ${spec.uuid}: waiting for its migration on ${this.d.hostIp()}:${port}`);
      return { port };
    });
  }

  /** Sends a running (or paused) VM to the host at `targetHostIp:port` (its `incoming`), then quits it here. */
  migrate(uuid: string, targetHostIp: string, port: number): Promise<MigrationResult> {
    return this.lock.run(uuid, async () => {
      const vm = this.find(uuid);
      if (vm.state !== 'running' && vm.state !== 'paused') throw new ConflictError(`VM ${uuid} is ${vm.state}: only a running or paused VM migrates`);
      const qmp = vm.qmp;
      if (!qmp) throw new UnavailableError(`VM ${uuid}: QMP is not connected`);
      const tls = this.tlsDir();
      const before = vm.state;
      vm.state = 'migrating';
      const t0 = this.clock.now();
      // TCG: the guest is stopped for the whole copy (QEMU 7.2 loses guest writes made during a live
      // copy under TCG: guests panicked after 1 migration in 3 to 25; docs/migration.md)
      const stopFirst = vm.accel === 'tcg' && before === 'running';
      this.d.log(`VM ${uuid}: migrating to ${targetHostIp}:${port}${stopFirst ? ' (stopped for the copy: TCG)' : ''}`);
      let st: QueryMigrate;
      try {
        if (stopFirst) await qmp.execute('stop');
        await qmp.execute('object-del', { id: TLS_OBJECT }).catch(() => undefined);
        await qmp.execute('object-add', { 'qom-type': 'tls-creds-x509', id: TLS_OBJECT, dir: tls, endpoint: 'client', 'verify-peer': true });
        await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'auto-converge', state: true }] });
        await qmp.execute('migrate-set-parameters', { 'tls-creds': TLS_OBJECT, 'tls-hostname': targetHostIp });
        await qmp.execute('migrate', { uri: `tcp:${targetHostIp}:${port}` });
        st = await this.migrationDone(qmp, t0);
      } catch (e) {
        await this.afterFailedMigration(vm, before, stopFirst);
        throw e instanceof TimeoutError ? e : new UnavailableError(`VM ${uuid}: migration to ${targetHostIp} failed: ${errorMessage(e)}`);
      }
      if (st.status !== 'completed') {
        await this.afterFailedMigration(vm, before, stopFirst);
        throw new UnavailableError(`VM ${uuid}: migration to ${targetHostIp} ${st.status}${st['error-desc'] ? `: ${st['error-desc']}` : ''}`);
      }
      const totalMs = st['total-time'] ?? this.clock.now() - t0;
      const result: MigrationResult = stopFirst
        ? { downtimeMs: this.clock.now() - t0, totalMs, transferredBytes: st.ram?.transferred ?? 0, resumeOnTarget: true }
        : { downtimeMs: st.downtime ?? 0, totalMs, transferredBytes: st.ram?.transferred ?? 0 };
      vm.state = 'migrated';
      vm.expectExit = `migrated to ${targetHostIp}`;
      await this.stopProcess(vm);
      this.d.log(`VM ${uuid}: migrated to ${targetHostIp} in ${result.totalMs} ms (downtime ${result.downtimeMs} ms, ${result.transferredBytes} bytes)`);
      return result;
    });
  }

  power(uuid: string, action: PowerAction): Promise<HostVm> {
    return this.lock.run(uuid, async () => {
      const vm = this.find(uuid);
      const qmp = vm.qmp;
      const need = (ok: readonly HostVmState[]): QmpClient => {
        if (!ok.includes(vm.state) || !qmp) throw new ConflictError(`VM ${uuid} is ${vm.state}: ${action} needs it ${ok.join(' or ')}`);
        return qmp;
      };
      switch (action) {
        case 'off':
          if (vm.proc) {
            vm.expectExit ??= 'powered off as asked';
            await this.stopProcess(vm);
          }
          break;
        case 'shutdown': {
          const q = need(['running', 'shutting-down']);
          await q.execute('system_powerdown');
          if (vm.state === 'running') vm.state = 'shutting-down';
          vm.timer?.dispose();
          const gen = vm.gen;
          vm.timer = this.clock.setTimeout(() => {
            if (vm.gen !== gen || vm.state !== 'shutting-down') return;
            vm.state = 'running';
            this.note(vm, { event: 'powerdown-timeout', at: this.clock.now(), data: { afterMs: this.t.shutdownMs } });
          }, this.t.shutdownMs);
          break;
        }
        case 'reset':
          await need(['running', 'paused', 'shutting-down']).execute('system_reset');
          if (vm.state === 'shutting-down') vm.state = 'running';
          break;
        case 'pause':
          if (vm.state === 'paused') break;
          await need(['running', 'shutting-down']).execute('stop');
          vm.state = 'paused';
          break;
        case 'resume':
          if (vm.state === 'running') break;
          await need(['paused']).execute('cont');
          vm.state = 'running';
          break;
      }
      return this.view(vm);
    });
  }

  /** Forgets a VM that is not running, and its console log (409 while its QEMU runs). */
  delete(uuid: string): Promise<void> {
    return this.lock.run(uuid, () => {
      const vm = this.find(uuid);
      if (vm.proc) throw new ConflictError(`VM ${uuid} is ${vm.state}: power it off first`);
      this.vms.delete(uuid);
      rmSync(join(this.d.stateDir, uuid), { recursive: true, force: true });
      return Promise.resolve();
    });
  }

  /** Kills every QEMU at once (the host is halting): SIGKILL, no waiting. */
  killAll(): void {
    this.closed = true;
    for (const vm of this.vms.values()) {
      if (!vm.proc) continue;
      vm.expectExit ??= 'the host halted';
      vm.proc.kill('SIGKILL');
    }
  }

  /** Powers every VM off and waits for them (tests; a host that halts uses killAll). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.vms.values()].map(async (vm) => {
      if (!vm.proc) return;
      vm.expectExit ??= 'the host halted';
      await this.stopProcess(vm);
    }));
  }

  // ---- internals -----------------------------------------------------------------------

  private find(uuid: string): Vm {
    const vm = this.vms.get(uuid);
    if (!vm) throw new NotFoundError('VM', uuid);
    return vm;
  }

  private view(v: Vm): HostVm {
    let consoleBytes = 0;
    try {
      consoleBytes = statSync(this.logPath(v.spec.uuid)).size;
    } catch {
      // no output yet
    }
    return { spec: v.spec, state: v.state, pid: v.pid, startedAt: v.startedAt, events: [...v.events], exit: v.exit, consoleBytes };
  }

  private logPath(uuid: string): string {
    return join(this.d.stateDir, uuid, 'console.log');
  }

  private tlsDir(): string {
    const dir = this.d.migrationTlsDir();
    if (!dir) throw new UnavailableError('this host has no cluster certificates for migration streams (not a cluster member)');
    return dir;
  }

  /** The VM's record for a new QEMU: epoch, not running, memory to spare. */
  private admit(spec: HostVmSpec): Vm {
    if (this.closed) throw new UnavailableError('the host is halting');
    const seen = this.epochs.get(spec.uuid);
    if (seen !== undefined && spec.epoch < seen) throw new ConflictError(`VM ${spec.uuid}: placement epoch ${spec.epoch} is older than ${seen}, already seen here (a stale order)`);
    // seen, even if refused below: a leader with a lower epoch is stale from now on
    this.epochs.set(spec.uuid, Math.max(seen ?? 0, spec.epoch));
    const old = this.vms.get(spec.uuid);
    if (old?.proc) throw new ConflictError(`VM ${spec.uuid} is ${old.state} here`);
    const free = this.resources().freeMemoryMiB;
    if (spec.memoryMiB > free) throw new ConflictError(`VM ${spec.uuid} needs ${spec.memoryMiB} MiB; this host has ${free} MiB free`);
    const vm: Vm = old ?? { spec, state: 'off', pid: null, startedAt: null, events: [], exit: null, gen: 0, streams: new Set(), stderr: '' };
    vm.spec = spec;
    this.vms.set(spec.uuid, vm);
    return vm;
  }

  private paths(uuid: string): { qmp: string; serial: string; consoleLog: string; vdiskSocket: string } {
    return { qmp: join(this.sockDir, `${uuid}.qmp`), serial: join(this.sockDir, `${uuid}.ser`), consoleLog: this.logPath(uuid), vdiskSocket: this.d.vdiskSocket };
  }

  /** Spawns QEMU (stopped, or waiting for a migration), connects QMP and the console, and lets it run. */
  private async launch(vm: Vm, incoming: boolean): Promise<void> {
    const uuid = vm.spec.uuid;
    const p = this.paths(uuid);
    mkdirSync(join(this.d.stateDir, uuid), { recursive: true, mode: 0o700 });
    rmSync(p.qmp, { force: true });
    rmSync(p.serial, { force: true });
    // QEMU 7.2 connects a stream netdev in the background and never again: a port that is not
    // there would leave the NIC unplugged for the VM's life. Refuse the start instead.
    vm.spec.nics.forEach((n, i) => {
      this.d.attachNic?.(n);
      const path = this.d.nicSocket(n.subnetUuid);
      let ok = false;
      try {
        ok = statSync(path).isSocket();
      } catch {
        // not there
      }
      if (!ok) throw new UnavailableError(`nics[${i}]: this host's switch has no port for subnet ${n.subnetUuid} (${path})`);
    });
    const args = qemuArgs({ spec: vm.spec, accel: this.accelNow, machine: this.d.machine ?? 'q35', paths: p, nicSocket: this.d.nicSocket, paused: !incoming, incoming });
    const gen = ++vm.gen;
    vm.accel = this.accelNow;
    vm.relaunching = false;
    vm.timer?.dispose();
    vm.expectExit = undefined;
    vm.stderr = '';
    vm.exit = null;
    vm.state = incoming ? 'incoming' : 'starting';
    vm.startedAt = new Date(this.clock.now()).toISOString();
    // setpriv: QEMU gets SIGKILL when the host agent dies, however it dies (the agent's environment is kept)
    const proc = spawn('setpriv', ['--pdeathsig', 'KILL', '--', this.d.qemuBinary ?? 'qemu-system-x86_64', ...args], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    vm.proc = proc;
    vm.pid = proc.pid ?? null;
    const abort = new AbortController();
    vm.exited = new Promise<void>((resolve) => {
      proc.once('exit', (code, signal) => {
        abort.abort(new UnavailableError(`QEMU exited (${signal ?? `code ${code}`}): ${lastLine(vm.stderr)}`));
        this.onExit(vm, gen, code, signal);
        resolve();
      });
      proc.once('error', (e) => {
        vm.stderr += `${e.message}\n`;
        abort.abort(new UnavailableError(`cannot run QEMU: ${e.message}`));
        this.onExit(vm, gen, null, null);
        resolve();
      });
    });
    proc.stderr?.setEncoding('utf8');
    let partial = '';
    proc.stderr?.on('data', (d: string) => {
      vm.stderr = (vm.stderr + d).slice(-4096);
      const lines = (partial + d).split('\n');
      partial = (lines.pop() ?? '').slice(-4096);
      for (const l of lines) if (l.trim() !== '') this.d.log(`VM ${uuid} qemu: ${l.trim()}`);
      if (vm.accel === 'kvm' && lines.some((l) => l.includes('KVM internal error'))) this.kvmFailed(vm, gen);
    });
    try {
      const qmp = await QmpClient.connect(p.qmp, { timeoutMs: this.t.startMs, clock: this.clock, signal: abort.signal });
      vm.qmp = qmp;
      qmp.on('event', (e) => this.onEvent(vm, gen, e));
      await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
      this.connectConsole(vm, gen, p.serial);
      if (!incoming) {
        await qmp.execute('cont');
        if (vm.state === 'starting') vm.state = 'running';
      }
    } catch (e) {
      // QEMU that refuses its command line may close QMP a moment before it exits: give it that moment
      vm.expectExit ??= 'QEMU did not start';
      let wait: Disposable | undefined;
      await Promise.race([vm.exited, new Promise<void>((r) => (wait = this.clock.setTimeout(r, 2000)))]);
      wait?.dispose();
      await this.kill(vm, 'QEMU did not start');
      const why = lastLine(vm.stderr) || (abort.signal.aborted ? errorMessage(abort.signal.reason) : errorMessage(e));
      throw new UnavailableError(`VM ${uuid}: QEMU did not start: ${why}`);
    }
    this.d.log(`VM ${uuid} (${vm.spec.name}): QEMU ${vm.pid} ${incoming ? 'waiting for its migration' : 'running'} (${vm.accel}, ${vm.spec.vcpus} vCPU, ${vm.spec.memoryMiB} MiB)`);
  }

  /**
   * QEMU said "KVM internal error" (the guest is stopped for good: KVM could not run its code, as a
   * nested KVM without unrestricted-guest support fails on boot loaders). With the accelerator
   * chosen automatically, the host runs its VMs under TCG from now on, and this VM starts again
   * under it, as after a reset. A host told to use kvm leaves the VM stopped (its events say why).
   */
  private kvmFailed(vm: Vm, gen: number): void {
    if ((this.d.accel ?? 'auto') !== 'auto') return;
    if (this.accelNow === 'kvm') {
      this.accelNow = 'tcg';
      this.d.log('KVM failed on this host (QEMU: KVM internal error): VMs run under TCG (software emulation) from now on');
      try {
        writeFileSync(join(this.d.stateDir, KVM_FAILED_FILE), `${new Date(this.clock.now()).toISOString()}\n`);
      } catch (e) {
        this.d.log(`cannot record that KVM failed (${errorMessage(e)}): the next start of this host tries KVM again`);
      }
    }
    const uuid = vm.spec.uuid;
    this.lock.run(uuid, async () => {
      if (vm.gen !== gen || !vm.proc || vm.state === 'migrating' || vm.state === 'incoming') return;
      vm.expectExit = 'KVM failed: starting again under TCG';
      vm.relaunching = true;
      await this.stopProcess(vm);
      await this.launch(vm, false);
    }).catch((e: unknown) => this.d.log(`VM ${uuid}: could not start again under TCG: ${errorMessage(e)}`));
  }

  private connectConsole(vm: Vm, gen: number, path: string): void {
    const s = connect(path);
    s.on('connect', () => {
      if (vm.gen !== gen || !vm.proc) {
        s.destroy();
        return;
      }
      vm.serial = s;
    });
    s.on('data', (b: Buffer) => {
      for (const st of vm.streams) {
        if (st.writableLength > STREAM_LAG_MAX) st.end();
        else st.write(b);
      }
    });
    s.on('error', (e) => this.d.log(`VM ${vm.spec.uuid}: console: ${e.message}`));
    s.on('close', () => {
      if (vm.serial === s) vm.serial = undefined;
      if (vm.gen === gen) this.endStreams(vm);
    });
  }

  private endStreams(vm: Vm): void {
    for (const st of vm.streams) st.end();
    vm.streams.clear();
  }

  private onEvent(vm: Vm, gen: number, e: QmpEvent): void {
    if (vm.gen !== gen) return;
    this.note(vm, e);
    const data = e.data ?? {};
    switch (e.event) {
      case 'STOP':
        if (vm.state === 'running' || vm.state === 'shutting-down') vm.state = 'paused';
        break;
      case 'RESUME':
        if (vm.state === 'paused' || vm.state === 'incoming' || vm.state === 'starting') vm.state = 'running';
        break;
      case 'POWERDOWN':
        if (vm.state === 'running') vm.state = 'shutting-down';
        break;
      case 'SHUTDOWN':
        vm.expectExit ??= data['guest'] === true ? 'the guest powered off' : `QEMU shut down (${typeof data['reason'] === 'string' ? data['reason'] : 'asked'})`;
        break;
      case 'MIGRATION':
        // the target: a completed stream leaves the VM as the source had it (running: RESUME follows)
        if (vm.state === 'incoming' && data['status'] === 'completed') {
          void vm.qmp?.execute<{ status: string }>('query-status').then((s) => {
            if (vm.gen === gen && vm.state === 'incoming') vm.state = s.status === 'running' ? 'running' : 'paused';
          }, () => undefined);
        }
        break;
      default:
        break;
    }
  }

  private note(vm: Vm, e: QmpEvent): void {
    vm.events.push({ event: e.event, at: new Date(e.at).toISOString(), ...(e.data !== undefined ? { data: e.data } : {}) });
    if (vm.events.length > MAX_EVENTS) vm.events.splice(0, vm.events.length - MAX_EVENTS);
  }

  private onExit(vm: Vm, gen: number, code: number | null, signal: NodeJS.Signals | null): void {
    if (vm.gen !== gen || !vm.proc) return;
    vm.proc = undefined;
    vm.pid = null;
    vm.timer?.dispose();
    vm.qmp?.close();
    vm.qmp = undefined;
    vm.serial?.destroy();
    vm.serial = undefined;
    this.endStreams(vm);
    const how = signal ? `killed by ${signal}` : `exit code ${code}`;
    const err = lastLine(vm.stderr);
    let reason: string;
    if (vm.state === 'migrated') reason = vm.expectExit ?? 'migrated';
    else if (vm.expectExit) {
      reason = vm.expectExit + (code !== null && code !== 0 && err ? `: ${err}` : '');
      vm.state = vm.relaunching ? 'starting' : 'off';
    } else if (vm.state === 'starting') {
      reason = `QEMU did not start (${how})${err ? `: ${err}` : ''}`;
      vm.state = 'crashed';
    } else if (vm.state === 'incoming') {
      reason = `the incoming migration did not complete (QEMU ${how})${err ? `: ${err}` : ''}`;
      vm.state = 'off';
    } else {
      reason = `QEMU died unasked (${how})${err ? `: ${err}` : ''}`;
      vm.state = 'crashed';
    }
    vm.exit = { code, signal, reason };
    vm.expectExit = undefined;
    this.d.log(`VM ${vm.spec.uuid}: ${vm.state} (${reason})`);
    rmSync(join(this.sockDir, `${vm.spec.uuid}.qmp`), { force: true });
    rmSync(join(this.sockDir, `${vm.spec.uuid}.ser`), { force: true });
  }

  /** Asks QEMU to quit, then SIGKILL after offMs; resolves when it has exited. */
  private async stopProcess(vm: Vm): Promise<void> {
    const proc = vm.proc;
    const exited = vm.exited;
    if (!proc || !exited) return;
    let killer: Disposable | undefined;
    const timedOut = new Promise<void>((r) => {
      killer = this.clock.setTimeout(r, this.t.offMs);
    });
    if (vm.qmp && !vm.qmp.isClosed) void vm.qmp.execute('quit', undefined, { timeoutMs: this.t.offMs }).catch(() => undefined);
    else proc.kill('SIGKILL');
    await Promise.race([exited, timedOut]);
    killer?.dispose();
    if (vm.proc === proc) {
      this.d.log(`VM ${vm.spec.uuid}: QEMU did not quit in ${this.t.offMs / 1000} s: SIGKILL`);
      proc.kill('SIGKILL');
      await exited;
    }
  }

  /** SIGKILLs the VM's QEMU as the host decided (`reason`), and waits for it. */
  private async kill(vm: Vm, reason: string): Promise<void> {
    const proc = vm.proc;
    if (!proc) return;
    vm.expectExit ??= reason;
    proc.kill('SIGKILL');
    await vm.exited;
  }

  private async migrationDone(qmp: QmpClient, t0: number): Promise<QueryMigrate> {
    for (;;) {
      const st = await qmp.execute<QueryMigrate>('query-migrate');
      if (st.status === 'completed' || st.status === 'failed' || st.status === 'cancelled') return st;
      if (this.clock.now() - t0 > this.t.migrationMs) {
        await qmp.execute('migrate_cancel').catch(() => undefined);
        throw new TimeoutError(`migration did not complete in ${this.t.migrationMs / 1000} s (${st.status}, ${st.ram?.remaining ?? '?'} bytes remaining); cancelled, the VM stays here`);
      }
      await this.clock.sleep(100);
    }
  }

  /** After a failed or cancelled migration the source runs on (QEMU resumes it if it ran): the state from QEMU. */
  private async afterFailedMigration(vm: Vm, before: HostVmState, stopped = false): Promise<void> {
    if (vm.state !== 'migrating') return;
    vm.state = before;
    try {
      // stopped here for the copy: it runs on here
      if (stopped) await vm.qmp?.execute('cont');
      const s = await vm.qmp?.execute<{ status: string }>('query-status');
      if (s && vm.state === before) vm.state = s.status === 'running' ? 'running' : 'paused';
    } catch {
      // QEMU is gone: its exit says how
    }
  }

  /** A port from MIGRATION_PORT_BASE upward that no other incoming VM has and that can be bound on hostIp. */
  private async freePort(): Promise<number> {
    const base = this.d.migrationPortBase ?? MIGRATION_PORT_BASE;
    const taken = new Set([...this.vms.values()].filter((v) => v.proc && v.incomingPort !== undefined).map((v) => v.incomingPort));
    for (let port = base; port < Math.min(65536, base + 1000); port++) {
      if (taken.has(port)) continue;
      if (await canBind(this.d.hostIp(), port)) return port;
    }
    throw new UnavailableError(`no free migration port on ${this.d.hostIp()} from ${base}`);
  }
}

interface QueryMigrate {
  status?: string;
  'error-desc'?: string;
  downtime?: number;
  'total-time'?: number;
  ram?: { transferred?: number; remaining?: number };
}

function lastLine(s: string): string {
  return s.trim().split('\n').pop()?.replace(/^(\S+Z )?qemu-system-x86_64: /, '') ?? '';
}

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}
