/**
 * Cluster formation on CVMs imaged by Foundation: `converge cluster create` starts etcd on three
 * CVMs with three healthy members, records the cluster, refuses a member already in a cluster,
 * and `destroy` returns the CVMs to unconfigured.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { TestFoundation } from '../drivers/foundation-driver.ts';

const BIN = fileURLToPath(new URL('../../bin/converge.js', import.meta.url));
let t: TestFoundation;

function cvg(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

before(async () => {
  t = await TestFoundation.start('127.61', 18061, 4);
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
  const before = await cvg('cluster', 'status', '--cvm-ip', '127.62.1.1');
  assert.match(before.stdout, /is unconfigured/);
  const c = await cvg('cluster', 'create', '--cvm-ips', '127.62.1.1,127.62.1.2,127.62.1.3', '--name', 'lab', '--json');
  assert.equal(c.code, 0, c.stderr + c.stdout);
  const info = JSON.parse(c.stdout);
  assert.equal(info.name, 'lab');
  assert.equal(info.redundancyFactor, 2);
  assert.deepEqual(info.store, ['127.62.1.1', '127.62.1.2', '127.62.1.3']);
  const etcd = new Etcd3({ hosts: ['http://127.62.1.2:2379'] });
  try {
    const members = await etcd.cluster.memberList({});
    assert.equal(members.members.length, 3);
    const record = JSON.parse((await etcd.get('/converge/cluster').string()) ?? '{}');
    assert.equal(record.clusterId, info.clusterId);
    assert.equal(record.members.length, 3);
    for (const ip of info.store) {
      const st = await new Etcd3({ hosts: [`http://${ip}:2379`] }).maintenance.status();
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
    assert.deepEqual(v.status.services.map((x: any) => `${x.name}:${x.state}`), ['genesis:up', 'etcd:up']);
    assert.ok(v.status.services.every((x: any) => x.pid > 0));
  }
  const text = await cvg('cluster', 'status', '--cvm-ip', '127.62.1.1');
  assert.match(text.stdout, /Cluster lab .* RF2, 3 nodes/);
  assert.match(text.stdout, /CVM: 127\.62\.1\.2 \(\S+\) Up\n\s+genesis\s+UP\s+\[\d+\]\n\s+etcd\s+UP\s+\[\d+\]/);
  // Foundation hears that these nodes are now configured
  await t.tr.until(async () => {
    const nodes = (await t.call('GET', '/foundation/discover_nodes')).json.flatMap((b: any) => b.nodes);
    return nodes.filter((n: any) => n.configured && n.cluster_id === info.clusterId).length === 3;
  }, 10_000, 'configured nodes in discovery');
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

test('destroy returns every CVM to unconfigured and stops etcd', async () => {
  const no = await cvg('cluster', 'destroy', '--cvm-ip', '127.62.1.1');
  assert.equal(no.code, 2, 'needs --yes');
  const d = await cvg('cluster', 'destroy', '--cvm-ip', '127.62.1.1', '--yes');
  assert.equal(d.code, 0, d.stderr);
  for (const ip of ['127.62.1.1', '127.62.1.2', '127.62.1.3']) {
    const st = await (await fetch(`http://${ip}:2100/status`)).json() as any;
    assert.equal(st.configured, false);
    assert.deepEqual(st.services.map((x: any) => x.name), ['genesis']);
  }
  await assert.rejects(fetch('http://127.62.1.1:2379/health', { signal: AbortSignal.timeout(1000) }));
  // and a new cluster can be formed from them
  const c = await cvg('cluster', 'create', '--cvm-ips', '127.62.1.2', '--name', 'solo', '--json');
  assert.equal(c.code, 0, c.stderr);
  assert.deepEqual(JSON.parse(c.stdout).store, ['127.62.1.2']);
});
