/**
 * bench/extent-store: the local store of extent-group replicas, before and after ADR 015's extent
 * store, in one process on a disk volume in a temp dir (page cache: what is measured is the CPU
 * and syscall cost of the store, not a device).
 *
 *   - old: the first cut's LocalEgroups (one file per 1 MiB block plus a `.crc` sidecar with a
 *     zlib CRC32 per 4 KiB page, computed on the event loop, two writes per I/O); a copy of that
 *     code is kept below (LegacyEgroups), over the same DiskVolume;
 *   - new: the extent store (src/cvm/node/extent-store.ts) through today's LocalEgroups: one file
 *     per extent with checksummed headers, CRC32C by @node-rs/crc32, one pwritev per write from
 *     page 0;
 *   - new, CRCs given: the extent store with the page checksums handed in (as a replica gets them
 *     in a replication frame): no checksum computed on the write path.
 *
 * Jobs as the other data-path benches (1 MiB sequential at depth 4, 4 KiB random at depth 16,
 * writes without sync) over --size MiB written once before measuring. Each figure: the best of
 * --rounds interleaved runs; CPU is this process's (user + system) per MiB moved. Also: raw
 * checksum throughput of zlib's crc32 and @node-rs/crc32's crc32c on 1 MiB and per 4 KiB page.
 *
 * Usage: node --import tsx bench/extent-store.ts [--size MiB] [--runtime s] [--rounds n]   (defaults 128, 2, 2)
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { crc32c } from '@node-rs/crc32';
import { DiskVolume, formatDisk } from '../src/shared/disk-volume.ts';
import { KeyedLock } from '../src/shared/keyed-lock.ts';
import { LocalEgroups, type EgroupRef } from '../src/cvm/node/egroups.ts';
import { pageCrcs } from '../src/cvm/node/extent-store.ts';
import { arg, bestOf, col, cpuMs, JOBS, type Job, type Sample } from './fio.ts';

const SIZE_MIB = arg('size', 128);
const RUNTIME = arg('runtime', 2);
const ROUNDS = arg('rounds', 2);
const MiB = 1 << 20;
const PAGE = 4096;
const VDISK = '0be4c400-0000-4000-8000-000000000002';

interface Store {
  /** `crcs`: the data's page checksums, precomputed (only the "CRCs given" store uses them). */
  write(r: EgroupRef, offset: number, data: Buffer, crcs?: Uint32Array): Promise<void>;
  read(r: EgroupRef, offset: number, length: number): Promise<Buffer>;
}

/** The first cut's LocalEgroups write and read (src/cvm/node/egroups.ts before ADR 015), kept for comparison. */
class LegacyEgroups implements Store {
  private locks = new KeyedLock();
  private crcs = new Map<string, Buffer>();
  constructor(private readonly v: DiskVolume) {}
  private file = (r: EgroupRef): string => `egroups/${r.vdisk}/${r.block}`;
  private stored = (b: Buffer): number => crc32(b) || 1;
  private async raw(file: string, offset: number, length: number): Promise<Buffer> {
    let got: Buffer;
    try {
      got = await this.v.pread(file, length, offset);
    } catch (e) {
      if (!(e instanceof Error && 'code' in e && e.code === 'ENOENT')) throw e;
      return Buffer.alloc(length);
    }
    if (got.length === length) return got;
    const out = Buffer.alloc(length);
    got.copy(out);
    return out;
  }
  private async table(r: EgroupRef): Promise<Buffer> {
    const k = this.file(r);
    let t = this.crcs.get(k);
    if (!t) this.crcs.set(k, (t = await this.raw(`${k}.crc`, 0, (MiB / PAGE) * 4)));
    return t;
  }
  async write(r: EgroupRef, offset: number, data: Buffer): Promise<void> {
    const file = this.file(r);
    await this.locks.run(file, async () => {
      await this.v.pwrite(file, data, offset, false);
      const first = Math.floor(offset / PAGE);
      const last = Math.floor((offset + data.byteLength - 1) / PAGE);
      const table = await this.table(r);
      for (let i = 0; i <= last - first; i++) table.writeUInt32BE(this.stored(data.subarray(i * PAGE, (i + 1) * PAGE)), (first + i) * 4);
      await this.v.pwrite(`${file}.crc`, table.subarray(first * 4, (last + 1) * 4), first * 4, false);
    });
  }
  read(r: EgroupRef, offset: number, length: number): Promise<Buffer> {
    const file = this.file(r);
    return this.locks.run(file, async () => {
      const first = Math.floor(offset / PAGE);
      const last = Math.floor((offset + length - 1) / PAGE);
      const [pages, table] = await Promise.all([this.raw(file, first * PAGE, (last - first + 1) * PAGE), this.table(r)]);
      for (let i = 0; i <= last - first; i++) {
        const want = table.readUInt32BE((first + i) * 4);
        if (want !== 0 && this.stored(pages.subarray(i * PAGE, (i + 1) * PAGE)) !== want) throw new Error('checksum mismatch');
      }
      return pages.subarray(offset - first * PAGE, offset - first * PAGE + length);
    });
  }
}

