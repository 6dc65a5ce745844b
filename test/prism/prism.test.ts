/**
 * Prism, end to end: a 3-node cluster deployed by Foundation with a virtual IP and an admin password;
 * the v3 and v2.0 APIs over HTTPS on the VIP (certificate checked against the cluster's CA),
 * authentication (sessions, rate limiting, password change), redirects from a non-leader, the
 * summary page, and the VIP moving to another CVM when the leader's CVM is killed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium, screenshotDir } from '../drivers/browser.ts';
import { Agent, fetch as ufetch } from 'undici';
import { TestFoundation } from '../drivers/foundation-driver.ts';
import { hashPassword } from '../../src/shared/passwords.ts';
import { ADMIN_USER, PRISM_USERS_PREFIX } from '../../src/prism/protocol/prism.ts';
import { hostCall } from '../../src/hypervisor/protocol/client.ts';
import { cvg } from '../drivers/cli.ts';

const VIP = '127.66.2.1';
const CVMS = ['127.66.1.1', '127.66.1.2', '127.66.1.3'];
let t: TestFoundation;
let agent: Agent;
let password = 'lab-secret-1';
let progress: any;
/** Screenshots go to CONVERGE_SCREENSHOTS (docs/images to refresh the docs) or a temp dir. */
const SHOTS = screenshotDir();

before(async () => {
  t = await TestFoundation.start('127.65', 18065, 3);
  await t.upload();
  const r = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.66', [0, 1, 2], {
    clusters: [{ cluster_name: 'prism-lab', cluster_members: CVMS, cluster_init_now: true, redundancy_factor: 2, cluster_external_ip: VIP, admin_password: password }],
  }));
  assert.equal(r.status, 200, r.text);
  progress = await t.waitStopped(r.json.session_id, 180_000);
  assert.equal(progress.clusters[0].percent_complete, 100, progress.clusters[0].status);
  agent = new Agent({ connect: { ca: readFileSync(progress.clusters[0].prism.ca_file, 'utf8') } });
});
after(async () => {
  await agent?.close();
  await t.stop();
});

interface Reply { status: number; json: any; text: string; headers: Headers }
async function prism(path: string, o: { body?: unknown; method?: string; user?: string; pass?: string; host?: string; cookie?: string; auth?: boolean } = {}): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (o.auth !== false && !o.cookie) headers['Authorization'] = `Basic ${Buffer.from(`${o.user ?? 'admin'}:${o.pass ?? password}`).toString('base64')}`;
  if (o.cookie) headers['Cookie'] = o.cookie;
  if (o.body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await ufetch(`https://${o.host ?? VIP}:9440${path}`, {
    dispatcher: agent, method: o.method ?? (o.body === undefined ? 'GET' : 'POST'), headers, redirect: 'manual',
    ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
  });
  const text = await r.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, text, headers: r.headers as unknown as Headers };
}

test('Foundation validated Prism on the virtual IP with the given password, and wrote no password anywhere', () => {
  const c = progress.clusters[0];
  assert.match(c.checks.at(-1).evidence, /^https:\/\/127\.66\.2\.1:9440 .*clusters\/list → HTTP 200, 1 cluster prism-lab; hosts\/list → HTTP 200, 3 hosts; a wrong password → HTTP 401/);
  assert.equal(c.prism.url, `https://${VIP}:9440`);
  assert.equal(c.prism.admin_password_file, null, 'the password came with the request: nothing generated');
  assert.doesNotMatch(JSON.stringify(progress), new RegExp(password));
  const sessionFiles = readFileSync(`${t.dir}/foundation/sessions/${progress.session_id}/session.json`, 'utf8') + readFileSync(`${t.dir}/foundation/sessions/${progress.session_id}/events.jsonl`, 'utf8');
  assert.doesNotMatch(sessionFiles, new RegExp(password), 'the password is not in the session files');
});

