import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initialImagingState, stepImaging, statusText, type ImagingCommand, type ImagingContext, type ImagingEvent, type NodeImagingState } from './imaging.ts';

const ctx: ImagingContext = { now: 1000, timeouts: { bootMs: 300_000, installSilenceMs: 600_000, cvmMs: 600_000 }, expect: { hypervisor: '1.0.0', nos: '1.0.0' } };

function run(events: ImagingEvent[], s = initialImagingState('N1', true, false)): { state: NodeImagingState; commands: ImagingCommand[] } {
  const commands: ImagingCommand[] = [];
  for (const e of events) {
    const r = stepImaging(s, e, ctx);
    s = r.state;
    commands.push(...r.commands);
  }
  return { state: s, commands };
}

const happy: ImagingEvent[] = [
  { kind: 'start' },
  { kind: 'redfishDone', op: 'powerOff' },
  { kind: 'redfishDone', op: 'insertMedia' },
  { kind: 'redfishDone', op: 'bootOnceCd' },
  { kind: 'redfishDone', op: 'powerOnOrRestart' },
  { kind: 'installerReport', percent: 5, message: 'started', status: 'running' },
  { kind: 'installerReport', percent: 60, message: 'disks', status: 'running' },
  { kind: 'installerReport', percent: 100, message: 'installed', status: 'done' },
  { kind: 'redfishDone', op: 'ejectMedia' },
  { kind: 'cvmAnnounced', hypervisorVersion: '1.0.0', nosVersion: '1.0.0' },
];

test('the happy path powers the node off, asks for media, a one-time Cd boot, power, then ejects and ends at 100 %', () => {
  const { state, commands } = run(happy);
  assert.equal(state.stage, 'done');
  assert.equal(state.percent, 100);
  assert.deepEqual(state.versions, { hypervisor: '1.0.0', nos: '1.0.0' });
  assert.deepEqual(commands.filter((c) => c.kind === 'redfish').map((c) => (c as { op: string }).op), ['powerOff', 'insertMedia', 'bootOnceCd', 'powerOnOrRestart', 'ejectMedia']);
});

test('the node is powered off before its media is touched, also after the BMC is configured; a node that will not power off fails', () => {
  const first = run([{ kind: 'start' }]);
  assert.equal(first.state.stage, 'media');
  assert.deepEqual(first.commands.filter((c) => c.kind === 'redfish'), [{ kind: 'redfish', op: 'powerOff' }]);
  const afterBmc = run([{ kind: 'start' }, { kind: 'redfishDone', op: 'configureBmc' }], initialImagingState('N1', true, true));
  assert.deepEqual(afterBmc.commands.filter((c) => c.kind === 'redfish').map((c) => (c as { op: string }).op), ['configureBmc', 'powerOff']);
  const off = run([{ kind: 'start' }, { kind: 'redfishDone', op: 'powerOff' }]);
  assert.ok(off.commands.some((c) => c.kind === 'log' && c.message === 'node powered off'));
  assert.deepEqual(off.commands.filter((c) => c.kind === 'redfish').pop(), { kind: 'redfish', op: 'insertMedia' });
  const stuck = run([{ kind: 'start' }, { kind: 'redfishFailed', op: 'powerOff', reason: 'the BMC still reports PowerState On 60 s after ForceOff' }]);
  assert.match(statusText(stuck.state), /^fatal: could not power the node off: the BMC still reports PowerState On/);
  assert.ok(!stuck.commands.some((c) => c.kind === 'redfish' && c.op === 'insertMedia'));
});

test('a node failed by a restart of Foundation and retried starts again from power off', () => {
  // what Session.load and Session.retry do to the node's state
  const cut: NodeImagingState = { ...run(happy.slice(0, 6)).state, stage: 'failed', error: 'Foundation restarted while this node was being imaged; retry the node' };
  assert.equal(run([{ kind: 'installerReport', percent: 90, message: 'late', status: 'running' }], cut).state.stage, 'failed', 'the old installer changes nothing');
  const again = run([{ kind: 'start' }], initialImagingState(cut.serial, cut.imageNow, false));
  assert.deepEqual(again.commands.find((c) => c.kind === 'redfish'), { kind: 'redfish', op: 'powerOff' });
});

test('replay: the same recorded events give the same final state and the same commands', () => {
  const a = run(happy);
  const b = run(JSON.parse(JSON.stringify(happy)) as ImagingEvent[]);
  assert.deepEqual(b, a);
});

