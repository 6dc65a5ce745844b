/**
 * @module
 * The deployment wizard (`#/`): discover → validate → network → software → review → deploy, over
 * Foundation's API. The steps' rules live in model/wizard.ts; this page calls the API, dispatches
 * what came back, and shows each step's blockers. Deploy starts the session and opens its flow
 * diagram. Earlier sessions are listed beside it.
 */
import { useCallback, useEffect, useReducer, useState, type ChangeEvent, type ReactElement, type ReactNode } from 'react';
import type { FoundationClient } from '../../../src/foundation/protocol/client.ts';
import type { SessionSummary } from '../../../src/foundation/protocol/deploy.ts';
import {
  STEP_TITLES, WIZARD_STEPS, blockers, currentPlan, imageBodyOf, initialWizard, nextStep, planInputOf, previousStep, reachable, selectedNodes, wizardReducer,
  type NetworkForm, type WizardState, type WizardStep,
} from '../model/wizard.ts';
import { hashOfSession } from '../model/route.ts';
import { messageOf } from '../model/format.ts';


/** Runs one API call at a time for a step, with its error. */
function useCall(): { busy: boolean; error: string | null; run: (f: () => Promise<void>) => Promise<void> } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = useCallback(async (f: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run };
}

function Verdict({ v }: { v: string }): ReactElement {
  return <span className={`verdict verdict-${v.toLowerCase()}`}>{v}</span>;
}

