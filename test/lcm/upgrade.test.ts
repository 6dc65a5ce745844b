/**
 * LCM's rolling upgrade on a real 3-node lab (issue 14, ADR 018), driven with `converge lcm` as a
 * user runs it: the lab deployed through Foundation at 1.0.0 with one VM per host running its
 * write-and-verify loop; bundle 1.1.0 uploaded to the cluster's repository; inventory (versions;
 * BMC, BIOS and drive firmware over Redfish), plan,
 * pre-checks; a plan the matrix forbids refused naming the pair, and pre-checks failing (a host in
 * maintenance) refusing the upgrade before any change; then the upgrade, node by node, with the
 * CVM that drives it killed in the middle: another CVM goes on, every node ends at 1.1.0, the guests
 * never see an I/O error nor a verify failure, every VM runs, data at RF. Then an upgrade to 1.2.0
 * whose first node is powered off as it restarts: the upgrade stops naming the node and what to do,
 * the cluster serving; the node powered on again, the upgrade is resumed from Prism's LCM page in
 * Debian's Chromium (the page shows the failed node and the error; Resume) and finishes. With
 * CONVERGE_SCREENSHOTS=docs/images the page's picture refreshes docs/images/prism-lcm.png.
 *
 * Addresses: BMCs on 127.140.0.x, hosts 127.141.0.x, CVMs 127.141.1.x, Prism 127.141.2.1.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium, screenshotDir } from '../drivers/browser.ts';
import { VmLab } from '../drivers/vm-lab.ts';
import { hostCall } from '../../src/hypervisor/protocol/client.ts';
import type { HostStatus } from '../../src/hypervisor/protocol/node-config.ts';
import type { Vm, VmHost } from '../../src/cvm/protocol/vms.ts';
import type { ResiliencyReport } from '../../src/cvm/protocol/cluster.ts';
import { buildBundle } from '../../src/cli/bundle-build.ts';
import { openBundle, writeBundle } from '../../src/shared/bundle/archive.ts';
import type { NodeInventory, PrecheckResult, Refusal, StoredBundle, UpgradePlan, UpgradeRecord } from '../../src/lcm/protocol/lcm.ts';

let lab: VmLab;
let dir = '';
const VMS = ['vm1', 'vm2', 'vm3'];
const ok = <T>(...a: string[]): Promise<T> => lab.ok<T>(...a);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


/** Waits for the record to satisfy `p`, failing at once on a guest error or an upgrade that stopped unexpectedly. */
async function until(what: string, p: (r: UpgradeRecord) => boolean, timeoutMs: number, allow: UpgradeRecord['state'][] = ['running']): Promise<UpgradeRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await lab.upgradeRecord();
    if (p(r)) return r;
    assert.ok(allow.includes(r.state), `${what}: the upgrade is ${r.state}: ${r.error ?? ''}\n${r.events.slice(-10).map((e) => e.message).join('\n')}`);
    assert.ok(Date.now() < deadline, `${what}: not within ${timeoutMs / 1000} s\n${r.events.slice(-10).map((e) => e.message).join('\n')}`);
    await sleep(500);
  }
}

/**
 * Prism's LCM page as a user sees the failed upgrade: the node's box failed, the error; then Resume
 * clicked and the page showing the upgrade running again.
 */
async function resumeInConsole(failedNode: string): Promise<void> {
  const shots = screenshotDir();
  const browser = await launchChromium();
  try {
    const page = await (await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 } })).newPage();
    page.setDefaultTimeout(60_000);
    try {
      await page.goto(`https://${lab.vip}:9440/console/`);
      await page.locator('input[name=password]').fill(VmLab.PRISM_PASSWORD);
      await page.locator('button[type=submit]').click();
      await page.locator('nav >> text=LCM').click();
      const state = page.locator('[data-testid=upgrade-state]');
      await state.locator('.badge:text-is("failed")').waitFor();
      await page.locator(`.lcm-node[data-node="${failedNode}"] .lcm-box[data-state=failed]`).waitFor();
      assert.match(await page.locator('.lcm-upgrade .banner.error').innerText(), new RegExp(`${failedNode}: .*converge lcm resume`));
      // the inventory (read from every BMC, polled) lists the three nodes
      await page.locator('[data-testid=lcm-inventory] tbody tr').nth(2).waitFor();
      assert.equal(await page.locator('[data-testid=lcm-inventory] tbody tr').count(), 3);
      await page.screenshot({ path: join(shots, 'prism-lcm.png'), fullPage: true });
      await state.locator('button:text-is("Resume")').click();
      await state.locator('.badge:text-is("running")').waitFor();
    } catch (e) {
      await page.screenshot({ path: join(shots, 'prism-failed-lcm.png'), fullPage: true }).catch(() => undefined);
      throw e;
    }
  } finally {
    await browser.close();
  }
}

