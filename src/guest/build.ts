/**
 * @module
 * Builds the Converge guest: a small raw disk that boots by itself (SeaBIOS → syslinux's MBR →
 * syslinux on a FAT partition → Debian's kernel and a busybox initramfs), made offline from Debian
 * packages without root and without mounting anything (docs/guest-image.md).
 *
 * The packages are fetched with `apt-get download` into a cache and unpacked with `dpkg-deb -x`;
 * the FAT file system is made and filled with mtools, and syslinux's installer (which works on an
 * image through mtools) writes its boot sector, both run from their unpacked packages, so the host
 * needs only apt (with its package lists) and dpkg. A warm cache makes a rebuild take seconds, and
 * the same packages give the same bytes (fixed times and serial numbers).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, utimesSync, writeFileSync, lstatSync, openSync, writeSync, closeSync, ftruncateSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { InputError, TimeoutError, UnavailableError } from '../shared/errors.ts';
import { cpioNewc, type CpioEntry } from './core/cpio.ts';
import { loadOrder, modName, moduleDepends } from './core/kmod.ts';
import { mbrSector, PART_FAT16_LBA, SECTOR } from './core/mbr.ts';

export interface BuildGuestOptions {
  /** Where the image goes. */
  out: string;
  /** The package cache (default $XDG_CACHE_HOME/converge/guest or ~/.cache/converge/guest). */
  cacheDir?: string;
  /** The disk's size (default 32 MiB; at least what the files need). */
  sizeMiB?: number;
  /** Progress lines. */
  log?: (m: string) => void;
}

export interface GuestImage {
  file: string;
  bytes: number;
  /** The kernel release inside (uname -r), e.g. 6.1.0-57-amd64. */
  kernel: string;
  sha256: string;
}

/** The Debian packages the guest is made of, besides the kernel (named by linux-image-amd64). */
export const GUEST_PACKAGES = ['busybox-static', 'syslinux', 'mtools', 'ioping', 'libc6'] as const;
export const KERNEL_METAPACKAGE = 'linux-image-amd64';

/**
 * The drivers the guest loads, in this order after their dependencies: virtio disks (blk and scsi)
 * and network, and the ACPI power button with the event device busybox acpid reads.
 */
export const GUEST_MODULES = ['virtio_ring', 'virtio', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'virtio_blk', 'virtio_scsi', 'sd_mod', 'virtio_net', 'evdev', 'button'] as const;

const PARTITION_START_LBA = 2048; // 1 MiB, as partitioning tools align
const DEFAULT_SIZE_MIB = 32;
const DISK_SIGNATURE = 0x31475643; // "CVG1"
const FAT_SERIAL = '43564731';
/** The time every file in the image carries (SOURCE_DATE_EPOCH wins), so builds are reproducible. */
const DEFAULT_EPOCH = 1704067200; // 2024-01-01T00:00:00Z
const KERNEL_CMDLINE = 'console=ttyS0,115200 quiet';

const ROOTFS = new URL('./rootfs/', import.meta.url);

export function defaultCacheDir(): string {
  const xdg = process.env['XDG_CACHE_HOME'];
  return join(xdg && xdg !== '' ? xdg : join(homedir(), '.cache'), 'converge', 'guest');
}

interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a tool; its failure names the command and what it said. */
function run(cmd: string, args: readonly string[], o: RunOptions = {}): Promise<string> {
  const timeoutMs = o.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: o.cwd, env: o.env ?? process.env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const what = `${basename(cmd)} ${args.join(' ')}`;
      if (err.killed) return reject(new TimeoutError(`${what}: no answer in ${timeoutMs / 1000} s`));
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return reject(new UnavailableError(`${cmd} is not installed (the guest is built from Debian packages with apt-get and dpkg-deb)`));
      const said = (stderr || stdout).trim().split('\n').filter((l) => !l.startsWith('W: Download is performed unsandboxed')).slice(-5).join('\n');
      reject(new UnavailableError(`${what} failed: ${said || err.message}`));
    });
  });
}

/** apt's file name for a package version: epoch colons are written %3a. */
const debFileName = (name: string, version: string, arch: string): string => `${name}_${version.replace(/:/g, '%3a')}_${arch}.deb`;

interface Candidate {
  version: string;
  arch: string;
  depends: string;
}

