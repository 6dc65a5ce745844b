/**
 * @module
 * The dashboard: the cluster's health and why, hosts and CVMs up, VMs running, storage used,
 * open alerts, the cluster's I/O of the last 15 minutes and the latest tasks.
 */
import type { ReactElement } from 'react';
import * as api from '../api/client.ts';
import { bytes, percent } from '../model/format.ts';
import type { V3Task, V3Vm } from '../model/v3.ts';
import { usePoll } from './hooks.ts';
import { Badge, Capacity, ErrorBanner, Link, PageHead, Panel } from './widgets.tsx';
import { IoCharts } from './chart.tsx';
import { TaskTable } from './tasks.tsx';

export function Dashboard(): ReactElement {
  const c = usePoll(api.cluster, 5000);
  const vms = usePoll(() => api.v3List<V3Vm>('vms'), 5000);
  const tasks = usePoll(() => api.v3List<V3Task>('tasks'), 5000);
  const alerts = usePoll(() => api.v2<{ entities: { severity: string }[] }>('alerts?resolved=false'), 10_000);
  const s = c.data;
  const all = vms.data?.entities ?? [];
  const on = all.filter((v) => v.status.resources.power_state === 'ON').length;
  const u = s?.pool?.usage;
  const open = alerts.data?.entities ?? [];
  return (
    <div>
      <PageHead title="Dashboard" />
      <ErrorBanner error={c.error} />
      <div className="tiles">
        <Panel title="Cluster health" className="tile">
          <div className="big" data-testid="health">{s ? <Badge state={s.health.state} label={s.health.state} /> : '…'}</div>
          <ul className="reasons">{(s?.health.reasons ?? []).slice(0, 5).map((r) => <li key={r}>{r}</li>)}</ul>
        </Panel>
        <Panel title="Hosts" className="tile">
          <div className="big">{s ? `${s.members.filter((m) => m.host && m.cvm).length} / ${s.members.length}` : '…'}</div>
          <div className="muted">hosts with their CVM up</div>
        </Panel>
        <Panel title="VMs" className="tile">
          <div className="big">{vms.data ? `${on} / ${all.length}` : '…'}</div>
          <div className="muted"><Link to="/console/vms">powered on</Link></div>
        </Panel>
        <Panel title="Storage" className="tile">
          <div className="big">{u ? percent(u.usedBytes, u.capacityBytes) : '…'}</div>
          {u ? <Capacity used={u.usedBytes} total={u.capacityBytes} /> : null}
          <div className="muted">{u ? `${bytes(u.usedBytes)} of ${bytes(u.capacityBytes)} · ${s?.containers.length ?? 0} containers` : ''}</div>
        </Panel>
        <Panel title="Alerts" className="tile">
          <div className="big">{alerts.data ? open.length : '…'}</div>
          <div className="muted"><Link to="/console/alerts">{open.filter((a) => a.severity === 'kCritical').length} critical, {open.filter((a) => a.severity === 'kWarning').length} warning</Link></div>
        </Panel>
      </div>
      <Panel title="Cluster I/O, last 15 minutes">
        <IoCharts entity="cluster" minutes={15} compact />
      </Panel>
      <Panel title="Latest tasks">
        <TaskTable tasks={(tasks.data?.entities ?? []).slice(0, 6)} />
      </Panel>
    </div>
  );
}