async function load(s: Store, job: Job, runtimeS: number): Promise<Sample> {
  const bs = job.bs === '1M' ? MiB : 4096;
  const slots = (SIZE_MIB * MiB) / bs;
  const write = job.rw.includes('write');
  // payloads made before the clock starts, with their page checksums (a replica receives both)
  const payloads = Array.from({ length: 32 }, () => randomBytes(bs));
  const crcs = payloads.map((p) => pageCrcs(0, [p]));
  let next = 0;
  let ops = 0;
  const cpu0 = cpuMs();
  const start = performance.now();
  const end = start + runtimeS * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const pos = (job.rw.startsWith('rand') ? Math.floor(Math.random() * slots) : next++ % slots) * bs;
      const ref = { disk: 'bench-d1', vdisk: VDISK, block: Math.floor(pos / MiB) };
      const i = ops % payloads.length;
      const p = payloads[i] ?? Buffer.alloc(bs);
      // a new Buffer object per write, as the NBD server hands the write path: its checksums are computed anew
      await (write ? s.write(ref, pos % MiB, Buffer.from(p.buffer, p.byteOffset, p.byteLength), crcs[i]) : s.read(ref, pos % MiB, bs));
      ops++;
    }
  };
  await Promise.all(Array.from({ length: job.depth }, worker));
  const mib = (ops * bs) / MiB;
  return { mibs: mib / ((performance.now() - start) / 1000), cpu: (cpuMs() - cpu0) / mib };
}

function checksumSpeed(): void {
  const buf = randomBytes(MiB);
  // per second of this process's CPU time (the machine may be shared: wall time would measure the others)
  const gibs = (f: () => void, bytesPerCall: number): number => {
    let n = 0;
    const c0 = cpuMs();
    const t0 = performance.now();
    while (performance.now() - t0 < 500) {
      f();
      n++;
    }
    return (n * bytesPerCall) / ((cpuMs() - c0) / 1000) / 2 ** 30;
  };
  const pages = (c: (b: Buffer) => number) => (): void => {
    for (let i = 0; i < MiB; i += PAGE) c(buf.subarray(i, i + PAGE));
  };
  console.log('checksums, GiB per CPU second on this machine (one thread):');
  console.log(`  zlib crc32            1 MiB at once ${col(gibs(() => crc32(buf), MiB), 6, 2)}   per 4 KiB page ${col(gibs(pages((b) => crc32(b)), MiB), 6, 2)}`);
  console.log(`  @node-rs/crc32 crc32c 1 MiB at once ${col(gibs(() => crc32c(buf), MiB), 6, 2)}   per 4 KiB page ${col(gibs(pages((b) => crc32c(b)), MiB), 6, 2)}`);
  console.log(`  pageCrcs (the store's per-page pass over a write)  ${col(gibs(() => pageCrcs(0, [buf]), MiB), 6, 2)}`);
}

async function main(): Promise<void> {
  checksumSpeed();
  const dir = mkdtempSync(join(tmpdir(), 'cvg-bench-extents-'));
  try {
    formatDisk(join(dir, 'old'), { serial: 'bench-d1', model: 'bench', mediaType: 'SSD', capacityBytes: 4 * SIZE_MIB * MiB });
    formatDisk(join(dir, 'new'), { serial: 'bench-d1', model: 'bench', mediaType: 'SSD', capacityBytes: 4 * SIZE_MIB * MiB });
    formatDisk(join(dir, 'given'), { serial: 'bench-d1', model: 'bench', mediaType: 'SSD', capacityBytes: 4 * SIZE_MIB * MiB });
    const legacy = new LegacyEgroups(DiskVolume.open(join(dir, 'old')));
    const local = new LocalEgroups([{ serial: 'bench-d1', path: join(dir, 'new') }], 'bench/extent-store');
    const given = new LocalEgroups([{ serial: 'bench-d1', path: join(dir, 'given') }], 'bench/extent-store');
    const fresh: Store = { write: (r, o, d) => local.write(r, o, d, false), read: (r, o, l) => local.read(r, o, l) };
    // a replica: the checksums come with the data (computed once by the writing CVM)
    const withCrcs: Store = { write: (r, o, d, c) => given.store.write(r, o, [d], { crcs: c ?? pageCrcs(o, [d]) }).then(() => undefined), read: (r, o, l) => given.read(r, o, l) };
    const t0 = performance.now();
    for (const s of [legacy, fresh, withCrcs]) for (let b = 0; b < SIZE_MIB; b++) await s.write({ disk: 'bench-d1', vdisk: VDISK, block: b }, 0, randomBytes(MiB));
    console.log(`bench/extent-store: ${SIZE_MIB} MiB per store on ${dir} (filled in ${((performance.now() - t0) / 1000).toFixed(1)} s), ${RUNTIME} s per job, best of ${ROUNDS} interleaved; CPU = this process, ms per MiB`);
    console.log('job                  old MiB/s  new MiB/s  new/old   CPU old  CPU new  new/old   new, CRCs given: MiB/s  CPU');
    for (const job of JOBS) {
      const r = await bestOf(ROUNDS, { old: () => load(legacy, job, RUNTIME), fresh: () => load(fresh, job, RUNTIME), given: () => load(withCrcs, job, RUNTIME) });
      console.log(`${job.name.padEnd(20)} ${col(r.old.mibs, 9)}  ${col(r.fresh.mibs, 9)}  ${col(r.fresh.mibs / r.old.mibs, 7, 2)}   ${col(r.old.cpu ?? 0, 7, 2)}  ${col(r.fresh.cpu ?? 0, 7, 2)}  ${col((r.fresh.cpu ?? 0) / (r.old.cpu ?? 1), 7, 2)}   ${col(r.given.mibs, 21)}  ${col(r.given.cpu ?? 0, 5, 2)}`);
    }
    local.release();
    given.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
