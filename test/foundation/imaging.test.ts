/**
 * Imaging end to end: Foundation images 4 rack nodes over Redfish with a real release bundle,
 * driven by an image_nodes body shaped like the public clients' and polled through progress
 * until imaging_stopped at 100 %. Each node's boot disk then holds the bundle's hypervisor and
 * CVM, and the processes on each node report those versions.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestFoundation } from '../drivers/foundation-driver.ts';
import { cvmCall } from '../../src/cvm/protocol/client.ts';
import { hostCall } from '../../src/hypervisor/protocol/client.ts';

let t: TestFoundation;
before(async () => {
  t = await TestFoundation.start('127.41', 18041, 4);
});
after(async () => {
  await t.stop();
});

test('a 4-node rack is imaged through image_nodes and progress, ending at 100 %', async () => {
  assert.equal(await t.upload(), 'converge-1.0.0.tar.gz');
  assert.deepEqual((await t.call('GET', '/foundation/enumerate_nos_packages')).json, ['converge-1.0.0.tar.gz']);
  const r = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.42', [0, 1, 2, 3]));
  assert.equal(r.status, 200, r.text);
  const sid = r.json.session_id as string;
  const p = await t.waitStopped(sid);
  assert.equal(p.aggregate_percent_complete, 100, JSON.stringify(p.nodes.map((n: any) => n.status)));
  assert.equal(p.nodes.length, 4);
  for (const n of p.nodes) {
    assert.equal(n.percent_complete, 100);
    assert.doesNotMatch(n.status, /^fatal/);
  }
  for (let i = 0; i < 4; i++) {
    const node = t.tr.node(i);
    const boot = JSON.parse(readFileSync(join(node.layout.bootDisk, 'data', 'boot.json'), 'utf8'));
    assert.deepEqual(boot, { name: 'converge-hypervisor', version: '1.0.0', entry: 'hypervisor/hypervisor.mjs' });
    const cfg = JSON.parse(readFileSync(join(node.layout.bootDisk, 'data', 'config', 'node.json'), 'utf8'));
    assert.equal(cfg.hostIp, `127.42.0.${i + 1}`);
    assert.equal(cfg.hostname, `lab-${i + 1}`);
    const hv = await (await hostCall<any>(`127.42.0.${i + 1}`, '/status'));
    assert.equal(hv.hypervisorVersion, '1.0.0');
    assert.equal(hv.serial, node.serial);
    const cvm = await (await cvmCall<any>(`127.42.1.${i + 1}`, '/status'));
    assert.equal(cvm.nosVersion, '1.0.0');
    assert.equal(cvm.configured, false);
    assert.equal(cvm.disks.length, 6);
    assert.equal(node.state.virtualMedia.inserted, false, 'Foundation ejected the media');
    assert.equal(node.state.power.running?.name, 'converge-hypervisor');
  }
  const log = await t.call('GET', `/foundation/node_log?session_id=${sid}&serial=${t.tr.node(0).serial}`);
  assert.match(log.text, /bundle 1\.0\.0 verified/);
  assert.match(log.text, /CVM up: hypervisor 1\.0\.0, storage OS 1\.0\.0/);
  // each node holds its own credential with Foundation, written by the installer; no log shows it or a media URL's token
  const tokens = [0, 1, 2, 3].map((i) => JSON.parse(readFileSync(join(t.tr.node(i).layout.bootDisk, 'data', 'config', 'node.json'), 'utf8')).foundationToken);
  assert.ok(tokens.every((x) => typeof x === 'string' && x.length >= 40), 'a credential on every node');
  assert.equal(new Set(tokens).size, 4, 'one per node');
  const all = (await t.call('GET', `/foundation/cluster_log?session_id=${sid}`)).text + log.text;
  assert.ok(!tokens.some((x) => all.includes(x)));
  assert.doesNotMatch(all, /\/foundation\/media\/[^/\s]+\/[^/\s]+\/[A-Za-z0-9_-]{20,}/);
  // a stranger claiming to be node 0 (no credential, or another node's) changes nothing
  const forged = { serial: t.tr.node(0).serial, cvmIp: '127.42.1.1', hostIp: '127.42.0.1', hypervisorVersion: '6.6.6', nosVersion: '6.6.6', configured: true, clusterId: 'x' };
  assert.equal((await t.call('POST', '/foundation/cvm_announce', forged)).status, 401);
  const stolen = await fetch(`${t.fd.url}/foundation/cvm_announce`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tokens[1]}` }, body: JSON.stringify(forged) });
  assert.equal(stolen.status, 403);
  assert.equal((await t.call('GET', `/foundation/media/${sid}/${t.tr.node(0).serial}/config.json`)).status, 404, 'no configuration without the media token');
  // discovery now sees the nodes as running Converge, unconfigured
  const blocks = (await t.call('GET', '/foundation/discover_nodes')).json;
  const nodes = blocks.flatMap((b: any) => b.nodes);
  assert.equal(nodes.length, 4);
  assert.ok(nodes.every((n: any) => n.nos_version === '1.0.0' && n.configured === false && n.hypervisor === 'kvm'));
});

test('pre-imaged nodes (image_now false) are only configured: new addresses, nothing reinstalled', async () => {
  const before0 = JSON.parse(readFileSync(join(t.tr.node(0).layout.bootDisk, 'data', 'config', 'node.json'), 'utf8'));
  const body = t.imageBody('127.42', [0, 1]) as any;
  for (const [k, n] of body.blocks[0].nodes.entries()) {
    n.image_now = false;
    n.hypervisor_ip = `127.42.2.${k + 1}`;
    n.cvm_ip = `127.42.3.${k + 1}`;
    n.hypervisor_hostname = `pre-${k + 1}`;
  }
  body.nos_package = '';
  const r = await t.call('POST', '/foundation/image_nodes', body);
  assert.equal(r.status, 200, r.text);
  const p = await t.waitStopped(r.json.session_id, 30_000);
  assert.equal(p.aggregate_percent_complete, 100, JSON.stringify(p.nodes.map((n: any) => n.status)));
  const hv = await (await hostCall<any>('127.42.2.1', '/status'));
  assert.equal(hv.hostname, 'pre-1');
  assert.equal(hv.hypervisorVersion, '1.0.0');
  const cvm = await (await cvmCall<any>('127.42.3.2', '/status'));
  assert.equal(cvm.serial, t.tr.node(1).serial);
  const after0 = JSON.parse(readFileSync(join(t.tr.node(0).layout.bootDisk, 'data', 'config', 'node.json'), 'utf8'));
  assert.equal(after0.installedAt, before0.installedAt, 'not reinstalled');
  assert.equal(after0.hostIp, '127.42.2.1');
  assert.ok(t.tr.node(0).consoleLines().some((l) => l.includes('reconfigured by Foundation')));
  await assert.rejects(fetch('http://127.42.0.1:8100/status', { signal: AbortSignal.timeout(1000) }), 'the old host address is gone');
});

test('sessions and their logs survive a restart of Foundation', async () => {
  const sessions = (await t.call('GET', '/foundation/sessions')).json;
  assert.ok(sessions.length >= 2);
  await t.restart();
  const again = (await t.call('GET', '/foundation/sessions')).json;
  assert.deepEqual(again.map((s: any) => s.session_id).sort(), sessions.map((s: any) => s.session_id).sort());
  const first = sessions.find((s: any) => s.aggregate_percent_complete === 100);
  const p = (await t.call('GET', `/foundation/progress?session_id=${first.session_id}`)).json;
  assert.equal(p.imaging_stopped, true);
  assert.equal(p.aggregate_percent_complete, 100);
  const log = await t.call('GET', `/foundation/node_log?session_id=${first.session_id}&serial=${t.tr.node(0).serial}`);
  assert.match(log.text, /CVM up/);
});

test('ipmi_config moves a BMC to a new address, found by its MAC', async () => {
  const n = t.tr.node(3);
  const r = await t.call('POST', '/foundation/ipmi_config', {
    ipmi_user: 'admin', ipmi_netmask: '255.255.0.0', ipmi_gateway: '127.41.255.254',
    blocks: [{ nodes: [{ ipmi_mac: n.inventory.bmcMac, ipmi_ip: '127.41.9.4', ipmi_configure_now: true }] }],
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.blocks[0].nodes[0].ipmi_configure_successful, true, r.text);
  assert.equal(r.json.ipmi_password, undefined);
  await t.tr.until(() => t.tr.rack.summary(n).bmc.ip === '127.41.9.4', 5000, 'BMC moved');
  const blocks = (await t.call('GET', '/foundation/discover_nodes')).json;
  assert.ok(blocks.flatMap((b: any) => b.nodes).some((x: any) => x.node_serial === n.serial && x.ipmi_ip === '127.41.9.4'));
  const bad = await t.call('POST', '/foundation/ipmi_config', { ipmi_netmask: '255.255.0.0', ipmi_gateway: '127.41.255.254', blocks: [{ nodes: [{ ipmi_mac: '02:00:00:00:00:99', ipmi_ip: '127.41.9.9' }] }] });
  assert.equal(bad.json.blocks[0].nodes[0].ipmi_configure_successful, false);
});
