import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planText, planUpgrade } from './plan.ts';
import type { BundleOffer, NodeInventory } from '../protocol/lcm.ts';

const node = (i: number, o: Partial<NodeInventory> = {}): NodeInventory => ({
  serial: `SN${i}`, hostname: `node-${i}`, hostIp: `10.0.0.${i}`, cvmIp: `10.0.1.${i}`,
  hypervisor: '1.0.0', nos: '1.0.0', bundle: '1.0.0', firmware: { bmc: '2.10', bios: 'U46 v2.68' }, ...o,
});
const target: BundleOffer = { version: '1.1.0', hypervisor: '1.1.0', nos: '1.1.0', compatibility: { '1.1.0': ['1.1.0', '1.0.0'] }, minFirmware: {}, sha256: 'a'.repeat(64) };
const nodes = [node(2), node(1), node(3)];

test('a plan: every node one at a time in the order asked, each through maintenance, install, restart, rejoin, resiliency', () => {
  const { plan, refusals } = planUpgrade(nodes, target, { order: ['SN3', 'SN1', 'SN2'] });
  assert.deepEqual(refusals, []);
  assert.deepEqual(plan.nodes.map((n) => n.serial), ['SN3', 'SN1', 'SN2']);
  assert.deepEqual(plan.nodes[0]?.steps.map((s) => s.kind), ['enter-maintenance', 'stop-cvm', 'install', 'restart', 'rejoin', 'resiliency', 'exit-maintenance']);
  assert.deepEqual(planUpgrade(nodes, target).plan.nodes.map((n) => n.serial), ['SN1', 'SN2', 'SN3'], 'by serial when no order is given');
  const text = planText(plan, refusals);
  assert.match(text, /^Upgrade to 1\.1\.0: 3 node\(s\), one at a time/);
  assert.match(text, /1\.3 install +hypervisor 1\.0\.0 → 1\.1\.0 and storage OS 1\.0\.0 → 1\.1\.0/);
});

test('nodes already at the target are left out; all at it: nothing to do', () => {
  const { plan } = planUpgrade([node(1, { hypervisor: '1.1.0', nos: '1.1.0', bundle: '1.1.0' }), node(2)], target);
  assert.deepEqual(plan.nodes.map((n) => n.serial), ['SN2']);
  assert.deepEqual(plan.current, ['SN1']);
  const done = planUpgrade([node(1, { hypervisor: '1.1.0', nos: '1.1.0' })], target);
  assert.match(planText(done.plan, done.refusals), /already runs 1\.1\.0: nothing to do/);
});

test('what the matrix forbids is refused, naming the pair', () => {
  const own = planUpgrade(nodes, { ...target, compatibility: { '1.1.0': ['1.0.0'] } });
  assert.deepEqual(own.refusals.map((r) => r.field), ['compatibility']);
  assert.match(own.refusals[0]?.reason ?? '', /storage OS 1\.1\.0 does not support its own hypervisor 1\.1\.0/);
  const from = planUpgrade(nodes, { ...target, upgradeFrom: ['1.0.5'] });
  assert.equal(from.refusals.length, 3);
  assert.match(from.refusals[0]?.reason ?? '', /1\.1\.0 does not upgrade from 1\.0\.0 \(node-1\); it upgrades from 1\.0\.5/);
  const down = planUpgrade([node(1, { bundle: '2.0.0', nos: '2.0.0' })], target);
  assert.match(down.refusals[0]?.reason ?? '', /runs 2\.0\.0, newer than 1\.1\.0: LCM does not downgrade/);
  const proto = planUpgrade(nodes, { ...target, cvmProtocol: { version: 3, compatibleFrom: 2 } }, { protocols: { SN1: 2, SN2: 1, SN3: 2 } });
  assert.deepEqual(proto.refusals.map((r) => r.field), ['cvmProtocol']);
  assert.match(proto.refusals[0]?.reason ?? '', /cannot run beside storage OS 1\.0\.0 on node-2 \(protocol 1\)/);
  const gone = planUpgrade([node(1, { nos: null })], target);
  assert.deepEqual(gone.refusals.map((r) => r.field), ['node.SN1']);
  assert.match(planText(gone.plan, gone.refusals), /^REFUSED: the upgrade to 1\.1\.0 is not allowed:\n {2}node\.SN1: node-1 does not answer/);
});

test('firmware below the bundle\'s minimum: updated inside the maintenance window when an image is at hand, else refused', () => {
  const needs = { ...target, minFirmware: { bmc: '2.20', bios: 'U46 v2.70' } };
  const { plan, refusals } = planUpgrade([node(1)], needs, { firmware: { bmc: '2.30', bios: '2.72' } });
  assert.deepEqual(refusals, []);
  assert.deepEqual(plan.nodes[0]?.steps.map((s) => s.kind), ['enter-maintenance', 'stop-cvm', 'firmware-bmc', 'firmware-bios', 'install', 'restart', 'rejoin', 'resiliency', 'exit-maintenance']);
  assert.match(plan.nodes[0]?.steps[2]?.detail ?? '', /BMC firmware 2\.10 → 2\.30/);
  const none = planUpgrade([node(1)], needs, { firmware: { bmc: '2.15' } });
  assert.deepEqual(none.refusals.map((r) => r.field), ['firmware.bmc', 'firmware.bios']);
  assert.match(none.refusals[0]?.reason ?? '', /node-1 has BMC firmware 2\.10; 1\.1\.0 needs 2\.20 or later/);
  // software current, firmware behind: a firmware-only pass
  const fw = planUpgrade([node(1, { hypervisor: '1.1.0', nos: '1.1.0' })], needs, { firmware: { bmc: '2.30', bios: '2.72' } });
  assert.deepEqual(fw.plan.nodes[0]?.steps.map((s) => s.kind), ['enter-maintenance', 'stop-cvm', 'firmware-bmc', 'firmware-bios', 'restart', 'rejoin', 'resiliency', 'exit-maintenance']);
  const unread = planUpgrade([node(1, { firmware: { bmc: null, bios: 'U46 v2.80' } })], needs, { firmware: { bmc: '2.30' } });
  assert.match(unread.refusals[0]?.reason ?? '', /BMC firmware version was not read/);
});
