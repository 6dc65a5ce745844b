/**
 * @module
 * The live flow diagram as data (pure): one lane per node and one per cluster, a box per lane and
 * stage with its state, percent, current step, elapsed time and failure reason, and the edges
 * along which the work flows — Foundation → BMC → installer → hypervisor → CVM → cluster → Prism:
 *
 * ```
 *            1 Foundation     2 Imaging          3 Bootstrap            4 Activation
 *  node A   [ BMC, addrs ] ─► [ installer ] ───► [ hypervisor, CVM ] ─► [ host↔CVM … ]
 *                Redfish → BMC     installer → hypervisor   │  hypervisor ↔ CVM
 *  node B   [ … ]          ─► [ … ]          ───► [ … ] ────┤ CVM → cluster
 *  cluster  [ 3/3 nodes ]  ─► [ 3/3 imaged ] ───► [ created ] ─► [ checks ] ─► [ Prism ]
 * ```
 * A node's stages 3–4 follow its cluster once the node itself is done (the cluster forms in 3 and
 * is validated in 4); a node with no cluster to create is done after 3.
 */
import {
  COLUMNS, STAGES, clusterBlocked, clusterOf,
  type CheckView, type ClusterFacts, type Column, type DeploymentState, type NodeFacts,
} from './deployment.ts';

export type BoxState = 'pending' | 'running' | 'done' | 'failed' | 'aborted' | 'skipped';
export type EdgeState = 'idle' | 'active' | 'done' | 'failed';
export type LaneKind = 'node' | 'cluster';

export interface Lane {
  id: string;
  kind: LaneKind;
  title: string;
  subtitle: string;
}

export interface Box {
  id: string;
  lane: string;
  /** A stage column, or 'prism' for the cluster's Prism box after its activation. */
  column: Column | 'prism';
  state: BoxState;
  /** Percent of this stage's work. */
  percent: number;
  /** The current (or last) step. */
  message: string;
  /** Why it failed or was aborted. */
  reason: string | null;
  startedAt: number | null;
  endedAt: number | null;
  /** Time in the stage so far (ms); null before it starts. */
  elapsedMs: number | null;
  /** The node to retry when this box failed. */
  retry: string | null;
  /** The cluster's validation checks (its activation box). */
  checks: CheckView[];
}

export interface Edge {
  id: string;
  source: string;
  target: string;
  /** 'flow' along a lane, 'join' from a node into its cluster. */
  kind: 'flow' | 'join';
  label: string;
  state: EdgeState;
}

export interface Diagram {
  columns: { title: string; detail: string }[];
  lanes: Lane[];
  boxes: Box[];
  edges: Edge[];
}

export const laneIdOfNode = (serial: string): string => `node:${serial}`;
export const laneIdOfCluster = (name: string): string => `cluster:${name}`;
export const boxId = (lane: string, column: Column | 'prism'): string => `${lane}/${column}`;

/** What flows along the edge into each column (and into Prism). */
const FLOW_LABEL: Record<1 | 2 | 3, string> = { 1: 'Redfish → BMC', 2: 'installer → hypervisor', 3: 'hypervisor ↔ CVM' };

const reasonOf = (message: string): string => message.replace(/^fatal: /, '');
const pct = (v: number): number => Math.max(0, Math.min(100, Math.round(v)));
/** Where a node's own percent falls inside each column (core/imaging.ts: media at 4 %, reboot at 88 %). */
const WINDOW: Record<0 | 1 | 2, [number, number]> = { 0: [0, 4], 1: [4, 88], 2: [88, 100] };
const within = (col: 0 | 1 | 2, p: number): number => {
  const [lo, hi] = WINDOW[col];
  return pct(((p - lo) / (hi - lo)) * 100);
};

interface BoxDraft {
  state: BoxState;
  percent: number;
  message: string;
  reason?: string | null;
  startedAt: number | null;
  endedAt: number | null;
  retry?: string | null;
  checks?: CheckView[];
}

function finish(id: string, lane: string, column: Column | 'prism', d: BoxDraft, now: number): Box {
  const running = d.state === 'running';
  // a box that waits (pending) shows no time; a running one counts up to now
  const elapsedMs = d.startedAt === null || d.state === 'pending' ? null : Math.max(0, (running ? now : (d.endedAt ?? now)) - d.startedAt);
  return {
    id, lane, column, state: d.state, percent: d.percent, message: d.message, reason: d.reason ?? null,
    startedAt: d.startedAt, endedAt: running ? null : d.endedAt, elapsedMs, retry: d.retry ?? null, checks: d.checks ?? [],
  };
}

