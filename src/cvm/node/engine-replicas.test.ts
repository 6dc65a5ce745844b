/**
 * The engine's ReplicaIo on real extent stores: node A's own disk through the extent store, node
 * B's over the replication protocol v2 (TLS on 127.128.0.1): writes and reads with page checksums,
 * stale epochs and generations refused, EXTENT_GENS fencing (durable), extent copies, SYNC(vdisk),
 * and malformed frames answered with an error.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { crc32c } from '@node-rs/crc32';
import { createCa, issueCert } from '../../shared/tls.ts';
import { DiskVolume, formatDisk } from '../../shared/disk-volume.ts';
import { CorruptPageError, StaleEpochError, StaleGenerationError, type WriteFrame } from '../core/engine/ports.ts';
import type { ReplicaLocation } from '../core/engine/layout.ts';
import * as R from '../core/replication-codec.ts';
import { LocalEgroups } from './egroups.ts';
import { ExtentStore } from './extent-store.ts';
import { ReplicationClient, ReplicationServer, type MemberTls } from './replication.ts';
import { EngineReplicaIo, LocalReplicas, blockOf } from './engine-replicas.ts';

const IP = '127.128.0.1';
const PORT = 21219;
const VD = '0123abcd-4567-89ef-0123-456789abcdef';
const MiB = 1 << 20;

const dir = mkdtempSync(join(tmpdir(), 'cvg-engrep-'));
formatDisk(join(dir, 'a1'), { serial: 'a1', model: 'M', mediaType: 'SSD', capacityBytes: 64 * MiB });
formatDisk(join(dir, 'b1'), { serial: 'b1', model: 'M', mediaType: 'SSD', capacityBytes: 64 * MiB });
// node A: this CVM; node B: a peer serving its disk over the replication protocol
const volA = DiskVolume.open(join(dir, 'a1'));
const volsA = new Map([['a1', volA]]);
const storeA = new ExtentStore(volsA);
const localA = new LocalReplicas(storeA, volsA);
const egB = new LocalEgroups([{ serial: 'b1', path: join(dir, 'b1') }], 'engine-replicas.test');
const localB = new LocalReplicas(egB.store, egB.volumes);
const server = new ReplicationServer(egB, () => undefined, localB);
let member: MemberTls;
let client: ReplicationClient;
let io: EngineReplicaIo;
const A: ReplicaLocation = { node: 'A', cvmIp: '127.128.0.2', disk: 'a1' };
const B: ReplicaLocation = { node: 'B', cvmIp: IP, disk: 'b1' };

after(async () => {
  client.close();
  await server.close();
  egB.release();
  volA.close();
  rmSync(dir, { recursive: true, force: true });
});

const crcs = (d: Uint8Array): number[] => Array.from({ length: d.length / 4096 }, (_, i) => crc32c(d.subarray(i * 4096, (i + 1) * 4096)));
function frame(f: Partial<WriteFrame> & { epoch: number; gen: number }, data: Buffer | null = Buffer.alloc(8192, 0x11)): WriteFrame {
  return { vdisk: VD, egroup: 0, extent: 0, inner: 0, data, length: data?.length ?? 4096, zero: data === null, crcs: data ? crcs(data) : [], ...f };
}

test('setup: node B serves its disk over TLS', async () => {
  const ca = await createCa('test cluster');
  const cvm = await issueCert(ca, { cn: 'cvm', ou: 'cvm', ips: [IP], usage: 'both' });
  member = { identity: cvm, clusterCa: ca.cert };
  await server.listen(IP, member, PORT);
  client = new ReplicationClient(() => member, 2, PORT);
  io = new EngineReplicaIo({ node: 'A' }, localA, client);
});

test('writes and reads, local and remote: the page checksums travel with the data and are verified', async () => {
  for (const loc of [A, B]) {
    const data = Buffer.alloc(3 * 4096);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (loc === A ? 1 : 2)) & 0xff;
    await io.write(loc, frame({ egroup: 1, extent: 5, inner: 8192, epoch: 3, gen: 1 }, data));
    const got = await io.read(loc, { vdisk: VD, egroup: 1, extent: 5, inner: 8192, length: data.length });
    assert.ok(Buffer.from(got.data).equals(data));
    assert.equal(got.crcs, undefined, 'verified by the replica itself: no checksums handed back to recompute');
    const hole = await io.read(loc, { vdisk: VD, egroup: 1, extent: 5, inner: 0, length: 8192 });
    assert.ok(Buffer.from(hole.data).equals(Buffer.alloc(8192)));
    // the extent store block is egroup × 128 + extent
    const store = loc === A ? storeA : egB.store;
    assert.deepEqual(await store.meta({ disk: loc.disk, vdisk: VD, block: blockOf(1, 5) }), { exists: true, epoch: 3, generation: 1 });
    // checksums that do not match the data are stored as sent: the read catches them
    const bad = frame({ egroup: 1, extent: 6, epoch: 3, gen: 2 }, Buffer.alloc(4096, 9));
    await io.write(loc, { ...bad, crcs: [bad.crcs[0]! ^ 1] });
    await assert.rejects(io.read(loc, { vdisk: VD, egroup: 1, extent: 6, inner: 0, length: 4096 }), CorruptPageError);
    // a zero frame: no data sent, the pages read as zeros, the version moves
    await io.write(loc, frame({ egroup: 1, extent: 5, inner: 8192, epoch: 3, gen: 3 }, null));
    assert.ok(Buffer.from((await io.read(loc, { vdisk: VD, egroup: 1, extent: 5, inner: 8192, length: 4096 })).data).equals(Buffer.alloc(4096)));
    assert.deepEqual((await io.extentGens(loc, VD, 1, 3)).get(5), { epoch: 3, gen: 3 });
  }
});

test('a stale epoch is refused (StaleEpochError), locally and remotely; a late generation too', async () => {
  for (const loc of [A, B]) {
    await io.write(loc, frame({ egroup: 2, epoch: 5, gen: 1 }));
    const e = await io.write(loc, frame({ egroup: 2, extent: 1, epoch: 4, gen: 9 })).then(() => null, (x: unknown) => x);
    assert.ok(e instanceof StaleEpochError, String(e));
    assert.equal(e.seen, 5);
    assert.equal(e.sent, 4);
    await assert.rejects(io.write(loc, frame({ egroup: 2, epoch: 5, gen: 1 })), StaleGenerationError);
    await io.write(loc, frame({ egroup: 2, epoch: 5, gen: 2 }, Buffer.alloc(4096, 0x22)));
    assert.equal((await io.read(loc, { vdisk: VD, egroup: 2, extent: 0, inner: 0, length: 4096 })).data[0], 0x22);
  }
});

test('extentGens: per-extent versions, and it fences older owners durably', async () => {
  for (const loc of [A, B]) {
    await io.write(loc, frame({ egroup: 3, extent: 0, epoch: 6, gen: 1 }));
    await io.write(loc, frame({ egroup: 3, extent: 127, epoch: 6, gen: 2 }));
    const gens = await io.extentGens(loc, VD, 3, 8);
    assert.deepEqual([...gens].sort(([a], [b]) => a - b), [[0, { epoch: 6, gen: 1 }], [127, { epoch: 6, gen: 2 }]]);
    await assert.rejects(io.write(loc, frame({ egroup: 3, extent: 4, epoch: 7, gen: 3 })), (e: unknown) => e instanceof StaleEpochError && e.seen === 8 && e.sent === 7);
    await assert.rejects(io.extentGens(loc, VD, 3, 7), StaleEpochError);
    await io.write(loc, frame({ egroup: 3, extent: 4, epoch: 8, gen: 1 }));
    assert.deepEqual((await io.extentGens(loc, VD, 4, 1)).size, 0, 'another extent group is not fenced');
  }
  // atomic: a write the old floor admitted lands before the versions are listed
  for (const loc of [A, B]) {
    const w = io.write(loc, frame({ egroup: 7, extent: 1, epoch: 2, gen: 1 }, Buffer.alloc(MiB, 0x31)));
    const gens = await io.extentGens(loc, VD, 7, 3);
    await w;
    assert.deepEqual(gens.get(1), { epoch: 2, gen: 1 });
  }
  // durable: a fresh LocalReplicas (a restarted CVM) on the same disk still refuses epoch 7
  const again = new LocalReplicas(storeA, volsA);
  await assert.rejects(again.write('a1', frame({ egroup: 3, extent: 9, epoch: 7, gen: 1 })), StaleEpochError);
});

test('extent copy local → remote: data, checksums and version; a delete; refused below the floor', async () => {
  const data = Buffer.alloc(MiB);
  for (let p = 0; p < 256; p += 3) data.fill(p, p * 4096, p * 4096 + 4096);
  await io.write(A, frame({ egroup: 5, extent: 2, epoch: 9, gen: 4 }, data));
  const img = await io.readExtent(A, VD, 5, 2);
  assert.ok(img);
  assert.deepEqual(img.version, { epoch: 9, gen: 4 });
  assert.equal(img.pages.size, 85, 'zero pages travel as absent');
  assert.equal(await io.readExtent(B, VD, 5, 2), null);
  await io.writeExtent(B, VD, 5, 2, 9, img);
  const copy = await io.readExtent(B, VD, 5, 2);
  assert.ok(copy);
  assert.deepEqual(copy.version, img.version);
  assert.deepEqual([...copy.pages].map(([p, e]) => [p, e.crc]), [...img.pages].map(([p, e]) => [p, e.crc]));
  assert.ok(Buffer.from((await io.read(B, { vdisk: VD, egroup: 5, extent: 2, inner: 0, length: MiB })).data).equals(data));
  assert.deepEqual((await io.extentGens(B, VD, 5, 9)).get(2), { epoch: 9, gen: 4 });
  // a copy replaces the extent even when it holds a newer version (a replica being rebuilt)
  await io.write(B, frame({ egroup: 5, extent: 3, epoch: 10, gen: 1 }));
  await io.writeExtent(B, VD, 5, 3, 10, img);
  assert.deepEqual((await io.readExtent(B, VD, 5, 3))?.version, { epoch: 9, gen: 4 });
  await assert.rejects(io.writeExtent(B, VD, 5, 3, 8, img), StaleEpochError);
  await io.writeExtent(B, VD, 5, 3, 10, null);
  assert.equal(await io.readExtent(B, VD, 5, 3), null);
});

test('sync(cvm, vdisk): the vdisk\'s dirty extents on that CVM are made durable', async () => {
  const counted = (store: ExtentStore): { n: number } => {
    const c = { n: 0 };
    const sync = store.sync.bind(store);
    store.sync = (r) => {
      if (r.vdisk === VD) c.n++;
      return sync(r);
    };
    return c;
  };
  const ca = counted(storeA);
  const cb = counted(egB.store);
  await io.write(A, frame({ egroup: 6, epoch: 1, gen: 1 }));
  await io.write(B, frame({ egroup: 6, epoch: 1, gen: 1 }));
  await io.sync({ node: 'B', cvmIp: IP }, VD);
  assert.ok(cb.n >= 1);
  assert.equal(ca.n, 0, 'only the named CVM syncs');
  await io.sync({ node: 'A', cvmIp: A.cvmIp }, VD);
  assert.ok(ca.n >= 1);
  const before = cb.n;
  await io.sync({ node: 'B', cvmIp: IP }, VD);
  assert.equal(cb.n, before, 'nothing dirty: nothing synced');
});

test('malformed v2 frames are answered with an error; an oversized one also closes the connection', async () => {
  const sock = connect({ host: IP, port: PORT, cert: member.identity.cert, key: member.identity.key, ca: [member.clusterCa] });
  const replies: Buffer[] = [];
  let buf = Buffer.alloc(0);
  const closed = new Promise<void>((res) => sock.once('close', () => res()));
  sock.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    while (buf.length >= R.REPLY_HEADER && buf.length >= R.REPLY_HEADER + buf.readUInt32BE(12)) {
      const n = R.REPLY_HEADER + buf.readUInt32BE(12);
      replies.push(buf.subarray(0, n));
      buf = buf.subarray(n);
    }
  });
  const next = async (k: number): Promise<void> => {
    for (let i = 0; i < 200 && replies.length < k; i++) await new Promise((r) => setTimeout(r, 10));
  };
  try {
    await new Promise<void>((res, rej) => sock.once('secureConnect', res).once('error', rej));
    // a WRITE_EXTENT whose image does not parse: an error reply, the connection stays
    const junk = Buffer.concat([R.encodeU64(1), R.encodeVersion(1, 1), Buffer.from([0, 0, 0, 5]), Buffer.alloc(10, 0xee)]);
    sock.write(Buffer.concat([R.encodeRequest({ op: R.OP_WRITE_EXTENT, id: 1, disk: 'b1', vdisk: VD, block: 0, offset: 0, length: junk.length }), junk]));
    // EXTENT_GENS with an epoch beyond 2^53
    sock.write(Buffer.concat([R.encodeRequest({ op: R.OP_EXTENT_GENS, id: 2, disk: 'b1', vdisk: VD, block: 0, offset: 0, length: 8 }), Buffer.alloc(8, 0xff)]));
    // an unaligned v2 write (its payload is framed by wholePageCount: 0 CRCs)
    sock.write(Buffer.concat([R.encodeRequest({ op: R.OP_WRITE_V2, id: 3, disk: 'b1', vdisk: VD, block: 0, offset: 100, length: 10 }), R.encodeVersion(20, 1), Buffer.alloc(10)]));
    await next(3);
    const byId = new Map(replies.map((r) => [R.decodeReply(r).id, r]));
    for (const [id, why] of [[1, /image/], [2, /too large/], [3, /whole pages/]] as const) {
      const r = byId.get(id);
      assert.ok(r, `reply ${id}`);
      assert.equal(R.decodeReply(r).status, R.ST_INPUT);
      assert.match(r.subarray(R.REPLY_HEADER).toString(), why);
    }
    // an oversized frame: answered, then the connection closes (its payload cannot be skipped)
    sock.write(R.encodeRequest({ op: R.OP_WRITE_EXTENT, id: 4, disk: 'b1', vdisk: VD, block: 0, offset: 0, length: R.WRITE_EXTENT_MAX + 1 }));
    await next(4);
    const r4 = replies.find((r) => R.decodeReply(r).id === 4);
    assert.ok(r4);
    assert.equal(R.decodeReply(r4).status, R.ST_INPUT);
    await closed;
  } finally {
    sock.destroy();
  }
  // the server still serves
  assert.deepEqual((await io.extentGens(B, VD, 2, 5)).get(0), { epoch: 5, gen: 2 });
});
