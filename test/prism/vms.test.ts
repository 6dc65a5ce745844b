/**
 * @module
 * Prism on a 3-node lab with real QEMU guests, as Nutanix's clients and a browser use it.
 *
 * The v3 and v4 tests replay the request bodies Nutanix's Ansible collection, Terraform provider and
 * v4 SDKs send (taken from their code) and assert the answers' shapes they parse, on VMs that boot.
 *
 * The console, driven in Debian's Chromium as a user would: log in, upload the guest image with a progress bar, create a subnet, create a VM from
 * the image through the wizard and watch its task finish, see its console's boot line in the page
 * and its write throughput in the chart, put its host in maintenance (it moves away live), power it off, and see an alert appear when a disk is
 * failed through the rack, acknowledge it, and see it clear when the disk is repaired. With CONVERGE_SCREENSHOTS=docs/images it
 * refreshes the docs' screenshots of every page.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, screenshotDir } from '../drivers/browser.ts';
import { VmLab } from '../drivers/vm-lab.ts';

const SHOTS = screenshotDir();

let lab: VmLab;
let browser: Browser;
let page: Page;

before(async () => {
  lab = await VmLab.start('127.138', 18138, '127.139');
  browser = await launchChromium();
  // the lab CA is not in Chromium's trust store (the API tests check Prism's certificate against it)
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 } });
  page = await ctx.newPage();
  page.setDefaultTimeout(60_000);
});
after(async () => {
  await browser?.close();
  await lab?.stop();
});

const shot = (name: string): Promise<Buffer> => page.screenshot({ path: join(SHOTS, `prism-${name}.png`), fullPage: true });
/** A step that fails leaves a screenshot of the page as it was (prism-failed-<step>.png) and says where. */
async function step(name: string, f: () => Promise<void>): Promise<void> {
  try {
    await f();
  } catch (e) {
    const file = join(SHOTS, `prism-failed-${name}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
    const banner = await page.locator('[role=alert]').allTextContents().catch(() => []);
    throw new Error(`${name}: ${e instanceof Error ? e.message : String(e)}${banner.length ? `\npage says: ${banner.join(' | ')}` : ''}\nscreenshot: ${file}`);
  }
}
const nav = async (label: string): Promise<void> => {
  await page.locator(`nav >> text=${label}`).click();
  await page.locator(`h1:text-is("${label}")`).waitFor();
};
/** Waits until `f` (run in the page) is true. */
const until = (f: string, timeoutMs = 60_000): Promise<unknown> => page.waitForFunction(f, undefined, { timeout: timeoutMs, polling: 500 });

test('log in, upload an image, create a subnet, create a VM through the wizard, watch its task, see its boot line and its writes, put its host in maintenance, power it off', async () => {
  await step('login', async () => {
    await page.goto(`https://${lab.vip}:9440/console/`);
    await page.locator('input[name=password]').fill(VmLab.PRISM_PASSWORD);
    await shot('login');
    await page.locator('button[type=submit]').click();
    await page.locator('[data-testid=health] .badge').waitFor();
    await shot('dashboard');
  });

  // Images: the guest image uploaded from this computer, its progress shown, then ready
  await step('upload', async () => {
  await nav('Images');
  await page.locator('input[name=image-file]').setInputFiles(lab.guestImage);
  await page.locator('input[name=upload-name]').fill('guest');
  await page.locator('button:text-is("Upload")').click();
  await page.locator('[data-testid=upload-progress]').waitFor({ timeout: 10_000 }).catch(() => undefined); // a fast upload may be over before a look
  await page.locator('tr[data-image=guest] .badge:text-is("complete")').waitFor({ timeout: 180_000 });
  const size = statSync(lab.guestImage).size;
  const img = (await lab.prism('POST', '/api/nutanix/v3/images/list', { filter: 'name==guest' })).json.entities[0];
  assert.equal(img.status.resources.size_bytes, size, 'the whole file arrived');
  await shot('images');
  });

  // Networks: a subnet with address management
  await step('subnet', async () => {
  await nav('Networks');
  for (const [k, v] of [['name', 'red'], ['vlanId', '10'], ['cidr', '10.10.0.0/24'], ['gateway', '10.10.0.1'], ['poolStart', '10.10.0.10'], ['poolEnd', '10.10.0.99']]) await page.locator(`input[name=subnet-${k}]`).fill(v ?? '');
  await page.locator('button:text-is("Create")').click();
  await page.locator('[data-testid=subnets] td:text-is("red")').waitFor();
  await shot('networks');
  });

  // VMs: the wizard
  await step('wizard', async () => {
  await nav('VMs');
  await page.locator('button:text-is("Create VM")').click();
  await page.locator('input[name=name]').fill('ui-vm');
  await page.locator('input[name=data-disk]').fill('64');
  await page.locator('button:text-is("Next")').click();
  await page.locator('input[name=image]').first().check();
  await page.locator('button:text-is("Next")').click();
  await page.locator('.choice:has-text("red") input').check();
  await page.locator('button:text-is("Next")').click();
  await shot('create-vm');
  await page.locator('button:text-is("Create")').click();
  // its task, followed to the end
  await page.locator('[data-testid=create-task]').waitFor();
  await until('document.querySelector("[data-testid=create-task]")?.dataset.status === "SUCCEEDED" || document.querySelector("[data-testid=create-task]")?.dataset.status === "FAILED"', 300_000);
  assert.equal(await page.locator('[data-testid=create-task]').getAttribute('data-status'), 'SUCCEEDED', await page.locator('[data-testid=create-task]').textContent() ?? '');
  await page.locator('button:text-is("Open ui-vm")').click();
  });

  // the VM's page: its console's boot line, live over the websocket
  await step('vm-page', async () => {
  await page.locator('[data-testid=serial]').waitFor();
  await until('/converge-guest: booted/.test(document.querySelector("[data-testid=serial]")?.dataset.text ?? "")', 300_000);
  assert.equal(await page.locator('[data-testid=power]').textContent(), 'on');
  // its write-and-verify loop on the data disk shows as write throughput in its chart
  await until('Number(document.querySelector("[data-testid=chart-throughput]")?.dataset.peakWrite ?? 0) > 0', 120_000);
  const text = await page.locator('[data-testid=serial]').getAttribute('data-text') ?? '';
  assert.doesNotMatch(text, /converge-guest: ERROR/);
  await shot('vm');
  });

  // VMs table, Tasks, Performance, Hosts and Storage as they are now (for the docs)
  await step('pages', async () => {
  await nav('VMs');
  await page.locator('tr[data-vm=ui-vm]').waitFor();
  await page.locator('input[type=search]').fill('ui-');
  assert.equal(await page.locator('tr[data-vm]').count(), 1);
  await shot('vms');
  await nav('Tasks');
  await page.locator('[data-testid=tasks] tr[data-status=SUCCEEDED]').first().waitFor();
  await shot('tasks');
  await nav('Performance');
  await page.selectOption('select[aria-label=Entity]', { label: 'VM ui-vm' });
  await until('Number(document.querySelector("[data-testid=chart-throughput]")?.dataset.peakWrite ?? 0) > 0', 60_000);
  await shot('performance');
  await nav('Hosts');
  await page.locator('[data-testid=hosts] tr[data-host]').first().waitFor();
  await shot('hosts');
  await nav('Storage');
  await page.locator('[data-testid=disks] tr[data-disk]').first().waitFor();
  await shot('storage');
  });

  // a host in maintenance mode from the Hosts page: the VM moves away live, its guest unaware; then back
  await step('maintenance', async () => {
    const from = (await lab.vm('ui-vm')).host?.hostIp ?? '';
    await nav('Hosts');
    const row = page.locator(`[data-testid=hosts] tr:has-text("· ${from}")`);
    await row.locator('button:text-is("Enter maintenance")').click();
    await row.locator('.badge:text-is("in maintenance mode")').waitFor({ timeout: 240_000 });
    const moved = await lab.vm('ui-vm');
    assert.notEqual(moved.host?.hostIp, from, 'the VM left the host');
    assert.equal(moved.powerState, 'on');
    await shot('hosts-maintenance');
    await row.locator('button:text-is("Exit maintenance")').click();
    await row.locator('.badge:text-is("normal")').waitFor({ timeout: 240_000 });
    assert.doesNotMatch(await lab.console('ui-vm'), /converge-guest: ERROR/, 'the guest saw no I/O error');
  });

  // power off from the VMs table
  await step('power-off', async () => {
  await nav('VMs');
  await page.locator('tr[data-vm=ui-vm] button:text-is("Power off")').click();
  await page.locator('tr[data-vm=ui-vm] .badge:text-is("off")').waitFor({ timeout: 120_000 });
  assert.equal((await lab.vm('ui-vm')).powerState, 'off');
  });
});

