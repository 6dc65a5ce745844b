/**
 * The rolling upgrade under deterministic simulation: a model cluster whose nodes carry out the
 * driver's actions after random delays, a driver that dies at random moments (sometimes after
 * writing the record and before acting), a node that never comes back, a pause. Invariants on every
 * look: at most one CVM down, and only the shutdown token's holder; the nodes go in the plan's order;
 * the end is every node at the target with the token free, or a failure naming the node with the
 * rest serving. SIM_RUNS runs per property (default 150), SIM_SEED replays one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom, type Random } from '../../shared/random.ts';
import { planUpgrade } from './plan.ts';
import { advance, pauseUpgrade, resumeUpgrade, startUpgrade, type Action, type NodeView, type UpgradeTarget } from './upgrade.ts';
import type { BundleOffer, NodeInventory, UpgradeRecord } from '../protocol/lcm.ts';

const RUNS = Number(process.env['SIM_RUNS'] ?? 150);
const SEED0 = Number(process.env['SIM_SEED'] ?? 1);
const TICK = 1000;

const offer: BundleOffer = { version: '1.1.0', hypervisor: '1.1.0', nos: '1.1.0', compatibility: { '1.1.0': ['1.1.0'] }, minFirmware: { bmc: '2.20' }, sha256: 'f'.repeat(64) };
const target: UpgradeTarget = { version: '1.1.0', hypervisor: '1.1.0', nos: '1.1.0', firmware: { bmc: '2.30' } };

interface ModelNode extends NodeView {
  serial: string;
  /** Effects due: [at, change]. */
  due: [number, () => void][];
  /** A node that does not come back from a restart. */
  broken: boolean;
  /** Until when its data is being re-protected after its CVM came back. */
  repairUntil: number;
}

class Cluster {
  readonly nodes: ModelNode[];
  constructor(n: number, private readonly rnd: Random, broken: string | null = null) {
    this.nodes = Array.from({ length: n }, (_, i) => ({
      serial: `SN${i + 1}`, hostUp: true, cvmUp: true, servicesUp: true, hostState: 'up', hypervisor: '1.0.0', nos: '1.0.0', staged: null,
      firmware: { bmc: '2.10', bios: '1.0' }, due: [], broken: broken === `SN${i + 1}`, repairUntil: 0,
    }));
  }
  inventory(): NodeInventory[] {
    return this.nodes.map((m) => ({ serial: m.serial, hostname: `node-${m.serial}`, hostIp: '', cvmIp: '', hypervisor: m.hypervisor, nos: m.nos, bundle: m.nos, firmware: { ...m.firmware } }));
  }
  private later(m: ModelNode, now: number, change: () => void): void {
    m.due.push([now + TICK * (1 + Math.floor(this.rnd.next() * 5)), change]);
  }
  /** Carries out an action (safe to repeat, as the real ones are). */
  act(a: Action, now: number, token: string | null): void {
    const m = this.nodes.find((x) => x.serial === a.node)!;
    switch (a.kind) {
      case 'enter-maintenance':
        if (m.hostState === 'up') m.hostState = 'entering-maintenance';
        return this.later(m, now, () => {
          m.hostState = 'maintenance';
        });
      case 'stop-cvm':
        assert.equal(token, m.serial, `the CVM of ${m.serial} is stopped only by the token's holder (token: ${token})`);
        return this.later(m, now, () => {
          m.cvmUp = false;
        });
      case 'firmware-bmc':
        return this.later(m, now, () => {
          m.firmware.bmc = '2.30';
        });
      case 'firmware-bios':
        return this.later(m, now, () => {
          m.firmware.bios = '2.0';
        });
      case 'install':
        return this.later(m, now, () => {
          m.staged = '1.1.0';
        });
      case 'restart':
        assert.equal(token, m.serial, 'only the token\'s holder restarts');
        if (!m.hostUp) return; // already restarting
        m.hostUp = false;
        m.cvmUp = false;
        if (m.broken) return;
        return this.later(m, now, () => {
          m.hostUp = true;
          if (m.staged === '1.1.0') m.hypervisor = '1.1.0';
          // the CVM starts with its host, a little later
          this.later(m, now + 2 * TICK, () => {
            m.cvmUp = true;
            if (m.staged === '1.1.0') m.nos = '1.1.0';
            m.repairUntil = now + TICK * (5 + Math.floor(this.rnd.next() * 10));
          });
        });
      case 'rejoin':
        return; // nothing to do but wait
      case 'resiliency':
        return;
      case 'exit-maintenance':
        return this.later(m, now, () => {
          m.hostState = 'up';
        });
    }
  }
  tick(now: number): void {
    for (const m of this.nodes) {
      const due = m.due.filter(([at]) => at <= now);
      m.due = m.due.filter(([at]) => at > now);
      for (const [, change] of due) change();
    }
  }
  look(now: number): { now: number; nodes: Record<string, NodeView>; resiliencyOk: boolean } {
    return {
      now, resiliencyOk: this.nodes.every((m) => m.cvmUp && m.repairUntil <= now),
      nodes: Object.fromEntries(this.nodes.map((m) => [m.serial, { hostUp: m.hostUp, cvmUp: m.cvmUp, servicesUp: m.cvmUp, hostState: m.hostState, hypervisor: m.hostUp ? m.hypervisor : null, nos: m.cvmUp ? m.nos : null, staged: m.staged, firmware: { ...m.firmware } }])),
    };
  }
}

