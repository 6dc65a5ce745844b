/**
 * @module
 * A disk of the emulated hardware as its owner sees it: a directory-backed volume whose advertised
 * capacity is enforced and which answers with I/O errors once the disk has failed. This is the
 * "drive firmware" of the emulation: the rack creates and labels disks and injects failures; the
 * software that owns a disk (installer, CVM) does all its I/O through DiskVolume.
 *
 * Layout of a disk directory:
 * ```
 *   disk.json   label: serial, model, media type, capacity (written by the rack)
 *   FAILED      present while the disk is failed (its content says why)
 *   LEASE       present while a process holds the disk exclusively: { owner, pid } (claim)
 *   data/       the disk's contents
 * ```
 * Invariants:
 *  1. used() never exceeds capacityBytes: a write that would pass it fails with DiskFullError
 *     and writes nothing.
 *  2. While FAILED exists, every operation fails with DiskIoError and changes nothing.
 *  3. Paths are relative to data/; a path that escapes it is an InputError.
 *  4. While a live process holds the lease, every other process's open() and claim() is refused.
 *     A holder that has exited holds nothing, reaped or not (shared/processes.ts): its lease is
 *     taken over.
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync, readdirSync, statSync, rmSync } from 'node:fs';
import { open, readFile, writeFile, rm, mkdir, readdir, stat, rename, access, type FileHandle } from 'node:fs/promises';
import { join, normalize, isAbsolute, dirname } from 'node:path';
import { ConflictError, DiskFullError, DiskIoError, InputError } from './errors.ts';
import { KeyedLock } from './keyed-lock.ts';
import { processAlive } from './processes.ts';

export interface DiskLabel {
  serial: string;
  model: string;
  mediaType: 'SSD' | 'HDD';
  capacityBytes: number;
}

export const DISK_LABEL = 'disk.json';
export const DISK_FAILED = 'FAILED';
/** Present while a process holds the disk exclusively (the CVM, through the passed-through HBA). */
export const DISK_LEASE = 'LEASE';

interface Lease {
  owner: string;
  pid: number;
}

/** The live holder of a disk's lease other than this process, if any (a dead holder's lease, a zombie's too, is stale). */
function otherHolder(dir: string): Lease | undefined {
  let l: Lease;
  try {
    l = JSON.parse(readFileSync(join(dir, DISK_LEASE), 'utf8')) as Lease;
  } catch {
    return undefined;
  }
  return l.pid !== process.pid && processAlive(l.pid) ? l : undefined;
}
const BLOCK = 4096;
const MAX_OPEN = 256;
/** How stale the hot path's view of the FAILED marker may be (checked asynchronously, at most this often). */
const FAIL_PROBE_MS = 50;

const roundUp = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;

/** Creates (or keeps) a labelled, empty disk directory. Used by the rack when a node is racked. */
export function formatDisk(dir: string, label: DiskLabel): void {
  mkdirSync(join(dir, 'data'), { recursive: true });
  if (!existsSync(join(dir, DISK_LABEL))) writeFileSync(join(dir, DISK_LABEL), JSON.stringify(label, null, 2) + '\n');
}

export function readLabel(dir: string): DiskLabel {
  return JSON.parse(readFileSync(join(dir, DISK_LABEL), 'utf8')) as DiskLabel;
}

/** Marks a disk failed (fault injection) or healthy again. */
export function setDiskFailed(dir: string, failed: boolean, reason = 'injected fault: disk failed'): void {
  const p = join(dir, DISK_FAILED);
  if (failed) writeFileSync(p, reason + '\n');
  else rmSync(p, { force: true });
}

export function isDiskFailed(dir: string): boolean {
  return existsSync(join(dir, DISK_FAILED));
}

function usageOf(dir: string): number {
  let total = 0;
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else total += roundUp(st.size);
    }
  };
  walk(dir);
  return total;
}

/** The chunks after their first `n` bytes. */
function skip(chunks: readonly Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const c of chunks) {
    if (n >= c.byteLength) n -= c.byteLength;
    else {
      out.push(n > 0 ? c.subarray(n) : c);
      n = 0;
    }
  }
  return out;
}

export class DiskVolume {
  private usedBytes: number;

  private constructor(readonly dir: string, readonly label: DiskLabel) {
    this.usedBytes = usageOf(join(dir, 'data'));
  }