/** The candidate versions of packages in apt's lists (one apt-cache call); missing ones are absent. */
async function candidates(names: readonly string[]): Promise<Map<string, Candidate>> {
  const found = new Map<string, Candidate>();
  let out: string;
  try {
    out = await run('apt-cache', ['show', '--no-all-versions', ...names]);
  } catch {
    // some name is unknown (or there are no lists): ask one by one
    if (names.length === 1) return found;
    const each = await Promise.all(names.map((n) => candidates([n])));
    for (const m of each) for (const [k, v] of m) found.set(k, v);
    return found;
  }
  for (const rec of out.split(/\n\s*\n/)) {
    const field = (f: string): string | undefined => new RegExp(`^${f}: (.*)$`, 'm').exec(rec)?.[1]?.trim();
    const name = field('Package');
    const version = field('Version');
    const arch = field('Architecture');
    if (name && version && arch && !found.has(name)) found.set(name, { version, arch, depends: field('Depends') ?? '' });
  }
  return found;
}

/**
 * The .deb of a package in the cache: the candidate version, downloaded if missing. Without apt's
 * lists (offline) a cached .deb of the package is taken.
 */
async function fetchDeb(name: string, c: Candidate | undefined, debDir: string, log: (m: string) => void): Promise<string> {
  mkdirSync(debDir, { recursive: true });
  if (c) {
    const file = join(debDir, debFileName(name, c.version, c.arch));
    if (existsSync(file)) return file;
    log(`downloading ${name} ${c.version}`);
    await run('apt-get', ['download', '-q', `${name}=${c.version}`], { cwd: debDir, timeoutMs: 10 * 60_000 });
    if (!existsSync(file)) throw new UnavailableError(`apt-get download ${name}=${c.version} left no ${basename(file)}`);
    return file;
  }
  const cached = readdirSync(debDir).filter((f) => f.startsWith(`${name}_`) && f.endsWith('.deb')).sort();
  const last = cached.at(-1);
  if (last) return join(debDir, last);
  throw new UnavailableError(`apt knows no package ${name} and the cache has none: run apt-get update (the guest is built from Debian packages)`);
}

/** The kernel package linux-image-amd64 depends on (linux-image-<release>). */
function kernelPackage(meta: Candidate | undefined, debDir: string): string {
  const dep = meta?.depends.split(',').map((d) => d.trim().split(/\s/)[0] ?? '').find((d) => d.startsWith('linux-image-'));
  if (dep) return dep;
  // offline: the newest kernel package in the cache
  const cached = existsSync(debDir) ? readdirSync(debDir).filter((f) => /^linux-image-\d.*\.deb$/.test(f)).sort() : [];
  const last = cached.at(-1);
  if (last) return last.split('_')[0] ?? last;
  throw new UnavailableError(`apt cannot resolve ${KERNEL_METAPACKAGE} and the cache holds no kernel: run apt-get update`);
}

