/**
 * @module
 * The rolling upgrade as a state machine (pure, ADR 018). The record lives in etcd; whichever CVM
 * leads LCM (the driver) looks at the cluster, calls `advance`, writes the record back and carries
 * out the actions it returns. Every step is done when the cluster is seen in the state it leads to
 * (a host in maintenance, a CVM down, the new version staged on the boot disk, the node answering
 * with the new hypervisor …), so a driver that dies mid-step is replaced by one that looks again and
 * asks for the step once more (every action is safe to repeat). One node at a time holds the
 * shutdown token; only it is taken down. A step that does not finish in its time stops the upgrade
 * with the cluster serving and says what to do; a pause takes effect between nodes.
 */
import { compareVersions } from '../../shared/versions.ts';
import type { NodePlan, StepKind, UpgradePlan, UpgradeRecord } from '../protocol/lcm.ts';

/** What the driver sees of one node. */
export interface NodeView {
  hostUp: boolean;
  cvmUp: boolean;
  /** Every service of its CVM up. */
  servicesUp: boolean;
  /** The VM service's state of the host (up, entering-maintenance, maintenance, down, fenced). */
  hostState: string;
  hypervisor: string | null;
  nos: string | null;
  /** The bundle version staged on its boot disk for the next start (null: none). */
  staged: string | null;
  firmware: { bmc: string | null; bios: string | null };
  /** When its host agent started (ms; from its uptime): a restart is seen as a start after the step began. Absent: not known. */
  hostStartedAt?: number | null;
}

export interface Observation {
  now: number;
  nodes: Readonly<Record<string, NodeView>>;
  /** Every extent group at its RF. */
  resiliencyOk: boolean;
}

/** What the upgrade moves each node to. */
export interface UpgradeTarget {
  version: string;
  hypervisor: string;
  nos: string;
  firmware: { bmc?: string; bios?: string };
}

/** Something for the driver to do (again, if it was asked before: each is safe to repeat). */
export interface Action {
  kind: StepKind;
  node: string;
}

/** How long each step may take before the upgrade stops. */
export type StepLimits = Record<StepKind, number>;

const MIN = 60_000;
export const STEP_LIMITS: StepLimits = {
  'enter-maintenance': 30 * MIN, 'stop-cvm': 5 * MIN, 'firmware-bmc': 30 * MIN, 'firmware-bios': 30 * MIN,
  install: 15 * MIN, restart: 15 * MIN, rejoin: 15 * MIN, resiliency: 120 * MIN, 'exit-maintenance': 30 * MIN,
};

const EVENTS = 200;
const duration = (ms: number): string => (ms >= 2 * MIN ? `${Math.round(ms / MIN)} min` : `${Math.round(ms / 1000)} s`);
const iso = (ms: number): string => new Date(ms).toISOString();

/** The record with one more event (the newest EVENTS kept). */
export function noteEvent(r: UpgradeRecord, node: string | null, message: string, now: number): UpgradeRecord {
  return { ...r, updatedAt: iso(now), events: [...r.events, { at: iso(now), node, message }].slice(-EVENTS) };
}

/** A new upgrade's record: running, every node to upgrade pending. */
export function startUpgrade(id: string, plan: UpgradePlan, bundleSha256: string, now: number, limits?: Partial<StepLimits>): UpgradeRecord {
  return {
    ...(limits && Object.keys(limits).length > 0 ? { limits } : {}),
    id, to: plan.to, bundleSha256, state: 'running', pauseRequested: false, plan,
    nodes: plan.nodes.map((n) => ({ serial: n.serial, state: 'pending', step: -1, since: iso(now), error: null, issuedBy: null })),
    token: null, startedAt: iso(now), updatedAt: iso(now), finishedAt: null, error: null,
    events: [{ at: iso(now), node: null, message: `upgrade to ${plan.to} started: ${plan.nodes.length} node(s)` }],
  };
}

/** Whether a node is seen in the state its step leads to. */
function reached(kind: StepKind, v: NodeView | undefined, plan: NodePlan, t: UpgradeTarget, o: Observation, since: number): boolean {
  if (!v) return false;
  const installs = plan.steps.some((s) => s.kind === 'install');
  switch (kind) {
    case 'enter-maintenance': return v.hostState === 'maintenance';
    case 'stop-cvm': return !v.cvmUp;
    case 'firmware-bmc': return v.firmware.bmc !== null && t.firmware.bmc !== undefined && compareVersions(v.firmware.bmc, t.firmware.bmc) >= 0;
    case 'firmware-bios': return v.firmware.bios !== null && t.firmware.bios !== undefined && compareVersions(v.firmware.bios, t.firmware.bios) >= 0;
    case 'install': return v.staged === t.version;
    // a host that started before the step began has not restarted (uptime is in whole seconds: 2 s of slack)
    case 'restart': return v.hostUp && v.hypervisor === (installs ? t.hypervisor : plan.from.hypervisor) && (v.hostStartedAt === undefined || (v.hostStartedAt !== null && v.hostStartedAt >= since - 2000));
    case 'rejoin': return v.cvmUp && v.servicesUp && v.nos === (installs ? t.nos : plan.from.nos);
    case 'resiliency': return o.resiliencyOk;
    case 'exit-maintenance': return v.hostState === 'up';
  }
}

/** What is seen of a node, for a failure's message. */
function seen(v: NodeView | undefined): string {
  if (!v) return 'nothing is known of it';
  return `host ${v.hostUp ? `up (${v.hostState}, hypervisor ${v.hypervisor ?? '?'})` : 'not answering'}, CVM ${v.cvmUp ? `up (storage OS ${v.nos ?? '?'})` : 'down'}`;
}

