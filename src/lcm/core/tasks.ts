/**
 * @module
 * A rolling upgrade as tasks (pure): the upgrade one task, each node's steps reached so far its
 * subtasks, in the VM service's task shape (cvm/protocol/vms.ts Task) so that Prism lists them with
 * the others (v3 `tasks/list`, v4 `config/tasks`, the console's Tasks page). Derived from the
 * record in etcd, not kept apart: whichever CVM drives the upgrade, the tasks are the same.
 */
import type { Task, TaskState } from '../../cvm/protocol/vms.ts';
import type { UpgradeRecord } from '../protocol/lcm.ts';

export const UPGRADE_OPERATION = 'LcmUpgrade';
export const STEP_OPERATION = 'LcmUpgradeStep';

/** Done share of a rolling upgrade (0–100): each node counts for its steps reached. */
export function upgradePercent(r: UpgradeRecord): number {
  if (r.state === 'succeeded') return 100;
  const total = r.nodes.length || 1;
  let done = 0;
  for (const n of r.nodes) {
    const steps = r.plan.nodes.find((p) => p.serial === n.serial)?.steps.length ?? 1;
    done += n.state === 'done' ? 1 : n.state === 'pending' ? 0 : Math.max(0, n.step) / steps;
  }
  return Math.min(99, Math.round((100 * done) / total));
}

const UPGRADE_STATE: Record<UpgradeRecord['state'], TaskState> = { running: 'running', paused: 'paused', failed: 'failed', succeeded: 'succeeded', aborted: 'aborted' };

/** Names a step's task: stable for (upgrade, node, step), unlike any other (node/ gives a name-based UUID). */
export type StepUuid = (upgrade: string, serial: string, step: number) => string;

/** The upgrade's task first, then its steps' (newest last); the cluster is the entity of each. */
export function tasksOfUpgrade(r: UpgradeRecord, cluster: { uuid: string; name: string }, stepUuid: StepUuid): Task[] {
  const entity = { kind: 'cluster' as const, uuid: cluster.uuid, name: cluster.name };
  const base = { entity, result: null, request: {} };
  const last = r.events.at(-1)?.message ?? '';
  const ended = r.state === 'succeeded' || r.state === 'aborted' || r.state === 'failed';
  const out: Task[] = [{
    ...base, uuid: r.id, operation: UPGRADE_OPERATION, state: UPGRADE_STATE[r.state], percent: upgradePercent(r),
    message: `upgrade to ${r.to}: ${last}`,
    error: r.state === 'failed' || r.state === 'aborted' ? { code: 'CVG_ERR_LCM', message: r.error ?? r.state } : null,
    createdAt: r.startedAt, startedAt: r.startedAt, finishedAt: ended ? r.finishedAt ?? r.updatedAt : null, parent: null,
  }];
  for (const n of r.nodes) {
    const plan = r.plan.nodes.find((p) => p.serial === n.serial);
    if (!plan || n.state === 'pending') continue;
    const finished = n.finished ?? [];
    const upTo = n.state === 'done' ? plan.steps.length - 1 : n.step;
    for (let i = 0; i <= upTo; i++) {
      const step = plan.steps[i];
      if (!step) continue;
      const current = i === n.step && n.state !== 'done';
      const state: TaskState = !current ? 'succeeded' : n.state === 'failed' ? 'failed' : r.state === 'aborted' ? 'aborted' : 'running';
      const began = i === 0 ? n.startedAt : finished[i - 1];
      const startedAt = (current ? n.since : began) ?? n.since;
      out.push({
        ...base, uuid: stepUuid(r.id, n.serial, i), operation: STEP_OPERATION, state, percent: state === 'succeeded' ? 100 : 0,
        message: `${plan.hostname}: ${step.detail}`,
        error: state === 'failed' ? { code: 'CVG_ERR_LCM', message: n.error ?? 'failed' } : null,
        createdAt: startedAt, startedAt, finishedAt: state === 'succeeded' ? finished[i] ?? n.since : state === 'aborted' ? r.updatedAt : null, parent: r.id,
      });
    }
  }
  return out;
}