interface Run {
  record: UpgradeRecord;
  cluster: Cluster;
  drivers: number;
  order: string[];
}

/** Drives an upgrade to its end (or `maxTicks`), the driver dying with probability `deaths` per look. */
function drive(seed: number, o: { nodes?: number; deaths?: number; broken?: string; pauseAt?: number; maxTicks?: number } = {}): Run {
  const rnd = new SeededRandom(seed);
  const cluster = new Cluster(o.nodes ?? 2 + Math.floor(rnd.next() * 4), rnd, o.broken ?? null);
  const { plan, refusals } = planUpgrade(cluster.inventory(), offer, { firmware: { bmc: '2.30' } });
  assert.deepEqual(refusals, []);
  let now = 1_700_000_000_000;
  let record = startUpgrade('u1', plan, offer.sha256, now);
  let driver = 0;
  const order: string[] = [];
  for (let t = 0; t < (o.maxTicks ?? 2000); t++) {
    now += TICK;
    cluster.tick(now);
    if (o.pauseAt === t) record = pauseUpgrade(record, now);
    const seen = cluster.look(now);
    // invariants: at most one CVM down, and it is the token holder's
    const down = cluster.nodes.filter((m) => !m.cvmUp).map((m) => m.serial);
    assert.ok(down.length <= 1, `seed ${seed}: CVMs down at once: ${down.join(', ')}`);
    if (down.length === 1 && record.state === 'running') assert.equal(record.token, down[0], `seed ${seed}: a CVM down without the token`);
    const { record: next, actions } = advance(record, seen, target, `d${driver}`);
    for (const n of next.nodes) if (n.state === 'running' && order.at(-1) !== n.serial) order.push(n.serial);
    record = next; // written to etcd
    if (rnd.next() < (o.deaths ?? 0)) {
      driver++; // the driving CVM died: sometimes before it acted on what it wrote
      if (rnd.next() < 0.5) continue;
    }
    for (const a of actions) cluster.act(a, now, record.token);
    if (record.state !== 'running') break;
  }
  return { record, cluster, drivers: driver + 1, order };
}