test('an alert appears in the console when a disk is failed through the rack, is acknowledged there, and clears when the disk is repaired', async () => {
  const disk = (await lab.prism('GET', '/api/nutanix/v2.0/disks')).json.entities[0];
  const serial = String(disk.disk_uuid);
  const node = String(disk.node_serial);
  await nav('Alerts');
  await page.locator('[data-testid=no-alerts]').waitFor({ timeout: 90_000 });
  await lab.t.tr.rack.setFaults(node, { failedDisks: [serial] });
  try {
    // the Prism leader runs the checks every 30 s
    const row = page.locator(`[data-testid=alerts] tr:has-text("${serial}")`);
    await row.waitFor({ timeout: 120_000 });
    assert.match(await row.textContent() ?? '', /critical/i);
    assert.match(await row.textContent() ?? '', /Replace the disk/);
    await page.locator('nav .count.bad').waitFor({ timeout: 20_000 }); // the navigation shows an open critical alert (it looks every 10 s)
    await shot('alerts');
    await row.locator('button:text-is("Acknowledge")').click();
    await row.locator('.badge:text-is("acknowledged")').waitFor({ timeout: 10_000 });
    const alerts = (await lab.prism('GET', '/api/nutanix/v2.0/alerts?resolved=false')).json.entities as any[];
    const mine = alerts.find((a) => a.affected_entities.some((e: any) => String(e.entity_name).includes(serial)));
    assert.equal(mine?.acknowledged, true, 'acknowledged through the console');
    assert.equal(mine?.acknowledged_by_username, 'admin');
  } finally {
    await lab.t.tr.rack.setFaults(node, { failedDisks: [] });
  }
  await page.locator(`[data-testid=alerts] tr:has-text("${serial}")`).waitFor({ state: 'detached', timeout: 120_000 });
  await page.locator('label:has-text("show resolved") input').check();
  await page.locator(`[data-testid=alerts] tr[data-resolved=true]:has-text("${serial}")`).waitFor();
});

