/**
 * @module
 * The deployment wizard as a small pure state machine: discover → validate → network → software →
 * review → deploy. Each step has the rules that keep the user on it until its answers are usable
 * (`blockers`), so the wizard never sends image_nodes a request Foundation would refuse for a
 * reason the wizard could have named first. Answers that a later step depends on invalidate it:
 * a new selection needs a new validation and a new plan check.
 */
import {
  imageNodesBody, planInputFor,
  type DiscoverBlock, type DiscoverNode, type ImageNodesInput, type PlanInput, type PlanResult, type ValidationReport,
} from '../../../src/foundation/protocol/deploy.ts';

export const WIZARD_STEPS = ['discover', 'validate', 'network', 'software', 'review', 'deploy'] as const;
export type WizardStep = (typeof WIZARD_STEPS)[number];

export const STEP_TITLES: Record<WizardStep, string> = {
  discover: 'Discover', validate: 'Validate', network: 'Network', software: 'Software', review: 'Review', deploy: 'Deploy',
};

export interface NetworkForm {
  clusterName: string;
  hostStart: string;
  cvmStart: string;
  netmask: string;
  gateway: string;
  /** Empty: every BMC keeps its address. */
  bmcStart: string;
  bmcNetmask: string;
  vip: string;
  dns: string;
  ntp: string;
  hostnamePrefix: string;
}

export interface SoftwareForm {
  bundle: string;
  vcpus: string;
  ramGiB: string;
  createCluster: boolean;
  rf: '1' | '2' | '3';
}

export interface DiscoveredRow extends DiscoverNode {
  block_id: string;
}

export interface WizardState {
  step: WizardStep;
  discovered: DiscoveredRow[] | null;
  selected: string[];
  validation: ValidationReport | null;
  overrides: string[];
  network: NetworkForm;
  plan: { input: string; result: PlanResult } | null;
  bundles: string[] | null;
  software: SoftwareForm;
}

export type WizardAction =
  | { type: 'discovered'; blocks: DiscoverBlock[] }
  | { type: 'toggle'; serial: string; on: boolean }
  | { type: 'validated'; report: ValidationReport }
  | { type: 'override'; serial: string; on: boolean }
  | { type: 'network'; field: keyof NetworkForm; value: string }
  | { type: 'planChecked'; input: PlanInput; result: PlanResult }
  | { type: 'bundles'; names: string[] }
  | { type: 'software'; patch: Partial<SoftwareForm> }
  | { type: 'go'; step: WizardStep };

export const DEFAULT_NETWORK: NetworkForm = {
  clusterName: 'converge-lab', hostStart: '127.20.0.1', cvmStart: '127.20.1.1', netmask: '255.255.0.0', gateway: '127.20.255.254',
  bmcStart: '', bmcNetmask: '255.255.0.0', vip: '', dns: '127.0.0.53', ntp: '127.0.0.123', hostnamePrefix: 'node',
};

export function initialWizard(): WizardState {
  return {
    step: 'discover', discovered: null, selected: [], validation: null, overrides: [], network: DEFAULT_NETWORK, plan: null, bundles: null,
    software: { bundle: '', vcpus: '8', ramGiB: '16', createCluster: true, rf: '2' },
  };
}

const list = (text: string): string[] => text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);

/** The nodes to deploy, in discovery order. */
export function selectedNodes(s: WizardState): DiscoveredRow[] {
  return (s.discovered ?? []).filter((n) => s.selected.includes(n.node_serial));
}

/** The smallest cluster each RF allows (docs/foundation.md). */
export const MIN_NODES: Record<SoftwareForm['rf'], number> = { '1': 1, '2': 3, '3': 5 };

function defaultRf(nodes: number): SoftwareForm['rf'] {
  return nodes >= 3 ? '2' : '1';
}

export function planInputOf(s: WizardState): PlanInput {
  const f = s.network;
  return planInputFor(selectedNodes(s), {
    clusterName: f.clusterName.trim(), dns: list(f.dns), ntp: list(f.ntp), hostnamePrefix: f.hostnamePrefix.trim(),
    bmcNetmask: f.bmcNetmask.trim(), hostStart: f.hostStart.trim(), cvmStart: f.cvmStart.trim(), netmask: f.netmask.trim(), gateway: f.gateway.trim(),
    lab: true, ...(f.bmcStart.trim() ? { bmcStart: f.bmcStart.trim() } : {}), ...(f.vip.trim() ? { vip: f.vip.trim() } : {}),
  });
}

/** The checked plan, if it was checked for the current answers and has no errors. */
export function currentPlan(s: WizardState): PlanResult['plan'] {
  if (!s.plan || s.plan.input !== JSON.stringify(planInputOf(s))) return null;
  return s.plan.result.errors.length === 0 ? s.plan.result.plan : null;
}

export function imageBodyOf(s: WizardState): ImageNodesInput | null {
  const plan = currentPlan(s);
  if (!plan) return null;
  return imageNodesBody(plan, {
    bundle: s.software.bundle, vcpus: Number(s.software.vcpus), ramGiB: Number(s.software.ramGiB),
    current: new Map(selectedNodes(s).map((n) => [n.node_serial, n.ipmi_ip])),
    cluster: s.software.createCluster ? (Number(s.software.rf) as 1 | 2 | 3) : null,
    overrides: s.overrides,
  });
}