/** The step kind a node is in. */
const stepOf = (r: UpgradeRecord, serial: string): string | undefined => {
  const n = r.nodes.find((x) => x.serial === serial);
  return n && n.state === 'running' ? r.plan.nodes.find((x) => x.serial === serial)?.steps[n.step]?.kind : undefined;
};

async function guestsClean(): Promise<void> {
  for (const name of VMS) {
    const text = await lab.console(name);
    assert.doesNotMatch(text, /converge-guest: ERROR/, `${name} reported an error:\n${text.slice(-1500)}`);
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cvg-lcm-'));
  // 1.2.1 carries BMC and BIOS firmware images above every lab node's: its upgrade flashes them
  const [l] = await Promise.all([
    VmLab.start('127.140', 18140, '127.141'),
    buildBundle({ version: '1.1.0', out: dir, minBmc: '3.0.0' }),
    buildBundle({ version: '1.2.1', out: join(dir, 'next'), minBmc: '3.20.0', minBios: 'CVGB-2.9.0', firmwareBmc: '3.20.0', firmwareBios: 'CVGB-2.9.0' }),
  ]);
  lab = l;
  lab.cvmIp = lab.cvms[0] ?? '';
  await ok('image', 'create', '--name', 'guest', '--file', lab.guestImage);
  await ok('subnet', 'create', '--name', 'red', '--vlan', '10', '--cidr', '10.10.0.0/24', '--gateway', '10.10.0.1');
  const hosts = await lab.api<VmHost[]>('/hosts');
  for (const [i, name] of VMS.entries()) {
    await ok('vm', 'create', '--name', name, '--memory', '192M', '--image', 'guest', '--disk', '32M', '--nic', 'red', '--power-on');
    const want = hosts[i]?.serial ?? '';
    if ((await lab.vm(name)).host?.serial !== want) await ok('vm', 'migrate', name, '--host', want);
  }
  for (const name of VMS) await lab.waitConsole(name, /converge-guest: verify pass 2 ok/, 0, 300_000);
});
after(async () => {
  await lab?.stop();
});

test('the repository takes a bundle (verified: a broken one refused naming the field); inventory shows versions and firmware; a plan the matrix forbids is refused naming the pair, and nothing starts', async () => {
  const up = await ok<StoredBundle[]>('lcm', 'bundle', 'upload', join(dir, 'converge-1.1.0.tar.gz'));
  assert.deepEqual(up.map((b) => [b.offer.version, [...b.holders].sort()]), [['1.1.0', [...lab.cvms].sort()]], 'a copy on every CVM');
  writeFileSync(join(dir, 'broken.tar.gz'), 'not a bundle');
  const broken = await lab.cli('lcm', 'bundle', 'upload', join(dir, 'broken.tar.gz'));
  assert.notEqual(broken.code, 0);
  assert.match(broken.stdout, /"field": "body"/);
  assert.deepEqual((await ok<StoredBundle[]>('lcm', 'bundle', 'list')).map((b) => b.offer.version), ['1.1.0']);

  const inv = await ok<NodeInventory[]>('lcm', 'inventory');
  assert.deepEqual(inv.map((n) => [n.hypervisor, n.nos, n.bundle]), Array(3).fill(['1.0.0', '1.0.0', '1.0.0']));
  assert.ok(inv.every((n) => n.firmware.bmc !== null && n.firmware.bios !== null), `firmware read over Redfish: ${JSON.stringify(inv.map((n) => n.firmware))}`);
  // the drives' firmware too (the lab's nodes: CVG-H1065, 2 SSD + 4 HDD)
  assert.deepEqual(inv.map((n) => n.firmware.disks?.map((d) => `${d.id} ${d.version}`)), Array(3).fill(['Disk.Bay.0 JXTC104Q', 'Disk.Bay.1 JXTC104Q', ...[2, 3, 4, 5].map((i) => `Disk.Bay.${i} E004`)]));

  const planned = await ok<{ plan: UpgradePlan; refusals: Refusal[] }>('lcm', 'plan', '--to', '1.1.0');
  assert.deepEqual(planned.refusals, []);
  assert.equal(planned.plan.nodes.length, 3);
  assert.deepEqual(planned.plan.nodes[0]?.steps.map((s) => s.kind), ['enter-maintenance', 'stop-cvm', 'install', 'restart', 'rejoin', 'resiliency', 'exit-maintenance']);

  // a 1.2.0 that upgrades only from 1.0.5: the plan and the upgrade refused, naming the pair; no upgrade recorded
  const b = await openBundle(readFileSync(join(dir, 'converge-1.1.0.tar.gz')));
  await writeBundle(join(dir, 'strict', 'converge-1.2.0.tar.gz'), { ...b.manifest, version: '1.2.0', upgradeFrom: ['1.0.5'] }, new Map([...b.files].filter(([p]) => p !== 'manifest.json')));
  await ok('lcm', 'bundle', 'upload', join(dir, 'strict'));
  const refused = await lab.cli<{ refusals: Refusal[] }>('lcm', 'plan', '--to', '1.2.0');
  assert.equal(refused.code, 1);
  assert.match(refused.out.refusals[0]?.reason ?? '', /1\.2\.0 does not upgrade from 1\.0\.0.*it upgrades from 1\.0\.5/);
  const no = await lab.cli('lcm', 'upgrade', '--to', '1.2.0');
  assert.notEqual(no.code, 0);
  assert.match(no.stdout, /"field": "to"/);
  assert.match(no.stdout, /the compatibility matrix refuses an upgrade to 1\.2\.0: bundle: 1\.2\.0 does not upgrade from 1\.0\.0/);
  assert.equal((await lab.cli('lcm', 'status')).code, 1, 'no upgrade was recorded');
});