function Discover({ s, dispatch, client }: StepProps): ReactElement {
  const call = useCall();
  const [range, setRange] = useState('');
  const discover = useCallback(() => call.run(async () => {
    const ranges = range.split(/[\s,]+/).filter(Boolean);
    dispatch({ type: 'discovered', blocks: await client.discover(ranges) });
  }), [call, client, dispatch, range]);
  useEffect(() => {
    if (s.discovered === null) void discover();
    // discover once when the wizard opens; later only on the button
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const rows = s.discovered ?? [];
  return (
    <section>
      <p className="hint">Foundation finds nodes through the rack's list of BMCs, SSDP, and any BMC address range you give; it reads each node's inventory over Redfish.</p>
      <div className="row">
        <label>BMC ranges (optional) <input value={range} placeholder="127.10.0.1-127.10.0.32" onChange={(e) => setRange(e.target.value)} /></label>
        <button type="button" className="btn" disabled={call.busy} onClick={() => void discover()} data-testid="discover">{call.busy ? 'Discovering…' : 'Discover'}</button>
      </div>
      {call.error ? <div className="banner error" role="alert">{call.error}</div> : null}
      <table className="grid" data-testid="discovered">
        <thead><tr><th><input type="checkbox" aria-label="select every node" checked={rows.length > 0 && s.selected.length === rows.length} onChange={(e) => rows.forEach((n) => dispatch({ type: 'toggle', serial: n.node_serial, on: e.target.checked }))} /></th><th>Block / pos</th><th>Serial</th><th>Model</th><th>BMC</th><th>BMC MAC</th><th>Software</th></tr></thead>
        <tbody>
          {rows.map((n) => (
            <tr key={n.node_serial} data-serial={n.node_serial}>
              <td><input type="checkbox" aria-label={`deploy ${n.node_serial}`} checked={s.selected.includes(n.node_serial)} onChange={(e) => dispatch({ type: 'toggle', serial: n.node_serial, on: e.target.checked })} /></td>
              <td>{n.block_id} / {n.node_position}</td><td><code>{n.node_serial}</code></td><td>{n.model}</td><td>{n.ipmi_ip}</td><td>{n.ipmi_mac}</td>
              <td>{n.nos_version ? `converge ${n.nos_version}${n.configured ? ' (in a cluster)' : ''}` : '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="hint">{rows.length} node(s) found, {s.selected.length} selected.</p>
    </section>
  );
}

function Validate({ s, dispatch, client }: StepProps): ReactElement {
  const call = useCall();
  const rf = Number(s.software.createCluster ? s.software.rf : '1') as 1 | 2 | 3;
  const validate = useCallback(() => call.run(async () => {
    dispatch({ type: 'validated', report: await client.validation({ rf, overrides: s.overrides }) });
  }), [call, client, dispatch, rf, s.overrides]);
  useEffect(() => {
    if (s.validation === null) void validate();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const report = s.validation;
  const nodes = selectedNodes(s);
  return (
    <section>
      <p className="hint">Each selected node's hardware against the {report?.profile ?? 'lab'} profile: PASS, WARN or FAIL per check with the measured value, the threshold and a remedy. A FAIL node is left out unless you override it.</p>
      <div className="row"><button type="button" className="btn" disabled={call.busy} onClick={() => void validate()} data-testid="validate">{call.busy ? 'Validating…' : 'Validate again'}</button></div>
      {call.error ? <div className="banner error" role="alert">{call.error}</div> : null}
      {report ? (
        <table className="grid" data-testid="validation">
          <thead><tr><th>Node</th><th>Verdict</th><th>Checks not passed</th><th>Override</th></tr></thead>
          <tbody>
            {nodes.map((n) => {
              const r = report.nodes.find((x) => x.serial === n.node_serial);
              const bad = r?.checks.filter((c) => c.verdict !== 'PASS') ?? [];
              return (
                <tr key={n.node_serial} data-serial={n.node_serial}>
                  <td><code>{n.node_serial}</code></td>
                  <td>{r ? <Verdict v={r.verdict} /> : '—'}</td>
                  <td>{bad.length === 0 ? 'all checks pass' : <ul className="checks">{bad.map((c) => <li key={c.check}><Verdict v={c.verdict} /> <b>{c.check}</b>: {c.measured} (threshold {c.threshold}){c.remedy ? ` — ${c.remedy}` : ''}</li>)}</ul>}</td>
                  <td>{r?.verdict === 'FAIL' ? <label><input type="checkbox" checked={s.overrides.includes(n.node_serial)} onChange={(e) => dispatch({ type: 'override', serial: n.node_serial, on: e.target.checked })} /> keep it</label> : ''}</td>
                </tr>
              );
            })}
            {report.cluster.filter((c) => c.verdict !== 'PASS').map((c) => (
              <tr key={c.check}><td>(all nodes)</td><td><Verdict v={c.verdict} /></td><td><b>{c.check}</b>: {c.measured} (threshold {c.threshold}){c.remedy ? ` — ${c.remedy}` : ''}</td><td /></tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

const NETWORK_FIELDS: { key: keyof NetworkForm; label: string; hint?: string }[] = [
  { key: 'clusterName', label: 'Cluster name' },
  { key: 'hostStart', label: 'First host address' },
  { key: 'cvmStart', label: 'First CVM address' },
  { key: 'netmask', label: 'Host/CVM netmask' },
  { key: 'gateway', label: 'Host/CVM gateway' },
  { key: 'vip', label: 'Cluster virtual IP (Prism)', hint: 'optional' },
  { key: 'bmcStart', label: 'First BMC address', hint: 'empty: keep each BMC where it is' },
  { key: 'bmcNetmask', label: 'BMC netmask' },
  { key: 'dns', label: 'DNS servers' },
  { key: 'ntp', label: 'NTP servers' },
  { key: 'hostnamePrefix', label: 'Host name prefix' },
];

function Network({ s, dispatch, client }: StepProps): ReactElement {
  const call = useCall();
  const check = (): Promise<void> => call.run(async () => {
    const input = planInputOf(s);
    dispatch({ type: 'planChecked', input, result: await client.planCheck(input) });
  });
  const plan = currentPlan(s);
  const errors = s.plan?.result.errors ?? [];
  return (
    <section>
      <p className="hint">Foundation assigns addresses in node order from the first ones you give and checks the whole plan: formats, networks, duplicates, addresses already answering, and (in a lab) loopback only.</p>
      <div className="form">
        {NETWORK_FIELDS.map((f) => (
          <label key={f.key}>{f.label}{f.hint ? <span className="hint"> ({f.hint})</span> : null}
            <input name={f.key} value={s.network[f.key]} onChange={(e: ChangeEvent<HTMLInputElement>) => dispatch({ type: 'network', field: f.key, value: e.target.value })} />
          </label>
        ))}
      </div>
      <div className="row"><button type="button" className="btn" disabled={call.busy} onClick={() => void check()} data-testid="check-plan">{call.busy ? 'Checking…' : 'Check the plan'}</button></div>
      {call.error ? <div className="banner error" role="alert">{call.error}</div> : null}
      {errors.length ? <ul className="banner error" data-testid="plan-errors">{errors.map((e, i) => <li key={i}>{e.node ? `node ${e.node}: ` : ''}<b>{e.field}</b>: {e.reason}</li>)}</ul> : null}
      {plan ? (
        <table className="grid" data-testid="plan">
          <thead><tr><th>Node</th><th>Host name</th><th>BMC</th><th>Host</th><th>CVM</th></tr></thead>
          <tbody>{plan.nodes.map((n) => <tr key={n.serial}><td><code>{n.serial}</code></td><td>{n.hostname}</td><td>{n.bmcIp}</td><td>{n.hostIp}</td><td>{n.cvmIp}</td></tr>)}</tbody>
        </table>
      ) : null}
    </section>
  );
}

function Software({ s, dispatch, client }: StepProps): ReactElement {
  const call = useCall();
  const [uploaded, setUploaded] = useState<string | null>(null);
  const load = useCallback(() => call.run(async () => dispatch({ type: 'bundles', names: await client.bundles() })), [call, client, dispatch]);
  useEffect(() => {
    if (s.bundles === null) void load();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const upload = (e: ChangeEvent<HTMLInputElement>): void => {
    const file = e.target.files?.[0];
    if (!file) return;
    void call.run(async () => {
      const r = await client.upload(file.name, file);
      dispatch({ type: 'bundles', names: await client.bundles() });
      dispatch({ type: 'software', patch: { bundle: r.name } });
      setUploaded(`uploaded ${r.name}: bundle ${r.version}, md5 ${r.md5sum}`);
    });
  };
  const f = s.software;
  return (
    <section>
      <p className="hint">One release bundle holds the hypervisor, the CVM software and the installer; Foundation verifies it on upload and installs both on every node.</p>
      <div className="form">
        <label>Release bundle
          <select name="bundle" value={f.bundle} onChange={(e) => dispatch({ type: 'software', patch: { bundle: e.target.value } })}>
            <option value="">{s.bundles?.length ? 'choose…' : '(the repository is empty)'}</option>
            {(s.bundles ?? []).map((b) => <option key={b} value={b}>{b}</option>)}
          </select>
        </label>
        <label>Upload a bundle (.tar.gz) <input type="file" accept=".tar.gz,.tgz,application/gzip" onChange={upload} data-testid="upload" /></label>
        <label>CVM vCPUs <input name="vcpus" value={f.vcpus} onChange={(e) => dispatch({ type: 'software', patch: { vcpus: e.target.value } })} /></label>
        <label>CVM RAM (GiB) <input name="ramGiB" value={f.ramGiB} onChange={(e) => dispatch({ type: 'software', patch: { ramGiB: e.target.value } })} /></label>
        <label className="check"><input type="checkbox" name="createCluster" checked={f.createCluster} onChange={(e) => dispatch({ type: 'software', patch: { createCluster: e.target.checked } })} /> Create and validate the cluster (stages 3–4)</label>
        <label>Redundancy factor
          <select name="rf" value={f.rf} disabled={!f.createCluster} onChange={(e) => dispatch({ type: 'software', patch: { rf: e.target.value === '3' ? '3' : e.target.value === '1' ? '1' : '2' } })}>
            <option value="1">RF1</option><option value="2">RF2 (3+ nodes)</option><option value="3">RF3 (5+ nodes)</option>
          </select>
        </label>
      </div>
      {call.busy ? <p className="hint">Working…</p> : null}
      {uploaded ? <div className="banner ok" data-testid="uploaded">{uploaded}</div> : null}
      {call.error ? <div className="banner error" role="alert">{call.error}</div> : null}
    </section>
  );
}

function Review({ s }: StepProps): ReactElement {
  const plan = currentPlan(s);
  const body = imageBodyOf(s);
  return (
    <section data-testid="review">
      <dl className="summary">
        <dt>Nodes</dt><dd>{s.selected.length}: {s.selected.join(', ')}</dd>
        <dt>Addresses</dt><dd>{plan ? `hosts ${plan.nodes[0]?.hostIp ?? ''}…, CVMs ${plan.nodes[0]?.cvmIp ?? ''}…, netmask ${plan.host.netmask}, gateway ${plan.host.gateway}` : '—'}</dd>
        <dt>Bundle</dt><dd>{s.software.bundle || '—'}</dd>
        <dt>CVM</dt><dd>{s.software.vcpus} vCPUs, {s.software.ramGiB} GiB</dd>
        <dt>Cluster</dt><dd>{s.software.createCluster ? `${s.network.clusterName}, RF${s.software.rf}, created and validated after imaging` : 'not created (imaging only)'}</dd>
        <dt>Overrides</dt><dd>{s.overrides.length ? s.overrides.join(', ') : 'none'}</dd>
      </dl>
      {body ? <details><summary>The image_nodes request</summary><pre className="json">{JSON.stringify(body, null, 2)}</pre></details> : null}
    </section>
  );
}

function Deploy({ s, client }: StepProps): ReactElement {
  const call = useCall();
  const body = imageBodyOf(s);
  const start = (): Promise<void> => call.run(async () => {
    if (!body) throw new Error('the plan is not checked');
    const { session_id: id } = await client.imageNodes(body);
    window.location.hash = hashOfSession(id);
  });
  return (
    <section>
      <p className="hint">Foundation images {s.selected.length} node(s){s.software.createCluster ? ', then creates the cluster and validates it' : ''}. The flow diagram follows every node through the four stages.</p>
      <button type="button" className="btn primary big" disabled={call.busy || !body} onClick={() => void start()} data-testid="deploy">{call.busy ? 'Starting…' : `Deploy ${s.selected.length} node(s)`}</button>
      {call.error ? <div className="banner error" role="alert" data-testid="deploy-error">{call.error}</div> : null}
    </section>
  );
}

interface StepProps {
  s: WizardState;
  dispatch: (a: Parameters<typeof wizardReducer>[1]) => void;
  client: FoundationClient;
}

const STEP_VIEW: Record<WizardStep, (p: StepProps) => ReactElement> = { discover: Discover, validate: Validate, network: Network, software: Software, review: Review, deploy: Deploy };

function Sessions({ client }: { client: FoundationClient }): ReactElement | null {
  const [sessions, setSessions] = useState<SessionSummary[] | null>(null);
  useEffect(() => {
    let gone = false;
    client.sessions().then((s) => !gone && setSessions(s), () => !gone && setSessions([]));
    return () => {
      gone = true;
    };
  }, [client]);
  if (!sessions?.length) return null;
  return (
    <aside className="sessions" data-testid="sessions">
      <h2>Sessions</h2>
      <ul>
        {[...sessions].reverse().map((x) => (
          <li key={x.session_id}><a href={hashOfSession(x.session_id)}><code>{x.session_id}</code></a> <span className="hint">{x.aggregate_percent_complete}%{x.imaging_stopped ? '' : ' · running'} · {new Date(x.created).toLocaleString()}</span></li>
        ))}
      </ul>
    </aside>
  );
}

export function WizardPage({ client }: { client: FoundationClient }): ReactElement {
  const [s, dispatch] = useReducer(wizardReducer, undefined, initialWizard);
  const open = reachable(s);
  const blocked = blockers(s);
  const View = STEP_VIEW[s.step];
  const wrap = (children: ReactNode): ReactElement => <div className="wizard-main">{children}</div>;
  return (
    <div className="wizard-page">
      <ol className="steps" data-testid="steps">
        {WIZARD_STEPS.map((st, i) => (
          <li key={st} className={`${st === s.step ? 'current' : ''} ${open.includes(st) ? 'open' : 'closed'}`}>
            <button type="button" disabled={!open.includes(st)} onClick={() => dispatch({ type: 'go', step: st })} aria-current={st === s.step ? 'step' : undefined}>
              <span className="step-n">{i + 1}</span> {STEP_TITLES[st]}
            </button>
          </li>
        ))}
      </ol>
      <div className="wizard-body">
        {wrap(
          <>
            <h2 data-testid="step-title">{STEP_TITLES[s.step]}</h2>
            <View s={s} dispatch={dispatch} client={client} />
            {blocked.length && s.step !== 'deploy' ? <ul className="blockers" data-testid="blockers">{blocked.map((b) => <li key={b}>{b}</li>)}</ul> : null}
            <div className="nav">
              <button type="button" className="btn ghost" disabled={s.step === 'discover'} onClick={() => dispatch({ type: 'go', step: previousStep(s.step) })}>Back</button>
              {s.step !== 'deploy' ? <button type="button" className="btn primary" disabled={blocked.length > 0} onClick={() => dispatch({ type: 'go', step: nextStep(s.step) })} data-testid="next">Next: {STEP_TITLES[nextStep(s.step)]}</button> : null}
            </div>
          </>,
        )}
        <Sessions client={client} />
      </div>
    </div>
  );
}