test("Prism v3 as Nutanix's Ansible and Terraform clients drive it: look up, create from an image, watch the task, boot, power off, delete", async () => {
  const prism = (method: string, path: string, body?: unknown): ReturnType<VmLab['prism']> => lab.prism(method, `/api/nutanix/v3${path}`, body);
  // Ansible's name lookups (entity.py get_uuid): length 1 and a filter the server must apply
  const sub = await prism('POST', '/subnets/list', { filter: 'name==red', length: 1 });
  assert.equal(sub.status, 200, JSON.stringify(sub.json));
  assert.deepEqual(sub.json.entities.map((e: any) => [e.spec.name, e.spec.resources.vlan_id, e.spec.resources.ip_config.subnet_ip]), [['red', 10, '10.10.0.0']]);
  const subnet = sub.json.entities[0].metadata.uuid as string;
  // Terraform's ListAllImage: an empty filter, kind, length 100
  const imgs = await prism('POST', '/images/list', { filter: '', kind: 'image', length: 100 });
  assert.equal(imgs.status, 200, JSON.stringify(imgs.json));
  assert.equal(imgs.json.metadata.total_matches, 1);
  const img = imgs.json.entities[0];
  assert.deepEqual([img.spec.name, img.status.state, img.status.resources.image_type], ['guest', 'COMPLETE', 'DISK_IMAGE']);
  const cluster = (await prism('POST', '/clusters/list', {})).json.entities[0].metadata.uuid as string;

  // ntnx_vms: the module's default spec, a boot disk from the image and a NIC on red, powered on
  const spec = {
    name: 'v3vm', cluster_reference: { kind: 'cluster', uuid: cluster },
    resources: {
      num_sockets: 1, num_vcpus_per_socket: 1, num_threads_per_core: 1, memory_size_mib: 256, power_state: 'ON', power_state_mechanism: { mechanism: 'HARD' },
      hardware_clock_timezone: 'UTC', boot_config: { boot_type: 'LEGACY', boot_device_order_list: ['CDROM', 'DISK', 'NETWORK'] },
      disk_list: [{ device_properties: { device_type: 'DISK', disk_address: { adapter_type: 'SCSI', device_index: 0 } }, data_source_reference: { kind: 'image', uuid: img.metadata.uuid } }],
      nic_list: [{ nic_type: 'NORMAL_NIC', vlan_mode: 'ACCESS', is_connected: true, subnet_reference: { kind: 'subnet', uuid: subnet } }],
    },
  };
  // a VM no host can take: refused naming the field, in v3's error body, and nothing made
  const huge = await prism('POST', '/vms', { metadata: { kind: 'vm' }, spec: { ...spec, name: 'v3huge', resources: { ...spec.resources, memory_size_mib: 4 * 1024 * 1024 } } });
  assert.ok(huge.status >= 400 && huge.status < 500, JSON.stringify(huge.json));
  assert.equal(huge.json.state, 'ERROR');
  assert.deepEqual(Object.keys(huge.json.message_list[0].details), ['spec.resources.memory_size_mib'], JSON.stringify(huge.json));
  assert.equal((await prism('POST', '/vms/list', { filter: 'vm_name==v3huge' })).json.metadata.total_matches, 0);
  const created = await prism('POST', '/vms', { api_version: '3.1.0', metadata: { kind: 'vm', categories_mapping: {}, use_categories_mapping: true }, spec });
  assert.equal(created.status, 202, JSON.stringify(created.json));
  assert.equal(created.json.status.state, 'PENDING');
  assert.equal(typeof created.json.status.execution_context.task_uuid, 'string', 'a string in a create answer (Terraform asserts it)');
  const uuid = created.json.metadata.uuid as string;
  /** Ansible's wait_for_completion: GET the task until SUCCEEDED; FAILED carries error_detail and error_code. */
  const waitTask = async (task: string): Promise<any> => {
    for (let i = 0; i < 600; i++) {
      const t = await prism('GET', `/tasks/${task}`);
      assert.equal(t.status, 200, JSON.stringify(t.json));
      assert.ok(['QUEUED', 'RUNNING', 'SUCCEEDED'].includes(t.json.status), `task ${task}: ${t.json.status}: ${t.json.error_detail} (${t.json.error_code})`);
      if (t.json.status === 'SUCCEEDED') return t.json;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.fail(`task ${task} did not end`);
  };
  const done = await waitTask(created.json.status.execution_context.task_uuid);
  assert.equal(done.entity_reference_list[0].uuid, uuid);

  const got = await prism('GET', `/vms/${uuid}`);
  assert.equal(got.status, 200, JSON.stringify(got.json));
  const r = got.json.status.resources;
  assert.equal(r.power_state, 'ON');
  assert.equal(got.json.status.state, 'COMPLETE');
  assert.ok(Array.isArray(got.json.status.execution_context.task_uuid), 'a list in an entity');
  assert.ok(r.host_reference?.uuid, 'placed on a host');
  assert.deepEqual(r.vnuma_config, { num_vnuma_nodes: 0 });
  assert.equal(r.disk_list[0].data_source_reference.uuid, img.metadata.uuid);
  assert.ok(r.disk_list[0].uuid && r.disk_list[0].disk_size_bytes > 0 && r.disk_list[0].disk_size_mib > 0);
  assert.match(r.nic_list[0].ip_endpoint_list[0].ip, /^10\.10\.0\.\d+$/, "Terraform's wait for an IP");
  await lab.waitConsole('v3vm', /converge-guest: booted /);
  const byName = await prism('POST', '/vms/list', { filter: 'vm_name==v3vm', length: 1 });
  assert.deepEqual(byName.json.entities.map((e: any) => e.metadata.uuid), [uuid]);

  // Terraform's update: metadata from the GET, spec from its status; a stale spec_version first
  const put = (metadata: any, resources: any): ReturnType<VmLab['prism']> => prism('PUT', `/vms/${uuid}`, { api_version: '3.1', metadata, spec: { name: got.json.status.name, cluster_reference: got.json.status.cluster_reference, resources } });
  const stale = await put({ ...got.json.metadata, spec_version: got.json.metadata.spec_version + 5 }, { ...r, power_state: 'OFF' });
  assert.equal(stale.status, 409, JSON.stringify(stale.json));
  assert.equal(stale.json.state, 'ERROR');
  assert.match(stale.json.message_list[0].message, /metadata\.spec_version/);
  const unknown = await put(got.json.metadata, { ...r, colour: 'red' });
  assert.ok(unknown.status >= 400 && unknown.status < 500, JSON.stringify(unknown.json));
  assert.deepEqual(Object.keys(unknown.json.message_list[0].details), ['spec.resources.colour']);
  assert.equal((await lab.vm('v3vm')).powerState, 'on', 'refused changes changed nothing');
  const off = await put(got.json.metadata, { ...r, power_state: 'OFF' });
  assert.equal(off.status, 202, JSON.stringify(off.json));
  await waitTask(off.json.status.execution_context.task_uuid);
  assert.equal((await prism('GET', `/vms/${uuid}`)).json.status.resources.power_state, 'OFF');

  const del = await prism('DELETE', `/vms/${uuid}`);
  assert.equal(del.status, 202, JSON.stringify(del.json));
  assert.equal(typeof del.json.spec, 'string', 'Terraform reads a delete answer\'s spec as a string');
  await waitTask(del.json.status.execution_context.task_uuid);
  const gone = await prism('GET', `/vms/${uuid}`);
  assert.equal(gone.status, 404);
  assert.equal(gone.json.message_list[0].reason, 'ENTITY_NOT_FOUND', 'what Terraform looks for to know it is gone');
});

test("Prism v4 as Nutanix's v4 SDKs drive it: negotiate, list clusters, hosts and VMs, create, update, power on with If-Match, delete", async () => {
  const v4 = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): ReturnType<VmLab['prism']> => lab.prism(method, path, body, headers);
  const info = await v4('OPTIONS', '/api/vmm/unversioned/info');
  assert.equal(info.status, 200);
  const version = info.json.data as string;
  assert.match(version, /^v4\.[2-9]/, 'the SDKs negotiate only with v4.2 or later');
  const clusters = await v4('GET', `/api/clustermgmt/${version}/config/clusters`);
  assert.equal(clusters.status, 200, JSON.stringify(clusters.json));
  assert.equal(clusters.json.data[0].$objectType, 'clustermgmt.v4.config.Cluster');
  const cluster = clusters.json.data[0].extId as string;
  const hosts = await v4('GET', `/api/clustermgmt/${version}/config/clusters/${cluster}/hosts`);
  assert.equal(hosts.json.metadata.totalAvailableResults, 3);
  assert.ok(hosts.json.data.every((h: any) => h.$objectType === 'clustermgmt.v4.config.Host' && h.hypervisor.type === 'AHV'));
  const image = (await v4('GET', `/api/vmm/${version}/content/images?$filter=${encodeURIComponent("name eq 'guest'")}`)).json.data[0].extId as string;
  const subnet = (await v4('GET', `/api/networking/${version}/config/subnets?$filter=${encodeURIComponent("name eq 'red'")}`)).json.data[0].extId as string;
  const before = (await v4('GET', `/api/vmm/${version}/ahv/config/vms`)).json.metadata.totalAvailableResults as number;

  const created = await v4('POST', `/api/vmm/${version}/ahv/config/vms`, {
    name: 'v4vm', numSockets: 1, numCoresPerSocket: 1, memorySizeBytes: 256 * 2 ** 20, cluster: { extId: cluster },
    disks: [{ diskAddress: { busType: 'SCSI', index: 0 }, backingInfo: { $objectType: 'vmm.v4.ahv.config.VmDisk', dataSource: { reference: { $objectType: 'vmm.v4.ahv.config.ImageReference', imageExtId: image } } } }],
    nics: [{ networkInfo: { subnet: { extId: subnet } } }],
  }, { 'NTNX-Request-Id': 'a7d5bd5e-4f5e-4b7e-9a59-000000000001' });
  assert.equal(created.status, 202, JSON.stringify(created.json));
  assert.equal(created.json.data.$objectType, 'prism.v4.config.TaskReference');
  /** The SDK's task wait: GET the task until SUCCEEDED; a FAILED one has its error messages. */
  const waitTask = async (ext: string): Promise<any> => {
    for (let i = 0; i < 600; i++) {
      const t = (await v4('GET', `/api/prism/${version}/config/tasks/${encodeURIComponent(ext)}`)).json.data;
      assert.ok(['QUEUED', 'RUNNING', 'SUCCEEDED'].includes(t.status), `task ${ext}: ${t.status}: ${JSON.stringify(t.errorMessages)}`);
      if (t.status === 'SUCCEEDED') return t;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.fail(`task ${ext} did not end`);
  };
  const task = await waitTask(created.json.data.extId);
  const uuid = task.entitiesAffected.find((e: any) => e.rel === 'vmm:ahv:config:vm').extId as string;
  const listed = await v4('GET', `/api/vmm/${version}/ahv/config/vms`);
  assert.equal(listed.json.metadata.totalAvailableResults, before + 1);
  const got = await v4('GET', `/api/vmm/${version}/ahv/config/vms/${uuid}`);
  assert.equal(got.json.data.powerState, 'OFF', 'a v4 VM is created off');
  const first = got.headers.get('etag') ?? '';
  assert.ok(first, 'an ETag');
  // an update as the SDK makes it: the VM it got, changed, with its ETag (while off: a size change)
  const put = await v4('PUT', `/api/vmm/${version}/ahv/config/vms/${uuid}`, { ...got.json.data, memorySizeBytes: 384 * 2 ** 20 }, { 'If-Match': first });
  assert.equal(put.status, 202, JSON.stringify(put.json));
  await waitTask(put.json.data.extId);
  const updated = await v4('GET', `/api/vmm/${version}/ahv/config/vms/${uuid}`);
  assert.equal(updated.json.data.memorySizeBytes, 384 * 2 ** 20);
  const etag = updated.headers.get('etag') ?? '';
  assert.notEqual(etag, first, 'the ETag moved with the update');
  assert.equal((await v4('POST', `/api/vmm/${version}/ahv/config/vms/${uuid}/$actions/power-on`)).status, 428, 'no If-Match: 428');
  const on = await v4('POST', `/api/vmm/${version}/ahv/config/vms/${uuid}/$actions/power-on`, undefined, { 'If-Match': etag });
  assert.equal(on.status, 202, JSON.stringify(on.json));
  await waitTask(on.json.data.extId);
  await lab.waitConsole('v4vm', /converge-guest: booted /);
  const running = await v4('GET', `/api/vmm/${version}/ahv/config/vms/${uuid}`);
  assert.equal(running.json.data.powerState, 'ON');
  assert.ok(running.json.data.host?.extId, 'on a host');
  assert.match(running.json.data.nics[0].networkInfo.ipv4Config.ipAddress.value, /^10\.10\.0\.\d+$/);
  assert.equal((await v4('DELETE', `/api/vmm/${version}/ahv/config/vms/${uuid}`, undefined, { 'If-Match': etag })).status, 412, 'a stale ETag: 412');
  const del = await v4('DELETE', `/api/vmm/${version}/ahv/config/vms/${uuid}`, undefined, { 'If-Match': running.headers.get('etag') ?? '' });
  assert.equal(del.status, 202, JSON.stringify(del.json));
  await waitTask(del.json.data.extId);
  const gone = await v4('GET', `/api/vmm/${version}/ahv/config/vms/${uuid}`);
  assert.equal(gone.status, 404);
  assert.equal(gone.json.data.$objectType, 'vmm.v4.error.ErrorResponse');
});
