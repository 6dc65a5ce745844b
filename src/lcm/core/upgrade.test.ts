/**
 * The rolling upgrade's record: step time limits given for one upgrade (converge lcm upgrade
 * --step-timeout) replace the defaults for it alone; events are kept newest last, at most 200.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planUpgrade } from './plan.ts';
import { advance, noteEvent, startUpgrade, type NodeView, type Observation } from './upgrade.ts';
import type { BundleOffer, NodeInventory } from '../protocol/lcm.ts';

const offer: BundleOffer = { version: '1.1.0', hypervisor: '1.1.0', nos: '1.1.0', compatibility: { '1.1.0': ['1.1.0'] }, minFirmware: {}, sha256: 'f'.repeat(64) };
const target = { version: '1.1.0', hypervisor: '1.1.0', nos: '1.1.0', firmware: {} };
const inv: NodeInventory[] = ['SN1', 'SN2'].map((s) => ({ serial: s, hostname: `node-${s}`, hostIp: '', cvmIp: '', hypervisor: '1.0.0', nos: '1.0.0', bundle: '1.0.0', firmware: { bmc: null, bios: null } }));
const view = (o: Partial<NodeView> = {}): NodeView => ({ hostUp: true, cvmUp: true, servicesUp: true, hostState: 'up', hypervisor: '1.0.0', nos: '1.0.0', staged: null, firmware: { bmc: null, bios: null }, ...o });
const look = (now: number, sn1: Partial<NodeView>): Observation => ({ now, nodes: { SN1: view(sn1), SN2: view() }, resiliencyOk: true });

test('a step limit given for the upgrade stops it at that limit, said in seconds; the defaults hold for the others', () => {
  const { plan } = planUpgrade(inv, offer);
  let rec = startUpgrade('u', plan, offer.sha256, 0, { restart: 40_000 });
  assert.deepEqual(rec.limits, { restart: 40_000 });
  assert.equal(startUpgrade('u', plan, offer.sha256, 0, {}).limits, undefined, 'no overrides: no field');
  // through maintenance, CVM stop and install to the restart
  for (const [t, seen] of [[1, {}], [2, { hostState: 'maintenance' }], [3, { hostState: 'maintenance', cvmUp: false }], [4, { hostState: 'maintenance', cvmUp: false, staged: '1.1.0' }]] as const) {
    rec = advance(rec, look(t * 1000, seen), target, 'd').record;
  }
  assert.equal(plan.nodes[0]?.steps[rec.nodes[0]?.step ?? -1]?.kind, 'restart');
  const down = { hostState: 'maintenance', cvmUp: false, hostUp: false, staged: '1.1.0' };
  assert.equal(advance(rec, look(4000 + 40_000, down), target, 'd').record.state, 'running', 'at the limit: still running');
  const over = advance(rec, look(4000 + 41_000, down), target, 'd').record;
  assert.equal(over.state, 'failed');
  assert.match(over.error ?? '', /node-SN1: restart did not finish within 40 s \(host not answering, CVM down\)/);
  // the same upgrade without the override waits the default 15 minutes
  const { limits: _, ...plain } = rec;
  assert.equal(advance(plain, look(4000 + 14 * 60_000, down), target, 'd').record.state, 'running');
});

test('events: one more, newest last, at most 200 kept', () => {
  const { plan } = planUpgrade(inv, offer);
  let rec = startUpgrade('u', plan, offer.sha256, 0);
  for (let i = 0; i < 250; i++) rec = noteEvent(rec, 'SN1', `e${i}`, i);
  assert.equal(rec.events.length, 200);
  assert.equal(rec.events.at(-1)?.message, 'e249');
  assert.equal(rec.events[0]?.message, 'e50');
  assert.equal(rec.updatedAt, new Date(249).toISOString());
});

test('a firmware-only node: its restart is seen as a host started after the step began, not as the versions (they do not change)', () => {
  const atTarget = inv.map((n) => ({ ...n, hypervisor: '1.1.0', nos: '1.1.0', bundle: '1.1.0', firmware: { bmc: '2.0.0', bios: '1.0.0' } }));
  const fw: BundleOffer = { ...offer, minFirmware: { bmc: '3.0.0' }, firmwareImages: { bmc: '3.1.0' } };
  const { plan, refusals } = planUpgrade(atTarget, fw, { firmware: { bmc: '3.1.0' } });
  assert.deepEqual(refusals, []);
  assert.deepEqual(plan.nodes[0]?.steps.map((s) => s.kind), ['enter-maintenance', 'stop-cvm', 'firmware-bmc', 'restart', 'rejoin', 'resiliency', 'exit-maintenance']);
  const t = { ...target, firmware: { bmc: '3.1.0' } };
  const up = { hypervisor: '1.1.0', nos: '1.1.0', hostState: 'maintenance' };
  let rec = startUpgrade('u', plan, fw.sha256, 0);
  for (const [at, seen] of [[1, {}], [2, { hostState: 'maintenance' }], [3, { ...up, cvmUp: false }], [4, { ...up, cvmUp: false, firmware: { bmc: '3.1.0', bios: null } }]] as const) {
    rec = advance(rec, look(at * 1000, { hypervisor: '1.1.0', nos: '1.1.0', ...seen }), t, 'd').record;
  }
  assert.equal(plan.nodes[0]?.steps[rec.nodes[0]?.step ?? -1]?.kind, 'restart');
  const since = Date.parse(rec.nodes[0]?.since ?? '');
  const still = advance(rec, look(20_000, { ...up, cvmUp: false, firmware: { bmc: '3.1.0', bios: null }, hostStartedAt: -3_600_000 }), t, 'd').record;
  assert.equal(plan.nodes[0]?.steps[still.nodes[0]?.step ?? -1]?.kind, 'restart', 'the host up since before the step: not restarted');
  const again = advance(rec, look(30_000, { ...up, cvmUp: false, firmware: { bmc: '3.1.0', bios: null }, hostStartedAt: since + 8000 }), t, 'd').record;
  assert.equal(plan.nodes[0]?.steps[again.nodes[0]?.step ?? -1]?.kind, 'rejoin');
});
