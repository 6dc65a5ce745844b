/**
 * @module
 * Tasks, live: every task of the VM service, of Prism and of LCM's upgrade (the upgrade and each of
 * its steps), newest first, with its progress, the entity it works on, how long it took and why it
 * failed.
 */
import { useState, type ReactElement } from 'react';
import * as api from '../api/client.ts';
import { ago, duration } from '../model/format.ts';
import type { V3Task } from '../model/v3.ts';
import { useNow, usePoll } from './hooks.ts';
import { Badge, ErrorBanner, Link, PageHead, Panel, Progress } from './widgets.tsx';

/** Where an entity of a task is shown. */
function entityLink(r: { kind: string; uuid: string; name?: string }): ReactElement {
  const label = r.name ?? r.uuid.slice(0, 8);
  if (r.kind === 'vm') return <Link to={`/console/vms/${r.uuid}`}>{label}</Link>;
  const page: Record<string, string> = { image: 'images', subnet: 'networks', host: 'hosts', virtual_disk: 'storage' };
  return page[r.kind] ? <Link to={`/console/${page[r.kind] ?? ''}`}>{label}</Link> : <span>{label}</span>;
}

export function TaskTable({ tasks }: { tasks: V3Task[] }): ReactElement {
  const now = useNow();
  if (tasks.length === 0) return <div className="empty">No tasks.</div>;
  return (
    <table className="table" data-testid="tasks">
      <thead><tr><th>Operation</th><th>Entity</th><th>Status</th><th className="w-progress">Progress</th><th>Started</th><th>Took</th><th>Message</th></tr></thead>
      <tbody>
        {tasks.map((t) => (
          <tr key={t.uuid} data-task={t.uuid} data-status={t.status}>
            <td>{t.operation_type.startsWith('Lcm') ? <Link to="/console/lcm">{t.operation_type}</Link> : t.operation_type}{t.parent_task_reference ? <span className="muted"> (sub-task)</span> : null}</td>
            <td>{t.entity_reference_list.map((r) => <span key={r.uuid}>{entityLink(r)} </span>)}</td>
            <td><Badge state={t.status} /></td>
            <td><Progress percent={t.percentage_complete} state={t.status} /></td>
            <td title={t.creation_time}>{ago(t.creation_time, now)}</td>
            <td>{duration(t.start_time || t.creation_time, t.completion_time || null, now)}</td>
            <td className={t.error_detail ? 'error-text' : 'muted'}>{t.error_detail || t.progress_message}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function TasksPage(): ReactElement {
  const [open, setOpen] = useState(false);
  const tasks = usePoll(() => api.v3List<V3Task>('tasks'), 2000);
  const all = tasks.data?.entities ?? [];
  const shown = open ? all.filter((t) => t.status === 'RUNNING' || t.status === 'QUEUED') : all;
  return (
    <div>
      <PageHead title="Tasks">
        <label className="check"><input type="checkbox" checked={open} onChange={(e) => setOpen(e.target.checked)} /> running only</label>
      </PageHead>
      <ErrorBanner error={tasks.error} />
      <Panel><TaskTable tasks={shown.slice(0, 200)} /></Panel>
    </div>
  );
}
