/**
 * Vdisk ownership on real CVMs (storage engine v2, ADR 015): a 3-node RF2 cluster.
 *  - two NBD clients on two CVMs write the same vdisk: one CVM owns it, the other forwards; a FLUSH
 *    on one connection covers the other's writes, and both read the same bytes (CAN_MULTI_CONN is
 *    advertised);
 *  - one record per written 128 MiB extent group, RF in-sync replicas on distinct nodes;
 *  - ownership follows the VM: a host's own redirector opening the vdisk makes its CVM the owner;
 *  - kill -9 of the owner CVM while a client writes through another CVM: after the owner's lease
 *    runs out a CVM takes over (a higher epoch), no write fails, and every acknowledged write reads
 *    back.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { TestFoundation } from '../drivers/foundation-driver.ts';
import { NbdClient } from '../../src/shared/nbd/client.ts';
import { NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_FLUSH, NBD_FLAG_CAN_MULTI_CONN } from '../../src/shared/nbd/constants.ts';
import { hostCall } from '../../src/hypervisor/protocol/client.ts';
import { cvmCall } from '../../src/cvm/protocol/client.ts';
import { KEYS } from '../../src/cvm/core/engine/layout.ts';

const NET = '127.133';
const CVM = (i: number): string => `${NET}.1.${i + 1}`;
const HOST = (i: number): string => `${NET}.0.${i + 1}`;
const MiB = 1 << 20;

let t: TestFoundation;
let etcd: Etcd3;
let uuid = '';

before(async () => {
  t = await TestFoundation.withCluster({ rackNet: '127.132', port: 18132, net: NET, name: 'own' });
  ({ uuid, etcd } = await t.vdiskWithStore('shared', '512M', CVM(0), [CVM(0), CVM(1)]));
});

after(async () => {
  etcd?.close();
  await t?.stop();
});

const fill = (n: number, seed: number): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return b;
};

async function ownerNode(): Promise<string | undefined> {
  const raw = await etcd.get(KEYS.owner(uuid)).string();
  return raw ? (JSON.parse(raw) as { node: string }).node : undefined;
}

test('two CVMs, one owner: writes through both, a FLUSH on one covers the other, both read the same bytes', async () => {
  const a = await NbdClient.connect(CVM(0), 10809, 'shared', 5000, { tls: t.nbdTls() });
  const b = await NbdClient.connect(CVM(1), 10809, 'shared', 5000, { tls: t.nbdTls() });
  try {
    assert.ok(a.flags & NBD_FLAG_CAN_MULTI_CONN, 'CAN_MULTI_CONN advertised');
    const x = fill(4 * MiB, 1);
    const y = fill(3 * MiB + 4096, 2);
    await a.request(NBD_CMD_WRITE, 0n, x.length, x);
    // a partial-page write, and one across an extent-group boundary (128 MiB)
    await b.request(NBD_CMD_WRITE, BigInt(128 * MiB - 2 * MiB + 100), y.length, y);
    await b.request(NBD_CMD_FLUSH, 0n, 0);
    for (const c of [a, b]) {
      assert.ok((await c.request(NBD_CMD_READ, 0n, x.length))?.equals(x), 'x through both');
      assert.ok((await c.request(NBD_CMD_READ, BigInt(128 * MiB - 2 * MiB + 100), y.length))?.equals(y), 'y through both');
    }
    const owner = await ownerNode();
    assert.ok(owner === t.tr.node(0).serial || owner === t.tr.node(1).serial, `owned by CVM 1 or 2 (${owner})`);
    // one record per written extent group: 0 and 1, RF2 on distinct nodes, nothing stale
    const recs = await etcd.getAll().prefix(KEYS.egroupsOf(uuid)).strings();
    assert.deepEqual(Object.keys(recs).map((k) => Number(k.split('/').pop())).sort(), [0, 1]);
    for (const v of Object.values(recs)) {
      const r = JSON.parse(v) as { replicas: { node: string }[]; stale: unknown[] };
      assert.equal(r.replicas.length, 2);
      assert.notEqual(r.replicas[0]!.node, r.replicas[1]!.node);
      assert.deepEqual(r.stale, []);
    }
  } finally {
    a.close();
    b.close();
  }
});

test('ownership follows the VM: host 3 opening the vdisk through its redirector makes CVM 3 the owner', async () => {
  const sock = (await hostCall<{ vdiskSocket: string }>(HOST(2), '/status')).vdiskSocket;
  const c = await NbdClient.connectPath(sock, 'shared');
  try {
    const z = fill(MiB, 3);
    const three = t.tr.node(2).serial;
    await t.tr.until(async () => {
      await c.request(NBD_CMD_WRITE, BigInt(64 * MiB), z.length, z);
      return (await ownerNode()) === three;
    }, 20_000, 'CVM 3 owns the vdisk');
    assert.ok((await c.request(NBD_CMD_READ, BigInt(64 * MiB), z.length))?.equals(z));
    assert.ok((await c.request(NBD_CMD_READ, 0n, 4 * MiB))?.equals(fill(4 * MiB, 1)), 'the earlier writes, through the new owner');
  } finally {
    c.close();
  }
});

test('kill -9 of the owner CVM while a client writes through another: a new owner, no failed write, nothing acknowledged lost', async () => {
  const three = t.tr.node(2).serial;
  if ((await ownerNode()) !== three) {
    // make CVM 3 the owner again (the previous test's redirector connection is closed)
    const c3 = await NbdClient.connectPath((await hostCall<{ vdiskSocket: string }>(HOST(2), '/status')).vdiskSocket, 'shared');
    await t.tr.until(async () => {
      await c3.request(NBD_CMD_READ, 0n, 4096);
      return (await ownerNode()) === three;
    }, 20_000, 'CVM 3 owns the vdisk');
    c3.close();
  }
  const epochBefore = Number((await etcd.get(KEYS.owner(uuid)).exec()).kvs[0]!.create_revision);
  const pid = (await cvmCall<any>(CVM(2), '/status')).services.find((x: any) => x.name === 'genesis').pid as number;
  const c = await NbdClient.connect(CVM(0), 10809, 'shared', 5000, { tls: t.nbdTls() });
  const acked = new Map<number, number>();
  let longest = 0;
  try {
    for (let i = 0; i < 80; i++) {
      const off = ((i * 37) % 200) * 65536 + 200 * MiB;
      const t0 = Date.now();
      await c.request(NBD_CMD_WRITE, BigInt(off), 65536, Buffer.alloc(65536, i % 251));
      longest = Math.max(longest, Date.now() - t0);
      acked.set(off, i % 251);
      if (i === 20) process.kill(pid, 'SIGKILL');
    }
    await c.request(NBD_CMD_FLUSH, 0n, 0);
    for (const [off, v] of acked) assert.ok((await c.request(NBD_CMD_READ, BigInt(off), 65536))?.equals(Buffer.alloc(65536, v)), `offset ${off}`);
  } finally {
    c.close();
  }
  const kv = (await etcd.get(KEYS.owner(uuid)).exec()).kvs[0];
  assert.ok(kv, 'owned again');
  assert.ok(Number(kv.create_revision) > epochBefore, 'a higher epoch');
  console.log(`# longest write across the owner's death: ${longest} ms`);
});
