/**
 * Foundation restarts mid-imaging (issue 10). The nodes it was imaging are failed ("Foundation
 * restarted; retry the node") but go on without it: each installer finishes, reboots into the
 * hypervisor, and the CVM takes the leases on the data disks. The first retry of each node must
 * succeed.
 *
 * What the retry meets on the node: the old hypervisor and CVM, which its power-off kills. The
 * killed CVM was the hypervisor's child, so init adopts it and reaps it when it gets to it (1-2 s
 * later on the lab machines, never under a PID 1 that does not reap); until then `kill(pid, 0)`
 * still finds it, and the installer was refused the disks as "held by the CVM at … (pid …)". The
 * test does not bet on how late this machine's init is: it hands each lease to a dead, unreaped
 * process, as the installer finds it when init is late.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestFoundation } from '../drivers/foundation-driver.ts';
import { zombie } from '../drivers/zombie.ts';
import { DISK_LEASE } from '../../src/shared/disk-volume.ts';
import { processAlive } from '../../src/shared/processes.ts';

const NODES = [0, 1, 2];
let t: TestFoundation;
before(async () => {
  t = await TestFoundation.start('127.93', 18093, NODES.length);
  await t.upload();
});
after(async () => {
  await t.stop();
});

const leasePath = (i: number, disk: number): string => {
  const node = t.tr.node(i);
  const d = node.inventory.disks[disk]!;
  return join(node.layout.disk(d.slot, d.serial), DISK_LEASE);
};

/** The lease on a data disk of node i: { owner, pid }, or undefined. */
function lease(i: number, disk: number): { owner: string; pid: number } | undefined {
  try {
    return JSON.parse(readFileSync(leasePath(i, disk), 'utf8')) as { owner: string; pid: number };
  } catch {
    return undefined;
  }
}

test('Foundation restarts mid-imaging: the first retry of each node succeeds, though its old CVM held the disks', async () => {
  const r = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.94', NODES));
  assert.equal(r.status, 200, r.text);
  const sid = r.json.session_id as string;
  // mid-imaging: every installer has its bundle (verified at 45 %) and is writing the disks
  await t.tr.until(async () => {
    const p = (await t.call('GET', `/foundation/progress?session_id=${sid}`)).json;
    return p.nodes.every((n: any) => n.percent_complete >= 44);
  }, 60_000, 'every node to have its bundle');
  await t.restart();
  const cut = (await t.call('GET', `/foundation/progress?session_id=${sid}`)).json;
  assert.equal(cut.imaging_stopped, true);
  const failed = cut.nodes.filter((n: any) => n.stage === 'failed');
  assert.ok(failed.length > 0, JSON.stringify(cut.nodes.map((n: any) => n.status)));
  for (const n of failed) assert.match(n.status, /^fatal: Foundation restarted/);
  const idx: number[] = failed.map((n: any) => NODES.find((i) => t.tr.node(i).serial === n.node_serial)!);

  // without Foundation the nodes go on: installed, rebooted, and each CVM holds its node's data disks
  await t.tr.until(() => idx.every((i) => {
    const l = lease(i, 0);
    return l !== undefined && l.owner.startsWith('the CVM') && processAlive(l.pid);
  }), 60_000, 'the old CVMs to hold their disks');
  const oldCvms = idx.map((i) => lease(i, 0)!.pid);
  const dead = await zombie();
  try {
    for (const i of idx) {
      for (let d = 0; d < t.tr.node(i).inventory.disks.length; d++) {
        const l = lease(i, d);
        assert.ok(l, `node ${i} disk ${d} is leased`);
        writeFileSync(leasePath(i, d), JSON.stringify({ owner: l.owner, pid: dead.pid }));
      }
    }
    for (const i of idx) {
      const retry = await t.call('POST', `/foundation/retry_node?session_id=${sid}&serial=${t.tr.node(i).serial}`);
      assert.equal(retry.status, 200, retry.text);
    }
    const p = await t.waitStopped(sid, 120_000);
    assert.equal(p.aggregate_percent_complete, 100, JSON.stringify(p.nodes.map((n: any) => n.status)));
  } finally {
    dead.keeper.kill('SIGKILL');
  }
  for (const [k, i] of idx.entries()) {
    const log = (await t.call('GET', `/foundation/node_log?session_id=${sid}&serial=${t.tr.node(i).serial}`)).text;
    assert.doesNotMatch(log, /held by/, log);
    assert.match(log, /retry requested[\s\S]*node powered off[\s\S]*insert the installer[\s\S]*CVM up/, log);
    assert.equal(processAlive(oldCvms[k]!), false, `the old CVM of node ${i} is gone`);
    assert.equal(t.tr.node(i).state.power.running?.name, 'converge-hypervisor');
    assert.notEqual(lease(i, 0)?.pid, dead.pid, 'the new CVM holds the disks');
  }
});
