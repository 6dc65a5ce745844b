/**
 * Cluster formation on CVMs imaged by Foundation: `converge cluster create` starts etcd on three
 * CVMs with three healthy members, records the cluster, refuses a member already in a cluster,
 * and `destroy` returns the CVMs to unconfigured.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cvg } from '../drivers/cli.ts';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
import { TestFoundation } from '../drivers/foundation-driver.ts';
import { NbdClient } from '../../src/shared/nbd/client.ts';
import { DiskVolume } from '../../src/shared/disk-volume.ts';
import { ConflictError } from '../../src/shared/errors.ts';
import { NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA } from '../../src/shared/nbd/constants.ts';
import { cvmCall } from '../../src/cvm/protocol/client.ts';
import { hostCall } from '../../src/hypervisor/protocol/client.ts';
import { connect as tlsConnect } from 'node:tls';
import { storeClient } from '../../src/cvm/protocol/store.ts';
import { DATA_AT } from '../../src/cvm/node/extent-store.ts';
import { KEYS } from '../../src/cvm/core/engine/layout.ts';

let t: TestFoundation;
/** MiB written by the data-path test (the done-when run: CONVERGE_FABRIC_MIB=1024). */
const FABRIC_MIB = Number(process.env['CONVERGE_FABRIC_MIB'] ?? 24);
/** A vdisk over NBD with TLS, as libnbd's tools take it (the operator's certificate). */
const nbds = (ip: string, vdisk: string): string => `nbds://${ip}:10809/${vdisk}?tls-certificates=${t.nbdCertDir()}`;
const MiB = 1024 * 1024;


before(async () => {
  t = await TestFoundation.start('127.61', 18061, 4);
  process.env['CONVERGE_DATA_DIR'] = t.dir; // the CLI presents this deployment's operator certificate
  await t.upload();
  const r = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.62', [0, 1, 2, 3]));
  assert.equal(r.status, 200, r.text);
  const p = await t.waitStopped(r.json.session_id);
  assert.equal(p.aggregate_percent_complete, 100);
});
after(async () => {
  await t.stop();
});