/** A cluster's part in a column (2: it forms; 3: it is validated). */
function clusterColumn(c: ClusterFacts, col: 2 | 3): BoxDraft {
  const failedIn: Column = c.percent >= 50 ? 3 : 2;
  if (col === 2) {
    const times = { startedAt: c.createdAt, endedAt: c.validatingAt ?? (c.stage === 'failed' && failedIn === 2 ? c.endedAt : null) };
    switch (c.stage) {
      case 'not_requested':
        return { state: 'skipped', percent: 0, message: c.status, startedAt: null, endedAt: null };
      case 'waiting':
        return { state: 'pending', percent: 0, message: c.status, startedAt: null, endedAt: null };
      case 'creating':
        return { state: 'running', percent: pct((c.percent / 50) * 100), message: c.status, ...times };
      case 'validating':
      case 'done':
        return { state: 'done', percent: 100, message: c.clusterId ? `cluster ${c.name} (${c.clusterId}) formed` : `cluster ${c.name} formed`, ...times };
      case 'failed':
        return failedIn === 2
          ? { state: 'failed', percent: pct((c.percent / 50) * 100), message: c.status, reason: reasonOf(c.status), ...times }
          : { state: 'done', percent: 100, message: `cluster ${c.name} formed`, ...times };
    }
  }
  const times = { startedAt: c.validatingAt, endedAt: c.endedAt };
  const checks = c.checks;
  switch (c.stage) {
    case 'not_requested':
      return { state: 'skipped', percent: 0, message: c.status, startedAt: null, endedAt: null };
    case 'waiting':
    case 'creating':
      return { state: 'pending', percent: 0, message: 'validation follows the cluster\'s creation', startedAt: null, endedAt: null };
    case 'validating':
      return { state: 'running', percent: pct((c.percent - 50) * 2), message: c.status, checks, ...times };
    case 'done':
      return { state: 'done', percent: 100, message: `${checks.filter((k) => k.ok).length} checks passed`, checks, ...times };
    case 'failed':
      return failedIn === 3
        ? { state: 'failed', percent: pct((c.percent - 50) * 2), message: c.status, reason: reasonOf(c.status), checks, ...times }
        : { state: 'pending', percent: 0, message: 'not reached', startedAt: null, endedAt: null };
  }
}

