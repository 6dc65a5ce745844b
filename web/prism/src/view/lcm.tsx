/**
 * @module
 * LCM: what runs on each node (hypervisor, storage OS, BMC and BIOS firmware), the bundles in the
 * cluster's repository (upload one with a progress bar), the plan to a bundle (or why the
 * compatibility matrix refuses it), the pre-checks, and the rolling upgrade live: each node's four
 * boxes (Maintenance, Install, Restart, Validate) as Foundation's flow shows a node's stages, the
 * events, pause, resume and abort.
 */
import { useRef, useState, type FormEvent, type ReactElement } from 'react';
import * as api from '../api/client.ts';
import { ago, bytes } from '../model/format.ts';
import { nodeStages, upgradeSummary } from '../model/lcm.ts';
import { diskFirmwareText, type PrecheckResult, type Refusal, type UpgradePlan, type UpgradeRecord } from '../../../../src/lcm/protocol/lcm.ts';
import { useNow, usePoll } from './hooks.ts';
import { Badge, ErrorBanner, PageHead, Panel, UploadProgress } from './widgets.tsx';

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const UPGRADE_STATE: Record<UpgradeRecord['state'], string> = { running: 'RUNNING', paused: 'PAUSED', failed: 'FAILED', succeeded: 'SUCCEEDED', aborted: 'ABORTED' };