test('cluster create: etcd on 3 CVMs with 3 healthy members, and every CVM configured', async () => {
  // the internal host↔CVM link is up on every node
  for (const i of [0, 1, 2]) {
    const h = await (await hostCall<any>(`127.62.0.${i + 1}`, '/status'));
    assert.equal(h.link.state, 'up', `host ${i + 1}: ${h.link.detail}`);
  }
  // the storage HBA is passed through: the CVM holds its node's data disks, a second opener is refused
  const d0 = t.tr.node(0).inventory.disks[0]!;
  assert.throws(() => DiskVolume.open(t.tr.node(0).diskPath(d0.serial)!), (e: unknown) => e instanceof ConflictError && /is held by the CVM at 127\.62\.1\.1 \(pid \d+\)/.test(e.message));
  const before = await cvg('cluster', 'status', '--cvm-ip', '127.62.1.1');
  assert.match(before.stdout, /is unconfigured/);
  const c = await cvg('cluster', 'create', '--cvm-ips', '127.62.1.1,127.62.1.2,127.62.1.3', '--name', 'lab', '--json');
  assert.equal(c.code, 0, c.stderr + c.stdout);
  const info = JSON.parse(c.stdout);
  assert.equal(info.name, 'lab');
  assert.equal(info.redundancyFactor, 2);
  assert.deepEqual(info.store, ['127.62.1.1', '127.62.1.2', '127.62.1.3']);
  const etcd = t.store(['127.62.1.2']);
  try {
    const members = await etcd.cluster.memberList({});
    assert.equal(members.members.length, 3);
    const record = JSON.parse((await etcd.get('/converge/cluster').string()) ?? '{}');
    assert.equal(record.clusterId, info.clusterId);
    assert.equal(record.members.length, 3);
    for (const ip of info.store) {
      const st = await t.store([ip]).maintenance.status();
      assert.ok(st.leader !== '0', `member at ${ip} sees a leader`);
    }
  } finally {
    etcd.close();
  }
  const s = await cvg('cluster', 'status', '--cvm-ip', '127.62.1.3', '--json');
  const status = JSON.parse(s.stdout);
  assert.equal(status.cvms.length, 3);
  for (const v of status.cvms) {
    assert.equal(v.up, true);
    assert.equal(v.status.configured, true);
    assert.deepEqual(v.status.services.filter((x: any) => x.name !== 'prism').map((x: any) => `${x.name}:${x.state}`), ['genesis:up', 'etcd:up', 'lcm:up', 'stargate:up']);
    assert.ok(v.status.services.some((x: any) => x.name === 'prism'), 'Prism runs in every CVM of a cluster');
    assert.ok(v.status.services.every((x: any) => x.pid > 0));
    // stargate is what it is: a part of the CVM process (genesis), measured from its NBD server and repair loop
    const genesis = v.status.services.find((x: any) => x.name === 'genesis');
    const stargate = v.status.services.find((x: any) => x.name === 'stargate');
    assert.deepEqual([stargate.partOf, stargate.pid, stargate.restarts, genesis.restarts], ['genesis', genesis.pid, null, null]);
    assert.match(stargate.detail, new RegExp(`^NBD on ${v.cvmIp.replace(/\./g, '\\.')}:10809 and the host link, owns \\d+ vdisk\\(s\\), repair loop pass \\d+$`));
  }
  const text = await cvg('cluster', 'status', '--cvm-ip', '127.62.1.1');
  assert.match(text.stdout, /Cluster lab .* RF2, 3 nodes/);
  assert.match(text.stdout, /CVM: 127\.62\.1\.2 \(\S+\) Up\n\s+genesis\s+UP\s+\[\d+\]\n\s+etcd\s+UP\s+\[\d+\]\n\s+prism\s+(UP|STARTING)\s+\[\d+\]\n\s+lcm\s+(UP|STARTING)\s+\[\d+\]\n\s+stargate\s+UP\s+\[\d+\] in genesis: NBD on 127\.62\.1\.2:10809 and the host link, owns \d+ vdisk\(s\), repair loop pass \d+\n/);
  assert.match(text.stdout, /\nPrism: (https:\/\/127\.62\.1\.\d:9440\/console\/ \(leader (127\.62\.1\.\d|not elected yet)\)|not answering on 127\.62\.1\.2:9440)/);
  // Foundation hears that these nodes are now configured
  await t.tr.until(async () => {
    const nodes = (await t.call('GET', '/foundation/discover_nodes')).json.flatMap((b: any) => b.nodes);
    return nodes.filter((n: any) => n.configured && n.cluster_id === info.clusterId).length === 3;
  }, 10_000, 'configured nodes in discovery');
});

test('storage: one pool of every data disk, a default container at the cluster RF, containers and vdisks', async () => {
  const pool = await (await cvmCall<any>('127.62.1.1', '/storage/pool'));
  const expected = [0, 1, 2].flatMap((i) => t.tr.node(i).inventory.disks).reduce((a, d) => a + d.capacityBytes, 0);
  assert.equal(pool.pool.capacityBytes, expected, 'the pool is the sum of the data disks');
  assert.equal(pool.pool.disks.length, 18);
  const cs = JSON.parse((await cvg('container', 'list', '--cvm-ip', '127.62.1.2', '--json')).stdout);
  assert.deepEqual(cs.map((c: any) => [c.name, c.replicationFactor]), [['default-container', 2]]);
  const c1 = await cvg('container', 'create', '--name', 'scratch', '--rf', '1', '--cvm-ip', '127.62.1.3');
  assert.equal(c1.code, 0, c1.stderr);
  const rf3 = await cvg('container', 'create', '--name', 'gold', '--rf', '3', '--cvm-ip', '127.62.1.3');
  assert.equal(rf3.code, 2);
  assert.match(rf3.stderr, /replicationFactor: RF3 is more than this cluster tolerates/);
  const dupc = await cvg('container', 'create', '--name', 'scratch', '--cvm-ip', '127.62.1.1');
  assert.equal(dupc.code, 1);
  assert.match(dupc.stderr, /already exists/);
  const v = await cvg('vdisk', 'create', '--name', 'vm1-disk0', '--size', '10G', '--cvm-ip', '127.62.1.1', '--json');
  assert.equal(v.code, 0, v.stderr);
  assert.equal(JSON.parse(v.stdout).sizeBytes, 10 * 1024 ** 3);
  assert.equal((await cvg('vdisk', 'create', '--name', 'odd', '--size', '1000', '--cvm-ip', '127.62.1.1')).code, 2, 'not a whole MiB');
  assert.equal((await cvg('vdisk', 'create', '--name', 'lost', '--size', '1G', '--container', 'nope', '--cvm-ip', '127.62.1.1')).code, 1);
  await cvg('vdisk', 'create', '--name', 'scratch-disk', '--size', '512M', '--container', 'scratch', '--cvm-ip', '127.62.1.2');
  const list = JSON.parse((await cvg('vdisk', 'list', '--cvm-ip', '127.62.1.3', '--json')).stdout);
  assert.deepEqual(list.map((x: any) => x.name), ['scratch-disk', 'vm1-disk0'], 'every member sees the same metadata');
  const busy = await cvg('container', 'delete', 'scratch', '--cvm-ip', '127.62.1.1');
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /holds 1 vdisk/);
  assert.equal((await cvg('vdisk', 'delete', 'scratch-disk', '--cvm-ip', '127.62.1.1')).code, 0);
  assert.equal((await cvg('container', 'delete', 'scratch', '--cvm-ip', '127.62.1.1')).code, 0);
  assert.equal((await cvg('vdisk', 'delete', 'scratch-disk', '--cvm-ip', '127.62.1.1')).code, 1, 'already gone');
  const st = await cvg('cluster', 'status', '--cvm-ip', '127.62.1.1');
  assert.match(st.stdout, /Storage pool default-pool: 120\.0 GiB on 18 disks, 0\.0 GiB used \(0\.0 %\), 120\.0 GiB free; 1 container\(s\), 1 vdisk\(s\), 10\.0 GiB provisioned/);
  assert.match(st.stdout, /Data resiliency: OK \(every extent group at its RF: 0 of 0\)/, 'nothing written yet');
});