  /** Opens a disk; refused while another live process holds it (claim). */
  static open(dir: string): DiskVolume {
    if (!existsSync(join(dir, DISK_LABEL))) throw new InputError('disk', `${dir} is not a disk (no ${DISK_LABEL})`);
    const label = readLabel(dir);
    const held = otherHolder(dir);
    if (held) throw new ConflictError(`disk ${label.serial} is held by ${held.owner} (pid ${held.pid}); a second opener is refused`);
    return new DiskVolume(dir, label);
  }

  /**
   * Opens a disk and takes its lease: until unclaim() (or this process dies) every other process's
   * open() and claim() is refused. A lease left by a dead process is taken over.
   */
  static claim(dir: string, owner: string): DiskVolume {
    const v = DiskVolume.open(dir);
    const path = join(dir, DISK_LEASE);
    const body = JSON.stringify({ owner, pid: process.pid } satisfies Lease);
    for (let attempt = 0; ; attempt++) {
      try {
        writeFileSync(path, body, { flag: 'wx' });
        return v;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw e;
        const held = otherHolder(dir);
        if (held) throw new ConflictError(`disk ${v.serial} is held by ${held.owner} (pid ${held.pid}); a second opener is refused`);
        rmSync(path, { force: true }); // stale (its holder died) or already ours: take it anew
      }
    }
  }

  /** Gives the lease back (if this process holds it). */
  unclaim(): void {
    const path = join(this.dir, DISK_LEASE);
    try {
      if ((JSON.parse(readFileSync(path, 'utf8')) as Lease).pid === process.pid) rmSync(path, { force: true });
    } catch {
      // no lease
    }
  }

  get serial(): string {
    return this.label.serial;
  }

  get capacityBytes(): number {
    return this.label.capacityBytes;
  }

  used(): number {
    return this.usedBytes;
  }

  free(): number {
    return this.label.capacityBytes - this.usedBytes;
  }

  /** Releases the disk (nothing is held open between operations today). */
  /** Closes the files kept open for reuse. */
  close(): void {
    for (const h of this.open.values()) void h.fh.close().catch(() => undefined);
    this.open.clear();
  }

  /** Path of a file on the disk, checked to stay on the disk. */
  private path(rel: string): string {
    const n = normalize(rel);
    if (rel === '' || isAbsolute(n) || n.startsWith('..')) throw new InputError('path', `"${rel}" is not a path on the disk`);
    return join(this.dir, 'data', n);
  }

  private check(): void {
    if (existsSync(join(this.dir, DISK_FAILED))) throw new DiskIoError(this.label.serial, 'I/O error (the disk has failed)');
  }

  private failed = { value: false, at: -Infinity, probe: undefined as Promise<void> | undefined };

  /**
   * check() for the I/O path (pwritev, readAt, datasync, truncate): no synchronous syscall; the
   * FAILED marker is looked at asynchronously, at most every FAIL_PROBE_MS.
   */
  private async checkHot(): Promise<void> {
    const f = this.failed;
    if (performance.now() - f.at > FAIL_PROBE_MS) {
      f.probe ??= access(join(this.dir, DISK_FAILED)).then(() => true, () => false).then((v) => {
        f.value = v;
        f.at = performance.now();
        f.probe = undefined;
      });
      await f.probe;
    }
    if (f.value) throw new DiskIoError(this.label.serial, 'I/O error (the disk has failed)');
  }

  private reserve(delta: number): void {
    if (delta > 0 && this.usedBytes + delta > this.label.capacityBytes) throw new DiskFullError(this.label.serial, this.label.capacityBytes);
    this.usedBytes += delta;
  }

  private async sizeOf(p: string): Promise<number> {
    try {
      return (await stat(p)).size;
    } catch {
      return -1;
    }
  }

  /** Writes a whole file atomically (temp file + rename). */
  async writeFile(rel: string, data: Uint8Array | string): Promise<void> {
    this.check();
    const p = this.path(rel);
    await this.forget(p); // the file is replaced: a kept handle would see the old one
    const old = await this.sizeOf(p);
    const len = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
    const delta = roundUp(len) - (old < 0 ? 0 : roundUp(old));
    this.reserve(delta);
    try {
      await mkdir(dirname(p), { recursive: true });
      const tmp = `${p}.tmp-${process.pid}`;
      await writeFile(tmp, data);
      await rename(tmp, p);
    } catch (e) {
      this.usedBytes -= delta;
      throw e;
    }
  }

