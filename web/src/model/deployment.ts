/**
 * @module
 * A deployment session as the web UI knows it (STYLE.md C13): a framework-free record per node and
 * per cluster, built from Foundation's progress (the skeleton: nodes, addresses, members) and its
 * event log (every step, with its time). Server data becomes typed changes — `changesOfProgress`,
 * `changesOfEvent` — applied by the pure `applyChanges`. The diagram (diagram.ts) is derived from
 * this record, never stored.
 *
 * Rebuilding after a reload: the progress snapshot draws the current states at once; the replayed
 * log (from seq 1) then rebuilds everything, timings included, from pending — the event with seq 1
 * resets every lane, so replay order cannot leave a stale state behind.
 */
import type { ClusterStage, FoundationEvent, ImagingStage, ProgressResponse } from '../../../src/foundation/protocol/deploy.ts';

/** The four stages of the flow, as the diagram's columns. */
export const STAGES = [
  { id: 'foundation', title: '1 Foundation', detail: 'discover · validate · addresses · BMC' },
  { id: 'imaging', title: '2 Imaging', detail: 'installer writes hypervisor + CVM' },
  { id: 'bootstrap', title: '3 Bootstrap', detail: 'hypervisor boots · CVM up · cluster forms' },
  { id: 'activation', title: '4 Activation', detail: 'host↔CVM link · services · checks · Prism' },
] as const;

export type Column = 0 | 1 | 2 | 3;
export const COLUMNS: readonly Column[] = [0, 1, 2, 3];

/**
 * Which column each imaging stage works in. A Record so that a stage added to the imaging machine
 * (src/foundation/core/imaging.ts) fails the type check here until it is placed.
 */
const COLUMN_OF_STAGE: Record<ImagingStage, Column | null> = {
  pending: null, bmc_config: 0, media: 1, booting: 1, installing: 1, configuring: 2, rebooting: 2, done: 2, failed: null, aborted: null,
};

const CLUSTER_STAGES: Record<ClusterStage, true> = { not_requested: true, waiting: true, creating: true, validating: true, done: true, failed: true };

export function isImagingStage(s: string | null): s is ImagingStage {
  return s !== null && Object.hasOwn(COLUMN_OF_STAGE, s);
}

export function isClusterStage(s: string | undefined): s is ClusterStage {
  return s !== undefined && Object.hasOwn(CLUSTER_STAGES, s);
}

export const isFinalStage = (s: ImagingStage): boolean => s === 'done' || s === 'failed' || s === 'aborted';

/** A node's column from its progress alone (no log yet): a failed node by how far its percent got. */
export function columnOfPercent(percent: number): Column {
  return percent < 4 ? 0 : percent < 88 ? 1 : 2; // media starts at 4 %, the reboot at 88 % (core/imaging.ts)
}

type PerColumn<T> = [T, T, T, T];
const perColumn = <T>(v: T): PerColumn<T> => [v, v, v, v];

export interface NodeFacts {
  serial: string;
  hostIp: string;
  cvmIp: string;
  ipmiIp: string;
  stage: ImagingStage;
  percent: number;
  message: string;
  /** The column a failed or aborted node stopped in. */
  stoppedIn: Column | null;
  /** Not reinstalled (image_now false): imaging is skipped. */
  preImaged: boolean;
  /** When work entered and left each column (ms on Foundation's clock); reset by a retry. */
  start: PerColumn<number | null>;
  end: PerColumn<number | null>;
  /** The last message of each column. */
  said: PerColumn<string | null>;
  /** When the node's own part ended (CVM up). */
  doneAt: number | null;
  retries: number;
}

export interface CheckView {
  name: string;
  ok: boolean;
  evidence: string;
}

export interface ClusterFacts {
  name: string;
  /** CVM addresses of the members. */
  members: string[];
  stage: ClusterStage;
  percent: number;
  status: string;
  checks: CheckView[];
  clusterId: string | null;
  /** When creation started, validation started, and the entry ended (ms). */
  createdAt: number | null;
  validatingAt: number | null;
  endedAt: number | null;
}

