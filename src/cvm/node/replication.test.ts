/**
 * The replication protocol end to end on loopback (127.120.0.1) with TLS: a replica stores the page
 * checksums the writing CVM sent (it does not recompute them), a FLUSH's batch is one SYNC_MANY,
 * and a first-cut (version 0) frame is still served.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { createCa, issueCert } from '../../shared/tls.ts';
import { formatDisk } from '../../shared/disk-volume.ts';
import * as R from '../core/replication-codec.ts';
import { LocalEgroups } from './egroups.ts';
import { ExtentStore, DATA_AT, pageCrcs } from './extent-store.ts';
import { ReplicationClient, ReplicationServer, type MemberTls } from './replication.ts';

const IP = '127.120.0.1';
const PORT = 21009;
const VD = '0123abcd-4567-89ef-0123-456789abcdef';
const MiB = 1 << 20;

const dir = mkdtempSync(join(tmpdir(), 'cvg-repl-'));
formatDisk(join(dir, 'd1'), { serial: 'd1', model: 'M', mediaType: 'SSD', capacityBytes: 64 * MiB });
formatDisk(join(dir, 'd2'), { serial: 'd2', model: 'M', mediaType: 'SSD', capacityBytes: 64 * MiB });
const local = new LocalEgroups([{ serial: 'd1', path: join(dir, 'd1') }, { serial: 'd2', path: join(dir, 'd2') }], 'replication.test');
const server = new ReplicationServer(local, () => undefined);
let member: MemberTls;
let client: ReplicationClient;

after(async () => {
  client.close();
  await server.close();
  local.release();
  rmSync(dir, { recursive: true, force: true });
});

test('setup: a CVM serving two disks', async () => {
  const ca = await createCa('test cluster');
  const cvm = await issueCert(ca, { cn: 'cvm', ou: 'cvm', ips: [IP], usage: 'both' });
  member = { identity: cvm, clusterCa: ca.cert };
  await server.listen(IP, member, PORT);
  client = new ReplicationClient(() => member, 2, PORT);
});

test('a write frame carries the page checksums; the replica stores them as sent and verifies them on read', async () => {
  const data = Buffer.alloc(3 * 4096 + 10, 0x33);
  const ref = { disk: 'd1', vdisk: VD, block: 2 };
  // checksums that do not match the data: stored as sent (nothing recomputed), so the read catches them
  const wrong = pageCrcs(4096, [data]).map((c) => c ^ 1);
  await client.write(IP, ref, 4096, data, false, wrong);
  await assert.rejects(client.read(IP, ref, 4096, 4096), /checksum mismatch/);
  await client.write(IP, ref, 4096, data, true); // computed here
  assert.ok((await client.read(IP, ref, 4096, data.length)).equals(data));
  assert.ok((await client.read(IP, ref, 0, 4096)).equals(Buffer.alloc(4096)));
});

test('SYNC_MANY: one frame makes the named extents on several disks durable', async () => {
  const refs = [{ disk: 'd1', vdisk: VD, block: 5 }, { disk: 'd2', vdisk: VD, block: 6 }, { disk: 'd2', vdisk: VD, block: 7 }];
  for (const r of refs) await client.write(IP, r, 0, Buffer.alloc(4096, r.block), false);
  let syncs = 0;
  const store = local.store;
  const sync = store.sync.bind(store);
  store.sync = (r) => {
    syncs++;
    return sync(r);
  };
  await client.syncMany(IP, [...refs, { disk: 'd1', vdisk: VD, block: 99 }]);
  assert.equal(syncs, 4);
  await assert.rejects(client.syncMany(IP, [{ disk: 'nope', vdisk: VD, block: 1 }]), /disk on this CVM/);
  // durable on disk, in the v2 format: header, then data at DATA_AT
  const raw = readFileSync(join(dir, 'd2', 'data', ExtentStore.fileOf(refs[2] ?? refs[0]!)));
  assert.equal(raw.readUInt32BE(4096), 0x43565832);
  assert.ok(raw.subarray(DATA_AT, DATA_AT + 4096).equals(Buffer.alloc(4096, 7)));
});

test('a write of zeros goes as a ZERO range: the replica marks the pages, and a whole extent keeps only its header', async () => {
  const ref = { disk: 'd1', vdisk: VD, block: 11 };
  await client.write(IP, ref, 0, Buffer.alloc(MiB, 0x5a), false);
  await client.write(IP, ref, 0, Buffer.alloc(MiB), true);
  assert.equal(statSync(join(dir, 'd1', 'data', ExtentStore.fileOf(ref))).size, DATA_AT);
  await client.write(IP, ref, 4096, Buffer.alloc(4096, 1), false);
  await client.write(IP, ref, 4096 + 100, Buffer.alloc(200), false); // a partial page of zeros: merged
  const want = Buffer.alloc(4096, 1);
  want.fill(0, 100, 300);
  assert.ok((await client.read(IP, ref, 4096, 4096)).equals(want));
  await client.write(IP, { ...ref, block: 12 }, 0, Buffer.alloc(MiB), false);
  assert.equal((await local.store.meta({ ...ref, block: 12 })).exists, false, 'zeros on a never-written extent: nothing to do');
});

test('a first-cut (version 0) write frame without checksums is served and answered in version 0', async () => {
  const sock = connect({ host: IP, port: PORT, cert: member.identity.cert, key: member.identity.key, ca: [member.clusterCa] });
  try {
    await new Promise<void>((res, rej) => sock.once('secureConnect', res).once('error', rej));
    const data = Buffer.alloc(8192, 0x44);
    sock.write(Buffer.concat([R.encodeRequest({ version: 0, op: R.OP_WRITE, id: 5, disk: 'd1', vdisk: VD, block: 9, offset: 0, length: data.length }), data]));
    const reply = await new Promise<Buffer>((res) => sock.once('data', res));
    assert.equal(reply.readUInt32BE(8), 0, 'status 0 as a u32: a first-cut client reads it');
    assert.equal(reply.readUInt32BE(4), 5);
  } finally {
    sock.destroy();
  }
  assert.ok((await client.read(IP, { disk: 'd1', vdisk: VD, block: 9 }, 0, 8192)).equals(Buffer.alloc(8192, 0x44)));
});
