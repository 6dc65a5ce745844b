/**
 * A real third-party Redfish client, Debian's python3-sushy, drives a rack BMC: lists the system,
 * reads processors, memory and drives, sets a one-time Cd boot, inserts and ejects virtual media,
 * powers the node on and off.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { TestRack, PASSWORD } from '../drivers/rack-driver.ts';

const run = promisify(execFile);
let tr: TestRack;

before(async () => {
  tr = await TestRack.start('127.35', { nodes: 1 });
});
after(async () => {
  await tr.stop();
});

test('sushy drives the BMC end to end', async () => {
  assert.ok(existsSync('/usr/lib/python3/dist-packages/sushy'), 'python3-sushy is installed (scripts/test.sh installs it)');
  const script = fileURLToPath(new URL('./sushy_client.py', import.meta.url));
  // requests would prefer REQUESTS_CA_BUNDLE over the CA we pass; the rack's CA is what must be trusted
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['REQUESTS_CA_BUNDLE'];
  delete env['CURL_CA_BUNDLE'];
  const n = tr.node(0);
  const { stdout } = await run('/usr/bin/python3', [script, `${tr.rack.bmcUrl(n.identity.bmcIp)}/redfish/v1`, 'admin', PASSWORD, tr.rack.layout.caCert, 'http://127.0.0.1:9/installer.tar'], { env, timeout: 60_000 });
  const out = JSON.parse(stdout.trim().split('\n').pop()!);
  assert.deepEqual(out.system, { id: '1', serial: n.serial, power: 'Off' });
  assert.deepEqual(out.processors, { count: 64, arch: 'x86' });
  assert.equal(out.memory_gib, 256);
  assert.equal(out.drives.length, 7, '6 data disks and the boot device');
  assert.deepEqual(out.drive_media, ['HDD', 'SSD']);
  assert.deepEqual(out.nics, n.inventory.nics.map((x) => x.mac).sort());
  assert.deepEqual(out.boot, ['Cd', 'Once']);
  assert.deepEqual(out.media, ['http://127.0.0.1:9/installer.tar', true]);
  assert.equal(out.power_after_on, 'On');
  assert.equal(out.power_after_off, 'Off');
  assert.deepEqual(out.media_after_eject, [null, false]);
  assert.equal(out.chassis, 'Sled');
  assert.equal(out.update_service, 'UpdateService');
  assert.equal(out.session_auth, 'SessionOrBasicAuth');
  // the insert really reached the node: its system event log records it
  assert.ok(n.eventLog().some((e) => e.message.startsWith('Virtual media inserted')));
});