/** Unpacks a .deb once into cache/root/<deb name>/ (made aside, then renamed into place). */
async function unpack(deb: string, rootDir: string): Promise<string> {
  const dest = join(rootDir, basename(deb, '.deb'));
  if (existsSync(dest)) return dest;
  const tmp = `${dest}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  await run('dpkg-deb', ['-x', deb, tmp], { timeoutMs: 5 * 60_000 });
  renameSync(tmp, dest);
  return dest;
}

/** Follows symlinks inside an unpacked package (absolute targets stay inside it). */
function resolveIn(root: string, path: string): string {
  let p = join(root, path);
  for (let i = 0; i < 20; i++) {
    if (!existsSync(p) && !lstatSync(p, { throwIfNoEntry: false })) throw new UnavailableError(`${relative(root, p)} is not in ${basename(root)}`);
    const st = lstatSync(p);
    if (!st.isSymbolicLink()) return p;
    const t = readlinkSync(p);
    p = t.startsWith('/') ? join(root, t) : join(dirname(p), t);
  }
  throw new UnavailableError(`${path}: too many symbolic links in ${basename(root)}`);
}

interface KernelFiles {
  release: string;
  vmlinuz: string;
  /** Module paths relative to lib/modules/<release>/, in load order. */
  modules: string[];
  dir: string;
}

/**
 * The kernel and the guest's modules, kept in cache/kernel/<package>-<hash of the module list>/
 * (unpacking the whole kernel package, 400 MB, happens once).
 */
async function kernelFiles(deb: string, cache: string, log: (m: string) => void): Promise<KernelFiles> {
  const pkg = basename(deb, '.deb');
  const release = (pkg.split('_')[0] ?? '').replace(/^linux-image-/, '');
  const key = createHash('sha256').update(GUEST_MODULES.join(',')).digest('hex').slice(0, 12);
  const dir = join(cache, 'kernel', `${pkg}-${key}`);
  const listFile = join(dir, 'modules.list');
  if (!existsSync(listFile)) {
    log(`unpacking ${pkg}`);
    const tmpRoot = join(cache, 'kernel', `unpack-${process.pid}`);
    rmSync(tmpRoot, { recursive: true, force: true });
    mkdirSync(tmpRoot, { recursive: true });
    try {
      await run('dpkg-deb', ['-x', deb, tmpRoot], { timeoutMs: 5 * 60_000 });
      const modRoot = join(tmpRoot, 'lib', 'modules', release);
      const byName = new Map<string, string>();
      const walk = (d: string): void => {
        for (const e of readdirSync(d, { withFileTypes: true })) {
          const p = join(d, e.name);
          if (e.isDirectory()) walk(p);
          else if (e.name.endsWith('.ko')) byName.set(modName(e.name.slice(0, -3)), relative(modRoot, p));
        }
      };
      walk(modRoot);
      const order = loadOrder(GUEST_MODULES, (n) => {
        const rel = byName.get(n);
        return rel === undefined ? undefined : moduleDepends(readFileSync(join(modRoot, rel)));
      });
      const staging = `${dir}.tmp-${process.pid}`;
      rmSync(staging, { recursive: true, force: true });
      mkdirSync(join(staging, 'modules'), { recursive: true });
      writeFileSync(join(staging, 'vmlinuz'), readFileSync(join(tmpRoot, 'boot', `vmlinuz-${release}`)));
      const rels: string[] = [];
      for (const n of order) {
        const rel = byName.get(n) ?? '';
        mkdirSync(dirname(join(staging, 'modules', rel)), { recursive: true });
        writeFileSync(join(staging, 'modules', rel), readFileSync(join(modRoot, rel)));
        rels.push(rel);
      }
      writeFileSync(join(staging, 'modules.list'), rels.join('\n') + '\n');
      rmSync(dir, { recursive: true, force: true });
      renameSync(staging, dir);
    } finally {
      rmSync(tmpRoot, { recursive: true, force: true });
    }
  }
  const modules = readFileSync(listFile, 'utf8').split('\n').filter((l) => l !== '');
  return { release, vmlinuz: join(dir, 'vmlinuz'), modules, dir };
}

/** The shared libraries a binary needs (ldd's names), found in the unpacked libc6. */
async function libsOf(binary: string, libcRoot: string): Promise<{ path: string; file: string }[]> {
  const out = await run('ldd', [binary]);
  const libs: { path: string; file: string }[] = [];
  for (const line of out.split('\n')) {
    const named = /^\s*(\S+\.so\S*) =>/.exec(line);
    const interp = /^\s*(\/\S*ld-linux\S*\.so\S*) \(/.exec(line);
    if (named?.[1]) {
      const p = `lib/x86_64-linux-gnu/${named[1]}`;
      libs.push({ path: p, file: resolveIn(libcRoot, p) });
    } else if (interp?.[1]) {
      const p = interp[1].replace(/^\//, '');
      libs.push({ path: p, file: resolveIn(libcRoot, p) });
    }
  }
  return libs;
}

/** The initramfs: busybox and its applet links, the guest agent, modules, ioping with its libraries. */
async function initramfs(k: KernelFiles, roots: { busybox: string; ioping: string; libc: string }, epoch: number): Promise<Buffer> {
  const e: CpioEntry[] = [];
  const dirs = new Set<string>();
  const dir = (p: string): void => {
    const parts = p.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) {
        dirs.add(d);
        e.push({ kind: 'dir', path: d });
      }
    }
  };
  const file = (p: string, data: Uint8Array, mode = 0o644): void => {
    dir(dirname(p));
    e.push({ kind: 'file', path: p, data, mode });
  };
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'root', 'var', 'lib', 'lib64']) dir(d);
  e.push({ kind: 'char', path: 'dev/console', major: 5, minor: 1 });
  e.push({ kind: 'char', path: 'dev/null', major: 1, minor: 3, mode: 0o666 });
  e.push({ kind: 'symlink', path: 'var/run', target: '../run' });

  const busybox = join(roots.busybox, 'bin', 'busybox');
  file('bin/busybox', readFileSync(busybox), 0o755);
  const applets = (await run(busybox, ['--list-full'])).split('\n').filter((l) => l !== '' && l !== 'linuxrc' && l !== 'bin/busybox');
  for (const a of applets.sort()) {
    dir(dirname(a));
    e.push({ kind: 'symlink', path: a, target: '/bin/busybox' });
  }

  const rootfs = (name: string): Buffer => readFileSync(new URL(name, ROOTFS));
  file('init', rootfs('init'), 0o755);
  for (const s of ['cvg-verify', 'cvg-bench', 'cvg-data-disk', 'cvg-shutdown']) file(`usr/bin/${s}`, rootfs(s), 0o755);
  file('etc/inittab', rootfs('inittab'));
  file('etc/profile', rootfs('profile'));
  file('etc/converge/udhcpc.script', rootfs('udhcpc.script'), 0o755);
  file('etc/acpi/PWRF/00000080', rootfs('power-button'), 0o755);
  file('etc/hostname', Buffer.from('converge-guest\n'));
  file('etc/passwd', Buffer.from('root:x:0:0:root:/root:/bin/sh\n'));
  file('etc/group', Buffer.from('root:x:0:\n'));
  file('etc/converge/modules', Buffer.from(k.modules.join('\n') + '\n'));
  for (const m of k.modules) file(`lib/modules/${k.release}/${m}`, readFileSync(join(k.dir, 'modules', m)));

  const ioping = join(roots.ioping, 'usr', 'bin', 'ioping');
  file('usr/bin/ioping', readFileSync(ioping), 0o755);
  for (const l of await libsOf(ioping, roots.libc)) file(l.path, readFileSync(l.file), 0o755);

  return cpioNewc(e, epoch);
}

const syslinuxCfg = (): string =>
  [
    'SERIAL 0 115200',
    'DEFAULT converge',
    'PROMPT 1',
    'TIMEOUT 5',
    'LABEL converge',
    '  KERNEL /vmlinuz',
    '  INITRD /initrd.gz',
    `  APPEND ${KERNEL_CMDLINE}`,
    '',
  ].join('\n');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One build at a time per cache (downloads and unpacking share its folders): a lock folder holding
 * the owner's PID, taken over when that process is gone.
 */
async function withCacheLock<T>(cache: string, log: (m: string) => void, fn: () => Promise<T>): Promise<T> {
  mkdirSync(cache, { recursive: true });
  const lock = join(cache, 'lock');
  const end = Date.now() + 15 * 60_000;
  let said = false;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(existsSync(join(lock, 'pid')) ? readFileSync(join(lock, 'pid'), 'utf8') : NaN);
      const orphan = !Number.isInteger(pid) && Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? 0) > 30_000;
      if (orphan || (Number.isInteger(pid) && pid > 0 && !alive(pid))) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > end) throw new TimeoutError(`the guest cache ${cache} stayed locked by process ${pid} for 15 minutes`);
      if (!said) log(`waiting for another build using ${cache}`);
      said = true;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Builds the guest disk at o.out (replacing it). */
export async function buildGuestImage(o: BuildGuestOptions): Promise<GuestImage> {
  const log = o.log ?? ((): void => {});
  const cache = o.cacheDir ?? defaultCacheDir();
  return withCacheLock(cache, log, () => build(o, cache, log));
}

async function build(o: BuildGuestOptions, cache: string, log: (m: string) => void): Promise<GuestImage> {
  const sizeMiB = o.sizeMiB ?? DEFAULT_SIZE_MIB;
  if (!Number.isInteger(sizeMiB) || sizeMiB < 8 || sizeMiB > 4096) throw new InputError('size', 'is a whole number of MiB from 8 to 4096', undefined, sizeMiB);
  const epochEnv = Number(process.env['SOURCE_DATE_EPOCH']);
  const epoch = Number.isInteger(epochEnv) && epochEnv > 315532800 ? epochEnv : DEFAULT_EPOCH;
  const debDir = join(cache, 'debs');
  const rootDir = join(cache, 'root');

  log('resolving packages');
  let known = await candidates([KERNEL_METAPACKAGE, ...GUEST_PACKAGES]);
  if (known.size < GUEST_PACKAGES.length + 1 && process.getuid?.() === 0) {
    // apt has no lists on a fresh machine: as root, fetch them once
    log('apt knows too few packages: apt-get update');
    await run('apt-get', ['update', '-qq'], { timeoutMs: 10 * 60_000 });
    known = await candidates([KERNEL_METAPACKAGE, ...GUEST_PACKAGES]);
  }
  const kpkg = kernelPackage(known.get(KERNEL_METAPACKAGE), debDir);
  for (const [k, v] of await candidates([kpkg])) known.set(k, v);
  const [kdeb, ...debs] = await Promise.all([kpkg, ...GUEST_PACKAGES].map((p) => fetchDeb(p, known.get(p), debDir, log)));
  const [busybox, syslinux, mtools, ioping, libc] = await Promise.all(debs.map((d) => unpack(d, rootDir)));
  if (!kdeb || !busybox || !syslinux || !mtools || !ioping || !libc) throw new UnavailableError('a guest package is missing');
  const k = await kernelFiles(kdeb, cache, log);

  log(`making the initramfs (${k.modules.length} modules)`);
  const initrd = gzipSync(await initramfs(k, { busybox, ioping, libc }, epoch), { level: 9 });

  // the files of the boot partition, with the fixed time (mcopy -m keeps it)
  const work = join(cache, 'work', String(process.pid));
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const files = { vmlinuz: readFileSync(k.vmlinuz), 'initrd.gz': initrd, 'syslinux.cfg': Buffer.from(syslinuxCfg()) };
    for (const [name, data] of Object.entries(files)) {
      writeFileSync(join(work, name), data);
      utimesSync(join(work, name), epoch, epoch);
    }
    const need = Object.values(files).reduce((n, b) => n + b.length, 0) + 2 * 1024 * 1024;
    const bytes = sizeMiB * 1024 * 1024;
    if (need > bytes - PARTITION_START_LBA * SECTOR) throw new InputError('size', `${sizeMiB} MiB is too small: the files need ${Math.ceil(need / 1048576) + 1} MiB`, undefined, sizeMiB);

    log(`making the disk (${sizeMiB} MiB, MBR + FAT16)`);
    const img = join(work, 'disk.img');
    const fd = openSync(img, 'w');
    try {
      ftruncateSync(fd, bytes);
      const partSectors = bytes / SECTOR - PARTITION_START_LBA;
      const bootCode = readFileSync(join(syslinux, 'usr', 'lib', 'SYSLINUX', 'mbr.bin'));
      writeSync(fd, mbrSector(bootCode, DISK_SIGNATURE, [{ startLba: PARTITION_START_LBA, sectors: partSectors, type: PART_FAT16_LBA, active: true }]), 0, SECTOR, 0);
    } finally {
      closeSync(fd);
    }
    const offset = PARTITION_START_LBA * SECTOR;
    const mbin = join(mtools, 'usr', 'bin');
    const env: NodeJS.ProcessEnv = {
      PATH: `${mbin}:${process.env['PATH'] ?? '/usr/bin:/bin'}`,
      MTOOLS_SKIP_CHECK: '1',
      MTOOLSRC: '/dev/null',
      SOURCE_DATE_EPOCH: String(epoch),
      TZ: 'UTC',
      HOME: work,
    };
    const part = `${img}@@${offset}`;
    const partSectors = bytes / SECTOR - PARTITION_START_LBA;
    await run(join(mbin, 'mformat'), ['-i', part, '-T', String(partSectors), '-h', '64', '-s', '32', '-H', String(PARTITION_START_LBA), '-v', 'CVGGUEST', '-N', FAT_SERIAL, '::'], { env });
    await run(join(mbin, 'mcopy'), ['-i', part, '-m', ...Object.keys(files).map((n) => join(work, n)), '::'], { env });
    await run(join(syslinux, 'usr', 'bin', 'syslinux'), ['--install', '--offset', String(offset), img], { env });

    const data = readFileSync(img);
    const sha256 = createHash('sha256').update(data).digest('hex');
    mkdirSync(dirname(o.out), { recursive: true });
    const tmpOut = `${o.out}.tmp-${process.pid}`;
    renameOrCopy(img, tmpOut);
    renameSync(tmpOut, o.out);
    log(`${o.out}: ${(bytes / 1048576).toFixed(0)} MiB, kernel ${k.release}, sha256 ${sha256.slice(0, 16)}…`);
    return { file: o.out, bytes: statSync(o.out).size, kernel: k.release, sha256 };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function renameOrCopy(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    writeFileSync(to, readFileSync(from));
  }
}
