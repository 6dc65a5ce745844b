/**
 * @module
 * Alerts (NCC's checks, run by the Prism leader every 30 s): each with its severity, entity,
 * cause, resolution and times; acknowledge or resolve them. An alert whose condition clears
 * resolves itself.
 */
import { useState, type ReactElement } from 'react';
import * as api from '../api/client.ts';
import { ago } from '../model/format.ts';
import { useNow, usePoll } from './hooks.ts';
import { Badge, ErrorBanner, PageHead, Panel } from './widgets.tsx';

interface V2Alert {
  id: string;
  alert_title: string;
  message: string;
  severity: string;
  created_time_stamp_in_usecs: number;
  last_occurrence_time_stamp_in_usecs: number;
  acknowledged: boolean;
  resolved: boolean;
  resolved_by_username: string | null;
  affected_entities: { entity_type: string; entity_name: string }[];
  possible_causes: { cause: string[]; resolution: string[] }[];
}

const iso = (usecs: number | null): string | null => (usecs ? new Date(usecs / 1000).toISOString() : null);

export function AlertsPage({ onChange }: { onChange: () => void }): ReactElement {
  const now = useNow();
  const [all, setAll] = useState(false);
  const [error, setError] = useState<string>();
  const alerts = usePoll(() => api.v2<{ entities: V2Alert[] }>(all ? 'alerts' : 'alerts?resolved=false'), 3000, [all]);
  const change = (c: 'acknowledge' | 'resolve', id: string): void => {
    api.alertChange(c, [id]).then(() => {
      alerts.refresh();
      onChange();
    }, (e: unknown) => setError(e instanceof Error ? e.message : String(e)));
  };
  const list = (alerts.data?.entities ?? []).slice().sort((a, b) => b.last_occurrence_time_stamp_in_usecs - a.last_occurrence_time_stamp_in_usecs);
  return (
    <div>
      <PageHead title="Alerts">
        <label className="check"><input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} /> show resolved</label>
      </PageHead>
      <ErrorBanner error={error ?? alerts.error} />
      <Panel>
        {list.length === 0 ? <div className="empty" data-testid="no-alerts">{alerts.data ? 'No open alerts.' : 'Loading…'}</div> : (
          <table className="table" data-testid="alerts">
            <thead><tr><th>Severity</th><th>Alert</th><th>Entity</th><th>Cause and resolution</th><th>Last seen</th><th>State</th><th /></tr></thead>
            <tbody>{list.map((a) => (
              <tr key={a.id} data-alert={a.alert_title} data-resolved={a.resolved}>
                <td><Badge state={a.severity} label={a.severity.replace(/^k/, '')} /></td>
                <td><strong>{a.alert_title}</strong><div className="muted">{a.message}</div></td>
                <td>{a.affected_entities.map((e) => (e.entity_name.startsWith(e.entity_type) ? e.entity_name : `${e.entity_type} ${e.entity_name}`)).join(', ')}</td>
                <td className="small">{a.possible_causes.map((p) => <div key={p.cause.join()}><div>{p.cause.join(' ')}</div><div className="muted">{p.resolution.join(' ')}</div></div>)}</td>
                <td title={iso(a.last_occurrence_time_stamp_in_usecs) ?? ''}>{ago(iso(a.last_occurrence_time_stamp_in_usecs), now)}</td>
                <td>{a.resolved ? <Badge state="COMPLETE" label={`resolved${a.resolved_by_username ? ` by ${a.resolved_by_username}` : ''}`} /> : a.acknowledged ? <Badge state="PENDING" label="acknowledged" /> : <Badge state="WARNING" label="open" />}</td>
                <td className="right btn-row">
                  {!a.acknowledged && !a.resolved ? <button type="button" className="btn small" onClick={() => change('acknowledge', a.id)}>Acknowledge</button> : null}
                  {!a.resolved ? <button type="button" className="btn small" onClick={() => change('resolve', a.id)}>Resolve</button> : null}
                </td>
              </tr>
            ))}</tbody>
          </table>
        )}
      </Panel>
    </div>
  );
}