/** Resumes a stopped run and drives it (one driver) until it stops again. */
function resumed(r: Run, driver: string): UpgradeRecord {
  let rec = resumeUpgrade(r.record, Date.parse(r.record.updatedAt));
  let now = Date.parse(rec.updatedAt);
  for (let t = 0; t < 4000 && rec.state === 'running'; t++) {
    now += TICK;
    r.cluster.tick(now);
    const { record, actions } = advance(rec, r.cluster.look(now), target, driver);
    rec = record;
    for (const a of actions) r.cluster.act(a, now, rec.token);
  }
  return rec;
}

test('every node reaches the target one at a time, in the plan\'s order, whoever drives and whenever the driver dies', () => {
  for (let i = 0; i < RUNS; i++) {
    const seed = SEED0 + i;
    const r = drive(seed, { deaths: 0.08 });
    assert.equal(r.record.state, 'succeeded', `seed ${seed}: ${r.record.state} ${r.record.error ?? ''}`);
    assert.equal(r.record.token, null);
    assert.deepEqual(r.order, r.record.plan.nodes.map((n) => n.serial), `seed ${seed}: the plan's order`);
    for (const m of r.cluster.nodes) {
      assert.deepEqual([m.hypervisor, m.nos, m.firmware.bmc, m.hostState, m.cvmUp], ['1.1.0', '1.1.0', '2.30', 'up', true], `seed ${seed}: ${m.serial}`);
    }
  }
});

test('a node that does not come back stops the upgrade at it, naming it and what to do; the others serve and later nodes are untouched', () => {
  for (let i = 0; i < 30; i++) {
    const seed = SEED0 + 1000 + i;
    const r = drive(seed, { nodes: 3, broken: 'SN2', deaths: 0.05 });
    assert.equal(r.record.state, 'failed', `seed ${seed}`);
    const failed = r.record.nodes.find((n) => n.state === 'failed');
    assert.equal(failed?.serial, 'SN2');
    assert.match(r.record.error ?? '', /node-SN2: restart did not finish within 15 min \(host not answering, CVM down\)\. The other nodes are serving; the node did not come back: power it on through its BMC .*converge lcm resume/);
    assert.equal(r.record.token, 'SN2', 'the token stays with the node that is down: nothing else is taken down');
    const sn3 = r.cluster.nodes.find((m) => m.serial === 'SN3');
    assert.deepEqual([sn3?.nos, sn3?.cvmUp, sn3?.hostState], ['1.0.0', true, 'up'], 'the next node was not touched');
    // repaired by hand (the node powered on), resumed: it goes on to the end
    const m = r.cluster.nodes.find((x) => x.serial === 'SN2')!;
    m.broken = false;
    Object.assign(m, { hostUp: true, hypervisor: '1.1.0', cvmUp: true, nos: '1.1.0' });
    const rec = resumed(r, 'after');
    assert.equal(rec.state, 'succeeded', `seed ${seed}: after resume: ${rec.error ?? ''}`);
  }
});

test('a pause takes effect between nodes, never with a node down; resume goes on to the end', () => {
  for (let i = 0; i < 30; i++) {
    const seed = SEED0 + 2000 + i;
    const r = drive(seed, { nodes: 4, pauseAt: 3 });
    assert.equal(r.record.state, 'paused', `seed ${seed}`);
    assert.equal(r.record.token, null);
    assert.ok(r.cluster.nodes.every((m) => m.cvmUp && m.hostUp && m.hostState === 'up'), 'paused with every node serving');
    assert.equal(r.record.nodes.filter((n) => n.state === 'done').length, 1, 'the node in progress finished first');
    assert.equal(resumed(r, 'd').state, 'succeeded', `seed ${seed}`);
  }
});

test('advance leaves a record that is not running alone, and says each step once per driver', () => {
  const r = drive(7, { nodes: 2 });
  assert.equal(advance(r.record, r.cluster.look(Date.now()), target, 'x').actions.length, 0);
  const asked = r.record.events.filter((e) => /asked again/.test(e.message));
  assert.equal(asked.length, 0, 'one driver asks each step once');
});
