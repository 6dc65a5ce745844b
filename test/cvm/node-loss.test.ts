/**
 * Node loss under write load (issue 12's done-when, ADR 015 "Failure detection, re-protection,
 * rebalancing"): a 3-node RF2 cluster, a client writing steadily over NBD to CVM 1, node 3 (node 2
 * if placement put no steady replica on node 3) powered off through its BMC (Redfish) mid-run,
 * after etcd's leadership was moved to it (the worst case: the store elects a new leader, which
 * extends every lease once, so the declaration comes 5–7 s after the power-off instead of 2–3 s).
 *  - it is declared down once (its alive key's lease expires; `/converge/v2/down/<node>`);
 *  - no write stalls more than 2 s after the declaration; write throughput while its replicas are
 *    restored elsewhere keeps at least half of what it was before;
 *  - resiliency is OK only once every extent group is back at RF (checked against the records);
 *  - every acknowledged write reads back (through both CVMs that stayed up);
 *  - the node powered on again: it clears its declaration and replicas move onto it; the data still
 *    reads back through its CVM.
 * Prints the times (declaration, re-protection) and throughputs; the longest write before the
 * declaration is printed, not bounded (it was 5 s with the lost leader; 1.5–3 s since record swaps
 * time out after 1.5 s and are sent again). CONVERGE_KEEP_LAB=1 keeps the nodes' logs.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { cvg } from '../drivers/cli.ts';
import { TestFoundation } from '../drivers/foundation-driver.ts';
import { NbdClient } from '../../src/shared/nbd/client.ts';
import { NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_FLUSH } from '../../src/shared/nbd/constants.ts';
import { cvmCall } from '../../src/cvm/protocol/client.ts';
import { KEYS } from '../../src/cvm/core/engine/layout.ts';

const NET = '127.125';
const CVM = (i: number): string => `${NET}.1.${i + 1}`;
const MiB = 1 << 20;
const VDISK_MIB = Number(process.env['CONVERGE_NODE_LOSS_MIB'] ?? 256);
const SLOT = 4096;
const SLOTS = (VDISK_MIB * MiB) / SLOT;
const WORKERS = 4;

let t: TestFoundation;
let etcd: Etcd3;

before(async () => {
  t = await TestFoundation.withCluster({ rackNet: '127.124', port: 18124, net: NET, name: 'loss' });
  etcd = t.store([CVM(0)]); // CVM 1 stays up
});

after(async () => {
  etcd?.close();
  await t?.stop();
});

/** A vdisk's extent-group records (storage engine v2): extent group → the nodes of its in-sync replicas, and how many are stale. */
async function records(uuid: string): Promise<Map<number, { nodes: string[]; stale: number }>> {
  const all = await etcd.getAll().prefix(KEYS.egroupsOf(uuid)).strings();
  return new Map(Object.entries(all).map(([k, v]) => {
    const r = JSON.parse(v) as { replicas: { node: string }[]; stale: unknown[] };
    return [Number(k.split('/').pop()), { nodes: r.replicas.map((x) => x.node), stale: r.stale.length }];
  }));
}