test('v3 clusters/list and GET: the cluster with its RF, hosts and virtual IP; an unknown uuid is a v3 404', async () => {
  const r = await prism('/api/nutanix/v3/clusters/list', { body: { kind: 'cluster' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.metadata.total_matches, 1);
  const c = r.json.entities[0];
  assert.equal(c.metadata.kind, 'cluster');
  assert.equal(c.metadata.uuid, progress.clusters[0].cluster_id);
  assert.equal(c.status.name, 'prism-lab');
  assert.equal(c.status.state, 'COMPLETE');
  assert.equal(c.status.resources.config.redundancy_factor, 2);
  assert.equal(c.status.resources.network.external_ip, VIP);
  assert.deepEqual(c.status.resources.nodes.hypervisor_server_list.map((h: any) => h.ip).sort(), ['127.66.0.1', '127.66.0.2', '127.66.0.3']);
  const one = await prism(`/api/nutanix/v3/clusters/${c.metadata.uuid}`);
  assert.equal(one.status, 200);
  assert.deepEqual(one.json.spec, c.spec);
  const missing = await prism('/api/nutanix/v3/clusters/00000000-0000-0000-0000-000000000000');
  assert.equal(missing.status, 404);
  assert.equal(missing.json.state, 'ERROR');
  assert.equal(missing.json.kind, 'cluster');
  assert.match(missing.json.message_list[0].message, /cluster not found/);
});

test('v3 hosts/list: three hosts with hypervisor, CVM, BMC and hardware; filter, paging, GET; bad input names the field', async () => {
  const r = await prism('/api/nutanix/v3/hosts/list', { body: { kind: 'host', length: 10 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.metadata.total_matches, 3);
  const h = r.json.entities.find((e: any) => e.status.resources.hypervisor.ip === '127.66.0.2');
  assert.equal(h.status.name, 'lab-2', JSON.stringify(h.status));
  assert.equal(h.status.resources.controller_vm.ip, '127.66.1.2');
  assert.equal(h.status.cluster_reference.uuid, progress.clusters[0].cluster_id);
  assert.ok(h.status.resources.memory_capacity_mib > 0 && h.status.resources.num_cpu_cores > 0);
  assert.match(h.status.resources.ipmi.ip, /^127\.65\./);
  assert.ok(h.status.resources.host_disks_reference_list.length > 0);
  const filtered = await prism('/api/nutanix/v3/hosts/list', { body: { kind: 'host', filter: 'name==lab-2,name==lab-3', sort_attribute: 'name', sort_order: 'DESCENDING' } });
  assert.deepEqual(filtered.json.entities.map((e: any) => e.status.name), ['lab-3', 'lab-2']);
  const page = await prism('/api/nutanix/v3/hosts/list', { body: { length: 1, offset: 2 } });
  assert.equal(page.json.entities.length, 1);
  assert.equal(page.json.metadata.total_matches, 3);
  const one = await prism(`/api/nutanix/v3/hosts/${h.metadata.uuid}`);
  assert.equal(one.json.status.resources.serial_number, h.status.resources.serial_number);
  const bad = await prism('/api/nutanix/v3/hosts/list', { body: { kind: 'host', length: 0 } });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.state, 'ERROR');
  assert.match(bad.json.message_list[0].message, /^length: /);
  const badFilter = await prism('/api/nutanix/v3/hosts/list', { body: { filter: 'color==red' } });
  assert.equal(badFilter.status, 400);
  assert.match(badFilter.json.message_list[0].message, /^filter: unknown attribute color/);
});

test('authentication: none or a wrong password is refused; a session cookie stands in for Basic; wrong passwords are rate-limited', async () => {
  const none = await prism('/api/nutanix/v3/clusters/list', { body: {}, auth: false });
  assert.equal(none.status, 401);
  assert.match(none.headers.get('www-authenticate') ?? '', /^Basic realm="Prism"/);
  const wrong = await prism('/api/nutanix/v3/clusters/list', { body: {}, pass: 'not-it' });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.json.state, 'ERROR');
  const ok = await prism('/api/nutanix/v3/clusters/list', { body: {} });
  const cookie = (ok.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  assert.match(cookie, /^NTNX_IGW_SESSION=/);
  assert.match(ok.headers.get('set-cookie') ?? '', /Secure; HttpOnly/);
  assert.equal((await prism('/api/nutanix/v3/clusters/list', { body: {}, cookie })).status, 200);
  assert.equal((await prism('/api/nutanix/v3/clusters/list', { body: {}, cookie: 'NTNX_IGW_SESSION=forged' })).status, 401);
  // five wrong passwords for one user from one address: the sixth attempt is refused even if right
  for (let i = 0; i < 5; i++) assert.equal((await prism('/api/nutanix/v3/clusters/list', { body: {}, user: 'operator', pass: `guess-${i}` })).status, 401);
  const locked = await prism('/api/nutanix/v3/clusters/list', { body: {}, user: 'operator', pass: 'guess-5' });
  assert.equal(locked.status, 429);
  assert.ok(Number(locked.headers.get('retry-after')) > 0);
  assert.equal((await prism('/api/nutanix/v3/clusters/list', { body: {} })).status, 200, 'the admin is not locked out by another user\'s failures');
});

test('a v4 SDK\'s first call on the virtual IP — OPTIONS with Basic auth, Content-Type: application/json and no body — is answered with the version (v4.2 or later: the SDKs use it), and without credentials a 401', async () => {
  const ask = async (auth: boolean): Promise<{ status: number; json: any }> => {
    const r = await ufetch(`https://${VIP}:9440/api/vmm/unversioned/info`, {
      dispatcher: agent, method: 'OPTIONS',
      headers: { 'Content-Type': 'application/json', ...(auth ? { Authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` } : {}) },
    });
    return { status: r.status, json: await r.json() };
  };
  const known = await ask(true);
  assert.equal(known.status, 200);
  assert.deepEqual(known.json, { data: 'v4.3' });
  assert.equal((await ask(false)).status, 401);
});

test('health checks and alerts: a disk failed through the rack raises a critical alert naming it, with a cause and a resolution; repaired, it resolves on its own', async () => {
  const disk = (await prism('/api/nutanix/v2.0/disks')).json.entities[0];
  const serial = String(disk.disk_uuid);
  const node = { serial: String(disk.node_serial) };
  const openAlerts = async (): Promise<any[]> => (await prism('/api/nutanix/v2.0/alerts?resolved=false')).json.entities.filter((a: any) => a.check_id === 'hardware/disk_online_check');
  assert.deepEqual(await openAlerts(), []);
  await t.tr.rack.setFaults(node.serial, { failedDisks: [serial] });
  try {
    await t.tr.until(async () => {
      await prism('/api/converge/v1/health');
      return (await openAlerts()).length === 1;
    }, 60_000, 'an alert for the failed disk');
    const [a] = await openAlerts();
    assert.equal(a.severity, 'kCritical');
    assert.equal(a.affected_entities[0].id, serial);
    assert.match(a.possible_causes[0].cause[0], /failed/);
    const text = await prism('/api/converge/v1/health?format=text');
    assert.match(text.text, new RegExp(`hardware/disk_online_check +disk ${serial} on \\S+ +\\[ FAIL \\]`));
    assert.match(text.text, /Resolution: Replace the disk/);
  } finally {
    await t.tr.rack.setFaults(node.serial, { failedDisks: [] });
  }
  await t.tr.until(async () => {
    await prism('/api/converge/v1/health');
    return (await openAlerts()).length === 0;
  }, 60_000, 'the alert resolved once the disk is back');
  const resolved = (await prism('/api/nutanix/v2.0/alerts?resolved=true')).json.entities.find((x: any) => x.check_id === 'hardware/disk_online_check');
  assert.equal(resolved.resolved_by_username, 'auto');

  // the same through the command: NCC's report, and the alerts
  process.env['CONVERGE_ADMIN_PASSWORD'] = password;
  try {
    const run = await cvg('health', 'run', '--cvm-ip', CVMS[0] ?? '', '--data-dir', t.dir);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^\/health_checks\/hardware\/disk_online_check +disk \S+ on \S+ +\[ PASS \]$/m);
    assert.match(run.stdout, /^\| FAIL {4}\| 0 +\|$/m);
    const alerts = await cvg('health', 'alerts', '--all', '--cvm-ip', CVMS[0] ?? '', '--data-dir', t.dir, '--json');
    assert.equal(alerts.code, 0, alerts.stderr);
    assert.ok((JSON.parse(alerts.stdout) as any[]).some((a) => a.check_id === 'hardware/disk_online_check' && a.resolved));
    process.env['CONVERGE_ADMIN_PASSWORD'] = 'not-the-password';
    const wrong = await cvg('health', 'run', '--cvm-ip', CVMS[0] ?? '', '--data-dir', t.dir, '--json');
    assert.equal(wrong.code, 2, wrong.stdout);
    assert.match(wrong.stdout, /"field": "CONVERGE_ADMIN_PASSWORD"/);
  } finally {
    delete process.env['CONVERGE_ADMIN_PASSWORD'];
  }
});

test('v2.0 storage: pool, containers, disks; a container and a vdisk created, the vdisk through a task', async () => {
  const pools = await prism('/api/nutanix/v2.0/storage_pools');
  assert.equal(pools.json.metadata.grand_total_entities, 1);
  const disks = await prism('/api/nutanix/v2.0/disks');
  assert.equal(pools.json.entities[0].capacity, disks.json.entities.reduce((a: number, d: any) => a + d.disk_size, 0));
  assert.ok(disks.json.entities.every((d: any) => d.online === true && CVMS.includes(d.cvm_ip_address)));
  const list = await prism('/api/nutanix/v2.0/storage_containers');
  assert.deepEqual(list.json.entities.map((c: any) => [c.name, c.replication_factor]), [['default-container', 2]]);
  const badRf = await prism('/api/nutanix/v2.0/storage_containers', { body: { name: 'gold', replication_factor: 4 } });
  assert.equal(badRf.status, 400);
  assert.match(badRf.json.message, /^replication_factor: /);
  assert.equal((await prism('/api/nutanix/v2.0/storage_containers')).json.entities.length, 1, 'a refused create changes nothing');
  assert.equal((await prism('/api/nutanix/v2.0/storage_containers', { body: { name: 'gold', replication_factor: 2 } })).json.value, true);
  const gold = (await prism('/api/nutanix/v2.0/storage_containers')).json.entities.find((c: any) => c.name === 'gold');
  const created = await prism('/api/nutanix/v2.0/virtual_disks', { body: { name: 'web-1', disk_capacity_in_bytes: 64 * 1024 * 1024, storage_container_uuid: gold.storage_container_uuid } });
  assert.match(created.json.task_uuid, /^[0-9a-f-]{36}$/);
  const task = await t.tr.until(async () => {
    const r = await prism(`/api/nutanix/v3/tasks/${created.json.task_uuid}`);
    return r.json.status === 'SUCCEEDED' || r.json.status === 'FAILED' ? r.json : undefined;
  }, 10_000, 'the vdisk task to finish');
  assert.equal(task.status, 'SUCCEEDED', task.error_detail);
  assert.equal(task.percentage_complete, 100);
  assert.equal(task.operation_type, 'kVDiskCreate');
  const vd = (await prism('/api/nutanix/v2.0/virtual_disks')).json.entities.find((v: any) => v.name === 'web-1');
  assert.deepEqual(task.entity_reference_list, [{ kind: 'virtual_disk', uuid: vd.uuid, name: 'web-1' }]);
  assert.equal(vd.disk_capacity_in_bytes, 64 * 1024 * 1024);
  assert.equal(vd.storage_container_uuid, gold.storage_container_uuid);
  const noTask = await prism('/api/nutanix/v3/tasks/00000000-0000-0000-0000-000000000000');
  assert.equal(noTask.status, 404);
});

test('a Prism that does not lead redirects to the virtual IP; the console comes from the release bundle; the cluster view shows hosts, CVMs, services and storage', async () => {
  const who = (await prism('/api/converge/v1/prism', { auth: false })).json;
  assert.equal(who.isLeader, true);
  const other = CVMS.find((ip) => ip !== who.leader) ?? '';
  const r = await prism('/api/nutanix/v3/clusters/list', { host: other, body: {} });
  assert.equal(r.status, 307);
  assert.equal(r.headers.get('location'), `https://${VIP}:9440/api/nutanix/v3/clusters/list`);
  // the console's page needs no credentials (it is the login page), but holds no data
  const page = await prism('/console/', { auth: false });
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  assert.match(page.text, /<title>Prism<\/title>/);
  const script = /src="(\/console\/assets\/[^"]+\.js)"/.exec(page.text)?.[1] ?? '';
  assert.equal((await prism(script, { auth: false })).status, 200, 'its script, from cvm/console/ in the bundle');
  assert.equal((await prism('/api/converge/v1/cluster', { auth: false })).status, 401);
  const view = (await prism('/api/converge/v1/cluster')).json;
  assert.equal(view.cluster.name, 'prism-lab');
  assert.equal(view.members.length, 3);
  assert.equal(view.leader, who.leader);
  assert.equal(view.health.state, 'OK', JSON.stringify(view.health));
  for (const m of view.members) for (const s of ['genesis', 'etcd', 'stargate', 'prism']) assert.equal(m.cvm.services.find((x: any) => x.name === s)?.state, 'up', `${s} on ${m.cvmIp}`);
  assert.equal(view.containers.find((c: any) => c.name === 'default-container')?.replicationFactor, 2);
});

test('the console in Chromium: a login page, not the browser\'s prompt; a wrong password is refused; then the dashboard and the hosts with their services', async () => {
  const browser = await launchChromium();
  try {
    // the lab CA is not in Chromium's trust store: the page's certificate was checked against it above
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 } });
    const page = await ctx.newPage();
    await page.goto(`https://${VIP}:9440/console/`);
    await page.locator('input[name=password]').fill('not-the-password');
    await page.locator('button[type=submit]').click();
    await page.locator('[role=alert]').waitFor();
    assert.match(await page.locator('[role=alert]').textContent() ?? '', /wrong user name or password/);
    await page.screenshot({ path: join(SHOTS, 'prism-login.png') });
    await page.locator('input[name=password]').fill(password);
    await page.locator('button[type=submit]').click();
    await page.locator('[data-testid=health] .badge').waitFor();
    assert.equal(await page.locator('[data-testid=user]').textContent(), 'admin');
    await page.waitForFunction('document.querySelector("[data-testid=health]")?.textContent === "OK"', undefined, { timeout: 30_000 });
    await page.locator('nav >> text=Hosts').click();
    await page.locator('[data-testid=hosts] tr[data-host]').first().waitFor();
    assert.equal(await page.locator('[data-testid=hosts] tr[data-host]').count(), 3);
    assert.equal(await page.locator('text=Prism leader').count(), 1, 'one leader');
    for (const s of ['genesis', 'etcd', 'stargate', 'prism']) assert.equal(await page.locator(`[data-testid=hosts] .badge.ok:text-is("${s}")`).count(), 3, s);
    // a reload keeps the page and the session (the cookie); logging out ends it
    await page.reload();
    await page.locator('[data-testid=hosts] tr[data-host]').first().waitFor();
    await page.locator('text=Log out').click();
    await page.locator('input[name=password]').waitFor();
    assert.equal((await page.evaluate(async () => (await fetch('/api/converge/v1/session', { headers: { 'X-Requested-With': 'XMLHttpRequest' } })).status)), 401);
  } finally {
    await browser.close();
  }
});

/** Logs in with Basic credentials and uses the session cookie once (a failover keeps it from then on). */
async function session(): Promise<string> {
  const login = await prism('/api/nutanix/v3/clusters/list', { body: {} });
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  assert.equal((await prism('/api/nutanix/v3/clusters/list', { body: {}, cookie })).status, 200);
  return cookie;
}

test('the admin changes the password: the old one is refused, the new one works, sessions opened before end', async () => {
  const earlier = await session();
  const bad = await prism('/PrismGateway/services/rest/v1/utils/change_default_system_password', { body: { oldPassword: password, newPassword: 'short' } });
  assert.equal(bad.status, 400);
  assert.match(bad.json.message_list[0].message, /^newPassword: /);
  const r = await prism('/PrismGateway/services/rest/v1/utils/change_default_system_password', { body: { oldPassword: password, newPassword: 'a-new-lab-secret' } });
  assert.equal(r.status, 200, r.text);
  assert.equal((await prism('/api/nutanix/v3/clusters/list', { body: {} })).status, 401);
  password = 'a-new-lab-secret';
  assert.equal((await prism('/api/nutanix/v3/clusters/list', { body: {} })).status, 200);
  assert.equal((await prism('/api/nutanix/v3/clusters/list', { body: {}, cookie: earlier })).status, 401, 'a session of the old password');
});

test('a password changed in the store by another Prism takes effect at once, though the leader had just checked the old one', async () => {
  assert.equal((await prism('/api/nutanix/v3/clusters/list', { body: {} })).status, 200, 'the current password, now remembered');
  const etcd = t.store(CVMS);
  try {
    const key = PRISM_USERS_PREFIX + ADMIN_USER;
    const user = JSON.parse(await etcd.get(key).string() ?? '{}') as Record<string, unknown>;
    await etcd.put(key).value(JSON.stringify({ ...user, passwordHash: hashPassword('changed-elsewhere'), updatedAt: new Date().toISOString() }));
  } finally {
    etcd.close();
  }
  // the store's change reaches the leader as a watch event, within moments (not the minute it remembers a password)
  await t.tr.until(async () => ((await prism('/api/nutanix/v3/clusters/list', { body: {} })).status === 401 ? true : undefined), 5000, 'the old password refused');
  password = 'changed-elsewhere';
  assert.equal((await prism('/api/nutanix/v3/clusters/list', { body: {} })).status, 200);
});

test('killing the Prism leader\'s CVM moves the virtual IP to another CVM, and the API answers there; sessions survive, logged-out ones do not', async () => {
  const before = (await prism('/api/converge/v1/prism', { auth: false })).json.leader as string;
  const kept = await session();
  const ended = await session();
  assert.equal((await prism('/api/converge/v1/logout', { body: {}, cookie: ended })).status, 200);
  assert.equal((await prism('/api/nutanix/v3/clusters/list', { body: {}, cookie: ended })).status, 401);
  const host = `127.66.0.${before.split('.')[3] ?? ''}`;
  const hs = await hostCall<{ cvm: { pid: number } }>(host, '/status');
  const t0 = Date.now();
  process.kill(hs.cvm.pid, 'SIGKILL'); // the CVM's main process: its group (etcd, Prism) goes with it
  const moved = await t.tr.until(async () => {
    try {
      const r = await prism('/api/nutanix/v3/hosts/list', { body: {} });
      const who = (await prism('/api/converge/v1/prism', { auth: false })).json;
      return r.status === 200 && who.leader !== before ? { r, who } : undefined;
    } catch {
      return undefined;
    }
  }, 30_000, 'a new Prism leader on the virtual IP');
  const took = Date.now() - t0;
  assert.ok(moved);
  assert.notEqual(moved.who.leader, before);
  assert.equal(moved.r.json.metadata.total_matches, 3);
  assert.ok(took < 15_000, `the VIP moved in ${took} ms`);
  console.log(`# VIP moved from ${before} to ${moved.who.leader as string} in ${took} ms`);
  // the session opened on the old leader works on the new one, without credentials; the logged-out one does not
  assert.equal((await prism('/api/nutanix/v3/clusters/list', { body: {}, cookie: kept })).status, 200);
  assert.equal((await prism('/api/nutanix/v3/clusters/list', { body: {}, cookie: ended })).status, 401);
  // every Prism agrees on the new leader
  for (const ip of CVMS.filter((x) => x !== before)) assert.equal((await prism('/api/converge/v1/prism', { auth: false, host: ip })).json.leader, moved.who.leader);
});