test(`data path: ${FABRIC_MIB} MiB written through one CVM, read back byte-identical through another; every extent group at RF on distinct nodes, first replica local`, async () => {
  const src = join(tmpdir(), `cvg-fabric-${process.pid}.bin`);
  const back = `${src}.back`;
  const data = randomBytes(FABRIC_MIB * MiB);
  writeFileSync(src, data);
  try {
    assert.equal((await cvg('vdisk', 'create', '--name', 'fabric', '--size', `${FABRIC_MIB + 8}M`, '--cvm-ip', '127.62.1.1')).code, 0);
    // over the network a vdisk is NBD over TLS with a client certificate (the operator's); plain NBD is refused
    await assert.rejects(run('nbdinfo', ['--json', 'nbd://127.62.1.1:10809/fabric']));
    // the user's way to the certificates: converge cluster certs writes the folder libnbd reads
    const certs = join(t.dir, 'user-certs');
    const cc = await cvg('cluster', 'certs', '--cvm-ip', '127.62.1.1', '--out', certs);
    assert.equal(cc.code, 0, cc.stderr);
    const info = JSON.parse((await run('nbdinfo', ['--json', `nbds://127.62.1.1:10809/fabric?tls-certificates=${certs}`])).stdout);
    assert.equal(info.exports[0]['export-size'], (FABRIC_MIB + 8) * MiB);
    await run('nbdcopy', ['--flush', src, nbds('127.62.1.1', 'fabric')]);
    await run('nbdcopy', [nbds('127.62.1.2', 'fabric'), back]);
    const got = readFileSync(back).subarray(0, data.length);
    assert.ok(got.equals(data), 'byte-identical through the other CVM');
    const vd = JSON.parse((await cvg('vdisk', 'list', '--cvm-ip', '127.62.1.1', '--json')).stdout).find((v: any) => v.name === 'fabric');
    const etcd = t.store(['127.62.1.1']);
    try {
      // storage engine v2: one record per written 128 MiB extent group, one file per written 1 MiB extent on each replica
      const groups = await etcd.getAll().prefix(KEYS.egroupsOf(vd.uuid)).strings();
      assert.deepEqual(Object.keys(groups).map((k) => k.split('/').pop()), ['0'], 'one extent group record for 24 MiB');
      const writer = t.tr.node(0).serial;
      const rec = JSON.parse(Object.values(groups)[0]!) as { replicas: { node: string; disk: string }[]; stale: unknown[] };
      assert.equal(rec.replicas.length, 2, 'RF2 replicas');
      assert.deepEqual(rec.stale, []);
      assert.notEqual(rec.replicas[0]!.node, rec.replicas[1]!.node, 'distinct nodes');
      assert.equal(rec.replicas[0]!.node, writer, 'the first replica is on the owner\'s node (the writer\'s CVM took the vdisk)');
      for (const r of rec.replicas) {
        const node = [0, 1, 2].map((i) => t.tr.node(i)).find((n) => n.serial === r.node)!;
        for (let b = 0; b < FABRIC_MIB; b++) assert.ok(existsSync(join(node.diskPath(r.disk)!, 'data', 'extents', vd.uuid, String(b))), `extent ${b} on ${r.node}/${r.disk}`);
      }
    } finally {
      etcd.close();
    }
    // capacity accounting: the container holds 24 written MiB, twice; the disks hold at least that
    const pv = await (await cvmCall<any>('127.62.1.3', '/storage/pool'));
    const dc = pv.usage.containers.find((x: any) => x.name === 'default-container');
    assert.deepEqual([dc.logicalBytes, dc.physicalBytes], [FABRIC_MIB * MiB, 2 * FABRIC_MIB * MiB]);
    assert.ok(pv.usage.usedBytes >= 2 * FABRIC_MIB * MiB, `the disks hold both replicas (${pv.usage.usedBytes})`);
    assert.equal(pv.usage.nodes.reduce((a: number, n: any) => a + n.usedBytes, 0), pv.usage.usedBytes, 'nodes add up to the pool');
    assert.equal(pv.usage.freeBytes, pv.pool.capacityBytes - pv.usage.usedBytes);
    const cl = await cvg('container', 'list', '--cvm-ip', '127.62.1.2');
    if (FABRIC_MIB === 24) assert.match(cl.stdout, /default-container\s+2\s+2\s+10\.03 GiB\s+0\.02 GiB\s+0\.05 GiB/);
    const { stdout } = await run('qemu-io', ['--object', `tls-creds-x509,id=tls0,endpoint=client,dir=${t.nbdCertDir()}`, '--image-opts', 'driver=nbd,host=127.62.1.3,port=10809,export=fabric,tls-creds=tls0', '-c', 'write -P 0x6b 30M 64k', '-c', 'read -P 0x6b 30M 64k']);
    assert.doesNotMatch(stdout, /Pattern verification failed/);

    // a corrupted replica: checksums catch it, the read is served from the good replica, and the bad one is repaired
    const etcd2 = t.store(['127.62.1.1']);
    const reps = (JSON.parse((await etcd2.get(KEYS.egroup(vd.uuid, 0)).string()) ?? '{}') as { replicas: { node: string; disk: string }[] }).replicas;
    etcd2.close();
    const local = reps[0]!;
    // an extent file: two header copies, then the data (src/cvm/node/extent-store.ts)
    const file = join(t.tr.node(0).diskPath(local.disk)!, 'data', 'extents', vd.uuid, '5');
    const bytes = readFileSync(file);
    bytes[DATA_AT + 100] = bytes[DATA_AT + 100]! ^ 0xff;
    writeFileSync(file, bytes);
    const c = await NbdClient.connect('127.62.1.1', 10809, 'fabric', 5000, { tls: t.nbdTls() });
    try {
      const got5 = await c.request(NBD_CMD_READ, 5n << 20n, 1 << 20);
      assert.ok(got5?.equals(data.subarray(5 << 20, 6 << 20)), 'the good replica answered');
    } finally {
      c.close();
    }
    await t.tr.until(() => readFileSync(file).subarray(DATA_AT).equals(data.subarray(5 << 20, 6 << 20)), 10_000, 'the corrupted replica repaired');
  } finally {
    rmSync(src, { force: true });
    rmSync(back, { force: true });
  }
});

