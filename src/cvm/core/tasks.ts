/**
 * @module
 * The VM service's task state machine (protocol/vms.ts Task). Pure: each function returns the next
 * record; time comes from the caller's clock.
 * ```
 *   queued ──start──► running ──succeed──► succeeded
 *     │                 │  └────fail────► failed     (error: code, message, field?)
 *     └──────abort──────┴─────abort─────► aborted
 * ```
 * Percent only rises (a progress report lower than the last is kept at the last); a finished task
 * changes no more.
 */
import { ConflictError, InputError, errorMessage, isConvergeError } from '../../shared/errors.ts';
import type { Task, TaskEntity } from '../protocol/vms.ts';

export interface NewTask {
  uuid: string;
  operation: string;
  entity: TaskEntity;
  request: Record<string, unknown>;
  parent?: string | null;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function isFinished(t: Pick<Task, 'state'>): boolean {
  return t.state === 'succeeded' || t.state === 'failed' || t.state === 'aborted';
}

export function newTask(n: NewTask, now: number): Task {
  return {
    uuid: n.uuid, operation: n.operation, entity: n.entity, state: 'queued', percent: 0, message: 'queued', error: null, result: null,
    createdAt: iso(now), startedAt: null, finishedAt: null, parent: n.parent ?? null, request: n.request,
  };
}

function refuseFinished(t: Task, what: string): void {
  if (isFinished(t)) throw new ConflictError(`task ${t.uuid} (${t.operation}) is ${t.state}; it cannot ${what}`);
}

/** queued → running; a running task started again (a new leader resumes it) keeps its start time. */
export function startTask(t: Task, now: number, message = 'running'): Task {
  refuseFinished(t, 'start');
  return { ...t, state: 'running', startedAt: t.startedAt ?? iso(now), message };
}

export function progressTask(t: Task, percent: number, message?: string): Task {
  if (t.state !== 'running') throw new ConflictError(`task ${t.uuid} is ${t.state}; only a running task reports progress`);
  const p = Math.max(t.percent, Math.min(100, Math.max(0, Math.floor(percent))));
  return { ...t, percent: p, message: message ?? t.message };
}

export function succeedTask(t: Task, now: number, result: Record<string, unknown> | null = null, message = 'done'): Task {
  if (t.state !== 'running') throw new ConflictError(`task ${t.uuid} is ${t.state}; only a running task succeeds`);
  return { ...t, state: 'succeeded', percent: 100, message, result, finishedAt: iso(now) };
}

/** The error body of a failure: the typed error's code, its message and the field it names. */
export function errorOf(e: unknown): NonNullable<Task['error']> {
  const out: NonNullable<Task['error']> = { code: isConvergeError(e) ? e.code : 'CVG_ERR_INTERNAL', message: errorMessage(e) };
  if (e instanceof InputError) out.field = e.field;
  return out;
}

export function failTask(t: Task, now: number, e: unknown): Task {
  refuseFinished(t, 'fail');
  const error = errorOf(e);
  return { ...t, state: 'failed', message: `failed: ${error.message}`, error, finishedAt: iso(now) };
}

export function abortTask(t: Task, now: number, reason: string): Task {
  refuseFinished(t, 'be aborted');
  return { ...t, state: 'aborted', message: `aborted: ${reason}`, error: { code: 'CVG_ERR_CONFLICT', message: reason }, finishedAt: iso(now) };
}

/** Tasks a leader runs, in order: oldest first (ties keep the input's order: the store's creation order); per entity one at a time (the first unfinished task of an entity goes first). */
export function runnable(tasks: readonly Task[], busy: ReadonlySet<string>): Task[] {
  const open = tasks.filter((t) => !isFinished(t)).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  const seen = new Set<string>(busy);
  const out: Task[] = [];
  for (const t of open) {
    if (seen.has(t.entity.uuid)) continue;
    seen.add(t.entity.uuid);
    out.push(t);
  }
  return out;
}
