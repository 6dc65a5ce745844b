/**
 * @module
 * The create-VM wizard: name and size, the image to boot from, the subnet, then a review; sent as
 * one v3 create, whose task the page then follows to the end before opening the new VM.
 */
import { useState, type ReactElement } from 'react';
import * as api from '../api/client.ts';
import { bytes } from '../model/format.ts';
import { draftProblems, taskDone, vmCreateBody, type V3Image, type V3Subnet, type V3Task, type V3Vm, type VmDraft } from '../model/v3.ts';
import { go, usePoll } from './hooks.ts';
import { Badge, ErrorBanner, PageHead, Panel, Progress } from './widgets.tsx';

const STEPS = ['Name and size', 'Boot image', 'Network', 'Review'] as const;

export function CreateVm(): ReactElement {
  const [step, setStep] = useState(0);
  const [d, setD] = useState<VmDraft>({ name: '', vcpus: 1, memoryMiB: 256, image: '', dataDiskMiB: 0, subnet: '', powerOn: true });
  const [error, setError] = useState<string>();
  const [task, setTask] = useState<{ uuid: string; vm: string }>();
  const images = usePoll(() => api.v3List<V3Image>('images'), 10_000);
  const subnets = usePoll(() => api.v3List<V3Subnet>('subnets'), 10_000);
  const vms = usePoll(() => api.v3List<V3Vm>('vms'), 10_000);
  const cluster = usePoll(api.cluster, 60_000);
  const names = (vms.data?.entities ?? []).map((v) => v.spec.name);
  const problems = draftProblems(d, names);
  const set = <K extends keyof VmDraft>(k: K, v: VmDraft[K]): void => setD({ ...d, [k]: v });
  const ready = (images.data?.entities ?? []).filter((i) => i.status.state === 'COMPLETE');
  const stepOk = [problems.name === undefined && problems.vcpus === undefined && problems.memoryMiB === undefined && problems.dataDiskMiB === undefined, problems.image === undefined, true, Object.keys(problems).length === 0];
  const create = (): void => {
    setError(undefined);
    const clusterUuid = cluster.data?.cluster.clusterId ?? '';
    api.v3Create('vms', vmCreateBody(d, clusterUuid)).then((a) => setTask({ uuid: a.status.execution_context.task_uuid, vm: a.metadata.uuid }), (e: unknown) => {
      const f = e instanceof api.ApiError && e.field ? ` (${e.field})` : '';
      setError(`${e instanceof Error ? e.message : String(e)}${f}`);
    });
  };
  if (task) return <Following task={task.uuid} vm={task.vm} name={d.name} />;
  const image = ready.find((i) => i.metadata.uuid === d.image);
  const subnet = (subnets.data?.entities ?? []).find((s) => s.metadata.uuid === d.subnet);
  return (
    <div>
      <PageHead title="Create VM" />
      <ol className="steps">{STEPS.map((s, i) => <li key={s} className={i === step ? 'current' : i < step ? 'done' : ''}>{s}</li>)}</ol>
      <ErrorBanner error={error} />
      <Panel>
        {step === 0 ? (
          <div className="form">
            <label>Name<input name="name" value={d.name} onChange={(e) => set('name', e.target.value)} autoFocus /></label>
            {d.name && problems.name ? <div className="field-error">{problems.name}</div> : null}
            <label>vCPUs<input name="vcpus" type="number" min={1} max={64} value={d.vcpus} onChange={(e) => set('vcpus', Number(e.target.value))} /></label>
            {problems.vcpus ? <div className="field-error">{problems.vcpus}</div> : null}
            <label>Memory (MiB)<input name="memory" type="number" min={16} step={16} value={d.memoryMiB} onChange={(e) => set('memoryMiB', Number(e.target.value))} /></label>
            {problems.memoryMiB ? <div className="field-error">{problems.memoryMiB}</div> : null}
            <label>Data disk (MiB, 0: none)<input name="data-disk" type="number" min={0} value={d.dataDiskMiB} onChange={(e) => set('dataDiskMiB', Number(e.target.value))} /></label>
            {problems.dataDiskMiB ? <div className="field-error">{problems.dataDiskMiB}</div> : null}
          </div>
        ) : step === 1 ? (
          <div className="choices" role="radiogroup" aria-label="Boot image">
            {ready.length === 0 ? <div className="empty">No image is ready. Add one on the Images page.</div> : ready.map((i) => (
              <label key={i.metadata.uuid} className={`choice ${d.image === i.metadata.uuid ? 'chosen' : ''}`}>
                <input type="radio" name="image" value={i.metadata.uuid} checked={d.image === i.metadata.uuid} onChange={() => set('image', i.metadata.uuid)} />
                <strong>{i.spec.name}</strong> <span className="muted">{i.status.resources.image_type.replace('_', ' ').toLowerCase()} · {bytes(i.status.resources.size_bytes ?? 0)}</span>
              </label>
            ))}
          </div>
        ) : step === 2 ? (
          <div className="choices" role="radiogroup" aria-label="Network">
            <label className={`choice ${d.subnet === '' ? 'chosen' : ''}`}>
              <input type="radio" name="subnet" value="" checked={d.subnet === ''} onChange={() => set('subnet', '')} /> <strong>No network</strong>
            </label>
            {(subnets.data?.entities ?? []).map((s) => (
              <label key={s.metadata.uuid} className={`choice ${d.subnet === s.metadata.uuid ? 'chosen' : ''}`}>
                <input type="radio" name="subnet" value={s.metadata.uuid} checked={d.subnet === s.metadata.uuid} onChange={() => set('subnet', s.metadata.uuid)} />
                <strong>{s.spec.name}</strong> <span className="muted">VLAN {s.spec.resources.vlan_id}{s.spec.resources.ip_config ? ` · ${s.spec.resources.ip_config.subnet_ip}/${s.spec.resources.ip_config.prefix_length}` : ''}</span>
              </label>
            ))}
          </div>
        ) : (
          <div className="review">
            <dl>
              <dt>Name</dt><dd>{d.name}</dd>
              <dt>Size</dt><dd>{d.vcpus} vCPU · {d.memoryMiB} MiB</dd>
              <dt>Boot disk</dt><dd>a copy of {image?.spec.name ?? '?'} (SCSI 0)</dd>
              <dt>Data disk</dt><dd>{d.dataDiskMiB > 0 ? `${bytes(d.dataDiskMiB * 2 ** 20)}, empty (SCSI 1)` : 'none'}</dd>
              <dt>Network</dt><dd>{subnet ? `${subnet.spec.name} (an address from its pool)` : 'none'}</dd>
            </dl>
            <label className="check"><input type="checkbox" checked={d.powerOn} onChange={(e) => set('powerOn', e.target.checked)} /> power on when created</label>
          </div>
        )}
        <div className="wizard-nav">
          <button type="button" className="btn ghost" onClick={() => (step === 0 ? go('/console/vms') : setStep(step - 1))}>{step === 0 ? 'Cancel' : 'Back'}</button>
          {step < STEPS.length - 1
            ? <button type="button" className="btn primary" disabled={!stepOk[step]} onClick={() => setStep(step + 1)}>Next</button>
            : <button type="button" className="btn primary" disabled={!stepOk[step]} onClick={create}>Create</button>}
        </div>
      </Panel>
    </div>
  );
}

/** The create's task, followed until it ends; then the new VM's page. */
function Following({ task, vm, name }: { task: string; vm: string; name: string }): ReactElement {
  const t = usePoll(() => api.v3Get<V3Task>('tasks', task), 1000);
  const done = t.data ? taskDone(t.data) : false;
  return (
    <div>
      <PageHead title={`Creating ${name}`} />
      <Panel>
        <div className="following" data-testid="create-task" data-status={t.data?.status ?? 'QUEUED'}>
          <div>{t.data ? <Badge state={t.data.status} /> : null} <span className="muted">{t.data?.progress_message}</span></div>
          <Progress percent={t.data?.percentage_complete ?? 0} state={t.data?.status ?? 'QUEUED'} />
          {t.data?.error_detail ? <div className="banner error">{t.data.error_detail}</div> : null}
          {done ? <button type="button" className="btn primary" onClick={() => go(`/console/vms/${vm}`)}>Open {name}</button> : null}
        </div>
      </Panel>
    </div>
  );
}