export interface DeploymentState {
  sessionId: string;
  nodes: NodeFacts[];
  clusters: ClusterFacts[];
  aborted: boolean;
  /** When the session started (ms), from its first event. */
  startedAt: number | null;
  /** The last event applied. */
  lastSeq: number;
  /** Whether a progress snapshot has given the lanes. */
  loaded: boolean;
}

export type DeploymentChange =
  | { type: 'snapshot'; progress: ProgressResponse }
  | { type: 'node'; seq: number; at: number; serial: string; stage: ImagingStage; percent: number | null; message: string }
  | { type: 'cluster'; seq: number; at: number; name: string; percent: number | null; message: string; stage: ClusterStage | null; check: CheckView | null }
  | { type: 'session'; seq: number; at: number; message: string };

export function emptyDeployment(sessionId: string): DeploymentState {
  return { sessionId, nodes: [], clusters: [], aborted: false, startedAt: null, lastSeq: 0, loaded: false };
}

export function changesOfProgress(p: ProgressResponse): DeploymentChange[] {
  return [{ type: 'snapshot', progress: p }];
}

/** One event of the stream (or the log) as changes; an event of an unknown shape gives none. */
export function changesOfEvent(e: FoundationEvent): DeploymentChange[] {
  const at = Date.parse(e.time);
  if (!Number.isFinite(at) || !Number.isInteger(e.seq)) return [];
  if (e.serial !== null) {
    if (!isImagingStage(e.stage)) return [];
    return [{ type: 'node', seq: e.seq, at, serial: e.serial, stage: e.stage, percent: e.percent, message: e.message }];
  }
  if (e.cluster !== undefined) {
    const check = e.check ? { name: String(e.check.name), ok: e.check.ok === true, evidence: String(e.check.evidence) } : null;
    return [{ type: 'cluster', seq: e.seq, at, name: e.cluster, percent: e.percent, message: e.message, stage: isClusterStage(e.cluster_stage) ? e.cluster_stage : null, check }];
  }
  return [{ type: 'session', seq: e.seq, at, message: e.message }];
}

function freshNode(n: Pick<NodeFacts, 'serial' | 'hostIp' | 'cvmIp' | 'ipmiIp'>): NodeFacts {
  return {
    ...n, stage: 'pending', percent: 0, message: 'waiting to start', stoppedIn: null, preImaged: false,
    start: perColumn(null), end: perColumn(null), said: perColumn(null), doneAt: null, retries: 0,
  };
}

function freshCluster(c: ClusterFacts): ClusterFacts {
  if (c.stage === 'not_requested') return c;
  return { ...c, stage: 'waiting', percent: 0, status: 'waiting for its nodes to be imaged', checks: [], clusterId: null, createdAt: null, validatingAt: null, endedAt: null };
}

function snapshot(s: DeploymentState, p: ProgressResponse): DeploymentState {
  if (s.loaded && s.lastSeq > 0) {
    // the log already rebuilt the states; a later snapshot only fills in what the log does not say
    return { ...s, nodes: s.nodes.map((n) => {
      const pn = p.nodes.find((x) => x.node_serial === n.serial);
      return pn ? { ...n, hostIp: pn.hypervisor_ip, cvmIp: pn.cvm_ip, ipmiIp: pn.ipmi_ip } : n;
    }) };
  }
  const nodes = p.nodes.map((pn): NodeFacts => {
    const base = freshNode({ serial: pn.node_serial, hostIp: pn.hypervisor_ip, cvmIp: pn.cvm_ip, ipmiIp: pn.ipmi_ip });
    const stage = isImagingStage(pn.stage) ? pn.stage : 'pending';
    const failed = stage === 'failed' || stage === 'aborted';
    return {
      ...base, stage, percent: pn.percent_complete, message: String(pn.status),
      stoppedIn: failed ? columnOfPercent(pn.percent_complete) : null,
    };
  });
  const clusters = p.clusters.map((pc): ClusterFacts => ({
    name: pc.cluster_name, members: pc.cluster_members,
    stage: isClusterStage(pc.stage) ? pc.stage : pc.percent_complete === 100 ? 'done' : 'waiting',
    percent: pc.percent_complete, status: pc.status, checks: (pc.checks ?? []).map((k) => ({ ...k })),
    clusterId: pc.cluster_id ?? null, createdAt: null, validatingAt: null, endedAt: null,
  }));
  return { ...s, nodes, clusters, aborted: p.abort_session, loaded: true };
}