/** Polls f every intervalMs until it is truthy (the lab's until() polls every 20 ms: too much load on a cluster being measured). */
async function poll<T>(f: () => Promise<T | undefined>, intervalMs: number, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

async function power(i: number, type: 'ForceOff' | 'On'): Promise<void> {
  const r = await t.tr.redfish(i).post('/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', { ResetType: type });
  assert.ok(r.status < 300, `Redfish ${type}: ${r.status} ${r.text}`);
}

test('node loss under write load: declared down once, writes do not stall, RF restored in the background at ≥ 50 % throughput; the node back gets data', async (tc) => {
  assert.equal((await cvg('vdisk', 'create', '--name', 'steady', '--size', `${VDISK_MIB}M`, '--cvm-ip', CVM(0))).code, 0);
  const uuid = JSON.parse((await cvg('vdisk', 'list', '--cvm-ip', CVM(0), '--json')).stdout).find((v: any) => v.name === 'steady').uuid as string;
  const c = await NbdClient.connect(CVM(0), 10809, 'steady', 5000, { tls: t.nbdTls() });
  // every extent written once (each 128 MiB extent group placed: the owner's node first, the second on node 2 or 3)
  const fill = Buffer.alloc(MiB);
  for (let b = 0; b < VDISK_MIB; b += 4) await Promise.all([0, 1, 2, 3].map((k) => c.request(NBD_CMD_WRITE, BigInt(b + k) * BigInt(MiB), MiB, fill.fill(0), 0)));
  await c.request(NBD_CMD_FLUSH, 0n, 0);
  // and a sparse vdisk: one 4 KiB write in each of 64 extent groups (rebalancing counts extent groups, so a node that
  // returns has something to take back; the 256 MiB vdisk's two are within the band on their own)
  assert.equal((await cvg('vdisk', 'create', '--name', 'spread', '--size', '8G', '--cvm-ip', CVM(0))).code, 0);
  const spreadUuid = JSON.parse((await cvg('vdisk', 'list', '--cvm-ip', CVM(0), '--json')).stdout).find((v: any) => v.name === 'spread').uuid as string;
  const sp = await NbdClient.connect(CVM(0), 10809, 'spread', 5000, { tls: t.nbdTls() });
  for (let g = 0; g < 64; g += 8) await Promise.all(Array.from({ length: 8 }, (_x, k) => sp.request(NBD_CMD_WRITE, BigInt(g + k) * 128n * BigInt(MiB), 4096, Buffer.alloc(4096, g + k + 1), 0)));
  await sp.request(NBD_CMD_FLUSH, 0n, 0);
  // the node to lose: one that holds a second replica of the steady vdisk (node 3 unless placement put both on node 2)
  const steadyOn = async (i: number): Promise<number> => [...(await records(uuid)).values()].filter((r) => r.nodes.includes(t.tr.node(i).identity.serial)).length;
  const V = (await steadyOn(2)) > 0 ? 2 : 1;
  const S = 3 - V; // the other CVM that stays up
  const lost = t.tr.node(V).identity.serial;
  const N = `node ${V + 1}`;
  const groups = await records(uuid);
  const onLost = await steadyOn(V);
  tc.diagnostic(`${onLost} of ${groups.size} extent groups have a replica on ${N}, ${[...(await records(spreadUuid)).values()].filter((r) => r.nodes.includes(lost)).length} of 64 sparse ones`);
  assert.ok(onLost >= 1, `a steady extent group with a replica on ${N}`);

  // the load: WORKERS writers, each on its own 4 KiB slots (so the last acknowledged write of a slot is known)
  const acked = new Map<number, number>(); // slot → stamp
  const done: { start: number; end: number }[] = [];
  let stop = false;
  let seq = 0;
  const errors: string[] = [];
  const worker = async (w: number): Promise<void> => {
    while (!stop) {
      const slot = Math.floor(Math.random() * (SLOTS / WORKERS)) * WORKERS + w;
      const stamp = ++seq;
      const buf = Buffer.alloc(SLOT, stamp & 0xff);
      buf.writeUInt32BE(stamp, 0);
      buf.writeUInt32BE(slot, 4);
      const start = Date.now();
      try {
        await c.request(NBD_CMD_WRITE, BigInt(slot * SLOT), SLOT, buf, 0);
        acked.set(slot, stamp);
        done.push({ start, end: Date.now() });
      } catch (e) {
        errors.push(String(e));
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const load = Promise.all(Array.from({ length: WORKERS }, (_x, w) => worker(w)));
  const rate = (from: number, to: number): number => done.filter((d) => d.end >= from && d.end < to).length / ((to - from) / 1000);
  try {
    await new Promise((r) => setTimeout(r, 8000));
    // the worst case, every run: the node lost leads etcd (the store elects a new leader, which
    // extends every lease once, before the lost node's alive key can expire)
    const members = (await etcd.cluster.memberList({})).members ?? [];
    const target = members.find((m) => m.clientURLs?.some((u) => u.includes(`//${CVM(V)}:`)));
    assert.ok(target, `an etcd member on ${CVM(V)}`);
    const leaderId = (await etcd.maintenance.status()).leader;
    if (leaderId !== target.ID) {
      const leaderIp = /\/\/([\d.]+):/.exec(members.find((m) => m.ID === leaderId)?.clientURLs?.[0] ?? '')?.[1] ?? CVM(0);
      const atLeader = t.store([leaderIp]);
      try {
        await atLeader.maintenance.moveLeader({ targetID: target.ID });
      } finally {
        atLeader.close();
      }
    }
    assert.equal((await etcd.maintenance.status()).leader, target.ID, 'the node to lose leads etcd');
    tc.diagnostic(`etcd leader before the power-off: ${CVM(V)}, the node lost`);
    const offAt = Date.now();
    const baseline = rate(offAt - 6000, offAt);
    await power(V, 'ForceOff');
    // declared down once, by another CVM
    const down = await poll(async () => {
      const v = await etcd.get(`/converge/v2/down/${lost}`).string();
      return v ? (JSON.parse(v) as { by: string; at: string; reason: string }) : undefined;
    }, 100, 30_000, `${N} declared down`);
    const downAt = Date.parse(down.at);
    tc.diagnostic(`${N} declared down by ${down.by} ${downAt - offAt} ms after the power-off (${down.reason})`);
    assert.notEqual(down.by, lost);
    // right after: resiliency is not OK (records still name it, or list one replica)
    const early = await cvmCall<any>(CVM(0), '/storage/resiliency');
    assert.equal(early.ok, false, 'not OK while extent groups lack a replica');
    // until every record is back at RF2 off the lost node; resiliency never says OK before
    let okEarly = '';
    const reprotectedAt = await poll(async () => {
      const res = await cvmCall<any>(CVM(S), '/storage/resiliency');
      const recs = [...(await records(uuid)).values(), ...(await records(spreadUuid)).values()];
      const below = recs.filter((r) => r.nodes.length < 2 || r.stale > 0 || r.nodes.includes(lost) || new Set(r.nodes).size < r.nodes.length).length;
      if (res.ok && below > 0) okEarly = `resiliency OK with ${below} extent group(s) below RF`;
      return below === 0 ? Date.now() : undefined;
    }, 1000, 120_000, 'every extent group back at RF2 on the other two nodes');
    assert.equal(okEarly, '');
    await t.tr.until(async () => (await cvmCall<any>(CVM(0), '/storage/resiliency')).ok === true, 15_000, 'resiliency OK once every extent group is at RF');
    await new Promise((r) => setTimeout(r, 5000));
    const after = rate(Date.now() - 5000, Date.now());
    const perSecond: number[] = [];
    for (let x = offAt - 3000; x < Date.now() - 1000; x += 1000) perSecond.push(rate(x, x + 1000));
    tc.diagnostic(`writes per second from 3 s before the power-off: ${perSecond.map((x) => x.toFixed(0)).join(' ')}; after re-protection ${after.toFixed(0)}/s`);
    const window = Math.max(reprotectedAt - downAt, 3000);
    const during = rate(downAt, downAt + window);
    const stallBefore = Math.max(0, ...done.filter((d) => d.end > offAt && d.start < downAt).map((d) => d.end - d.start));
    const stallAfter = Math.max(0, ...done.filter((d) => d.start >= downAt).map((d) => d.end - d.start));
    for (const i of [0, S]) tc.diagnostic(`CVM ${i + 1} repair: ${((await cvmCall<any>(CVM(i), '/status')).repair?.recent ?? []).join(' | ')}`);
    tc.diagnostic(`re-protection took ${((reprotectedAt - downAt) / 1000).toFixed(1)} s after the declaration (${((reprotectedAt - offAt) / 1000).toFixed(1)} s after the power-off)`);
    tc.diagnostic(`writes/s: ${baseline.toFixed(0)} before, ${during.toFixed(0)} during re-protection (${((100 * during) / baseline).toFixed(0)} %); longest write: ${stallBefore} ms before the declaration, ${stallAfter} ms after`);
    assert.deepEqual(errors, [], 'no write failed');
    assert.ok(stallAfter <= 2000, `no write stalled more than 2 s after the declaration (${stallAfter} ms)`);
    assert.ok(during >= 0.5 * baseline, `throughput during re-protection ${during.toFixed(0)}/s ≥ 50 % of ${baseline.toFixed(0)}/s`);
  } finally {
    stop = true;
    await load;
  }
  await c.request(NBD_CMD_FLUSH, 0n, 0);
  c.close();

  const verify = async (ip: string): Promise<void> => {
    const r = await NbdClient.connect(ip, 10809, 'steady', 5000, { tls: t.nbdTls() });
    try {
      let bad = 0;
      for (let b = 0; b < VDISK_MIB; b++) {
        const data = (await r.request(NBD_CMD_READ, BigInt(b) * BigInt(MiB), MiB))!;
        for (let s = 0; s < MiB / SLOT; s++) {
          const slot = (b * MiB) / SLOT + s;
          const want = acked.get(slot);
          const got = data.readUInt32BE(s * SLOT);
          if ((want ?? 0) !== got) bad++;
        }
      }
      assert.equal(bad, 0, `every acknowledged write reads back through ${ip} (${acked.size} slots written)`);
    } finally {
      r.close();
    }
  };
  await verify(CVM(0));
  await verify(CVM(S));

  // the node back: it clears its declaration, and replicas move onto it
  const onAt = Date.now();
  await power(V, 'On');
  await t.tr.until(async () => !(await etcd.get(`/converge/v2/down/${lost}`).string()), 90_000, `${N} back (its down key cleared)`);
  tc.diagnostic(`${N} alive again ${Date.now() - onAt} ms after power-on`);
  const moved = await t.tr.until(async () => {
    const n = [...(await records(uuid)).values(), ...(await records(spreadUuid)).values()].filter((r) => r.nodes.includes(lost)).length;
    return n >= 8 ? n : undefined;
  }, 90_000, `replicas moved onto ${N}`);
  for (const [eg, r] of await records(spreadUuid)) assert.equal(new Set(r.nodes).size, 2, `spread extent group ${eg}: RF2 on distinct nodes`);
  const spr = await NbdClient.connect(CVM(V), 10809, 'spread', 5000, { tls: t.nbdTls() });
  try {
    for (let g = 0; g < 64; g++) assert.ok((await spr.request(NBD_CMD_READ, BigInt(g) * 128n * BigInt(MiB), 4096))?.equals(Buffer.alloc(4096, g + 1)), `spread extent group ${g} through ${N}'s CVM`);
  } finally {
    spr.close();
    sp.close();
  }
  tc.diagnostic(`rebalancing: ${moved} extent groups (of 66) have a replica on ${N} ${((Date.now() - onAt) / 1000).toFixed(1)} s after its power-on`);
  await verify(CVM(V));
  assert.equal((await cvmCall<any>(CVM(0), '/storage/resiliency')).ok, true);
});