/** How to get on after a step failed. */
const RECOVERY: Record<StepKind, string> = {
  'enter-maintenance': 'look at the host\'s maintenance task (converge task list); a VM that cannot move must be powered off or moved by hand',
  'stop-cvm': 'the CVM did not stop: stop it on the host (converge host …) or restart the node through its BMC',
  'firmware-bmc': 'look at the BMC\'s task (converge rack …); the node\'s software is unchanged',
  'firmware-bios': 'look at the BMC\'s task (converge rack …); the node\'s software is unchanged',
  install: 'the boot disk was not written: look at the host agent\'s log; the node still boots its old version',
  restart: 'the node did not come back: power it on through its BMC (converge rack power on), look at its console',
  rejoin: 'the CVM did not rejoin: look at its log on the node; its data is replicated on the other nodes meanwhile',
  resiliency: 'extent groups are still below their RF: look at converge health run (a failed disk?)',
  'exit-maintenance': 'the host did not leave maintenance: look at its maintenance task',
};

/**
 * One look: the record moved on as far as the cluster shows, and what to ask for. Returns the
 * record unchanged (and no action) when the upgrade is not running.
 */
export function advance(r: UpgradeRecord, o: Observation, t: UpgradeTarget, driver: string, defaults: StepLimits = STEP_LIMITS): { record: UpgradeRecord; actions: Action[] } {
  if (r.state !== 'running') return { record: r, actions: [] };
  const limits: StepLimits = { ...defaults, ...r.limits };
  const rec: UpgradeRecord = { ...r, nodes: r.nodes.map((n) => ({ ...n })), events: [...r.events], updatedAt: iso(o.now) };
  const say = (node: string | null, message: string): void => {
    rec.events.push({ at: iso(o.now), node, message });
    if (rec.events.length > EVENTS) rec.events.splice(0, rec.events.length - EVENTS);
  };
  const actions: Action[] = [];
  for (let guard = 0; guard < 64; guard++) {
    const n = rec.nodes.find((x) => x.state !== 'done');
    if (!n) {
      rec.state = 'succeeded';
      rec.token = null;
      rec.finishedAt = iso(o.now);
      say(null, `upgrade to ${rec.to} finished: every node runs it`);
      return { record: rec, actions };
    }
    const plan = rec.plan.nodes.find((p) => p.serial === n.serial);
    if (!plan) throw new Error(`record ${rec.id}: node ${n.serial} has no plan`);
    const name = plan.hostname;
    if (n.state === 'pending') {
      if (rec.pauseRequested) {
        rec.state = 'paused';
        rec.pauseRequested = false;
        say(null, `paused before ${name}; converge lcm resume goes on`);
        return { record: rec, actions };
      }
      rec.token = n.serial;
      Object.assign(n, { state: 'running', step: 0, since: iso(o.now), issuedBy: driver, error: null, startedAt: iso(o.now), finished: [] });
      say(n.serial, `${name}: took the shutdown token; ${plan.steps[0]?.detail ?? ''}`);
      actions.push({ kind: plan.steps[0]?.kind ?? 'exit-maintenance', node: n.serial });
      return { record: rec, actions };
    }
    const step = plan.steps[n.step];
    if (!step) throw new Error(`record ${rec.id}: node ${n.serial} at step ${n.step} of ${plan.steps.length}`);
    const view = o.nodes[n.serial];
    if (reached(step.kind, view, plan, t, o, Date.parse(n.since))) {
      n.finished = [...(n.finished ?? []), iso(o.now)];
      const next = plan.steps[n.step + 1];
      if (!next) {
        Object.assign(n, { state: 'done', since: iso(o.now), issuedBy: null });
        rec.token = null;
        say(n.serial, `${name}: done; released the shutdown token`);
        continue; // the next node may start in this look
      }
      Object.assign(n, { step: n.step + 1, since: iso(o.now), issuedBy: driver });
      say(n.serial, `${name}: ${next.detail}`);
      actions.push({ kind: next.kind, node: n.serial });
      return { record: rec, actions };
    }
    if (o.now - Date.parse(n.since) > limits[step.kind]) {
      const why = `${name}: ${step.kind} did not finish within ${duration(limits[step.kind])} (${seen(view)}). The other nodes are serving; ${RECOVERY[step.kind]}; then converge lcm resume retries the step`;
      Object.assign(n, { state: 'failed', error: why });
      rec.state = 'failed';
      rec.error = why;
      say(n.serial, why);
      return { record: rec, actions };
    }
    if (n.issuedBy !== driver) {
      n.issuedBy = driver;
      say(n.serial, `${name}: ${step.kind} asked again (another CVM drives the upgrade now)`);
      actions.push({ kind: step.kind, node: n.serial });
    }
    return { record: rec, actions };
  }
  throw new Error('advance: no progress after 64 transitions');
}

/** Asks a running upgrade to pause before its next node. */
export function pauseUpgrade(r: UpgradeRecord, now: number): UpgradeRecord {
  if (r.state !== 'running') return r;
  return { ...r, pauseRequested: true, updatedAt: iso(now), events: [...r.events, { at: iso(now), node: null, message: 'pause asked: the node being upgraded finishes first' }] };
}

/** A paused or failed upgrade goes on (a failed step is tried again from now). */
export function resumeUpgrade(r: UpgradeRecord, now: number): UpgradeRecord {
  if (r.state !== 'paused' && r.state !== 'failed') return r;
  return {
    ...r, state: 'running', error: null, pauseRequested: false, updatedAt: iso(now),
    nodes: r.nodes.map((n) => (n.state === 'failed' ? { ...n, state: 'running', since: iso(now), error: null, issuedBy: null } : n)),
    events: [...r.events, { at: iso(now), node: null, message: `resumed${r.state === 'failed' ? ': the failed step is tried again' : ''}` }],
  };
}