/** The column a node works in at this stage (null: not started, or stopped). */
function activeColumn(stage: ImagingStage): Column | null {
  return COLUMN_OF_STAGE[stage];
}

function applyNode(n: NodeFacts, c: Extract<DeploymentChange, { type: 'node' }>): NodeFacts {
  if (c.stage === 'pending') {
    // a retry starts the node over; its earlier attempt's timings go
    const retried = c.message === 'retry requested';
    const base = retried ? { ...freshNode(n), retries: n.retries + 1 } : n;
    return { ...base, stage: 'pending', percent: c.percent ?? 0, message: c.message };
  }
  const start = [...n.start] as PerColumn<number | null>;
  const end = [...n.end] as PerColumn<number | null>;
  const said = [...n.said] as PerColumn<string | null>;
  const next: NodeFacts = { ...n, start, end, said, stage: c.stage, percent: c.percent ?? n.percent, message: c.message };
  if (c.stage === 'failed' || c.stage === 'aborted') {
    const k = isFinalStage(n.stage) ? (n.stoppedIn ?? 0) : (activeColumn(n.stage) ?? 0);
    next.stoppedIn = k;
    start[k] ??= c.at;
    end[k] = c.at;
    return next;
  }
  const col = activeColumn(c.stage) ?? 0;
  if (c.stage === 'configuring') next.preImaged = true;
  for (let k = 0; k < col; k++) {
    if (k === 1 && next.preImaged) continue; // never imaged: no times
    start[k] ??= c.at;
    end[k] ??= c.at;
  }
  start[col] ??= c.at;
  said[col] = c.message;
  if (c.stage === 'done') next.doneAt = c.at;
  return next;
}

/** A log written before events carried `cluster_stage`/`check`: what the message and percent said. */
const CHECK_LINE = /^(PASS|FAIL) (\S+): (.*)$/s;
function legacyCluster(msg: string, percent: number, cl: ClusterFacts): { stage: ClusterStage; check: CheckView | null } {
  const k = CHECK_LINE.exec(msg);
  if (k) return { stage: cl.stage, check: { name: k[2] ?? '', ok: k[1] === 'PASS', evidence: k[3] ?? '' } };
  if (msg.startsWith('fatal:')) return { stage: 'failed', check: null };
  if (percent <= 0) return { stage: 'waiting', check: null };
  return { stage: percent >= 100 ? 'done' : percent >= 50 ? 'validating' : 'creating', check: null };
}

/** A cluster's event: its stage after the step (as Foundation's record has it), its check, its status. */
function applyCluster(cl: ClusterFacts, c: Extract<DeploymentChange, { type: 'cluster' }>): ClusterFacts {
  const prefix = `cluster ${cl.name}: `;
  const msg = c.message.startsWith(prefix) ? c.message.slice(prefix.length) : c.message;
  const percent = c.percent ?? cl.percent;
  const { stage, check: k } = c.stage === null ? legacyCluster(msg, percent, cl) : { stage: c.stage, check: c.check };
  if (k) return { ...cl, percent, checks: [...cl.checks.filter((x) => x.name !== k.name), k] };
  const next: ClusterFacts = { ...cl, percent, status: msg, stage };
  if (stage === 'creating' || stage === 'validating' || stage === 'done') next.createdAt = cl.createdAt ?? c.at;
  if (stage === 'validating' || stage === 'done') next.validatingAt = cl.validatingAt ?? c.at;
  if (stage === 'done' || stage === 'failed') next.endedAt = c.at;
  const id = /^cluster \S+ \(([^)]+)\) created/.exec(msg)?.[1];
  if (id) next.clusterId = id;
  return next;
}

