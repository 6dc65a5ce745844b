/**
 * TRIM and WRITE_ZEROES in bounded memory: a 1 GiB TRIM of a written vdisk through the NBD server
 * zeroes every extent group on every replica from one shared buffer of zeros, a few at a time
 * (it used to allocate a fresh MiB of zeros per extent group, all at once: 1 GiB held for one
 * request); never-written extent groups are skipped; MemoryBackend drops pages instead of
 * writing a buffer the size of the range. Addresses 127.70.3.x.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { formatDisk } from '../../src/shared/disk-volume.ts';
import { LocalEgroups, type EgroupRef, type PeerEgroups } from '../../src/cvm/node/egroups.ts';
import { VdiskBackend } from '../../src/cvm/node/vdisk-backend.ts';
import type { Vdisk } from '../../src/cvm/core/storage.ts';
import type { DiskSpace, Replica } from '../../src/cvm/core/placement.ts';
import { NbdServer } from '../../src/shared/nbd/server.ts';
import { NbdClient } from '../../src/shared/nbd/client.ts';
import { MemoryBackend, type NbdBackend } from '../../src/shared/nbd/backend.ts';
import * as C from '../../src/shared/nbd/constants.ts';

const HOST = '127.70.3.1';
const MiB = 1 << 20;
const GiB = 1 << 30;
const mib = (n: number): number => Math.round(n / MiB);

/** The configuration store as VdiskBackend reads it: the replicas of each written extent group. */
function fakeEtcd(replicasOf: (block: number) => Replica[] | undefined): Etcd3 {
  return { get: (k: string) => ({ string: () => Promise.resolve(((r) => (r ? JSON.stringify(r) : null))(replicasOf(Number(k.split('/').pop())))) }) } as unknown as Etcd3;
}

const vdisk = (sizeBytes: number): Vdisk => ({ uuid: '11111111-2222-3333-4444-555555555555', name: 'vd', sizeBytes, container: 'default' } as unknown as Vdisk);

/** NbdBackend views sharing one backend across connections (each connection closes its view). */
function view(be: NbdBackend): NbdBackend {
  return { size: be.size, readOnly: be.readOnly, pread: (o, l) => be.pread(o, l), pwrite: (o, d, f) => be.pwrite(o, d, f), flush: () => be.flush(), trim: (o, l, f) => be.trim(o, l, f), zero: (o, l, f) => be.zero(o, l, f), close: () => Promise.resolve() };
}

async function serve(be: NbdBackend, fn: (c: NbdClient) => Promise<void>): Promise<void> {
  const server = new NbdServer({ list: () => ['vd'], open: () => Promise.resolve(view(be)) });
  const { port } = await server.listen(0, HOST);
  const c = await NbdClient.connect(HOST, port, 'vd');
  try {
    await fn(c);
  } finally {
    c.close();
    await server.close();
  }
}

test('a 1 GiB TRIM of a written RF2 vdisk zeroes every extent group on both replicas, with a few MiB of zeros in flight and no memory growth', async () => {
  // every extent group has two replicas on peers; the peers record what they are sent
  const reps: Replica[] = [{ node: 'B', cvmIp: '127.70.3.2', disk: 'b1' }, { node: 'C', cvmIp: '127.70.3.3', disk: 'c1' }];
  const zeroed = new Map<string, number>();
  const buffers = new Set<ArrayBufferLike>();
  let inFlight = 0;
  let peakInFlight = 0;
  let peakExternal = 0;
  const peers = {
    write: async (ip: string, r: EgroupRef, offset: number, data: Uint8Array) => {
      if (!buffers.has(data.buffer)) assert.ok(Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(Buffer.alloc(data.byteLength)), 'zeros');
      buffers.add(data.buffer);
      inFlight += data.byteLength;
      peakInFlight = Math.max(peakInFlight, inFlight);
      peakExternal = Math.max(peakExternal, process.memoryUsage().arrayBuffers);
      await new Promise((res) => setTimeout(res, 1)); // the network
      inFlight -= data.byteLength;
      const k = `${ip}/${r.block}`;
      zeroed.set(k, (zeroed.get(k) ?? 0) + data.byteLength);
      if (r.block === 0) assert.ok(offset === 4096 || offset === 0);
    },
  } as unknown as PeerEgroups;
  const be = new VdiskBackend(vdisk(GiB), 2, { etcd: fakeEtcd(() => reps), local: { has: () => false } as unknown as LocalEgroups, peers, localNode: 'A', localIp: HOST, space: () => Promise.resolve([]), capacityOf: () => GiB });
  const external0 = process.memoryUsage().arrayBuffers;
  await serve(be, async (c) => {
    await c.request(C.NBD_CMD_TRIM, 4096n, GiB - 8192); // unaligned at both ends
    await c.request(C.NBD_CMD_WRITE_ZEROES, 0n, 4096);
  });
  assert.equal(zeroed.size, 2 * 1024, 'every extent group, on both replicas');
  assert.equal(zeroed.get('127.70.3.2/0'), MiB - 4096 + 4096, 'the first block: from 4 KiB to its end, then its first 4 KiB');
  assert.equal(zeroed.get('127.70.3.3/1023'), MiB - 4096, 'the last block: up to 4 KiB before its end');
  assert.equal(buffers.size, 1, 'one shared buffer of zeros');
  assert.ok(peakInFlight <= 8 * MiB, `zeros in flight peaked at ${mib(peakInFlight)} MiB`);
  assert.ok(peakExternal - external0 < 64 * MiB, `Buffer memory grew by ${mib(peakExternal - external0)} MiB during the TRIM`);
});

