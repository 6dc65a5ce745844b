/**
 * Foundation when things go wrong: a failed disk fails validation (naming the disk) and keeps the
 * node out; an installer crash fails that node alone ("fatal: ..."), the others finish, and a
 * retry of that node alone succeeds; abort stops a session; corrupt bundles and bad requests are
 * refused with the field named, changing nothing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { TestFoundation, testBundle } from '../drivers/foundation-driver.ts';
import { buildBundle } from '../../src/cli/bundle-build.ts';

let t: TestFoundation;
before(async () => {
  t = await TestFoundation.start('127.43', 18043, 5);
  await t.upload();
});
after(async () => {
  await t.stop();
});

test('a failed disk: validation FAILs the node naming the disk, and image_nodes refuses it', async () => {
  const node = t.tr.node(4);
  const disk = node.inventory.disks[3]!;
  await t.tr.rack.setFaults(node.serial, { failedDisks: [disk.serial] });
  const v = (await t.call('GET', '/foundation/validation?redundancy_factor=2')).json;
  const nr = v.nodes.find((n: any) => n.serial === node.serial);
  assert.equal(nr.verdict, 'FAIL');
  assert.equal(nr.excluded, true);
  const check = nr.checks.find((c: any) => c.check === 'disk.health');
  assert.equal(check.verdict, 'FAIL');
  assert.match(check.measured, new RegExp(disk.serial));
  assert.ok(v.nodes.filter((n: any) => n.serial !== node.serial).every((n: any) => n.verdict !== 'FAIL'));
  const r = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.44', [4]));
  assert.equal(r.status, 400);
  assert.match(r.json.error.message, new RegExp(`${node.serial}.*disk\\.health.*${disk.serial}`));
  assert.ok('blocks[0].nodes[0]' in r.json.error.details, r.text);
  assert.equal((await t.call('GET', '/foundation/sessions')).json.length, 0, 'no session was created');
  // override_validation keeps the node it is on (the second here), not another: the request gets past
  // validation to the plan (which refuses the first node's address outside the lab)
  const kept = t.imageBody('127.44', [0, 4]) as any;
  kept.blocks[0].nodes[1].override_validation = true;
  kept.blocks[0].nodes[0].hypervisor_ip = '10.1.0.5';
  const r2 = await t.call('POST', '/foundation/image_nodes', kept);
  assert.equal(r2.status, 400);
  assert.ok('blocks[0].nodes[0].hypervisor_ip' in r2.json.error.details, r2.text);
  await t.tr.rack.clearFaults(node.serial);
});

test('an installer crash fails that node alone; a retry of it succeeds', async () => {
  const crashing = t.tr.node(1);
  await t.tr.rack.setFaults(crashing.serial, { installerCrashAtPercent: 40 });
  const r = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.44', [0, 1, 2]));
  assert.equal(r.status, 200, r.text);
  const sid = r.json.session_id;
  const p = await t.waitStopped(sid);
  assert.ok(p.aggregate_percent_complete < 100);
  const bad = p.nodes.find((n: any) => n.node_serial === crashing.serial);
  assert.match(bad.status, /^fatal: the installer crashed/);
  for (const n of p.nodes.filter((x: any) => x.node_serial !== crashing.serial)) assert.equal(n.percent_complete, 100);
  await t.tr.rack.clearFaults(crashing.serial);
  const retry = await t.call('POST', `/foundation/retry_node?session_id=${sid}&serial=${crashing.serial}`);
  assert.equal(retry.status, 200, retry.text);
  const p2 = await t.waitStopped(sid);
  assert.equal(p2.aggregate_percent_complete, 100, JSON.stringify(p2.nodes.map((n: any) => n.status)));
  const again = await t.call('POST', `/foundation/retry_node?session_id=${sid}&serial=${crashing.serial}`);
  assert.equal(again.status, 409, 'a finished node is not retried');
  // the event stream has the whole story, in order
  const sse = await fetch(`${t.fd.url}/foundation/events?session_id=${sid}`);
  const reader = sse.body!.getReader();
  let text = '';
  while (!text.includes('retry requested') || !/imaging stopped: 100%/.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString();
  }
  await reader.cancel();
  assert.match(text, /event: progress\ndata: \{"seq":1,/);
  assert.ok(text.indexOf('fatal: the installer crashed') < text.indexOf('retry requested'));
});

test('abort: pending nodes never start and the session stops below 100 %', async () => {
  const r = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.45', [3, 4], { max_parallel: 1 }));
  assert.equal(r.status, 200, r.text);
  const sid = r.json.session_id;
  const a = await t.call('POST', `/foundation/abort_session?session_id=${sid}`);
  assert.equal(a.status, 200);
  const p = await t.waitStopped(sid, 10_000);
  assert.equal(p.abort_session, true);
  assert.ok(p.aggregate_percent_complete < 100);
  assert.ok(p.nodes.every((n: any) => n.status === 'fatal: aborted' || n.percent_complete === 100));
  const second = p.nodes[1];
  assert.equal(second.status, 'fatal: aborted');
  assert.equal(second.percent_complete, 0, 'the pending node never started');
  assert.equal(t.tr.node(4).state.virtualMedia.inserted, false);
});

test('a corrupt or tampered bundle is refused and the repository is unchanged', async () => {
  const { file } = await testBundle();
  const good = readFileSync(file);
  const before = (await t.call('GET', '/foundation/enumerate_nos_packages')).json;
  const truncated = good.subarray(0, Math.floor(good.length / 2));
  const r1 = await t.call('POST', '/foundation/upload?installer_type=nos&filename=broken.tar.gz', truncated);
  assert.equal(r1.status, 400);
  assert.match(r1.json.error.message, /broken\.tar\.gz/);
  // same manifest, one changed byte inside the hypervisor: caught by the sha256 check
  const tar = gunzipSync(good);
  const at = tar.indexOf(Buffer.from('converge hypervisor'));
  assert.ok(at > 0);
  tar[at] = 'C'.charCodeAt(0);
  const r2 = await t.call('POST', '/foundation/upload?installer_type=nos&filename=tampered.tar.gz', gzipSync(tar));
  assert.equal(r2.status, 400);
  assert.match(r2.json.error.message, /hypervisor\/hypervisor\.mjs: sha256 .* does not match/);
  const r3 = await t.call('POST', '/foundation/upload?installer_type=kvm&filename=x.iso', good);
  assert.equal(r3.status, 400);
  assert.equal(r3.json.error.details.installer_type !== undefined, true);
  assert.deepEqual((await t.call('GET', '/foundation/enumerate_nos_packages')).json, before);
});

test('bad image_nodes input: the Foundation error envelope names the field; nothing starts', async () => {
  const noCvm = t.imageBody('127.46', [0]) as any;
  delete noCvm.blocks[0].nodes[0].cvm_ip;
  const r1 = await t.call('POST', '/foundation/image_nodes', noCvm);
  assert.equal(r1.status, 400);
  assert.ok('blocks[0].nodes[0].cvm_ip' in r1.json.error.details, JSON.stringify(r1.json));
  const dup = t.imageBody('127.46', [0, 2]) as any;
  dup.blocks[0].nodes[1].cvm_ip = dup.blocks[0].nodes[0].cvm_ip;
  const r2 = await t.call('POST', '/foundation/image_nodes', dup);
  assert.equal(r2.status, 400);
  assert.match(JSON.stringify(r2.json.error.details), /cvm_ip/);
  const outside = t.imageBody('127.46', [0]) as any;
  outside.blocks[0].nodes[0].hypervisor_ip = '10.1.0.5';
  const r3 = await t.call('POST', '/foundation/image_nodes', outside);
  assert.equal(r3.status, 400);
  assert.match(r3.json.error.message, /127\.0\.0\.0\/8|loopback|lab/i);
  const noPkg = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.46', [0], { nos_package: 'nope.tar.gz' }));
  assert.equal(noPkg.status, 400);
  assert.ok('nos_package' in noPkg.json.error.details);
  const malformed = await fetch(`${t.fd.url}/foundation/image_nodes`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"blocks": [' });
  assert.equal(malformed.status, 400);
  assert.ok(((await malformed.json()) as any).error.message.length > 0);
  const unknown = await t.call('GET', '/foundation/progress?session_id=nope');
  assert.equal(unknown.status, 404);
  assert.equal(unknown.json.error.session_id, 'nope');
});

test('plan_check skips addresses already answering on the network and refuses them when explicit', async () => {
  const { createServer } = await import('node:net');
  const squatter = createServer().listen(8100, '127.53.0.1');
  await new Promise((r) => squatter.once('listening', r));
  try {
    const input = {
      clusterName: 'c1', dns: ['127.0.0.53'], ntp: ['127.0.0.123'], hostnamePrefix: 'n', lab: true,
      bmc: { netmask: '255.255.0.0', gateway: '127.43.255.254' },
      host: { netmask: '255.255.0.0', gateway: '127.53.255.254', start: '127.53.0.1' },
      cvm: { netmask: '255.255.0.0', gateway: '127.53.255.254', start: '127.53.1.1' },
      nodes: [{ serial: 'A', bmcIp: '127.43.0.1' }, { serial: 'B', bmcIp: '127.43.0.2' }],
    };
    const r = (await t.call('POST', '/foundation/plan_check', input)).json;
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.plan.nodes.map((n: any) => n.hostIp), ['127.53.0.2', '127.53.0.3'], 'the answering 127.53.0.1 is skipped');
    const explicit = (await t.call('POST', '/foundation/plan_check', { ...input, nodes: [{ serial: 'A', bmcIp: '127.43.0.1', hostIp: '127.53.0.1' }] })).json;
    assert.equal(explicit.plan, null);
    assert.equal(explicit.errors[0].node, 'A');
    assert.equal(explicit.errors[0].field, 'hostIp');
  } finally {
    squatter.close();
  }
});

test('validation applies a bundle\'s minimum firmware, as image_nodes does: the newest bundle\'s, or the one named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-strict-'));
  try {
    const strict = await buildBundle({ version: '2.0.0', out: dir, minBmc: '9.0.0' });
    const up = await t.call('POST', '/foundation/upload?installer_type=nos&filename=converge-2.0.0.tar.gz', readFileSync(strict.file));
    assert.equal(up.status, 200, up.text);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const serial = t.tr.node(0).serial;
  const fwOf = (report: any): any => report.nodes.find((n: any) => n.serial === serial).checks.find((c: any) => c.check === 'firmware.bmc');
  const newest = (await t.call('GET', '/foundation/validation?redundancy_factor=1')).json;
  assert.equal(newest.bundle, 'converge-2.0.0.tar.gz');
  assert.equal(fwOf(newest).verdict, 'FAIL');
  assert.match(fwOf(newest).threshold, /9\.0\.0/);
  const named = (await t.call('GET', '/foundation/validation?redundancy_factor=1&nos_package=converge-1.0.0.tar.gz')).json;
  assert.equal(named.bundle, 'converge-1.0.0.tar.gz');
  assert.equal(fwOf(named).verdict, 'PASS');
  assert.match(fwOf(named).threshold, /3\.0\.0/);
  const unknown = await t.call('GET', '/foundation/validation?nos_package=nope.tar.gz');
  assert.equal(unknown.status, 400);
  assert.ok('nos_package' in unknown.json.error.details);
  // image_nodes with the strict bundle refuses what validation FAILed
  const r = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.44', [0], { nos_package: 'converge-2.0.0.tar.gz' }));
  assert.equal(r.status, 400);
  assert.match(r.json.error.message, new RegExp(`${serial}.*firmware\\.bmc`));
});

test('image_nodes refuses a member of a running cluster (409 naming the node) unless that node says reimage: true', async () => {
  const node = t.tr.node(3);
  // node 3's CVM, as if in a cluster: an announcement with a credential Foundation issued for it
  const f = t.fd.foundation;
  const token = f.credentials.nodeTokenForMedia('test', node.serial, f.credentials.issue('test', node.serial));
  const ann = await fetch(`${t.fd.url}/foundation/cvm_announce`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ serial: node.serial, cvmIp: '127.44.1.4', hostIp: '127.44.0.4', hypervisorVersion: '1.0.0', nosVersion: '1.0.0', configured: true, clusterId: 'c0ffee00-0000-4000-8000-000000000001' }),
  });
  assert.equal(ann.status, 200);
  const seen = (await t.call('GET', '/foundation/discover_nodes')).json.flatMap((b: any) => b.nodes).find((n: any) => n.node_serial === node.serial);
  assert.equal(seen.configured, true);
  const before = (await t.call('GET', '/foundation/sessions')).json.length;
  const r = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.44', [3], { nos_package: 'converge-1.0.0.tar.gz' }));
  assert.equal(r.status, 409, r.text);
  assert.equal(r.json.error.code, 'CVG_ERR_CONFLICT');
  assert.match(r.json.error.details['blocks[0].nodes[0]'], new RegExp(`${node.serial} is a member of cluster c0ffee00.*reimage: true`));
  const pre = t.imageBody('127.44', [3], { nos_package: '' }) as any;
  pre.blocks[0].nodes[0].image_now = false;
  pre.blocks[0].nodes[0].reimage = true;
  assert.equal((await t.call('POST', '/foundation/image_nodes', pre)).status, 409, 'a cluster member is not reconfigured in place');
  // with reimage: true the request goes on to its other checks (here: an address outside the lab)
  const again = t.imageBody('127.44', [3], { nos_package: 'converge-1.0.0.tar.gz' }) as any;
  again.blocks[0].nodes[0].reimage = true;
  again.blocks[0].nodes[0].hypervisor_ip = '10.1.0.5';
  const r2 = await t.call('POST', '/foundation/image_nodes', again);
  assert.equal(r2.status, 400, r2.text);
  assert.ok('blocks[0].nodes[0].hypervisor_ip' in r2.json.error.details, r2.text);
  assert.equal((await t.call('GET', '/foundation/sessions')).json.length, before, 'no session was created');
});