export function LcmPage(): ReactElement {
  const now = useNow();
  const inventory = usePoll(api.lcmInventory, 10_000);
  const bundles = usePoll(api.lcmBundles, 10_000);
  const upgrade = usePoll(api.lcmUpgrade, 2000);
  const [error, setError] = useState<string>();
  const [to, setTo] = useState('');
  const [plan, setPlan] = useState<{ plan: UpgradePlan; refusals: Refusal[] }>();
  const [checks, setChecks] = useState<PrecheckResult[]>();
  const [busy, setBusy] = useState<string>();
  const [up, setUp] = useState<{ sent: number; total: number }>();
  const file = useRef<HTMLInputElement>(null);
  const abort = useRef<AbortController | null>(null);
  const target = to || bundles.data?.[0]?.offer.version || '';
  const r = upgrade.data ?? null;
  const live = r !== null && (r.state === 'running' || r.state === 'paused' || r.state === 'failed');

  const run = <T,>(what: string, f: () => Promise<T>, then: (v: T) => void = () => undefined): void => {
    setBusy(what);
    setError(undefined);
    f().then(then, (e: unknown) => setError(message(e))).finally(() => setBusy(undefined));
  };
  const upload = (e: FormEvent): void => {
    e.preventDefault();
    const f = file.current?.files?.[0];
    if (!f) return setError('choose a release bundle (converge-<version>.tar.gz) to upload');
    setError(undefined);
    abort.current = new AbortController();
    setUp({ sent: 0, total: f.size });
    api.uploadBundle(f, (sent, total) => setUp({ sent, total }), abort.current.signal).then((b) => {
      setUp(undefined);
      setTo(b.offer.version);
      if (file.current) file.current.value = '';
      bundles.refresh();
    }, (err: unknown) => {
      setUp(undefined);
      setError(message(err));
    });
  };
  const start = (): void => {
    if (!window.confirm(`Upgrade every node to ${target}, one at a time? Each node's VMs move to other hosts while it restarts.`)) return;
    run('upgrade', () => api.lcmStart(target), () => upgrade.refresh());
  };
  const change = (action: 'pause' | 'resume' | 'abort'): void => {
    if (action === 'abort' && !window.confirm('Abort the upgrade? The node it stopped at stays as it is.')) return;
    run(action, () => api.lcmChange(action), () => upgrade.refresh());
  };

  return (
    <div>
      <PageHead title="Life Cycle Manager" />
      <ErrorBanner error={error ?? inventory.error ?? upgrade.error} />
      {r ? (
        <Panel title={`Upgrade to ${r.to}`} className="lcm-upgrade">
          <div className="lcm-head" data-testid="upgrade-state">
            <Badge state={UPGRADE_STATE[r.state]} />
            <span>{upgradeSummary(r)}</span>
            <span className="spacer" />
            {r.state === 'running' ? <button type="button" className="btn small" disabled={busy !== undefined || r.pauseRequested} onClick={() => change('pause')}>Pause</button> : null}
            {r.state === 'paused' || r.state === 'failed' ? <button type="button" className="btn small primary" disabled={busy !== undefined} onClick={() => change('resume')}>Resume</button> : null}
            {r.state === 'paused' || r.state === 'failed' ? <button type="button" className="btn small danger" disabled={busy !== undefined} onClick={() => change('abort')}>Abort</button> : null}
          </div>
          <div className="lcm-flow" data-testid="lcm-flow">
            {r.plan.nodes.map((p) => (
              <div key={p.serial} className="lcm-node" data-node={p.hostname}>
                <div className="lcm-name"><strong>{p.hostname}</strong>{r.token === p.serial ? <span className="badge run">token</span> : null}<div className="muted">{p.serial}</div></div>
                {nodeStages(r, p.serial).map((b) => (
                  <div key={b.title} className={`lcm-box ${b.state}`} data-stage={b.title} data-state={b.state} title={b.detail}>
                    <div className="lcm-box-title">{b.title}</div>
                    <div className="lcm-box-detail">{b.state === 'pending' ? '' : b.state === 'done' ? 'done' : b.detail}</div>
                  </div>
                ))}
              </div>
            ))}
          </div>
          {r.error ? <div className="banner error">{r.error}</div> : null}
          <ol className="lcm-events" data-testid="lcm-events">
            {r.events.slice(-12).reverse().map((e) => <li key={`${e.at}${e.message}`}><span className="muted">{ago(e.at, now)}</span> {e.message}</li>)}
          </ol>
        </Panel>
      ) : null}
      <Panel title="Inventory">
        <table className="table" data-testid="lcm-inventory">
          <thead><tr><th>Node</th><th>Hypervisor</th><th>Storage OS</th><th>Bundle</th><th>BMC firmware</th><th>BIOS</th><th>Drive firmware</th></tr></thead>
          <tbody>{(inventory.data ?? []).map((n) => (
            <tr key={n.serial} data-node={n.hostname}>
              <td><strong>{n.hostname}</strong><div className="muted">{n.serial} · {n.hostIp}</div></td>
              <td>{n.hypervisor ? `AHV ${n.hypervisor}` : <Badge state="DOWN" label="not answering" />}</td>
              <td>{n.nos ? `AOS ${n.nos}` : <Badge state="DOWN" label="not answering" />}</td>
              <td>{n.bundle ?? '?'}</td>
              <td>{n.firmware.bmc ?? '?'}</td>
              <td>{n.firmware.bios ?? '?'}</td>
              <td>{diskFirmwareText(n.firmware.disks)}</td>
            </tr>
          ))}</tbody>
        </table>
      </Panel>
      <div className="two-col">
        <Panel title="Bundles">
          {(bundles.data ?? []).length === 0 ? <div className="empty">{bundles.data ? 'No bundle in the repository yet: upload one.' : 'Loading…'}</div> : (
            <table className="table" data-testid="lcm-bundles">
              <thead><tr><th>Version</th><th>Hypervisor</th><th>Storage OS</th><th>Upgrades from</th><th>Size</th><th>Copies</th></tr></thead>
              <tbody>{(bundles.data ?? []).map((b) => (
                <tr key={b.offer.version} data-bundle={b.offer.version}>
                  <td><strong>{b.offer.version}</strong><div className="muted">{b.offer.sha256.slice(0, 12)}…</div></td>
                  <td>{b.offer.hypervisor}</td><td>{b.offer.nos}</td><td>{b.offer.upgradeFrom?.join(', ') ?? 'any older'}</td>
                  <td>{bytes(b.size)}</td><td>{b.holders.length}</td>
                </tr>
              ))}</tbody>
            </table>
          )}
          <form className="form" onSubmit={upload}>
            <label>Release bundle<input name="bundle-file" type="file" ref={file} accept=".tar.gz,.tgz" /></label>
            {up ? <UploadProgress testId="bundle-progress" sent={up.sent} total={up.total} onCancel={() => abort.current?.abort()} />
              : <button type="submit" className="btn">Upload</button>}
          </form>
        </Panel>
        <Panel title="Plan and pre-checks">
          <div className="form">
            <label>Upgrade to
              <select name="lcm-target" value={target} onChange={(e) => { setTo(e.target.value); setPlan(undefined); setChecks(undefined); }}>
                {(bundles.data ?? []).map((b) => <option key={b.offer.version} value={b.offer.version}>{b.offer.version}</option>)}
              </select>
            </label>
            <div className="actions">
              <button type="button" className="btn" disabled={!target || busy !== undefined} onClick={() => run('plan', () => api.lcmPlan(target), setPlan)}>Plan</button>
              <button type="button" className="btn" disabled={!target || busy !== undefined} onClick={() => run('precheck', () => api.lcmPrecheck(target), setChecks)}>Pre-checks</button>
              <button type="button" className="btn primary" disabled={!target || busy !== undefined || live} onClick={start}>Upgrade</button>
            </div>
          </div>
          {busy === 'plan' || busy === 'precheck' ? <div className="muted">{busy === 'plan' ? 'Planning…' : 'Running the pre-checks…'}</div> : null}
          {plan ? (
            <div data-testid="lcm-plan">
              {plan.refusals.length > 0 ? (
                <ul className="refusals">{plan.refusals.map((x) => <li key={`${x.field}${x.reason}`}><Badge state="FAIL" label={x.field} /> {x.reason}</li>)}</ul>
              ) : plan.plan.nodes.length === 0 ? <div className="empty">Every node runs {plan.plan.to}.</div> : (
                <ol className="plan">{plan.plan.nodes.map((n) => <li key={n.serial}><strong>{n.hostname}</strong>: {n.steps.map((s) => s.kind).join(' → ')}</li>)}</ol>
              )}
            </div>
          ) : null}
          {checks ? (
            <table className="table" data-testid="lcm-checks">
              <tbody>{checks.map((c) => <tr key={c.id}><td><Badge state={c.status} /></td><td>{c.title}<div className="muted">{c.detail}</div></td></tr>)}</tbody>
            </table>
          ) : null}
        </Panel>
      </div>
    </div>
  );
}
