/**
 * @module
 * The LCM page's view of a rolling upgrade (pure): each node's steps folded into four boxes, as
 * Foundation's flow diagram shows a node's four stages: Maintenance (its VMs move away, its CVM
 * stops), Install (firmware, then the new release on its boot disk), Restart (into the new
 * release, its CVM back), Validate (data at RF, out of maintenance).
 */
import type { StepKind, UpgradeRecord } from '../../../../src/lcm/protocol/lcm.ts';

export type BoxState = 'pending' | 'active' | 'done' | 'failed' | 'paused';

export interface StageBox {
  title: string;
  state: BoxState;
  /** The step under way in it, for people ('' when none). */
  detail: string;
}

export const STAGES: { title: string; kinds: readonly StepKind[] }[] = [
  { title: 'Maintenance', kinds: ['enter-maintenance', 'stop-cvm'] },
  { title: 'Install', kinds: ['firmware-bmc', 'firmware-bios', 'install'] },
  { title: 'Restart', kinds: ['restart', 'rejoin'] },
  { title: 'Validate', kinds: ['resiliency', 'exit-maintenance'] },
];

const stageOf = (k: StepKind): number => STAGES.findIndex((s) => s.kinds.includes(k));

/** A node's four boxes in an upgrade. */
export function nodeStages(r: UpgradeRecord, serial: string): StageBox[] {
  const n = r.nodes.find((x) => x.serial === serial);
  const plan = r.plan.nodes.find((x) => x.serial === serial);
  return STAGES.map((s, i) => {
    const box = (state: BoxState, detail = ''): StageBox => ({ title: s.title, state, detail });
    if (!n || !plan || n.state === 'pending') return box('pending');
    if (n.state === 'done') return box('done');
    const step = plan.steps[n.step];
    const at = step ? stageOf(step.kind) : -1;
    // a stage none of whose kinds the plan has (no firmware, nothing to install) counts as passed when a later one is reached
    if (i < at) return box('done');
    if (i > at) return box('pending');
    const state: BoxState = n.state === 'failed' ? 'failed' : r.state === 'paused' ? 'paused' : 'active';
    return box(state, step?.detail ?? '');
  });
}

/** The upgrade's headline: where it is and what it waits for. */
export function upgradeSummary(r: UpgradeRecord): string {
  const done = r.nodes.filter((n) => n.state === 'done').length;
  const now = r.nodes.find((n) => n.state === 'running' || n.state === 'failed');
  const plan = (serial: string): UpgradeRecord['plan']['nodes'][number] | undefined => r.plan.nodes.find((p) => p.serial === serial);
  const name = (serial: string): string => plan(serial)?.hostname ?? serial;
  switch (r.state) {
    case 'succeeded': return `Every node runs ${r.to} (${r.nodes.length} upgraded).`;
    // the error itself is the page's banner: the headline says where, and what Resume does
    case 'failed': return `Stopped at ${now ? `${name(now.serial)}'s ${plan(now.serial)?.steps[now.step]?.kind ?? 'step'}` : 'a node'}; Resume tries the step again.`;
    case 'aborted': return `Aborted after ${done} of ${r.nodes.length} nodes.`;
    case 'paused': return `Paused after ${done} of ${r.nodes.length} nodes; resume to go on.`;
    case 'running': return `${done} of ${r.nodes.length} nodes at ${r.to}${now ? `; ${name(now.serial)} holds the shutdown token` : ''}${r.pauseRequested ? ' (pauses after this node)' : ''}.`;
  }
}
