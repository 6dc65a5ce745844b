/**
 * TRIM and WRITE_ZEROES in bounded memory (storage engine v2): a 1 GiB TRIM of a written RF2 vdisk
 * through the NBD server sends zero frames without data (no buffer of zeros at the owner), frees
 * the extents' data space on both replicas, never places or records an extent group that was never
 * written, and Buffer memory does not grow with the range; MemoryBackend drops pages instead of
 * writing a buffer the size of the range. Addresses 127.70.3.x.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { SystemClock } from '../../src/shared/clock.ts';
import { formatDisk } from '../../src/shared/disk-volume.ts';
import { LocalEgroups } from '../../src/cvm/node/egroups.ts';
import { LocalReplicas, localOnlyIo } from '../../src/cvm/node/engine-replicas.ts';
import { VdiskOwner } from '../../src/cvm/core/engine/owner.ts';
import { MemoryMetaStore } from '../../src/cvm/core/engine/memory-meta.ts';
import { EGROUP_BYTES } from '../../src/cvm/core/engine/layout.ts';
import type { WriteFrame } from '../../src/cvm/core/engine/ports.ts';
import { NbdServer } from '../../src/shared/nbd/server.ts';
import { NbdClient } from '../../src/shared/nbd/client.ts';
import { MemoryBackend, type NbdBackend } from '../../src/shared/nbd/backend.ts';
import * as C from '../../src/shared/nbd/constants.ts';

const HOST = '127.70.3.1';
const MiB = 1 << 20;
const GiB = 1 << 30;
const mib = (n: number): number => Math.round(n / MiB);
const VD = '11111111-2222-3333-4444-555555555555';

/** An owner as an NBD export (what the CVM's owner registry hands a connection, without forwarding). */
function exportOf(o: VdiskOwner, size: number): NbdBackend {
  const buf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  return {
    size: BigInt(size), readOnly: false,
    pread: async (off, len) => buf(await o.pread(off, len)),
    pwrite: (off, d) => o.pwrite(off, d),
    flush: () => o.flush(),
    trim: (off, len) => o.zero(off, len),
    zero: (off, len) => o.zero(off, len),
    close: () => Promise.resolve(),
  };
}

async function serve(be: NbdBackend, fn: (c: NbdClient) => Promise<void>): Promise<void> {
  const server = new NbdServer({ list: () => ['vd'], open: () => Promise.resolve(be) });
  const { port } = await server.listen(0, HOST);
  const c = await NbdClient.connect(HOST, port, 'vd');
  try {
    await fn(c);
  } finally {
    c.close();
    await server.close();
  }
}

test('a 1 GiB TRIM of a written RF2 vdisk: zero frames without data, data space freed on both replicas, unwritten extent groups untouched, no memory growth', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-trim-'));
  try {
    for (const d of ['a1', 'b1']) formatDisk(join(dir, d), { serial: d, model: 'M', mediaType: 'SSD', capacityBytes: 4 * GiB });
    const local = new LocalEgroups([{ serial: 'a1', path: join(dir, 'a1') }, { serial: 'b1', path: join(dir, 'b1') }]);
    const reps = new LocalReplicas(local.store, local.volumes);
    const io = localOnlyIo(reps);
    const frames: WriteFrame[] = [];
    const write = io.write.bind(io);
    io.write = (l, f) => {
      frames.push(f);
      return write(l, f);
    };
    const meta = new MemoryMetaStore();
    const owner = await VdiskOwner.open({
      vdisk: VD, node: 'A', cvmIp: HOST, rf: 2, io, meta, clock: new SystemClock(), checksum: (p) => crc32c(p),
      liveness: { isDown: () => false, subscribe: () => () => undefined },
      space: { disks: () => [{ serial: 'a1', node: 'A', cvmIp: HOST, freeBytes: 4 * GiB, ok: true, media: 'ssd' }, { serial: 'b1', node: 'B', cvmIp: '127.70.3.2', freeBytes: 4 * GiB, ok: true, media: 'ssd' }] },
    });
    const size = 2 * GiB;
    await serve(exportOf(owner, size), async (c) => {
      // 16 MiB in each of the first 4 extent groups (512 MiB of the range), none beyond
      const data = Buffer.alloc(16 * MiB, 0x5a);
      for (let eg = 0; eg < 4; eg++) await c.request(C.NBD_CMD_WRITE, BigInt(eg * EGROUP_BYTES), data.length, data);
      await c.request(C.NBD_CMD_FLUSH, 0n, 0);
      await local.store.countExtents();
      const used = (): number[] => ['a1', 'b1'].map((d) => [...(local.store.vdiskBytes()?.get(d)?.values() ?? [])].reduce((a, b) => a + b, 0));
      assert.deepEqual(used(), [64 * MiB, 64 * MiB], 'both replicas hold the 64 MiB');
      frames.length = 0;
      const external0 = process.memoryUsage().arrayBuffers;
      let peak = external0;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 5);
      await c.request(C.NBD_CMD_TRIM, 4096n, GiB, undefined, C.NBD_CMD_FLAG_FUA);
      clearInterval(sampler);
      assert.ok(frames.length > 0 && frames.every((f) => f.zero && f.data === null), 'zero frames carry no data');
      assert.ok(frames.every((f) => f.egroup < 4), 'never-written extent groups get no frame');
      assert.deepEqual([...meta.records.keys()].sort(), [0, 1, 2, 3].map((eg) => `${VD}/${eg}`), 'and no record');
      assert.ok(peak - external0 < 64 * MiB, `Buffer memory grew by ${mib(peak - external0)} MiB during the TRIM`);
      // whole extents zeroed return their data space (the first extent keeps its first page)
      assert.deepEqual(used(), [MiB, MiB], 'only the partly trimmed first extent still holds data, on each replica');
      const back = await c.request(C.NBD_CMD_READ, 0n, 2 * MiB);
      assert.ok(back?.subarray(0, 4096).every((b) => b === 0x5a), 'before the range');
      assert.ok(back?.subarray(4096).every((b) => b === 0), 'the range');
    });
    await owner.close();
    local.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('MemoryBackend: a 1 GiB TRIM drops pages instead of allocating the range; the ends are zeroed in place', async () => {
  const mem = new MemoryBackend(2 * GiB);
  await mem.pwrite(0, Buffer.alloc(256 * 1024, 1));
  await mem.pwrite(GiB - 4096, Buffer.alloc(8192, 2));
  const external0 = process.memoryUsage().arrayBuffers;
  await mem.trim(100, GiB - 200);
  assert.ok(process.memoryUsage().arrayBuffers - external0 < 16 * MiB, 'no buffer the size of the range');
  assert.ok((await mem.pread(0, 100)).every((b) => b === 1));
  assert.ok((await mem.pread(100, 256 * 1024 - 100)).every((b) => b === 0));
  assert.ok((await mem.pread(GiB - 4096, 4096 - 100)).every((b) => b === 0));
  assert.ok((await mem.pread(GiB - 100, 4196)).every((b) => b === 2));
});