  async readFile(rel: string): Promise<Buffer> {
    this.check();
    return readFile(this.path(rel));
  }

  async exists(rel: string): Promise<boolean> {
    this.check();
    return (await this.sizeOf(this.path(rel))) >= 0;
  }

  /** Writes to one file are serialized so usage stays exact. */
  private locks = new KeyedLock();

  /**
   * Open files, kept for reuse (an extent group is written and read many times): size tracked
   * here so a write needs no stat; at most MAX_OPEN, idle ones closed oldest first.
   */
  private open = new Map<string, { fh: FileHandle; size: number; users: number }>();

  private async acquire(p: string, create: boolean): Promise<{ fh: FileHandle; size: number; users: number } | undefined> {
    let h = this.open.get(p);
    if (h) {
      this.open.delete(p); // most recently used goes last
      this.open.set(p, h);
    } else {
      let fh: FileHandle;
      try {
        fh = await open(p, 'r+');
      } catch (e) {
        if (!create || (e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        await mkdir(dirname(p), { recursive: true });
        fh = await open(p, 'w+');
      }
      const again = this.open.get(p);
      if (again) {
        await fh.close(); // opened twice concurrently: keep the first
        h = again;
      } else {
        // in use from the start: evicting to make room must never close the handle just opened
        const size = (await fh.stat()).size;
        const mine = this.open.get(p);
        if (mine) {
          await fh.close();
          mine.users++;
          return mine;
        }
        h = { fh, size, users: 1 };
        this.open.set(p, h);
        this.evict();
        return h;
      }
    }
    h.users++;
    return h;
  }

  private release(h: { users: number }): void {
    h.users--;
  }

  private evict(): void {
    if (this.open.size <= MAX_OPEN) return;
    for (const [p, h] of this.open) {
      if (this.open.size <= MAX_OPEN) break;
      if (h.users > 0) continue;
      this.open.delete(p);
      void h.fh.close().catch(() => undefined);
    }
  }

  private async forget(prefix: string): Promise<void> {
    for (const [p, h] of [...this.open]) {
      if (p === prefix || p.startsWith(prefix + '/')) {
        this.open.delete(p);
        await h.fh.close().catch(() => undefined);
      }
    }
  }

  /** Throws DiskIoError if the disk has failed (no synchronous syscall). */
  async healthy(): Promise<void> {
    await this.checkHot();
  }

  /** The absolute path of a file on the disk, for a thread writing it directly (noteWritten then). */
  pathOf(rel: string): string {
    return this.path(rel);
  }

  /**
   * Another thread wrote into an existing file (its size `before` and `after`, as it saw them):
   * the growth is charged (the data is already there: never refused) and a kept handle's size
   * updated. The caller kept this process's own writes off the file meanwhile.
   */
  noteWritten(rel: string, before: number, after: number): void {
    const h = this.open.get(this.path(rel));
    const was = h ? h.size : before;
    if (h) h.size = Math.max(h.size, after);
    this.usedBytes += roundUp(Math.max(was, after)) - roundUp(was);
  }

  /** Writes into a file at an offset, creating it if needed; with sync, durable before it resolves. */
  async pwrite(rel: string, data: Uint8Array, position: number, sync = false): Promise<void> {
    this.check();
    await this.writeCharged(rel, position + data.byteLength, sync, async (fh) => {
      let done = 0;
      while (done < data.byteLength) {
        const { bytesWritten } = await fh.write(data, done, data.byteLength - done, position + done);
        done += bytesWritten;
      }
    });
  }

  /**
   * Writes the chunks one after another at `position` with one vectored write (no joining),
   * creating the file if needed; usage is charged as pwrite does.
   */
  async pwritev(rel: string, chunks: readonly Uint8Array[], position: number, sync = false): Promise<void> {
    await this.checkHot();
    const total = chunks.reduce((n, c) => n + c.byteLength, 0);
    await this.writeCharged(rel, position + total, sync, async (fh) => {
      let done = 0;
      let rest: Uint8Array[] = [...chunks];
      while (done < total) {
        const { bytesWritten } = await fh.writev(rest, position + done);
        done += bytesWritten;
        if (done < total) rest = skip(rest, bytesWritten); // a short write: the rest again
      }
    });
  }

  /** A write under the file's lock that may grow it to `end`: the growth charged first, given back if the write fails. */
  private async writeCharged(rel: string, end: number, sync: boolean, write: (fh: FileHandle) => Promise<void>): Promise<void> {
    const p = this.path(rel);
    await this.locks.run(p, async () => {
      const h = await this.acquire(p, true);
      if (!h) throw new Error(`cannot open ${rel}`);
      try {
        const size = Math.max(h.size, end);
        const delta = roundUp(size) - roundUp(h.size);
        this.reserve(delta);
        try {
          await write(h.fh);
          h.size = size;
          if (sync) await h.fh.datasync();
        } catch (e) {
          this.usedBytes -= delta;
          throw e;
        }
      } finally {
        this.release(h);
      }
    });
  }

  /** Bytes of a file at a position (fewer past its end), or undefined if the file does not exist. */
  async readAt(rel: string, length: number, position: number): Promise<Buffer | undefined> {
    await this.checkHot();
    let h;
    try {
      h = await this.acquire(this.path(rel), false);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    if (!h) return undefined;
    try {
      return await readFully(h.fh, length, position);
    } finally {
      this.release(h);
    }
  }

  /** sync() for the I/O path: a missing file has nothing to flush; no synchronous syscall. */
  async datasync(rel: string): Promise<void> {
    await this.checkHot();
    let h;
    try {
      h = await this.acquire(this.path(rel), false);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    if (!h) return;
    try {
      await h.fh.datasync();
    } finally {
      this.release(h);
    }
  }

  /** Cuts a file to `size` bytes (its space past that returns to the disk). */
  async truncate(rel: string, size: number): Promise<void> {
    await this.checkHot();
    const p = this.path(rel);
    await this.locks.run(p, async () => {
      const h = await this.acquire(p, false);
      if (!h) return;
      try {
        if (h.size <= size) return;
        await h.fh.truncate(size);
        this.usedBytes -= roundUp(h.size) - roundUp(size);
        h.size = size;
      } finally {
        this.release(h);
      }
    });
  }

  /** Makes a file's written data durable (FLUSH). A missing file has nothing to flush. */
  async sync(rel: string): Promise<void> {
    this.check();
    const p = this.path(rel);
    if (!this.open.has(p) && !existsSync(p)) return;
    const h = await this.acquire(p, false);
    if (!h) return;
    try {
      await h.fh.datasync();
    } finally {
      this.release(h);
    }
  }

  async pread(rel: string, length: number, position: number): Promise<Buffer> {
    this.check();
    const h = await this.acquire(this.path(rel), false);
    if (!h) throw new Error(`cannot open ${rel}`);
    try {
      return await readFully(h.fh, length, position);
    } finally {
      this.release(h);
    }
  }

  async remove(rel: string): Promise<void> {
    this.check();
    const p = this.path(rel);
    const st = await stat(p).catch(() => undefined);
    if (!st) return;
    await this.forget(p);
    const freed = st.isDirectory() ? usageOf(p) : roundUp(st.size);
    await rm(p, { recursive: true, force: true });
    this.usedBytes -= freed;
  }

  /** Size and modification time of a file, or undefined if it does not exist. */
  async stat(rel: string): Promise<{ size: number; mtimeMs: number } | undefined> {
    this.check();
    const st = await stat(this.path(rel)).catch(() => undefined);
    return st ? { size: st.size, mtimeMs: st.mtimeMs } : undefined;
  }

  async list(rel = '.'): Promise<string[]> {
    this.check();
    const p = rel === '.' ? join(this.dir, 'data') : this.path(rel);
    return (await readdir(p).catch(() => [])).filter((n) => !n.includes('.tmp-'));
  }

  /** Removes everything on the disk (a fresh install). */
  async wipe(): Promise<void> {
    this.check();
    await this.forget(join(this.dir, 'data'));
    await rm(join(this.dir, 'data'), { recursive: true, force: true });
    await mkdir(join(this.dir, 'data'), { recursive: true });
    this.usedBytes = 0;
  }

  /** Absolute path of the disk's contents, for software that executes from the disk (boot). */
  get root(): string {
    return join(this.dir, 'data');
  }
}

/** `length` bytes from `position`, or fewer where the file ends. */
async function readFully(fh: FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length); // every byte is read or the result is cut to what was read
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}