test('kill -9 of the local CVM while a client writes and verifies through the redirector: no I/O error, nothing acknowledged is lost, the CVM comes back', async () => {
  const before = await (await cvmCall<any>('127.62.1.1', '/status'));
  const oldPid = before.services.find((x: any) => x.name === 'genesis').pid;
  // the host's own client: the redirector's Unix socket (not on the network)
  const c = await NbdClient.connectPath((await hostCall<{ vdiskSocket: string }>('127.62.0.1', '/status')).vdiskSocket, 'fabric');
  const acked: { off: number; fill: number }[] = [];
  const CHUNK = 64 * 1024;
  try {
    for (let i = 0; i < 120; i++) {
      const off = ((i * 7) % 500) * CHUNK;
      const fill = (i * 13 + 1) % 251;
      await c.request(NBD_CMD_WRITE, BigInt(off), CHUNK, Buffer.alloc(CHUNK, fill), NBD_CMD_FLAG_FUA);
      acked.push({ off, fill });
      const back = await c.request(NBD_CMD_READ, BigInt(off), CHUNK);
      assert.ok(back?.equals(Buffer.alloc(CHUNK, fill)), `write ${i} reads back`);
      if (i === 30) process.kill(oldPid, 'SIGKILL');
    }
  } finally {
    c.close();
  }
  // everything acknowledged is there, through another CVM directly
  const last = new Map<number, number>();
  for (const a of acked) last.set(a.off, a.fill);
  const direct = await NbdClient.connect('127.62.1.2', 10809, 'fabric', 5000, { tls: t.nbdTls() });
  try {
    for (const [off, fill] of last) {
      const b = await direct.request(NBD_CMD_READ, BigInt(off), CHUNK);
      assert.ok(b?.equals(Buffer.alloc(CHUNK, fill)), `offset ${off} survived`);
    }
  } finally {
    direct.close();
  }
  // the hypervisor restarted the CVM, and it rejoined
  const after = await t.tr.until(async () => {
    try {
      const st = await (await cvmCall<any>('127.62.1.1', '/status'));
      return st.configured && st.services.some((x: any) => x.name === 'stargate' && x.state === 'up') ? st : undefined;
    } catch {
      return undefined;
    }
  }, 30_000, 'the CVM back in the cluster');
  assert.notEqual(after.services.find((x: any) => x.name === 'genesis').pid, oldPid);
  assert.ok(t.tr.node(0).consoleLines().some((l) => /the CVM exited \(SIGKILL\); restarting/.test(l)));
});

