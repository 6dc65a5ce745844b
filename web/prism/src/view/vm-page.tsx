/**
 * @module
 * One VM: its state and size, disks, NICs, power actions, its tasks, its I/O, and its serial
 * console live in the page.
 */
import { useState, type ReactElement } from 'react';
import * as api from '../api/client.ts';
import { bytes } from '../model/format.ts';
import { vmRow, type V3Task, type V3Vm } from '../model/v3.ts';
import { go, usePoll } from './hooks.ts';
import { Badge, ErrorBanner, Link, PageHead, Panel } from './widgets.tsx';
import { PowerButtons } from './vms.tsx';
import { TaskTable } from './tasks.tsx';
import { SerialConsole } from './serial-console.tsx';
import { IoCharts } from './chart.tsx';

export function VmPage({ uuid }: { uuid: string }): ReactElement {
  const [error, setError] = useState<string>();
  const vm = usePoll(() => api.v3Get<V3Vm>('vms', uuid), 3000, [uuid]);
  const tasks = usePoll(() => api.v3List<V3Task>('tasks', `entity_uuid==${uuid}`), 3000, [uuid]);
  const v = vm.data;
  if (!v) return <div><PageHead title="VM" /><ErrorBanner error={vm.error} />{vm.error ? null : <div className="empty">Loading…</div>}</div>;
  const row = vmRow(v);
  const r = v.status.resources;
  const remove = (): void => {
    if (!window.confirm(`Delete ${row.name} and its disks?`)) return;
    api.v3Delete('vms', uuid).then(() => go('/console/vms'), (e: unknown) => setError(e instanceof Error ? e.message : String(e)));
  };
  return (
    <div>
      <PageHead title={row.name}>
        <PowerButtons uuid={uuid} power={row.power} onDone={vm.refresh} onError={setError} />
        <button type="button" className="btn small danger" onClick={remove}>Delete</button>
      </PageHead>
      <ErrorBanner error={error ?? vm.error} />
      <div className="two-col">
        <Panel title="Summary">
          <dl className="facts">
            <dt>Power</dt><dd data-testid="power"><Badge state={row.power} /></dd>
            <dt>Host</dt><dd>{row.host}</dd>
            <dt>vCPUs</dt><dd>{row.vcpus}</dd>
            <dt>Memory</dt><dd>{bytes(row.memoryMiB * 2 ** 20)}</dd>
            <dt>UUID</dt><dd><code>{uuid}</code></dd>
            <dt>Performance</dt><dd><Link to={`/console/performance?entity=vm:${uuid}`}>charts of the last hour</Link></dd>
          </dl>
        </Panel>
        <Panel title="Disks">
          <table className="table compact">
            <thead><tr><th>Bus</th><th>Type</th><th>Size</th><th>From</th></tr></thead>
            <tbody>{r.disk_list.map((d) => (
              <tr key={d.uuid}><td>{d.device_properties.disk_address.adapter_type} {d.device_properties.disk_address.device_index}</td><td>{d.device_properties.device_type.toLowerCase()}</td><td>{bytes(d.disk_size_bytes)}</td><td>{d.data_source_reference?.name ?? (d.data_source_reference ? 'image' : '–')}</td></tr>
            ))}</tbody>
          </table>
          <h3>NICs</h3>
          {r.nic_list.length === 0 ? <div className="muted">none</div> : (
            <table className="table compact">
              <thead><tr><th>MAC</th><th>Subnet</th><th>IP</th></tr></thead>
              <tbody>{r.nic_list.map((n) => <tr key={n.mac_address}><td><code>{n.mac_address}</code></td><td>{n.subnet_reference?.name ?? '–'}</td><td>{(n.ip_endpoint_list ?? []).map((e) => e.ip).join(', ') || '–'}</td></tr>)}</tbody>
            </table>
          )}
        </Panel>
      </div>
      <Panel title="Serial console">
        <SerialConsole uuid={uuid} />
      </Panel>
      <Panel title="I/O, last 15 minutes">
        <IoCharts entity={`vm:${uuid}`} minutes={15} compact />
      </Panel>
      <Panel title="Tasks">
        <TaskTable tasks={(tasks.data?.entities ?? []).slice(0, 20)} />
      </Panel>
    </div>
  );
}