function nodeBoxes(s: DeploymentState, n: NodeFacts): BoxDraft[] {
  const times = (k: Column): { startedAt: number | null; endedAt: number | null } => ({ startedAt: n.start[k], endedAt: n.end[k] });
  const doneSay = (k: Column, fallback: string): string => n.said[k] ?? fallback;
  const addresses = `BMC ${n.ipmiIp} · host ${n.hostIp} · CVM ${n.cvmIp}`;
  const pending = (message: string): BoxDraft => ({ state: 'pending', percent: 0, message, startedAt: null, endedAt: null });
  const skippedImaging: BoxDraft = { state: 'skipped', percent: 0, message: 'pre-imaged: not reinstalled', startedAt: null, endedAt: null };
  const doneBox = (k: Column, message: string): BoxDraft => (k === 1 && n.preImaged ? skippedImaging : { state: 'done', percent: 100, message, ...times(k) });
  const done0 = doneBox(0, addresses);
  const done1 = doneBox(1, doneSay(1, 'hypervisor + CVM written to the boot disk'));

  if (n.stage === 'pending') return [pending(n.message), pending(''), pending(''), pending('')];
  if (n.stage === 'failed' || n.stage === 'aborted') {
    const k = n.stoppedIn ?? 0;
    const state: BoxState = n.stage === 'failed' ? 'failed' : 'aborted';
    const p = k === 3 ? 0 : within(k, n.percent);
    return COLUMNS.map((i): BoxDraft => {
      if (i < k) return i === 0 ? done0 : i === 1 ? done1 : doneBox(i, doneSay(i, ''));
      if (i === k) return { state, percent: p, message: n.said[k] ?? n.message, reason: reasonOf(n.message), retry: n.serial, ...times(k) };
      return pending('');
    });
  }
  if (n.stage === 'bmc_config') return [{ state: 'running', percent: within(0, n.percent), message: n.message, ...times(0) }, pending(''), pending(''), pending('')];
  if (n.stage === 'media' || n.stage === 'booting' || n.stage === 'installing') {
    return [done0, { state: 'running', percent: within(1, n.percent), message: n.message, ...times(1) }, pending(''), pending('')];
  }
  if (n.stage === 'configuring' || n.stage === 'rebooting') {
    return [done0, done1, { state: 'running', percent: pct(within(2, n.percent) / 2), message: n.message, ...times(2) }, pending('')];
  }
  // the node's own part is done (CVM up): stages 3-4 follow its cluster
  const cvmUp = doneSay(2, 'CVM up');
  const c = clusterOf(s, n);
  if (!c) {
    return [done0, done1, { state: 'done', percent: 100, message: cvmUp, startedAt: n.start[2], endedAt: n.doneAt },
      { state: 'skipped', percent: 0, message: 'no cluster to create', startedAt: null, endedAt: null }];
  }
  const at2 = { startedAt: n.start[2], endedAt: null };
  const formed = clusterColumn(c, 2);
  const validated = clusterColumn(c, 3);
  let b2: BoxDraft;
  switch (formed.state) {
    case 'pending': // the cluster waits for its other members (or for a failed one to be retried)
      b2 = clusterBlocked(s, c)
        ? { state: 'pending', percent: 50, message: `${cvmUp}; the cluster waits for a failed member to be retried`, ...at2 }
        : { state: 'running', percent: 50, message: `${cvmUp}; waiting for the other nodes`, ...at2 };
      break;
    case 'running':
      b2 = { state: 'running', percent: pct(50 + formed.percent / 2), message: formed.message, ...at2 };
      break;
    case 'done':
      b2 = { state: 'done', percent: 100, message: formed.message, startedAt: n.start[2], endedAt: formed.endedAt };
      break;
    case 'failed':
    case 'aborted':
      b2 = { ...formed, percent: pct(50 + formed.percent / 2), startedAt: n.start[2] };
      break;
    case 'skipped':
      b2 = { state: 'done', percent: 100, message: cvmUp, startedAt: n.start[2], endedAt: n.doneAt };
      break;
  }
  return [done0, done1, b2, { ...validated, checks: [] }];
}

/** A cluster's summary of its members in columns 0 and 1. */
function membersColumn(members: readonly NodeFacts[], own: readonly BoxDraft[][], k: 0 | 1): BoxDraft {
  const boxes = own.map((b) => b[k]).filter((b): b is BoxDraft => b !== undefined);
  const count = (st: BoxState): number => boxes.filter((b) => b.state === st).length;
  const finished = count('done') + count('skipped');
  const starts = boxes.map((b) => b.startedAt).filter((t): t is number => t !== null);
  const ends = boxes.map((b) => b.endedAt).filter((t): t is number => t !== null);
  const startedAt = starts.length ? Math.min(...starts) : null;
  const allDone = finished === boxes.length && boxes.length > 0;
  const endedAt = allDone && ends.length ? Math.max(...ends) : null;
  const percent = boxes.length ? pct(boxes.reduce((a, b) => a + (b.state === 'skipped' ? 100 : b.percent), 0) / boxes.length) : 0;
  const failed = members.filter((_n, i) => own[i]?.[k]?.state === 'failed').map((n) => n.serial);
  const what = k === 0 ? 'ready' : 'imaged';
  const message = `${finished}/${boxes.length} nodes ${what}${failed.length ? `; failed: ${failed.join(', ')}` : ''}`;
  let state: BoxState;
  if (failed.length) state = 'failed';
  else if (count('aborted')) state = 'aborted';
  else if (allDone) state = 'done';
  else if (count('running') || finished > 0) state = 'running';
  else state = 'pending';
  return { state, percent, message, reason: failed.length ? `node ${failed.join(', ')} failed` : null, startedAt, endedAt };
}

function prismBox(c: ClusterFacts): BoxDraft {
  const check = c.checks.find((k) => /prism/i.test(k.name));
  if (check) return { state: check.ok ? 'done' : 'failed', percent: check.ok ? 100 : 0, message: check.evidence, reason: check.ok ? null : check.evidence, startedAt: c.validatingAt, endedAt: c.endedAt };
  if (c.stage === 'done') return { state: 'skipped', percent: 0, message: 'Prism is not checked by this Foundation yet', startedAt: null, endedAt: null };
  return { state: 'pending', percent: 0, message: 'Prism on the cluster', startedAt: null, endedAt: null };
}