/** A vdisk's v2 records: extent group → { replicas (in sync), stale }. */
async function egroupRecords(etcd: ReturnType<TestFoundation['store']>, uuid: string): Promise<Map<number, { replicas: { node: string; disk: string }[]; stale: { node: string; disk: string }[] }>> {
  return new Map(Object.entries(await etcd.getAll().prefix(KEYS.egroupsOf(uuid)).strings()).map(([k, v]) => [Number(k.split('/').pop()), JSON.parse(v)]));
}

test('a disk that fails while the cluster runs: the CVM reports it, new data avoids it, and every extent group that had a replica on it is restored to RF', async () => {
  const node = t.tr.node(2);
  const failed = node.inventory.disks.map((d) => d.serial).slice(0, 5);
  // data nobody writes again, owned by node 2's CVM: its first replica on node 2's disks (an SSD: among those failing)
  const src = join(tmpdir(), `cvg-heal-${process.pid}.bin`);
  const heal = randomBytes(16 << 20);
  writeFileSync(src, heal);
  assert.equal((await cvg('vdisk', 'create', '--name', 'heal', '--size', '16M', '--cvm-ip', '127.62.1.3')).code, 0);
  await run('nbdcopy', ['--flush', src, nbds('127.62.1.3', 'heal')]);
  const etcd = t.store(['127.62.1.1']);
  const vdisk = async (name: string): Promise<string> => JSON.parse((await cvg('vdisk', 'list', '--cvm-ip', '127.62.1.1', '--json')).stdout).find((v: any) => v.name === name).uuid;
  const onFailed = (reps: { disk: string }[]): boolean => reps.some((r) => failed.includes(r.disk));
  const healUuid = await vdisk('heal');
  const healHit = [...(await egroupRecords(etcd, healUuid))].filter(([, r]) => onFailed(r.replicas)).map(([b]) => b);
  assert.deepEqual(healHit, [0], 'the heal vdisk\'s extent group has a replica on the disks about to fail');
  await t.tr.rack.setFaults(node.serial, { failedDisks: failed });
  try {
    const st = await (await cvmCall<any>('127.62.1.3', '/status'));
    assert.deepEqual(st.disks.filter((d: any) => !d.ok).map((d: any) => d.serial).sort(), [...failed].sort());
    assert.equal((await cvg('vdisk', 'create', '--name', 'after-fault', '--size', '8M', '--cvm-ip', '127.62.1.1')).code, 0);
    await new Promise((r) => setTimeout(r, 8500)); // past the owners' view of the pool (5 s cache, refreshed every 3 s)
    await run('nbdcopy', ['--flush', '--', '[', 'nbdkit', '--exit-with-parent', 'pattern', 'size=8M', ']', nbds('127.62.1.1', 'after-fault')]);
    const groups = [...(await egroupRecords(etcd, await vdisk('after-fault'))).values()];
    assert.equal(groups.length, 1);
    for (const r of groups) assert.ok(!onFailed(r.replicas), `no new replica on a failed disk (${r.replicas.map((x) => x.disk).join(', ')})`);
    // writes to the extent group with a replica on a failed disk succeed, through another CVM (forwarded to the owner)
    const c = await NbdClient.connect('127.62.1.1', 10809, 'heal', 5000, { tls: t.nbdTls() });
    try {
      await c.request(NBD_CMD_WRITE, 3n << 20n, 4096, Buffer.alloc(4096, 0x42), NBD_CMD_FLAG_FUA);
      assert.ok((await c.request(NBD_CMD_READ, 3n << 20n, 4096))?.equals(Buffer.alloc(4096, 0x42)));
    } finally {
      c.close();
    }
    heal.fill(0x42, 3 << 20, (3 << 20) + 4096);
    // the repair loop replaces the replica: RF2 on distinct nodes, off the failed disks, nothing stale
    await t.tr.until(async () => {
      const r = (await egroupRecords(etcd, healUuid)).get(0);
      return r && r.replicas.length === 2 && !onFailed(r.replicas) && r.replicas[0]!.node !== r.replicas[1]!.node && r.stale.every((l) => failed.includes(l.disk)) ? true : undefined;
    }, 60_000, 'the heal extent group back at RF2 off the failed disks');
    const back = `${src}.back`;
    await run('nbdcopy', [nbds('127.62.1.2', 'heal'), back]);
    assert.ok(readFileSync(back).equals(heal), 'the restored data reads back byte-identical');
    rmSync(back, { force: true });
    const restored = await Promise.all(['127.62.1.1', '127.62.1.2', '127.62.1.3'].map(async (ip) => ((await (await cvmCall<any>(`${ip}`, '/status')))).repair.restored as number));
    assert.ok(restored.reduce((a, b) => a + b, 0) >= 1, `the repair loops restored the heal extent group (${restored.join(', ')})`);
    assert.ok([0, 1, 2].some((i) => t.tr.node(i).consoleLines().some((l) => /repair: vdisk \S+: \d+ replica\(s\) resynced, [1-9]\d* placed anew/.test(l))), 'the repair in a console');
  } finally {
    etcd.close();
    rmSync(src, { force: true });
    await t.tr.rack.clearFaults(node.serial);
  }
  // the failed disk's stale replica, once the disk is back, is dropped or resynced: status OK from the records
  await t.tr.until(async () => ((await cvmCall<any>('127.62.1.2', '/storage/resiliency')).ok === true ? true : undefined), 60_000, 'resiliency OK once the disks are back');
});

