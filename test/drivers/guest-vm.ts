/**
 * @module
 * Boots the Converge guest image (docs/guest-image.md) in a real QEMU under TCG, from its disk
 * (SeaBIOS → MBR → syslinux), for tests: the serial console on a Unix socket (read as text, written
 * as typed lines), QMP on another, the boot disk as a file or served by `nbdkit file` over a Unix
 * socket as the fabric serves vdisks, and optional data disks as virtio-blk.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGuestImage, type GuestImage } from '../../src/guest/build.ts';

/** The package cache the tests share, kept across runs (builds with it take seconds once warm). */
export const GUEST_CACHE = join(tmpdir(), 'converge-guest-cache');

/** Builds the guest image into `out` with the tests' shared cache. */
export function buildTestGuest(out: string): Promise<GuestImage> {
  return buildGuestImage({ out, cacheDir: GUEST_CACHE });
}

export interface GuestVmOptions {
  /** The guest image (raw). */
  image: string;
  /** Raw data disks, attached after the boot disk (the first is /dev/vdb). */
  dataDisks?: string[];
  /** A folder for the sockets. */
  dir: string;
  /** Serve the boot disk with nbdkit over a Unix socket (as the fabric would) instead of a file. */
  nbd?: boolean;
  memMiB?: number;
  /** QEMU's machine type (default pc; the host agent runs VMs on q35). */
  machine?: 'pc' | 'q35';
  /** A virtio NIC on QEMU's user network, restricted: DHCP inside QEMU, nothing leaves the host. */
  net?: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function connectUnix(path: string, timeoutMs: number): Promise<Socket> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(path)) {
      try {
        return await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
      } catch (e) {
        if (Date.now() > end) throw e;
      }
    } else if (Date.now() > end) throw new Error(`no socket ${path} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** A QMP connection: commands in order, events kept. */
class Qmp {
  private buf = '';
  private waiting: ((v: Record<string, unknown>) => void)[] = [];
  readonly events: Record<string, unknown>[] = [];
  private constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i).trim();
        this.buf = this.buf.slice(i + 1);
        if (line === '') continue;
        const msg = JSON.parse(line) as Record<string, unknown>;
        if ('event' in msg) this.events.push(msg);
        else if ('QMP' in msg) continue;
        else this.waiting.shift()?.(msg);
      }
    });
    sock.on('error', () => {});
  }

  static async open(path: string): Promise<Qmp> {
    const q = new Qmp(await connectUnix(path, 10_000));
    await q.execute('qmp_capabilities');
    return q;
  }

  execute(cmd: string, args?: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`QMP ${cmd}: no answer in 10 s`)), 10_000);
      this.waiting.push((m) => {
        clearTimeout(t);
        if ('error' in m) reject(new Error(`QMP ${cmd}: ${JSON.stringify(m['error'])}`));
        else resolve(m['return']);
      });
      this.sock.write(JSON.stringify(args ? { execute: cmd, arguments: args } : { execute: cmd }) + '\n');
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

export class GuestVm {
  /** Everything the serial console said, as text. */
  serial = '';
  /** When QEMU was started (ms since the epoch). */
  readonly startedAt = Date.now();
  exitCode: number | null | undefined = undefined;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly qemu: ChildProcess,
    private readonly nbdkit: ChildProcess | undefined,
    private readonly console: Socket,
    readonly qmp: Qmp,
    private readonly stderr: { text: string },
  ) {
    console.setEncoding('latin1');
    console.on('data', (d: string) => (this.serial += d));
    console.on('error', () => {});
    this.exited = new Promise((r) =>
      qemu.once('exit', (code) => {
        this.exitCode = code;
        r();
      }),
    );
  }

  static async start(o: GuestVmOptions): Promise<GuestVm> {
    mkdirSync(o.dir, { recursive: true });
    const serialSock = join(o.dir, 'serial.sock');
    const qmpSock = join(o.dir, 'qmp.sock');
    let nbdkit: ChildProcess | undefined;
    let bootDrive = `file=${o.image},format=raw,if=none,id=boot,cache=writeback`;
    if (o.nbd) {
      const nbdSock = join(o.dir, 'boot.nbd.sock');
      const pidFile = join(o.dir, 'nbdkit.pid');
      // nbdkit writes its PID file once it accepts connections
      nbdkit = spawn('nbdkit', ['--foreground', '--unix', nbdSock, '--pidfile', pidFile, '--exit-with-parent', 'file', o.image], { stdio: ['ignore', 'ignore', 'inherit'] });
      const end = Date.now() + 10_000;
      while (!existsSync(pidFile)) {
        if (Date.now() > end || nbdkit.exitCode !== null) {
          nbdkit.kill('SIGKILL');
          throw new Error(`nbdkit did not serve ${o.image}`);
        }
        await sleep(50);
      }
      bootDrive = `file=nbd:unix:${nbdSock},format=raw,if=none,id=boot`;
    }
    const args = [
      '-machine', `${o.machine ?? 'pc'},accel=tcg`,
      '-m', String(o.memMiB ?? 256),
      '-smp', '1',
      '-nodefaults',
      '-display', 'none',
      '-no-user-config',
      '-chardev', `socket,id=ser0,path=${serialSock},server=on,wait=on`,
      '-serial', 'chardev:ser0',
      '-qmp', `unix:${qmpSock},server=on,wait=off`,
      // SeaBIOS tries the boot disk first (without a VGA it prints nothing before syslinux does)
      '-drive', bootDrive,
      '-device', 'virtio-blk-pci,drive=boot,bootindex=0',
      ...(o.dataDisks ?? []).flatMap((d) => ['-drive', `file=${d},format=raw,if=virtio,cache=writeback`]),
      ...(o.net ? ['-nic', 'user,model=virtio-net-pci,restrict=on'] : []),
    ];
    const stderr = { text: '' };
    const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    qemu.stderr?.setEncoding('utf8');
    qemu.stderr?.on('data', (d: string) => (stderr.text += d));
    try {
      const console = await connectUnix(serialSock, 15_000);
      const qmp = await Qmp.open(qmpSock);
      return new GuestVm(qemu, nbdkit, console, qmp, stderr);
    } catch (e) {
      qemu.kill('SIGKILL');
      nbdkit?.kill('SIGKILL');
      throw new Error(`QEMU did not start: ${e instanceof Error ? e.message : String(e)} ${stderr.text}`);
    }
  }

  /** Waits for a match in the console output after `from` (a position in `serial`). */
  async waitFor(re: RegExp, timeoutMs: number, from = 0): Promise<RegExpExecArray & { end: number }> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const rest = this.serial.slice(from);
      const m = re.exec(rest);
      if (m) return Object.assign(m, { end: from + m.index + m[0].length });
      if (this.exitCode !== undefined) throw new Error(`QEMU exited (${this.exitCode}) before ${re} appeared; console:\n${this.serial.slice(-3000)}\n${this.stderr.text}`);
      if (Date.now() > end) throw new Error(`${re} did not appear in ${timeoutMs / 1000} s; console:\n${this.serial.slice(-3000)}`);
      await sleep(100);
    }
  }

  /** Types a line on the serial console. */
  send(line: string): void {
    this.console.write(line + '\n');
  }

  /** Waits for QEMU to end; undefined if it did not in time. */
  async waitExit(timeoutMs: number): Promise<number | null | undefined> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    return this.exitCode;
  }

  /** Ends QEMU at once (a host crash for the guest), and nbdkit. Safe to call twice. */
  async kill(): Promise<void> {
    if (this.exitCode === undefined) this.qemu.kill('SIGKILL');
    await this.exited;
    this.qmp.close();
    this.console.destroy();
    if (this.nbdkit && this.nbdkit.exitCode === null) {
      const gone = new Promise((r) => this.nbdkit?.once('exit', r));
      this.nbdkit.kill('SIGTERM');
      await gone;
    }
  }
}