test('a pre-check failing (a host in maintenance) refuses the upgrade before any change', async () => {
  const pre = await lab.cli<PrecheckResult[]>('lcm', 'precheck', '--to', '1.1.0');
  assert.equal(pre.code, 0, JSON.stringify(pre.out.filter((r) => r.status !== 'PASS')));
  assert.ok(['cluster/nodes_up', 'storage/data_resiliency', 'capacity/evacuation', 'lcm/bundle_checksums'].every((id) => pre.out.some((r) => r.id === id && r.status === 'PASS')));
  const empty = (await lab.api<VmHost[]>('/hosts')).find((h) => h.vms === 1);
  assert.ok(empty);
  // an empty host in maintenance would hold VMs none: take one whose VM moves away
  await ok('host', 'enter-maintenance', empty.serial);
  const r = await lab.cli('lcm', 'upgrade', '--to', '1.1.0');
  assert.notEqual(r.code, 0);
  assert.match(r.stdout, /pre-checks failed, nothing was changed: .*maintenance/);
  assert.equal((await lab.cli('lcm', 'status')).code, 1, 'no upgrade was recorded');
  await ok('host', 'exit-maintenance', empty.serial);
  await guestsClean();
});

test('the rolling upgrade to 1.1.0 with the guests writing; the CVM driving it killed in the middle: another goes on; every node at 1.1.0, no guest error, every VM running, data at RF', async () => {
  // VMs moved by the last test's maintenance come back on exit; wait for one per host again
  const t0 = Date.now();
  const started = await ok<UpgradeRecord>('lcm', 'upgrade', '--to', '1.1.0');
  assert.equal(started.state, 'running');
  const order = started.plan.nodes.map((n) => n.serial);
  // the second node entering maintenance: every CVM up (the first node is done); kill -9 the driving CVM
  const at = await until('the second node starts', (r) => r.nodes[1]?.state === 'running', 600_000);
  const driver = at.nodes[1]?.issuedBy?.split('/')[0] ?? '';
  const i = lab.cvms.indexOf(driver);
  assert.ok(i >= 0, `the driver ${driver} is a CVM of the lab`);
  assert.equal(order.indexOf((await lab.api<VmHost[]>('/hosts')).find((h) => h.cvmIp === driver)?.serial ?? ''), 2, 'the driving CVM\'s node is upgraded last');
  const st = await hostCall<HostStatus>(lab.hosts[i] ?? '', '/status', { identity: lab.operator });
  assert.ok(st.cvm.pid);
  process.kill(st.cvm.pid, 'SIGKILL');
  lab.cvmIp = lab.cvms[(i + 1) % 3] ?? '';
  const done = await until('the upgrade succeeds', (r) => r.state === 'succeeded', 1_800_000);
  const took = (Date.now() - t0) / 1000;
  assert.ok(done.nodes.every((n) => n.state === 'done'));
  assert.ok(done.events.some((e) => /asked again \(another CVM drives the upgrade now\)/.test(e.message)), 'another CVM took over');
  assert.ok(done.nodes.some((n) => n.issuedBy === null) && !done.events.some((e) => /did not finish/.test(e.message)));
  console.log(`# upgrade of 3 nodes to 1.1.0: ${took.toFixed(0)} s`);

  const inv = await ok<NodeInventory[]>('lcm', 'inventory');
  assert.deepEqual(inv.map((n) => [n.hypervisor, n.nos, n.bundle]), Array(3).fill(['1.1.0', '1.1.0', '1.1.0']));
  const vms = await lab.api<Vm[]>('/vms');
  assert.deepEqual(vms.map((v) => [v.name, v.powerState]).sort(), VMS.map((n) => [n, 'on']));
  assert.ok((await lab.api<ResiliencyReport>('/storage/resiliency')).ok, 'data at RF');
  const hosts = await lab.api<VmHost[]>('/hosts');
  assert.deepEqual(hosts.map((h) => h.state), ['up', 'up', 'up']);
  // the guests went on writing and verifying through it all
  for (const name of VMS) {
    const before = (await lab.console(name)).length;
    await lab.waitConsole(name, /verify pass \d+ ok/, before, 180_000);
  }
  await guestsClean();
  const status = await lab.cli('lcm', 'status');
  assert.equal(status.code, 0);
  // in Prism's task list: the upgrade succeeded, each node's every step a sub-task of it with its times
  const tasks = (await lab.prism('POST', '/api/nutanix/v3/tasks/list', { kind: 'task', length: 500 })).json.entities as { uuid: string; status: string; operation_type: string; start_time: string; completion_time: string; parent_task_reference?: { uuid: string } }[];
  const up = tasks.find((t) => t.uuid === done.id);
  assert.deepEqual([up?.operation_type, up?.status], ['LcmUpgrade', 'SUCCEEDED']);
  const steps = tasks.filter((t) => t.parent_task_reference?.uuid === done.id);
  assert.equal(steps.length, done.plan.nodes.reduce((n, p) => n + p.steps.length, 0));
  assert.ok(steps.every((t) => t.status === 'SUCCEEDED' && t.completion_time >= t.start_time), JSON.stringify(steps.slice(0, 3)));
});