function edgeState(source: BoxState, target: BoxState): EdgeState {
  if (target === 'failed' || target === 'aborted') return source === 'done' || source === 'skipped' ? 'failed' : 'idle';
  if (target === 'running') return 'active';
  if (target === 'done') return 'done';
  if (target === 'skipped') return source === 'done' ? 'done' : 'idle';
  return 'idle';
}

/** The diagram of a deployment at time `now` (ms on Foundation's clock). */
export function diagramOf(s: DeploymentState, now: number): Diagram {
  const lanes: Lane[] = [];
  const boxes: Box[] = [];
  const edges: Edge[] = [];
  const drafts = new Map<string, BoxDraft[]>();
  const addLane = (lane: Lane, ds: BoxDraft[], labels: boolean): void => {
    lanes.push(lane);
    drafts.set(lane.id, ds);
    ds.forEach((d, i) => boxes.push(finish(boxId(lane.id, i as Column), lane.id, i as Column, d, now)));
    for (const k of [1, 2, 3] as const) {
      const src = ds[k - 1];
      const tgt = ds[k];
      if (!src || !tgt) continue;
      edges.push({ id: `${lane.id}/${k - 1}→${k}`, source: boxId(lane.id, (k - 1) as Column), target: boxId(lane.id, k), kind: 'flow', label: labels ? FLOW_LABEL[k] : '', state: edgeState(src.state, tgt.state) });
    }
  };
  // what flows along the edges is said once, on the first lane (and on the last join into a cluster)
  s.nodes.forEach((n, i) => {
    addLane({ id: laneIdOfNode(n.serial), kind: 'node', title: n.serial, subtitle: `host ${n.hostIp} · CVM ${n.cvmIp}` }, nodeBoxes(s, n), i === 0);
  });
  for (const c of s.clusters) {
    if (c.stage === 'not_requested') continue;
    const members = c.members.map((ip) => s.nodes.find((n) => n.cvmIp === ip)).filter((n): n is NodeFacts => n !== undefined);
    const own = members.map((n) => drafts.get(laneIdOfNode(n.serial)) ?? []);
    const lane: Lane = { id: laneIdOfCluster(c.name), kind: 'cluster', title: `cluster ${c.name}`, subtitle: `${members.length} nodes${c.clusterId ? ` · ${c.clusterId}` : ''}` };
    const formed = clusterColumn(c, 2);
    addLane(lane, [membersColumn(members, own, 0), membersColumn(members, own, 1), formed, clusterColumn(c, 3)], false);
    // each node's CVM joins the cluster once the node itself is done
    members.forEach((n, i) => {
      const ready = n.stage === 'done';
      const st: EdgeState = !ready ? 'idle' : formed.state === 'done' ? 'done' : formed.state === 'failed' || formed.state === 'aborted' ? 'failed' : clusterBlocked(s, c) ? 'idle' : 'active';
      edges.push({ id: `${laneIdOfNode(n.serial)}→${lane.id}`, source: boxId(laneIdOfNode(n.serial), 2), target: boxId(lane.id, 2), kind: 'join', label: i === members.length - 1 ? 'CVM → cluster' : '', state: st });
    });
    const prism = prismBox(c);
    const activation = drafts.get(lane.id)?.[3];
    boxes.push(finish(boxId(lane.id, 'prism'), lane.id, 'prism', prism, now));
    edges.push({ id: `${lane.id}/3→prism`, source: boxId(lane.id, 3), target: boxId(lane.id, 'prism'), kind: 'flow', label: 'cluster → Prism', state: activation ? edgeState(activation.state, prism.state) : 'idle' });
  }
  return { columns: STAGES.map((st) => ({ title: st.title, detail: st.detail })), lanes, boxes, edges };
}

/** Counts of a diagram's node lanes by where they are, for the header. */
export function summaryOf(d: Diagram): { nodes: number; done: number; failed: number; running: number } {
  const nodeLanes = d.lanes.filter((l) => l.kind === 'node');
  const laneBoxes = (id: string): Box[] => d.boxes.filter((b) => b.lane === id && b.column !== 'prism');
  let done = 0;
  let failed = 0;
  let running = 0;
  for (const l of nodeLanes) {
    const bs = laneBoxes(l.id);
    if (bs.some((b) => b.state === 'failed' || b.state === 'aborted')) failed++;
    else if (bs.every((b) => b.state === 'done' || b.state === 'skipped')) done++;
    else if (bs.some((b) => b.state === 'running')) running++;
  }
  return { nodes: nodeLanes.length, done, failed, running };
}
