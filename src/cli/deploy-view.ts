/**
 * @module
 * `converge deploy`'s view of a session (pure): the four stages of the flow as a tree per node and
 * for the cluster — 1 Foundation (discover, validate, address), 2 Imaging (media, boot, install),
 * 3 Bootstrap (the hypervisor boots, the CVM starts, the cluster forms), 4 Activation (the cluster
 * is validated) — each with a mark, and the current step with its percent.
 */
import type { ProgressResponse } from '../foundation/protocol/api.ts';

const STAGES = ['Foundation', 'Imaging', 'Bootstrap', 'Activation'] as const;
type Mark = 'done' | 'now' | 'todo' | 'failed';
const GLYPH: Record<Mark, string> = { done: '✔', now: '●', todo: '○', failed: '✖' };

/** Which of the four stages a node's imaging stage is in (0-based); a failed node by how far it got. */
function nodeColumn(stage: string, percent: number): number {
  if (stage === 'failed' || stage === 'aborted') return percent < 4 ? 0 : percent < 88 ? 1 : 2; // media at 4 %, rebooting at 88 %
  if (stage === 'pending' || stage === 'bmc_config') return 0;
  if (stage === 'media' || stage === 'booting' || stage === 'installing') return 1;
  return 2; // rebooting, configuring, done: the hypervisor and the CVM come up
}

function line(marks: Mark[], detail: (i: number) => string, indent: string): string[] {
  return STAGES.map((name, i) => `${indent}${GLYPH[marks[i] ?? 'todo']} ${i + 1} ${name.padEnd(11)}${marks[i] === 'now' || marks[i] === 'failed' ? ` ${detail(i)}` : ''}`.trimEnd());
}

export function renderStages(p: ProgressResponse): string {
  const out = [`session ${p.session_id}: ${p.aggregate_percent_complete}%${p.imaging_stopped ? ' — stopped' : ''}${p.abort_session ? ' (aborted)' : ''}`];
  const cluster = p.clusters.find((c) => c.stage !== 'not_requested');
  const entries = [...p.nodes.map((n) => ({ kind: 'node' as const, n })), ...(cluster ? [{ kind: 'cluster' as const, c: cluster }] : [])];
  entries.forEach((e, idx) => {
    const last = idx === entries.length - 1;
    const indent = last ? '    ' : '│   ';
    if (e.kind === 'node') {
      const n = e.n;
      out.push(`${last ? '└─' : '├─'} ${n.node_serial}  host ${n.hypervisor_ip}  CVM ${n.cvm_ip}`);
      const col = n.stage === 'done' ? 3 : nodeColumn(n.stage, n.percent_complete);
      const failed = n.stage === 'failed' || n.stage === 'aborted';
      const cs = cluster?.stage;
      const marks: Mark[] = STAGES.map((_s, i) => {
        if (failed) return i < col ? 'done' : i === col ? 'failed' : 'todo';
        if (n.stage !== 'done') return i < col ? 'done' : i === col ? 'now' : 'todo';
        // imaged: stages 3-4 follow the cluster (a node with no cluster to form is done at 3)
        if (!cluster) return i <= 2 ? 'done' : 'todo';
        if (cs === 'done') return 'done';
        if (cs === 'failed') return i < 2 ? 'done' : i === (cluster.percent_complete >= 50 ? 3 : 2) ? 'failed' : i < 3 ? 'done' : 'todo';
        return i < 2 ? 'done' : i === 2 ? (cs === 'validating' ? 'done' : 'now') : cs === 'validating' ? 'now' : 'todo';
      });
      out.push(...line(marks, (i) => (i >= 2 && n.stage === 'done' ? `cluster: ${cluster?.status ?? ''}` : `${n.percent_complete}% ${String(n.status).slice(0, 80)}`), indent));
    } else {
      const c = e.c;
      out.push(`${last ? '└─' : '├─'} cluster ${c.cluster_name} (${c.cluster_members.length} nodes)`);
      const col = c.stage === 'validating' ? 3 : 2;
      const marks: Mark[] = STAGES.map((_s, i) => {
        if (c.stage === 'done') return 'done';
        if (i < 2) return c.stage === 'waiting' ? 'todo' : 'done';
        if (c.stage === 'waiting') return i === 2 ? 'now' : 'todo';
        if (c.stage === 'failed') return i < (c.percent_complete >= 50 ? 3 : 2) ? 'done' : i === (c.percent_complete >= 50 ? 3 : 2) ? 'failed' : 'todo';
        return i < col ? 'done' : i === col ? 'now' : 'todo';
      });
      out.push(...line(marks, () => `${c.percent_complete}% ${String(c.status).slice(0, 90)}`, indent));
    }
  });
  if (cluster && (cluster.stage === 'done' || cluster.stage === 'failed')) out.push(`cluster ${cluster.cluster_name}: ${cluster.status}`);
  return out.join('\n');
}
