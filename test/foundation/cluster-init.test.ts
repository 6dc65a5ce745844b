/**
 * Foundation completes the flow: image_nodes with a clusters[] entry and cluster_init_now images the
 * nodes, creates the cluster through a CVM, and validates it (host↔CVM link, store quorum,
 * services, pool, a test vdisk at RF across nodes); progress reports the cluster entry, and the
 * session counts as done only when the cluster is. Foundation stopped while it creates a cluster
 * stops that work too: after a restart the entry says so, and nothing of the old run writes on.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { TestFoundation } from '../drivers/foundation-driver.ts';
import { cvmCall } from '../../src/cvm/protocol/client.ts';

let t: TestFoundation;

before(async () => {
  t = await TestFoundation.start('127.47', 18047, 6);
  await t.upload();
});
after(async () => {
  await t.stop();
});

const cluster = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  cluster_name: 'lab', cluster_members: ['127.48.1.1', '127.48.1.2', '127.48.1.3'], cluster_init_now: true, redundancy_factor: 2,
  cvm_dns_servers: '127.0.0.53', cvm_ntp_servers: '127.0.0.123', ...extra,
});

test('a clusters[] entry that cannot work is refused before any node is imaged, naming the field', async () => {
  const stranger = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.48', [0, 1, 2], { clusters: [cluster({ cluster_members: ['127.48.1.1', '127.48.1.9'] })] }));
  assert.equal(stranger.status, 400);
  assert.match(stranger.text, /clusters\[0\]\.cluster_members\[1\].*127\.48\.1\.9 is not the cvm_ip of a node in this request/);
  const rf3 = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.48', [0, 1, 2], { clusters: [cluster({ redundancy_factor: 3 })] }));
  assert.equal(rf3.status, 400);
  assert.match(rf3.text, /clusters\[0\]\.redundancy_factor.*RF3 needs at least 5 nodes/);
  const name = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.48', [0, 1, 2], { clusters: [cluster({ cluster_name: '9 lives' })] }));
  assert.equal(name.status, 400);
  assert.match(name.text, /is not a valid cluster name/);
  assert.equal((await t.call('GET', '/foundation/sessions')).json.length, 0, 'nothing started');
});

test('image_nodes with cluster_init_now: three nodes imaged, the cluster created and validated, the session at 100 % only then', async () => {
  const r = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.48', [0, 1, 2], { clusters: [cluster()] }));
  assert.equal(r.status, 200, r.text);
  const id = r.json.session_id as string;
  // while the cluster is being made, the session is not stopped even though every node is done
  const mid = await t.tr.until(async () => {
    const p = (await t.call('GET', `/foundation/progress?session_id=${id}`)).json;
    return p.nodes.every((n: any) => n.percent_complete === 100) ? p : undefined;
  }, 60_000, 'every node imaged');
  if (mid.clusters[0].percent_complete < 100) {
    assert.equal(mid.imaging_stopped, false);
    assert.ok(mid.aggregate_percent_complete < 100);
  }
  const p = await t.waitStopped(id, 120_000);
  const c = p.clusters[0];
  assert.equal(c.percent_complete, 100, c.status);
  assert.equal(p.aggregate_percent_complete, 100);
  assert.match(c.status, /cluster lab created and validated \(6 checks passed\)/);
  assert.deepEqual(c.checks.map((k: any) => `${k.name}:${k.ok}`), ['host-cvm-link:true', 'store-quorum:true', 'cvm-services:true', 'storage-pool:true', 'data-path:true', 'prism:true']);
  // no virtual IP and no password in the request: Prism on its leader's CVM, the generated password in a 0600 file
  assert.match(c.checks.find((k: any) => k.name === 'prism').evidence, /^https:\/\/127\.48\.1\.\d:9440 \(leader 127\.48\.1\.\d, certificate from the cluster CA\): clusters\/list → HTTP 200, 1 cluster lab; hosts\/list → HTTP 200, 3 hosts; a wrong password → HTTP 401 \(refused\)$/);
  assert.ok(c.prism.admin_password_file, 'a generated password is kept in a file');
  assert.equal(statSync(c.prism.admin_password_file).mode & 0o777, 0o600);
  assert.match(readFileSync(c.prism.admin_password_file, 'utf8'), /^[A-Za-z0-9]{16}\n$/);
  assert.match(readFileSync(c.prism.ca_file, 'utf8'), /BEGIN CERTIFICATE/);
  assert.match(c.checks.find((k: any) => k.name === 'data-path').evidence, /8 MiB written through 127\.48\.1\.1, read back identical through 127\.48\.1\.2; 1 of 1 extent group\(s\) recorded, 1 with RF2 in sync on distinct nodes and none stale/);
  assert.match(c.checks.find((k: any) => k.name === 'store-quorum').evidence, /3\/3 store members healthy with a leader/);
  // measured per CVM: each runs what a member must, stargate as a part of genesis
  assert.match(c.checks.find((k: any) => k.name === 'cvm-services').evidence, /^every service up on 3\/3 CVMs: 127\.48\.1\.1: genesis, etcd, prism, lcm, stargate \(in genesis\); 127\.48\.1\.2: genesis, etcd, prism, lcm, stargate \(in genesis\); 127\.48\.1\.3: genesis, etcd, prism, lcm, stargate \(in genesis\)$/);
  assert.ok(c.time_total >= 0 && c.messages.length > 0);
  // the CVMs are in the cluster Foundation reported, and the test vdisk is gone
  const st = await (await cvmCall<any>('127.48.1.3', '/status'));
  assert.equal(st.configured, true);
  assert.equal(st.clusterId, c.cluster_id);
  assert.deepEqual(await (await cvmCall<any>('127.48.1.1', '/storage/vdisks')), []);
  // the cluster log tells the same story
  const events = (await t.call('GET', `/foundation/cluster_log?session_id=${id}`)).text;
  for (const k of ['host-cvm-link', 'store-quorum', 'cvm-services', 'storage-pool', 'data-path', 'prism']) assert.match(events, new RegExp(`PASS ${k}`));
  // the members said so, each with its node's credential: discovery shows them in the cluster, and
  // image_nodes refuses to image one over it
  const serials = [0, 1, 2].map((i) => t.tr.node(i).serial);
  await t.tr.until(async () => {
    const nodes = (await t.call('GET', '/foundation/discover_nodes')).json.flatMap((b: any) => b.nodes).filter((n: any) => serials.includes(n.node_serial));
    return nodes.length === 3 && nodes.every((n: any) => n.configured === true && n.cluster_id === c.cluster_id) ? true : undefined;
  }, 30_000, 'the members announced in their cluster');
  const over = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.48', [0]));
  assert.equal(over.status, 409, over.text);
  assert.match(over.json.error.details['blocks[0].nodes[0]'], new RegExp(`${serials[0]} is a member of cluster ${c.cluster_id}`));
});

test('Foundation restarted while it creates a cluster: the entry fails saying so, and the stopped run writes nothing after', async () => {
  const members = ['127.48.1.4', '127.48.1.5', '127.48.1.6'];
  const r = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.48', [3, 4, 5], { clusters: [cluster({ cluster_name: 'lab3', cluster_members: members })] }));
  assert.equal(r.status, 200, r.text);
  const id = r.json.session_id as string;
  await t.tr.until(async () => {
    const c = (await t.call('GET', `/foundation/progress?session_id=${id}`)).json.clusters[0];
    return c.percent_complete >= 10 && c.percent_complete < 40 ? c : undefined;
  }, 90_000, 'the cluster being created');
  await t.restart();
  const p = (await t.call('GET', `/foundation/progress?session_id=${id}`)).json;
  assert.equal(p.imaging_stopped, true);
  assert.match(p.clusters[0].status, /Foundation restarted while creating the cluster/);
  const seen = (await t.call('GET', `/foundation/cluster_log?session_id=${id}`)).text;
  // the CVMs finish what they were asked (a member the restart caught before it was asked stays
  // unconfigured): once they have settled, the old run, had it gone on, would now validate and log
  let last = '';
  let same = 0;
  await t.tr.until(async () => {
    const all = await Promise.all(members.map(async (ip) => (await cvmCall<any>(`${ip}`, '/status')) as Promise<any>));
    const now = JSON.stringify(all.map((s) => [s.configured, s.services.map((x: any) => [x.name, x.state])]));
    same = now === last ? same + 1 : 0;
    last = now;
    // unchanged for 3 s, and every configured member's services up
    if (same >= 3 && all.every((s) => !s.configured || s.services.every((x: any) => x.state === 'up'))) return true;
    await new Promise((res) => setTimeout(res, 1000));
    return undefined;
  }, 90_000, 'the members settled').catch((e) => { throw new Error(`${e.message}: ${last}`); });
  await new Promise((res) => setTimeout(res, 8000));
  assert.equal((await t.call('GET', `/foundation/cluster_log?session_id=${id}`)).text, seen, 'no event after the restart');
  const after = (await t.call('GET', `/foundation/progress?session_id=${id}`)).json.clusters[0];
  assert.match(after.status, /Foundation restarted while creating the cluster/, 'and the record is the restarted one\'s');
});
