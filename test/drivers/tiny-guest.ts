/**
 * @module
 * A tiny real guest for network tests: Debian's kernel and a busybox initramfs whose /init loads
 * virtio-net, asks for an address with `udhcpc`, prints what it got and then runs a shell on the
 * serial console, which the test drives (ping, arping, ip). QEMU boots it with -kernel/-initrd
 * under TCG in seconds; no disk image is involved.
 *
 * The kernel and busybox come from Debian's packages (`apt-get download`, unpacked with
 * `dpkg-deb`), cached under os.tmpdir()/converge-tiny-guest/ so a second run starts at once.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const CACHE = join(tmpdir(), 'converge-tiny-guest');
/** virtio-net and what it needs, in load order (Debian builds them as modules; it ships no modules.dep to follow). */
const MODULES = ['virtio_ring', 'virtio', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'failover', 'net_failover', 'virtio_net'];

export interface GuestKit {
  kernel: string;
  initrd: string;
}

function sh(cmd: string, cwd: string): string {
  return execFileSync('bash', ['-c', cmd], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
}

/** The kernel package linux-image-amd64 points at (e.g. linux-image-6.1.0-57-amd64). */
function kernelPackage(): string {
  const find = (): string | undefined => /Depends: (linux-image-[\w.+-]+-amd64)/.exec(sh('apt-cache depends linux-image-amd64 2>/dev/null || true', '/'))?.[1];
  let pkg = find();
  if (!pkg) {
    sh('apt-get update -qq', '/');
    pkg = find();
  }
  if (!pkg) throw new Error('tiny guest: apt-cache names no kernel package for linux-image-amd64');
  return pkg;
}

/** Builds (once) and returns the kernel and initramfs. */
export function ensureGuestKit(): GuestKit {
  const kernel = join(CACHE, 'vmlinuz');
  const initrd = join(CACHE, 'initrd.gz');
  if (existsSync(kernel) && existsSync(initrd)) return { kernel, initrd };
  mkdirSync(CACHE, { recursive: true });
  const work = join(CACHE, `build-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const pkg = kernelPackage();
    sh(`apt-get download -q ${pkg} busybox-static 2>&1`, work);
    const debs = readdirSync(work);
    const kdeb = debs.find((f) => f.startsWith(`${pkg}_`));
    const bdeb = debs.find((f) => f.startsWith('busybox-static_'));
    if (!kdeb || !bdeb) throw new Error(`tiny guest: apt-get download gave ${debs.join(', ')}`);
    mkdirSync(join(work, 'k'));
    mkdirSync(join(work, 'b'));
    sh(`dpkg-deb --fsys-tarfile '${kdeb}' | tar -x -C k --wildcards './boot/vmlinuz-*' ${MODULES.map((m) => `'*/${m}.ko'`).join(' ')}`, work);
    sh(`dpkg-deb -x '${bdeb}' b`, work);
    const vmlinuz = readdirSync(join(work, 'k/boot')).find((f) => f.startsWith('vmlinuz-'))!;
    const kos = sh(`find k -name '*.ko'`, work).trim().split('\n');
    const files: CpioEntry[] = [
      { name: 'dev', mode: 0o040755 },
      { name: 'dev/console', mode: 0o020600, rdev: [5, 1] },
      { name: 'proc', mode: 0o040755 },
      { name: 'sys', mode: 0o040755 },
      { name: 'tmp', mode: 0o041777 },
      { name: 'bin', mode: 0o040755 },
      { name: 'bin/busybox', mode: 0o100755, data: readFileSync(join(work, 'b/bin/busybox')) },
      { name: 'bin/sh', mode: 0o120777, data: Buffer.from('busybox') },
      { name: 'modules', mode: 0o040755 },
      ...MODULES.map((m) => {
        const ko = kos.find((p) => p.endsWith(`/${m}.ko`));
        if (!ko) throw new Error(`tiny guest: ${m}.ko is not in ${kdeb}`);
        return { name: `modules/${m}.ko`, mode: 0o100644, data: readFileSync(join(work, ko)) };
      }),
      { name: 'init', mode: 0o100755, data: Buffer.from(INIT) },
      { name: 'udhcpc.sh', mode: 0o100755, data: Buffer.from(UDHCPC_SCRIPT) },
    ];
    writeFileSync(join(work, 'initrd.gz'), gzipSync(cpioNewc(files)));
    renameSync(join(work, 'k/boot', vmlinuz), join(work, 'vmlinuz'));
    // rename is atomic: a parallel run sees both files or rebuilds
    renameSync(join(work, 'initrd.gz'), initrd);
    renameSync(join(work, 'vmlinuz'), kernel);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { kernel, initrd };
}

const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in ${MODULES.join(' ')}; do insmod /modules/$m.ko || echo "GUEST: insmod $m failed"; done
ip link set lo up
n=0; while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done
ip link set eth0 up
echo "GUEST: eth0 $(cat /sys/class/net/eth0/address)"
udhcpc -i eth0 -s /udhcpc.sh -t 6 -T 2 -A 2 -n -q -x hostname:$(cat /sys/class/net/eth0/address | tr -d :) || echo "GUEST: no lease"
echo "GUEST: ready"
exec sh
`;

const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route add default via "$router" dev "$interface"
    echo "GUEST: lease ip=$ip mask=$mask router=$router dns=$dns serverid=$serverid lease=$lease"
    ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
exit 0
`;

interface CpioEntry {
  name: string;
  mode: number;
  data?: Buffer;
  rdev?: [number, number];
}

/** An initramfs archive: cpio "newc" (SVR4, no CRC), as the kernel reads it. */
function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad4 = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);
  const hex = (n: number): string => n.toString(16).padStart(8, '0');
  let ino = 1;
  for (const e of [...entries, { name: 'TRAILER!!!', mode: 0 } as CpioEntry]) {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(e.name + '\0');
    const head = '070701' + [ino++, e.mode, 0, 0, e.mode & 0o040000 ? 2 : 1, 0, data.length, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, name.length, 0].map(hex).join('');
    parts.push(Buffer.from(head, 'latin1'), name, pad4(110 + name.length), data, pad4(data.length));
  }
  return Buffer.concat(parts);
}

/** A running tiny guest: QEMU with its serial console on stdio, one virtio NIC on a switch socket. */
export class TinyGuest {
  readonly proc: ChildProcess;
  private out = '';
  private waiters: { re: RegExp; from: number; resolve: (m: RegExpMatchArray) => void }[] = [];

  constructor(readonly name: string, kit: GuestKit, nic: { mac: string; socketPath: string }) {
    this.proc = spawn('qemu-system-x86_64', [
      '-accel', 'tcg', '-m', '128', '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
      '-serial', 'stdio', '-monitor', 'none',
      '-kernel', kit.kernel, '-initrd', kit.initrd, '-append', 'console=ttyS0 panic=-1 quiet loglevel=3',
      '-netdev', `stream,id=n0,server=off,addr.type=unix,addr.path=${nic.socketPath}`,
      '-device', `virtio-net-pci,netdev=n0,mac=${nic.mac},romfile=`,
    ], { stdio: ['pipe', 'pipe', 'pipe'] });
    const onData = (c: Buffer): void => {
      this.out += c.toString('latin1').replace(/\r/g, '');
      for (const w of [...this.waiters]) {
        const m = this.out.slice(w.from).match(w.re);
        if (m) {
          this.waiters = this.waiters.filter((x) => x !== w);
          w.resolve(m);
        }
      }
    };
    this.proc.stdout!.on('data', onData);
    this.proc.stderr!.on('data', onData);
  }

  get output(): string {
    return this.out;
  }

  /** Waits for `re` in the console output written from `from` on (default: all of it). */
  expect(re: RegExp, timeoutMs: number, from = 0): Promise<RegExpMatchArray> {
    const m = this.out.slice(from).match(re);
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const w = { re, from, resolve: (x: RegExpMatchArray): void => { clearTimeout(t); resolve(x); } };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`${this.name}: no ${re} within ${timeoutMs} ms; console:\n${this.out.slice(-3000)}`));
      }, timeoutMs);
      this.waiters.push(w);
      this.proc.once('exit', (code, sig) => {
        clearTimeout(t);
        reject(new Error(`${this.name}: QEMU exited (${code ?? sig}) waiting for ${re}; console:\n${this.out.slice(-3000)}`));
      });
    });
  }

  /** Runs a shell command on the console and returns its exit status and output. */
  async run(cmd: string, timeoutMs = 60_000): Promise<{ rc: number; output: string }> {
    const tag = `RC${Math.floor(Math.random() * 1e9)}`;
    const from = this.out.length;
    this.proc.stdin!.write(`${cmd}; echo ${tag}=$?\n`);
    const m = await this.expect(new RegExp(`${tag}=(\\d+)\\r?\\n`), timeoutMs, from);
    return { rc: Number(m[1]), output: this.out.slice(from) };
  }

  async kill(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const gone = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.kill('SIGKILL');
    await gone;
  }
}
