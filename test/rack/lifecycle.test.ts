/**
 * Rack start and BMC restarts: the order nodes come in, a BMC whose saved address is taken when
 * the rack starts again, and connections that a BMC reboot must drop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createNetServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch as ufetch } from 'undici';
import { TestRack, PASSWORD } from '../drivers/rack-driver.ts';

const SYS = '/redfish/v1/Systems/1';

test('nodes come in rack order; a saved BMC address that is taken falls back to the default one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-life-'));
  let tr: TestRack | undefined;
  const blocker = createNetServer();
  try {
    tr = await TestRack.start('127.38', { nodes: 8 }, dir);
    assert.equal(tr.rack.ssdpActive, true, 'SSDP is bound when start() returns (the daemon logs it right after)');
    const order = tr.rack.config.nodes.map((n) => n.serial);
    assert.deepEqual(tr.rack.nodes.map((n) => n.serial), order);
    assert.deepEqual(tr.rack.status().nodes.map((n) => n.serial), order);
    const n1 = tr.node(1);
    await tr.stop(true);
    // node 2 had moved to 127.38.5.5; now something else has that address
    const state = JSON.parse(readFileSync(n1.layout.state, 'utf8'));
    state.bmcNetwork.address = '127.38.5.5';
    writeFileSync(n1.layout.state, JSON.stringify(state));
    await new Promise<void>((r) => blocker.listen(8443, '127.38.5.5', r));
    tr = await TestRack.start('127.38', {}, dir);
    assert.deepEqual(tr.rack.nodes.map((n) => n.serial), order);
    const again = tr.node(1);
    assert.equal(tr.rack.summary(again).bmc.ip, again.identity.bmcIp);
    assert.equal(again.state.bmcNetwork.address, again.identity.bmcIp);
    assert.equal(JSON.parse(readFileSync(again.layout.state, 'utf8')).bmcNetwork.address, again.identity.bmcIp);
    assert.equal(again.hardware('Hdd').bmc.ip, again.identity.bmcIp);
    assert.ok(tr.logs.some((l) => l.includes('127.38.5.5') && l.includes(again.identity.bmcIp)), tr.logs.join('\n'));
    assert.equal((await tr.redfish(1).get(SYS)).status, 200);
  } finally {
    await tr?.stop(true).catch(() => undefined);
    await new Promise<void>((r) => (blocker.listening ? blocker.close(() => r()) : r()));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Manager.Reset drops the connections already open, not only new ones', async () => {
  const tr = await TestRack.start('127.38', { nodes: 1, pace: 0.01 });
  const agent = new Agent({ connect: { ca: readFileSync(tr.rack.layout.caCert, 'utf8') }, keepAliveTimeout: 30_000, connections: 1 });
  const base = tr.rack.bmcUrl(tr.node(0).identity.bmcIp);
  const headers = { Authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`, 'Content-Type': 'application/json' };
  try {
    const first = await ufetch(`${base}${SYS}`, { headers, dispatcher: agent });
    assert.equal(first.status, 200);
    await first.arrayBuffer();
    const reset = await ufetch(`${base}/redfish/v1/Managers/1/Actions/Manager.Reset`, { method: 'POST', headers, body: '{"ResetType":"GracefulRestart"}', dispatcher: agent });
    assert.equal(reset.status, 204, 'the reset is answered');
    await reset.arrayBuffer();
    await assert.rejects(async () => {
      const r = await ufetch(`${base}${SYS}`, { headers, dispatcher: agent });
      await r.arrayBuffer();
    }, 'the BMC is rebooting: the open connection is gone and new ones are refused');
    await tr.until(async () => {
      try {
        const r = await ufetch(`${base}${SYS}`, { headers, dispatcher: agent });
        await r.arrayBuffer();
        return r.status === 200;
      } catch {
        return false;
      }
    }, 5000, 'the BMC back after its reboot');
  } finally {
    await agent.close();
    await tr.stop();
  }
});