test('a node powered off while it owns a vdisk: writes through another CVM stall, never fail; its replicas are restored elsewhere; it rejoins when powered on', async () => {
  const node = t.tr.node(2);
  const etcd = t.store(['127.62.1.1', '127.62.1.2']);
  try {
    const data = randomBytes(16 << 20);
    const src = join(tmpdir(), `cvg-loss-${process.pid}.bin`);
    writeFileSync(src, data);
    assert.equal((await cvg('vdisk', 'create', '--name', 'loss', '--size', '16M', '--cvm-ip', '127.62.1.1')).code, 0);
    // written through node 2's CVM: it owns the vdisk, and its first replica is on node 2
    await run('nbdcopy', ['--flush', src, nbds('127.62.1.3', 'loss')]);
    rmSync(src);
    const uuid = JSON.parse((await cvg('vdisk', 'list', '--cvm-ip', '127.62.1.1', '--json')).stdout).find((v: any) => v.name === 'loss').uuid;
    assert.equal((await egroupRecords(etcd, uuid)).get(0)!.replicas[0]!.node, node.serial, 'the owner\'s node holds the first replica');
    assert.equal(JSON.parse((await etcd.get(KEYS.owner(uuid)).string()) ?? '{}').node, node.serial, 'node 2\'s CVM owns it');
    const c = await NbdClient.connect('127.62.1.1', 10809, 'loss', 5000, { tls: t.nbdTls() });
    try {
      await c.request(NBD_CMD_WRITE, 1n << 20n, 4096, Buffer.alloc(4096, 0x11), NBD_CMD_FLAG_FUA); // forwarded to the owner
      node.reset('ForceOff');
      await t.tr.until(async () => {
        try {
          await cvmCall('127.62.1.3', '/status', { timeoutMs: 500 });
          return false;
        } catch {
          return true;
        }
      }, 10_000, 'the CVM of the powered-off node gone with it');
      // at once the status says which extent groups are below RF, and why
      const down = await cvg('cluster', 'status', '--cvm-ip', '127.62.1.1');
      assert.match(down.stdout, /\nData resiliency: \d+ extent group\(s\) below RF of \d+[^\n]*\n {4}CVM 127\.62\.1\.3 \(\S+\) does not answer/);
      assert.match(down.stdout, /e\.g\. vdisk \S+ extent group \d+: 1 of 2 usable in sync/);
      assert.match(down.stdout, /CVM: 127\.62\.1\.3 \(\S+\) Down\n/);
      // a write: a stall while the owner's lease runs out, then CVM 1 takes the vdisk over
      await c.request(NBD_CMD_WRITE, 2n << 20n, 4096, Buffer.alloc(4096, 0x5a), NBD_CMD_FLAG_FUA);
      assert.ok((await c.request(NBD_CMD_READ, 2n << 20n, 4096))?.equals(Buffer.alloc(4096, 0x5a)));
      assert.notEqual(JSON.parse((await etcd.get(KEYS.owner(uuid)).string()) ?? '{}').node, node.serial, 'a new owner');
      // the repair loop restores RF once the node is declared down
      await t.tr.until(async () => {
        const r = (await egroupRecords(etcd, uuid)).get(0);
        return r && r.replicas.length === 2 && r.replicas.every((x) => x.node !== node.serial) && r.replicas[0]!.node !== r.replicas[1]!.node ? true : undefined;
      }, 60_000, 'the extent group back at RF2 on the other two nodes');
      const want = Buffer.from(data);
      want.fill(0x11, 1 << 20, (1 << 20) + 4096);
      want.fill(0x5a, 2 << 20, (2 << 20) + 4096);
      assert.ok((await c.request(NBD_CMD_READ, 0n, 16 << 20))?.equals(want), 'every byte of the vdisk as written');
    } finally {
      c.close();
    }
  } finally {
    etcd.close();
    node.reset('On');
  }
  await t.tr.until(async () => {
    try {
      const st = await (await cvmCall<any>('127.62.1.3', '/status', { timeoutMs: 1000 }));
      return st.configured && st.services.some((x: any) => x.name === 'stargate' && x.state === 'up');
    } catch {
      return false;
    }
  }, 60_000, 'the node back in the cluster');
  await t.tr.until(async () => (await cvmCall<any>('127.62.1.1', '/storage/resiliency')).ok === true, 60_000, 'every extent group at its RF, measured from the records');
});