test('extent groups never written are not written by a TRIM or WRITE_ZEROES (they already read as zeros)', async () => {
  let writes = 0;
  const peers = { write: () => Promise.resolve(void writes++) } as unknown as PeerEgroups;
  const be = new VdiskBackend(vdisk(GiB), 2, { etcd: fakeEtcd((b) => (b === 7 ? [{ node: 'B', cvmIp: '127.70.3.2', disk: 'b1' }] : undefined)), local: { has: () => false } as unknown as LocalEgroups, peers, localNode: 'A', localIp: HOST, space: () => Promise.resolve([]), capacityOf: () => GiB });
  await be.trim(0, GiB, false);
  await be.zero(0, GiB, true);
  assert.equal(writes, 2, 'only block 7, once for each request');
});

test('TRIM on local replicas: written data reads back as zeros, outside the range is kept', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-trim-'));
  try {
    formatDisk(join(dir, 'a1'), { serial: 'a1', model: 'M', mediaType: 'SSD', capacityBytes: 256 * MiB });
    const local = new LocalEgroups([{ serial: 'a1', path: join(dir, 'a1') }]);
    const records = new Map<string, string>();
    // the store's calls VdiskBackend makes: get, and a create-if-absent transaction
    const etcd = {
      get: (k: string) => ({ string: () => Promise.resolve(records.get(k) ?? null) }),
      put: (k: string) => ({ value: (v: string) => ({ k, v }) }),
      if: (k: string) => ({ then: (op: { k: string; v: string }) => ({ commit: () => {
        const created = !records.has(k);
        if (created) records.set(op.k, op.v);
        return Promise.resolve({ succeeded: created });
      } }) }),
    } as unknown as Etcd3;
    const space: DiskSpace[] = [{ node: 'A', cvmIp: HOST, serial: 'a1', freeBytes: 256 * MiB, ok: true }];
    const be = new VdiskBackend(vdisk(64 * MiB), 1, { etcd, local, peers: {} as PeerEgroups, localNode: 'A', localIp: HOST, space: () => Promise.resolve(space.map((d) => ({ ...d }))), capacityOf: () => 256 * MiB });
    await serve(be, async (c) => {
      const data = Buffer.alloc(8 * MiB, 0x5a);
      await c.request(C.NBD_CMD_WRITE, 0n, data.length, data);
      await c.request(C.NBD_CMD_TRIM, 4096n, 6 * MiB, undefined, C.NBD_CMD_FLAG_FUA);
      const back = await c.request(C.NBD_CMD_READ, 0n, 8 * MiB);
      assert.ok(back?.subarray(0, 4096).every((b) => b === 0x5a), 'before the range');
      assert.ok(back?.subarray(4096, 4096 + 6 * MiB).every((b) => b === 0), 'the range');
      assert.ok(back?.subarray(4096 + 6 * MiB).every((b) => b === 0x5a), 'after the range');
    });
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
