/**
 * @module
 * Performance: IOPS, throughput and latency over time for the cluster, a host, a VM or a vdisk
 * (collected by every CVM every 5 s, kept for a day).
 */
import { useState, type ReactElement } from 'react';
import * as api from '../api/client.ts';
import type { V3Vm } from '../model/v3.ts';
import { go, usePoll } from './hooks.ts';
import { PageHead, Panel } from './widgets.tsx';
import { IoCharts } from './chart.tsx';

const RANGES = [[15, '15 minutes'], [60, '1 hour'], [360, '6 hours'], [1440, '1 day']] as const;

export function PerformancePage({ entity }: { entity: string }): ReactElement {
  const [minutes, setMinutes] = useState(60);
  const c = usePoll(api.cluster, 30_000);
  const vms = usePoll(() => api.v3List<V3Vm>('vms'), 30_000);
  const options: [string, string][] = [
    ['cluster', 'Cluster'],
    ...(c.data?.members ?? []).map((m): [string, string] => [`host:${m.hostUuid}`, `Host ${m.host?.hostname ?? m.serial}`]),
    ...(vms.data?.entities ?? []).map((v): [string, string] => [`vm:${v.metadata.uuid}`, `VM ${v.spec.name}`]),
    ...(c.data?.vdisks ?? []).map((d): [string, string] => [`vdisk:${d.uuid}`, `vdisk ${d.name}`]),
  ];
  if (!options.some(([k]) => k === entity)) options.push([entity, entity]);
  return (
    <div>
      <PageHead title="Performance">
        <select aria-label="Entity" value={entity} onChange={(e) => go(`/console/performance${e.target.value === 'cluster' ? '' : `?entity=${encodeURIComponent(e.target.value)}`}`)}>
          {options.map(([k, label]) => <option key={k} value={k}>{label}</option>)}
        </select>
        <select aria-label="Range" value={minutes} onChange={(e) => setMinutes(Number(e.target.value))}>
          {RANGES.map(([m, label]) => <option key={m} value={m}>{label}</option>)}
        </select>
      </PageHead>
      <Panel>
        <IoCharts entity={entity} minutes={minutes} />
      </Panel>
    </div>
  );
}
