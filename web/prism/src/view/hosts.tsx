/**
 * @module
 * Hosts: each node's host and CVM (addresses, versions, hardware, services, VMs) and its
 * maintenance mode: entering moves its VMs to other hosts (live), leaving brings them back.
 */
import { useState, type ReactElement } from 'react';
import * as api from '../api/client.ts';
import { bytes } from '../model/format.ts';
import { usePoll } from './hooks.ts';
import { Badge, ErrorBanner, Link, PageHead, Panel } from './widgets.tsx';

export function HostsPage(): ReactElement {
  const c = usePoll(api.cluster, 3000);
  const v4 = usePoll(api.v4Hosts, 3000);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState<string>();
  const state = (uuid: string): string => v4.data?.data?.find((h) => h.extId === uuid)?.maintenanceState ?? 'NORMAL';
  const toggle = (uuid: string, enter: boolean): void => {
    setBusy(uuid);
    setError(undefined);
    api.maintenance(c.data?.cluster.clusterId ?? '', uuid, enter).then(() => v4.refresh(), (e: unknown) => setError(e instanceof Error ? e.message : String(e))).finally(() => setBusy(undefined));
  };
  return (
    <div>
      <PageHead title="Hosts" />
      <ErrorBanner error={error ?? c.error} />
      <Panel>
        <table className="table" data-testid="hosts">
          <thead><tr><th>Host</th><th>Hypervisor</th><th>CVM</th><th>Services</th><th>Hardware</th><th>VMs</th><th>Maintenance</th><th /></tr></thead>
          <tbody>{(c.data?.members ?? []).map((m) => {
            const h = m.host;
            const ms = state(m.hostUuid);
            return (
              <tr key={m.serial} data-host={h?.hostname ?? m.serial}>
                <td><strong>{h?.hostname ?? m.serial}</strong><div className="muted">{m.serial} · {m.hostIp}</div></td>
                <td>{h ? `AHV ${h.hypervisorVersion}` : <Badge state="DOWN" label="not answering" />}<div className="muted">link to CVM {h?.link.state ?? '?'}</div></td>
                <td>{m.cvmIp}{m.cvmIp === c.data?.leader ? <span className="badge idle">Prism leader</span> : null}<div className="muted">AOS {m.cvm?.nosVersion ?? '?'}</div></td>
                <td className="services">{m.cvm ? m.cvm.services.map((s) => <Badge key={s.name} state={s.state === 'up' ? 'UP' : 'DOWN'} label={s.name} />) : <Badge state="DOWN" label="CVM down" />}</td>
                <td>{h ? `${h.hardware.cpu.cores} cores · ${bytes(h.hardware.memoryMiB * 2 ** 20)}` : '–'}<div className="muted">{h?.hardware.model} · BMC {h?.hardware.bmcIp}</div></td>
                <td><Link to={`/console/performance?entity=host:${m.hostUuid}`}>{h?.vms ?? 0}</Link></td>
                <td><Badge state={ms} /></td>
                <td className="right">
                  {ms === 'NORMAL'
                    ? <button type="button" className="btn small" disabled={busy === m.hostUuid} onClick={() => toggle(m.hostUuid, true)}>Enter maintenance</button>
                    : <button type="button" className="btn small" disabled={busy === m.hostUuid || ms === 'ENTERING_MAINTENANCE_MODE'} onClick={() => toggle(m.hostUuid, false)}>Exit maintenance</button>}
                </td>
              </tr>
            );
          })}</tbody>
        </table>
      </Panel>
    </div>
  );
}