test('a member already in a cluster is refused; bad requests name the field', async () => {
  const again = await cvg('cluster', 'create', '--cvm-ips', '127.62.1.4,127.62.1.1', '--name', 'other', '--redundancy-factor', '1');
  assert.equal(again.code, 1);
  assert.match(again.stderr, /127\.62\.1\.1 .* already part of a cluster \(lab\)/);
  const st4 = JSON.parse((await cvg('cluster', 'status', '--cvm-ip', '127.62.1.4', '--json')).stdout);
  assert.equal(st4.cvms[0].status.configured, false, 'the refused create changed nothing on the free CVM');
  const rf3 = await cvg('cluster', 'create', '--cvm-ips', '127.62.1.4', '--redundancy-factor', '3');
  assert.equal(rf3.code, 2);
  assert.match(rf3.stderr, /redundancyFactor: RF3 needs at least 5 nodes/);
});

test('destroy returns every CVM to unconfigured and stops etcd; a member destroyed alone is shown as no longer a member; a new cluster has a new CA, and Prism\'s certificate chains to it', async () => {
  const oldCa = (await cvmCall<{ cert: string }>('127.62.1.2', '/cluster/ca')).cert;
  const oldMember = t.memberTls(1);
  // data with first replicas on the member about to be destroyed (written through its CVM)
  assert.equal((await cvg('vdisk', 'create', '--name', 'last', '--size', '4M', '--cvm-ip', '127.62.1.3')).code, 0);
  await run('nbdcopy', ['--flush', '--', '[', 'nbdkit', '--exit-with-parent', 'pattern', 'size=4M', ']', nbds('127.62.1.3', 'last')]);
  const clusterId = (await cvmCall<any>('127.62.1.3', '/status')).clusterId;
  await cvmCall('127.62.1.3', '/cluster/destroy', { body: { clusterId } });
  const st = await cvg('cluster', 'status', '--cvm-ip', '127.62.1.1');
  assert.match(st.stdout, /CVM: 127\.62\.1\.3 \(\S+\) Unconfigured: no longer a member \(its cluster configuration was destroyed\)\n\s+genesis\s+UP\s+\[\d+\]\n$/);
  assert.match(st.stdout, /CVM: 127\.62\.1\.1 \(\S+\) Up\n/);
  // its replicas are below RF until the repair loop restores them: the failure detector declares it down within
  // seconds, so the status may already be past that; while it is not, it names the member as the reason
  if (!/Data resiliency: OK/.test(st.stdout)) assert.match(st.stdout, /Data resiliency: \d+ extent group\(s\) below RF of \d+[^\n]*\n {4}CVM 127\.62\.1\.3 \(\S+\) answers unconfigured: it is no longer a member/);
  const js = JSON.parse((await cvg('cluster', 'status', '--cvm-ip', '127.62.1.2', '--json')).stdout);
  assert.deepEqual(js.cvms.map((v: any) => [v.cvmIp, v.up, v.state]), [['127.62.1.1', true, 'up'], ['127.62.1.2', true, 'up'], ['127.62.1.3', false, 'unconfigured']]);
  // and the two members left restore RF (RF2 on two nodes) in the background
  const deadline = Date.now() + 60_000;
  for (;;) {
    const now = JSON.parse((await cvg('cluster', 'status', '--cvm-ip', '127.62.1.2', '--json')).stdout);
    if (now.resiliency.ok === true) break;
    assert.ok(Date.now() < deadline, `RF restored without the destroyed member within 60 s: ${JSON.stringify(now.resiliency)}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  const no = await cvg('cluster', 'destroy', '--cvm-ip', '127.62.1.1');
  assert.equal(no.code, 2, 'needs --yes');
  const d = await cvg('cluster', 'destroy', '--cvm-ip', '127.62.1.1', '--yes');
  assert.equal(d.code, 0, d.stderr);
  for (const ip of ['127.62.1.1', '127.62.1.2', '127.62.1.3']) {
    const st = await (await cvmCall<any>(`${ip}`, '/status'));
    assert.equal(st.configured, false);
    assert.deepEqual(st.services.map((x: any) => x.name), ['genesis']);
  }
  await assert.rejects(fetch('http://127.62.1.1:2379/health', { signal: AbortSignal.timeout(1000) }));
  // and a new cluster can be formed from them
  const c = await cvg('cluster', 'create', '--cvm-ips', '127.62.1.2', '--name', 'solo', '--json');
  assert.equal(c.code, 0, c.stderr);
  assert.deepEqual(JSON.parse(c.stdout).store, ['127.62.1.2']);
  const newCa = (await cvmCall<{ cert: string }>('127.62.1.2', '/cluster/ca')).cert;
  assert.notEqual(newCa, oldCa, 'create made a new cluster CA');
  // Prism on the new cluster serves a certificate of the new CA (it once reused the destroyed cluster's)
  const handshake = (ca: string): Promise<string> => new Promise((resolve) => {
    const s = tlsConnect({ host: '127.62.1.2', port: 9440, ca }, () => {
      s.end();
      resolve('ok');
    });
    s.on('error', (e) => resolve(e.message));
  });
  await t.tr.until(async () => ((await handshake(newCa)) === 'ok' ? true : undefined), 30_000, 'Prism on the new cluster, trusted through the new CA');
  assert.notEqual(await handshake(oldCa), 'ok', 'the destroyed cluster\'s CA does not vouch for it');
  // the destroyed cluster's member certificate opens nothing on the new one
  const stale = storeClient(['127.62.1.2'], oldMember, 2000);
  try {
    await assert.rejects(Promise.race([stale.get('/converge/cluster').string(), new Promise((_r, j) => setTimeout(() => j(new Error('timed out')), 8000))]));
  } finally {
    stale.close();
  }
});
