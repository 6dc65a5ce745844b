/**
 * bench/owner-path: the cost of the v2 owner on one CVM's own disk, without network or NBD: the
 * same 1 MiB and 4 KiB I/O through VdiskOwner (RF1, local replica via LocalReplicas) and straight
 * to the extent store, in one run. Shows what the owner's rules cost per I/O.
 *
 * Usage: node --import tsx bench/owner-path.ts [--size MiB] [--qd n] [--oplog MiB]   (defaults 256, 4, the
 * store's default oplog; --oplog 0: small writes straight to the extent files)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { crc32c } from '@node-rs/crc32';
import { SystemClock } from '../src/shared/clock.ts';
import { formatDisk } from '../src/shared/disk-volume.ts';
import { LocalEgroups } from '../src/cvm/node/egroups.ts';
import { LocalReplicas, localOnlyIo } from '../src/cvm/node/engine-replicas.ts';
import { VdiskOwner } from '../src/cvm/core/engine/owner.ts';
import { MemoryMetaStore } from '../src/cvm/core/engine/memory-meta.ts';
import { arg, cpuMs } from './fio.ts';

const SIZE = arg('size', 256);
const QD = arg('qd', 4);
const OPLOG = arg('oplog', -1);
const MiB = 1 << 20;

async function timed(label: string, n: number, bytes: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  const c0 = cpuMs(process.pid);
  const t0 = process.hrtime.bigint();
  let next = 0;
  await Promise.all(Array.from({ length: QD }, async () => {
    while (next < n) await fn(next++);
  }));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuMs(process.pid) - c0;
  console.log(`${label.padEnd(40)} ${(n * bytes / MiB / s).toFixed(0).padStart(7)} MiB/s ${(n / s).toFixed(0).padStart(8)} IOPS   CPU ${(cpu / (n * bytes / MiB)).toFixed(2)} ms/MiB`);
}

const dir = mkdtempSync(join(tmpdir(), 'owner-path-'));
try {
  formatDisk(join(dir, 'd'), { serial: 'd1', model: 'bench', mediaType: 'SSD', capacityBytes: 8 * SIZE * MiB });
  const local = new LocalEgroups([{ serial: 'd1', path: join(dir, 'd') }], 'bench', OPLOG >= 0 ? { oplogBytes: OPLOG * MiB } : {});
  const reps = new LocalReplicas(local.store, local.volumes);
  const io = localOnlyIo(reps);
  const vd = '11111111-2222-3333-4444-555555555555';
  const owner = await VdiskOwner.open({
    vdisk: vd, node: 'n1', cvmIp: '127.0.0.1', rf: 1, io, meta: new MemoryMetaStore(), clock: new SystemClock(), checksum: (p) => crc32c(p),
    liveness: { isDown: () => false, subscribe: () => () => undefined }, space: { disks: () => [{ serial: 'd1', node: 'n1', cvmIp: '127.0.0.1', freeBytes: 1e12, ok: true, media: 'ssd' }] },
  });
  const data = randomBytes(MiB);
  const n = SIZE;
  await timed('owner: first write 1 MiB', n, MiB, (i) => owner.pwrite(i * MiB, data));
  await timed('owner: overwrite 1 MiB', n, MiB, (i) => owner.pwrite(i * MiB, data));
  await timed('owner: read 1 MiB', n, MiB, (i) => owner.pread(i * MiB, MiB));
  const pages = 20000;
  const off = (i: number): number => ((i * 7919) % (SIZE * 256)) * 4096;
  await timed('owner: write 4 KiB random', pages, 4096, (i) => owner.pwrite(off(i), data.subarray(0, 4096)));
  await timed('owner: read 4 KiB random', pages, 4096, (i) => owner.pread(off(i), 4096));
  const store = local.store;
  const ref = (b: number): { disk: string; vdisk: string; block: number } => ({ disk: 'd1', vdisk: vd, block: b });
  await timed('extent store: read 1 MiB', n, MiB, (i) => store.read(ref(i), 0, MiB));
  await timed('extent store: read 4 KiB random', pages, 4096, (i) => store.read(ref(Math.floor(off(i) / MiB)), off(i) % MiB, 4096));
  await owner.close();
  local.release();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
