/**
 * @module
 * VMs: a table with search, each VM's power state, host, size and addresses, and its power
 * actions; "Create VM" opens the wizard.
 */
import { useState, type ReactElement } from 'react';
import * as api from '../api/client.ts';
import { bytes } from '../model/format.ts';
import { vmRow, type V3Vm } from '../model/v3.ts';
import { go, usePoll } from './hooks.ts';
import { Badge, ErrorBanner, Link, PageHead, Panel } from './widgets.tsx';

/** Power actions of a VM in its state: what the buttons do (v2.0 set_power_state). */
export function PowerButtons({ uuid, power, onDone, onError }: { uuid: string; power: string; onDone: () => void; onError: (m: string) => void }): ReactElement {
  const [busy, setBusy] = useState(false);
  const act = (t: 'ON' | 'OFF' | 'ACPI_SHUTDOWN' | 'ACPI_REBOOT'): void => {
    setBusy(true);
    api.setPower(uuid, t).then(onDone, (e: unknown) => onError(e instanceof Error ? e.message : String(e))).finally(() => setBusy(false));
  };
  return (
    <span className="btn-row">
      {power === 'ON'
        ? <>
          <button type="button" className="btn small" disabled={busy} onClick={() => act('ACPI_SHUTDOWN')}>Shut down</button>
          <button type="button" className="btn small" disabled={busy} onClick={() => act('ACPI_REBOOT')}>Reboot</button>
          <button type="button" className="btn small danger" disabled={busy} onClick={() => act('OFF')}>Power off</button>
        </>
        : <button type="button" className="btn small" disabled={busy} onClick={() => act('ON')}>Power on</button>}
    </span>
  );
}

export function VmsPage(): ReactElement {
  const [q, setQ] = useState('');
  const [error, setError] = useState<string>();
  const vms = usePoll(() => api.v3List<V3Vm>('vms'), 3000);
  const rows = (vms.data?.entities ?? []).map(vmRow).sort((a, b) => a.name.localeCompare(b.name));
  const needle = q.trim().toLowerCase();
  const shown = needle ? rows.filter((r) => [r.name, r.host, r.power, ...r.ips].some((x) => x.toLowerCase().includes(needle))) : rows;
  return (
    <div>
      <PageHead title="VMs">
        <input className="search" type="search" placeholder="Search name, host, IP…" value={q} onChange={(e) => setQ(e.target.value)} aria-label="Search VMs" />
        <button type="button" className="btn primary" onClick={() => go('/console/vms/new')}>Create VM</button>
      </PageHead>
      <ErrorBanner error={error ?? vms.error} />
      <Panel>
        {shown.length === 0 ? <div className="empty">{vms.data ? (rows.length ? 'No VM matches.' : 'No VMs yet. Create one from an image.') : 'Loading…'}</div> : (
          <table className="table" data-testid="vms">
            <thead><tr><th>Name</th><th>Power</th><th>Host</th><th>vCPUs</th><th>Memory</th><th>IP addresses</th><th>Disks</th><th /></tr></thead>
            <tbody>
              {shown.map((r) => (
                <tr key={r.uuid} data-vm={r.name}>
                  <td><Link to={`/console/vms/${r.uuid}`}>{r.name}</Link></td>
                  <td><Badge state={r.power} /></td>
                  <td>{r.host}</td>
                  <td>{r.vcpus}</td>
                  <td>{bytes(r.memoryMiB * 2 ** 20)}</td>
                  <td>{r.ips.join(', ') || '–'}</td>
                  <td>{r.disks}</td>
                  <td className="right"><PowerButtons uuid={r.uuid} power={r.power} onDone={vms.refresh} onError={setError} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Panel>
    </div>
  );
}