function applyOne(s: DeploymentState, c: DeploymentChange): DeploymentState {
  if (c.type === 'snapshot') return snapshot(s, c.progress);
  if (!s.loaded) return s; // no lanes yet: the caller applies the progress snapshot first
  if (c.seq <= s.lastSeq) return s; // already applied (a replay after a reconnect)
  // seq 1 starts the log: every lane starts from pending, so a replay rebuilds the whole story
  const base: DeploymentState = c.seq === 1
    ? { ...s, nodes: s.nodes.map((n) => freshNode(n)), clusters: s.clusters.map(freshCluster), aborted: false, startedAt: c.at }
    : s;
  const next: DeploymentState = { ...base, lastSeq: c.seq };
  switch (c.type) {
    case 'node': {
      const n = next.nodes.find((x) => x.serial === c.serial);
      if (!n) return next;
      const updated = applyNode(n, c);
      next.nodes = next.nodes.map((x) => (x === n ? updated : x));
      if (c.stage === 'pending' && c.message === 'retry requested') {
        // Foundation clears the abort and puts the node's waiting clusters back to waiting
        next.aborted = false;
        next.clusters = next.clusters.map((cl) => (cl.stage === 'waiting' && cl.members.includes(n.cvmIp) ? { ...cl, status: 'waiting for its nodes to be imaged' } : cl));
      }
      return next;
    }
    case 'cluster': {
      const cl = next.clusters.find((x) => x.name === c.name);
      if (!cl) return next;
      const updated = applyCluster(cl, c);
      next.clusters = next.clusters.map((x) => (x === cl ? updated : x));
      return next;
    }
    case 'session':
      if (c.message.startsWith('session started')) next.startedAt ??= c.at;
      if (c.message === 'abort requested') next.aborted = true;
      return next;
  }
}

export function applyChanges(s: DeploymentState, changes: readonly DeploymentChange[]): DeploymentState {
  return changes.reduce(applyOne, s);
}

/** The cluster a node belongs to (one whose creation was asked for), if any. */
export function clusterOf(s: DeploymentState, n: NodeFacts): ClusterFacts | undefined {
  return s.clusters.find((c) => c.stage !== 'not_requested' && c.members.includes(n.cvmIp));
}

/** Whether a waiting cluster cannot start until a member is retried (as core/cluster-stage.ts decides). */
export function clusterBlocked(s: DeploymentState, c: ClusterFacts): boolean {
  return c.stage === 'waiting' && c.members.some((ip) => {
    const st = s.nodes.find((n) => n.cvmIp === ip)?.stage;
    return st === 'failed' || st === 'aborted';
  });
}

/** Foundation's "imaging_stopped": every node final, every cluster finished or blocked (or the session aborted). */
export function isStopped(s: DeploymentState): boolean {
  return s.loaded && s.nodes.every((n) => isFinalStage(n.stage))
    && s.clusters.every((c) => s.aborted || c.stage === 'done' || c.stage === 'failed' || c.stage === 'not_requested' || clusterBlocked(s, c));
}

/** Foundation's aggregate percent: nodes and the clusters it creates, each counted once. */
export function aggregatePercent(s: DeploymentState): number {
  const parts = [...s.nodes.map((n) => n.percent), ...s.clusters.filter((c) => c.stage !== 'not_requested').map((c) => c.percent)];
  return parts.length === 0 ? 0 : Math.floor(parts.reduce((a, b) => a + b, 0) / parts.length);
}
