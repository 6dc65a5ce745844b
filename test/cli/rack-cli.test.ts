/**
 * The `converge rack` commands as a user runs them: a background rack that outlives the command,
 * status, faults, down and up again with everything restored, and clear errors for bad input.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cvg } from '../drivers/cli.ts';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch as ufetch } from 'undici';

const dir = mkdtempSync(join(tmpdir(), 'cvg-cli-'));


after(async () => {
  await cvg('rack', 'down', '--data-dir', dir);
  rmSync(dir, { recursive: true, force: true });
});

test('rack up, token, status, fault, down, up again: the rack comes back as it was', async () => {
  const t0 = Date.now();
  const up = await cvg('rack', 'up', '--nodes', '4', '--data-dir', dir, '--bmc-network', '127.36', '--pace', '0', '--json');
  const upMs = Date.now() - t0;
  assert.equal(up.code, 0, up.stderr);
  const s = JSON.parse(up.stdout);
  assert.equal(s.nodes.length, 4);
  assert.ok(upMs < 30_000, `rack up took ${upMs} ms`); // a hang guard; its speed is measured by bench/rack
  assert.match(s.bmcPassword, /^\S{16}$/, 'a generated password is shown once');
  assert.deepEqual(s.nodes.map((n: { position: string }) => n.position), ['A', 'B', 'C', 'D']);
  const password: string = s.bmcPassword;

  // the rack outlives the command that started it: power node 2 on over Redfish
  const agent = new Agent({ connect: { ca: readFileSync(join(dir, 'rack/ca/ca.crt'), 'utf8') } });
  const auth = { Authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`, 'Content-Type': 'application/json' };
  const r = await ufetch('https://127.36.0.2:8443/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', { method: 'POST', headers: auth, body: '{"ResetType":"On"}', dispatcher: agent });
  assert.equal(r.status, 204);

  // the control API needs the token that rack up made (rack token prints it; --rotate replaces it)
  const tokenFile = join(dir, 'rack/control-token');
  assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
  const t1 = JSON.parse((await cvg('rack', 'token', '--data-dir', dir, '--json')).stdout);
  assert.deepEqual([t1.token, t1.file], [readFileSync(tokenFile, 'utf8').trim(), tokenFile]);
  assert.equal((await ufetch('http://127.36.255.254:8080/rack')).status, 401);
  assert.equal((await ufetch('http://127.36.255.254:8080/rack', { headers: { Authorization: `Bearer ${t1.token}` } })).status, 200);
  const rotated = await cvg('rack', 'token', '--rotate', '--data-dir', dir);
  assert.equal(rotated.code, 0, rotated.stderr);
  const t2 = rotated.stdout.trim();
  assert.notEqual(t2, t1.token);
  assert.equal((await ufetch('http://127.36.255.254:8080/rack', { headers: { Authorization: `Bearer ${t1.token}` } })).status, 401, 'the old token stops working');
  assert.ok(!readFileSync(join(dir, 'rack/rack.log'), 'utf8').includes(t2), 'the rack log does not show the token');

  const fault = await cvg('rack', 'fault', '3', '--nic-down', 'NIC1', '--data-dir', dir, '--json');
  assert.equal(fault.code, 0, fault.stderr);
  assert.deepEqual(JSON.parse(fault.stdout).faults.nicLinkDown, ['NIC1']);
  const table = await cvg('rack', 'status', '--data-dir', dir);
  assert.match(table.stdout, /SERIAL\s+BLOCK\/POS\s+MODEL\s+BMC\s+BMC MAC\s+POWER/);
  assert.match(table.stdout, /https:\/\/127\.36\.0\.3:8443.*NIC1 down/);

  const down = await cvg('rack', 'down', '--data-dir', dir);
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stdout, /Rack stopped \(4 nodes\)/);
  const st = await cvg('rack', 'status', '--data-dir', dir, '--json');
  assert.equal(JSON.parse(st.stdout).running, false);
  await assert.rejects(ufetch('https://127.36.0.1:8443/redfish/v1/', { dispatcher: agent }));

  const up2 = await cvg('rack', 'up', '--data-dir', dir, '--json');
  assert.equal(up2.code, 0, up2.stderr);
  const s2 = JSON.parse(up2.stdout);
  assert.deepEqual(s2.nodes.map((n: { serial: string }) => n.serial), s.nodes.map((n: { serial: string }) => n.serial));
  assert.equal(s2.bmcPassword, undefined, 'the password is not shown again');
  assert.equal(s2.nodes[1].power === 'On' || s2.nodes[1].power === 'PoweringOn', true, 'node 2 was on and is powered again');
  assert.equal(s2.nodes[0].power, 'Off');
  assert.deepEqual(s2.nodes[2].faults.nicLinkDown, ['NIC1']);
  const console2 = await cvg('rack', 'console', s.nodes[1].serial, '--data-dir', dir, '--json');
  assert.ok(JSON.parse(console2.stdout).lines.some((l: string) => l.includes('power restore policy')));

  const add = await cvg('rack', 'add', '--nodes', '2', '--model', 'CVG-F1120', '--data-dir', dir, '--json');
  assert.equal(add.code, 0, add.stderr);
  assert.deepEqual(JSON.parse(add.stdout).nodes.map((n: { bmc: { ip: string } }) => n.bmc.ip), ['127.36.0.5', '127.36.0.6']);
  await agent.close();
});

test('bad input: exit code 2 and a message naming the field', async () => {
  const r = await cvg('rack', 'up', '--nodes', 'many', '--data-dir', join(dir, 'other'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /nodes: "many" is not a number/);
  const m = await cvg('rack', 'up', '--nodes', '2', '--model', 'NX-1', '--data-dir', join(dir, 'other2'), '--json');
  assert.equal(m.code, 2);
  const e = JSON.parse(m.stdout).error;
  assert.equal(e.field, 'model');
  assert.ok(e.allowed.includes('CVG-H1065'));
  const n = await cvg('rack', 'status', '--data-dir', join(dir, 'none'));
  assert.equal(n.code, 1);
  assert.match(n.stderr, /no rack in .*rack up --nodes/);
});