test('firmware and software to 1.2.1: a node that does not come back stops the upgrade with the cluster serving, naming it and what to do; powered on again, resume finishes; BMC and BIOS at the new firmware', async () => {
  // the restart of its first node is given 40 s
  await ok('lcm', 'bundle', 'upload', join(dir, 'next', 'converge-1.2.1.tar.gz'));
  const planned = await ok<{ plan: UpgradePlan }>('lcm', 'plan', '--to', '1.2.1');
  assert.deepEqual(planned.plan.nodes[0]?.steps.map((s) => s.kind).slice(0, 5), ['enter-maintenance', 'stop-cvm', 'firmware-bmc', 'firmware-bios', 'install']);
  const started = await ok<UpgradeRecord>('lcm', 'upgrade', '--to', '1.2.1', '--step-timeout', 'restart=40,rejoin=40');
  const first = started.plan.nodes[0]?.serial ?? '';
  const hosts = await lab.api<VmHost[]>('/hosts');
  const i = lab.hosts.indexOf(hosts.find((h) => h.serial === first)?.hostIp ?? '');
  assert.ok(i >= 0);
  if (lab.cvmIp === lab.cvms[i]) lab.cvmIp = lab.cvms[(i + 1) % 3] ?? '';
  await until('the first node restarts', (r) => stepOf(r, first) === 'restart', 600_000);
  const off = await lab.t.tr.redfish(i).post('/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', { ResetType: 'ForceOff' });
  assert.ok(off.status < 300, off.text);
  const failed = await until('the upgrade stops', (r) => r.state === 'failed', 300_000, ['running', 'failed']);
  assert.match(failed.error ?? '', new RegExp(`${started.plan.nodes[0]?.hostname ?? ''}: (restart|rejoin) did not finish within 40 s .*The other nodes are serving; .*converge lcm resume`));
  assert.equal(failed.token, first, 'the token stays with the node: nothing else is taken down');
  assert.equal(failed.nodes.filter((n) => n.state === 'done').length, 0);
  // the cluster serves: the VMs run, the guests write and verify
  assert.ok((await lab.api<Vm[]>('/vms')).every((v) => v.powerState === 'on'));
  for (const name of VMS) {
    const mark = (await lab.console(name)).length;
    await lab.waitConsole(name, /verify pass \d+ ok/, mark, 180_000);
  }
  const st = await lab.cli<UpgradeRecord>('lcm', 'status');
  assert.equal(st.out.state, 'failed');
  // recovered as the message says: powered on through its BMC, then resumed from Prism's LCM page
  const on = await lab.t.tr.redfish(i).post('/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', { ResetType: 'On' });
  assert.ok(on.status < 300, on.text);
  await resumeInConsole(started.plan.nodes[0]?.hostname ?? '');
  await until('the resumed upgrade succeeds', (r) => r.state === 'succeeded', 1_800_000);
  const inv = await ok<NodeInventory[]>('lcm', 'inventory');
  assert.deepEqual(inv.map((n) => [n.nos, n.firmware.bmc, n.firmware.bios]), Array(3).fill(['1.2.1', '3.20.0', 'CVGB-2.9.0']), 'software and firmware: read back over Redfish');
  assert.ok((await lab.api<ResiliencyReport>('/storage/resiliency')).ok);
  await guestsClean();
});