test('percent only grows while installing', () => {
  let r = run(happy.slice(0, 7));
  assert.equal(r.state.percent, 10 + Math.round(60 * 0.75));
  r = run([{ kind: 'installerReport', percent: 20, message: 'late, lower report', status: 'running' }], r.state);
  assert.equal(r.state.percent, 55);
});

test('ipmi_configure_now configures the BMC first', () => {
  const r = run([{ kind: 'start' }], initialImagingState('N1', true, true));
  assert.equal(r.state.stage, 'bmc_config');
  assert.deepEqual(r.commands.find((c) => c.kind === 'redfish'), { kind: 'redfish', op: 'configureBmc' });
});

test('every wait has a timeout that fails the node; a stale timer changes nothing', () => {
  const booting = run(happy.slice(0, 5));
  const t = booting.commands.find((c) => c.kind === 'timer') as Extract<ImagingCommand, { kind: 'timer' }>;
  assert.equal(t.name, 'boot');
  assert.equal(t.ms, 300_000);
  const timedOut = run([{ kind: 'timer', name: 'boot', epoch: t.epoch }], booting.state);
  assert.equal(timedOut.state.stage, 'failed');
  assert.match(statusText(timedOut.state), /^fatal: the installer did not report within 300 s/);
  const installing = run(happy.slice(0, 6));
  const stale = run([{ kind: 'timer', name: 'boot', epoch: t.epoch }], installing.state);
  assert.equal(stale.state.stage, 'installing');
  const silence = installing.commands.filter((c) => c.kind === 'timer').pop() as Extract<ImagingCommand, { kind: 'timer' }>;
  assert.equal(silence.name, 'install');
  assert.equal(run([{ kind: 'timer', name: 'install', epoch: silence.epoch }], installing.state).state.stage, 'failed');
  const rebooting = run(happy.slice(0, 8));
  const cvm = rebooting.commands.filter((c) => c.kind === 'timer').pop() as Extract<ImagingCommand, { kind: 'timer' }>;
  assert.equal(cvm.name, 'cvm');
  assert.match(statusText(run([{ kind: 'timer', name: 'cvm', epoch: cvm.epoch }], rebooting.state).state), /CVM did not come up/);
});

test('failures: a Redfish step, the installer, a halted node, the wrong versions', () => {
  assert.match(statusText(run([{ kind: 'start' }, { kind: 'redfishFailed', op: 'insertMedia', reason: 'HTTP 500' }]).state), /^fatal: could not insert the installer as virtual media: HTTP 500/);
  assert.match(statusText(run([...happy.slice(0, 6), { kind: 'installerReport', percent: 0, message: 'disk S1: I/O error', status: 'failed' }]).state), /^fatal: installer: disk S1: I\/O error/);
  assert.match(statusText(run([...happy.slice(0, 6), { kind: 'nodeHalted', reason: 'the installer crashed: boom' }]).state), /^fatal: the installer crashed: boom/);
  assert.match(statusText(run([...happy.slice(0, 9), { kind: 'cvmAnnounced', hypervisorVersion: '0.9.0', nosVersion: '1.0.0' }]).state), /expected 1\.0\.0/);
});

test('abort ends a node at once; later events change nothing', () => {
  const r = run([...happy.slice(0, 6), { kind: 'abort' }, ...happy.slice(6)]);
  assert.equal(r.state.stage, 'aborted');
  assert.equal(statusText(r.state), 'fatal: aborted');
});

test('a pre-imaged node (image_now false) is configured, then waits for its CVM; no Redfish', () => {
  const r = run([{ kind: 'start' }, { kind: 'hostConfigured' }, { kind: 'cvmAnnounced', hypervisorVersion: '1.0.0', nosVersion: '1.0.0' }], initialImagingState('N1', false, false));
  assert.equal(r.state.stage, 'done');
  assert.ok(r.commands.some((c) => c.kind === 'configureHost'));
  assert.ok(!r.commands.some((c) => c.kind === 'redfish'));
  const f = run([{ kind: 'start' }, { kind: 'hostConfigureFailed', reason: 'no hypervisor answers' }], initialImagingState('N1', false, false));
  assert.match(statusText(f.state), /^fatal: could not configure the pre-imaged node: no hypervisor answers/);
});
