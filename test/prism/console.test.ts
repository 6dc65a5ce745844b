/**
 * @module
 * Prism's browser console on a 3-node lab with real QEMU guests, driven in Debian's Chromium as a
 * user would: log in, upload the guest image with a progress bar, create a subnet, create a VM from
 * the image through the wizard and watch its task finish, see its console's boot line in the page
 * and its write throughput in the chart, put its host in maintenance (it moves away live), power it off, and see an alert appear when a disk is
 * failed through the rack, acknowledge it, and see it clear when the disk is repaired. With CONVERGE_SCREENSHOTS=docs/images it
 * refreshes the docs' screenshots of every page.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { VmLab } from '../drivers/vm-lab.ts';

const SHOTS = process.env['CONVERGE_SCREENSHOTS'] ?? join(tmpdir(), 'converge-screenshots');
mkdirSync(SHOTS, { recursive: true });

let lab: VmLab;
let browser: Browser;
let page: Page;

before(async () => {
  lab = await VmLab.start('127.138', 18138, '127.139');
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
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