const whole = (v: string, lo: number, hi: number): boolean => /^\d+$/.test(v) && Number(v) >= lo && Number(v) <= hi;

/** Why the user cannot leave this step yet (empty: they can). */
export function blockers(s: WizardState, step: WizardStep = s.step): string[] {
  switch (step) {
    case 'discover':
      if (s.discovered === null) return ['discover the nodes first'];
      if (s.discovered.length === 0) return ['discovery found no nodes: is the rack up, or are the BMCs in another range?'];
      return s.selected.length === 0 ? ['select at least one node'] : [];
    case 'validate': {
      if (!s.validation) return ['run the hardware validation'];
      const out: string[] = [];
      for (const n of selectedNodes(s)) {
        const r = s.validation.nodes.find((x) => x.serial === n.node_serial);
        if (!r) out.push(`node ${n.node_serial} was not validated: validate again`);
        else if (r.verdict === 'FAIL' && !s.overrides.includes(n.node_serial)) {
          const bad = r.checks.filter((c) => c.verdict === 'FAIL').map((c) => `${c.check} (${c.measured})`).join(', ');
          out.push(`node ${n.node_serial} FAILs ${bad}: deselect it, or override`);
        }
      }
      return out;
    }
    case 'network':
      if (!s.plan) return ['check the plan'];
      if (s.plan.input !== JSON.stringify(planInputOf(s))) return ['the answers changed since the plan was checked: check it again'];
      return s.plan.result.errors.map((e) => `${e.node ? `node ${e.node}: ` : ''}${e.field}: ${e.reason}`);
    case 'software': {
      const out: string[] = [];
      if (!s.software.bundle) out.push(s.bundles?.length === 0 ? 'upload a release bundle' : 'choose a release bundle');
      if (!whole(s.software.vcpus, 1, 128)) out.push('CVM vCPUs: a whole number from 1 to 128');
      if (!whole(s.software.ramGiB, 1, 512)) out.push('CVM RAM: a whole number of GiB from 1 to 512');
      const need = MIN_NODES[s.software.rf];
      if (s.software.createCluster && s.selected.length < need) out.push(`RF${s.software.rf} needs at least ${need} nodes; ${s.selected.length} selected`);
      return out;
    }
    case 'review':
      return WIZARD_STEPS.slice(0, 4).flatMap((st) => blockers(s, st).map((b) => `${STEP_TITLES[st]}: ${b}`));
    case 'deploy':
      return [];
  }
}

/** Steps the user may open: every step up to the first one that blocks. */
export function reachable(s: WizardState): WizardStep[] {
  const out: WizardStep[] = [];
  for (const st of WIZARD_STEPS) {
    out.push(st);
    if (st === 'deploy' || blockers(s, st).length > 0) break;
  }
  return out;
}

export function nextStep(step: WizardStep): WizardStep {
  return WIZARD_STEPS[Math.min(WIZARD_STEPS.indexOf(step) + 1, WIZARD_STEPS.length - 1)] ?? step;
}

export function previousStep(step: WizardStep): WizardStep {
  return WIZARD_STEPS[Math.max(WIZARD_STEPS.indexOf(step) - 1, 0)] ?? step;
}

export function wizardReducer(s: WizardState, a: WizardAction): WizardState {
  switch (a.type) {
    case 'discovered': {
      const rows = a.blocks.flatMap((b) => b.nodes.map((n) => ({ ...n, block_id: b.block_id })));
      // nodes already in a cluster are not selected by default
      const selected = rows.filter((n) => !n.configured).map((n) => n.node_serial);
      return { ...s, discovered: rows, selected, validation: null, overrides: [], plan: null, software: { ...s.software, rf: defaultRf(selected.length) } };
    }
    case 'toggle': {
      const selected = a.on ? [...new Set([...s.selected, a.serial])] : s.selected.filter((x) => x !== a.serial);
      const order = (s.discovered ?? []).map((n) => n.node_serial);
      selected.sort((x, y) => order.indexOf(x) - order.indexOf(y));
      return { ...s, selected, software: { ...s.software, rf: defaultRf(selected.length) } };
    }
    case 'validated':
      return { ...s, validation: a.report };
    case 'override':
      return { ...s, overrides: a.on ? [...new Set([...s.overrides, a.serial])] : s.overrides.filter((x) => x !== a.serial) };
    case 'network':
      return { ...s, network: { ...s.network, [a.field]: a.value } };
    case 'planChecked':
      return { ...s, plan: { input: JSON.stringify(a.input), result: a.result } };
    case 'bundles': {
      const bundle = a.names.includes(s.software.bundle) ? s.software.bundle : (a.names[a.names.length - 1] ?? '');
      return { ...s, bundles: a.names, software: { ...s.software, bundle } };
    }
    case 'software':
      return { ...s, software: { ...s.software, ...a.patch } };
    case 'go':
      return reachable(s).includes(a.step) ? { ...s, step: a.step } : s;
  }
}
