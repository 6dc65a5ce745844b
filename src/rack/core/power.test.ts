import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initialPowerState, step, setBootOverride, parseResetType, type PowerContext, type PowerMachineState, type PowerEvent, type PowerCommand } from './power.ts';
import { ConflictError, InputError } from '../../shared/errors.ts';

const ctx = (over: Partial<PowerContext['faults']> = {}): PowerContext => ({
  now: 1000,
  delays: { postMs: 50, cycleOffMs: 20, gracefulTimeoutMs: 30_000 },
  faults: { powerOnFailure: false, ...over },
});

function run(s: PowerMachineState, events: PowerEvent[], c = ctx()): { state: PowerMachineState; commands: PowerCommand[] } {
  const all: PowerCommand[] = [];
  for (const e of events) {
    const r = step(s, e, c);
    s = r.state;
    all.push(...r.commands);
  }
  return { state: s, commands: all };
}

const timerOf = (cmds: PowerCommand[], name: string) => cmds.find((c) => c.kind === 'timer' && c.name === name) as Extract<PowerCommand, { kind: 'timer' }>;

test('On posts, then boots the disk by default and runs', () => {
  let { state, commands } = run(initialPowerState(0), [{ kind: 'reset', type: 'On' }]);
  assert.equal(state.power, 'PoweringOn');
  assert.equal(state.bootProgress.lastState, 'PrimaryProcessorInitializationStarted');
  const t = timerOf(commands, 'postDone');
  assert.equal(t.ms, 50);
  ({ state, commands } = run(state, [{ kind: 'timer', name: 'postDone', epoch: t.epoch }]));
  assert.equal(state.power, 'On');
  assert.deepEqual(commands.find((c) => c.kind === 'boot'), { kind: 'boot', target: 'Hdd', epoch: state.epoch });
  ({ state } = run(state, [{ kind: 'booted', epoch: state.epoch, source: 'Hdd', name: 'hv', version: '1.0' }]));
  assert.equal(state.phase, 'running');
  assert.equal(state.bootProgress.lastState, 'OSRunning');
  assert.deepEqual(state.running, { source: 'Hdd', name: 'hv', version: '1.0' });
});

test('a one-time Cd override is used once and then cleared', () => {
  let s = setBootOverride(initialPowerState(0), 'Cd', 'Once');
  let r = run(s, [{ kind: 'reset', type: 'On' }]);
  r = run(r.state, [{ kind: 'timer', name: 'postDone', epoch: r.state.epoch }]);
  assert.equal(r.commands.find((c) => c.kind === 'boot')?.kind === 'boot' && (r.commands.find((c) => c.kind === 'boot') as { target: string }).target, 'Cd');
  assert.deepEqual(r.state.bootOverride, { target: 'None', enabled: 'Disabled' });
  s = setBootOverride(initialPowerState(0), 'Cd', 'Continuous');
  r = run(s, [{ kind: 'reset', type: 'On' }]);
  r = run(r.state, [{ kind: 'timer', name: 'postDone', epoch: r.state.epoch }]);
  assert.deepEqual(r.state.bootOverride, { target: 'Cd', enabled: 'Continuous' });
});

test('setting a target alone arms it once; bad values name the field and the allowed values', () => {
  assert.deepEqual(setBootOverride(initialPowerState(0), 'Pxe', undefined).bootOverride, { target: 'Pxe', enabled: 'Once' });
  assert.throws(() => setBootOverride(initialPowerState(0), 'Floppy', undefined), (e: unknown) => e instanceof InputError && e.field === 'Boot/BootSourceOverrideTarget' && e.allowed?.includes('Cd') === true);
  assert.throws(() => setBootOverride(initialPowerState(0), undefined, 'Always'), (e: unknown) => e instanceof InputError && e.field === 'Boot/BootSourceOverrideEnabled');
  assert.throws(() => parseResetType('Reboot'), (e: unknown) => e instanceof InputError && e.message.includes('ForceRestart'));
});

test('power-on failure fault: POST fails, the node stays off and logs a critical event', () => {
  const c = ctx({ powerOnFailure: true });
  let r = run(initialPowerState(0), [{ kind: 'reset', type: 'On' }], c);
  r = run(r.state, [{ kind: 'timer', name: 'postDone', epoch: r.state.epoch }], c);
  assert.equal(r.state.power, 'Off');
  assert.ok(r.commands.some((x) => x.kind === 'event' && x.severity === 'Critical'));
  assert.ok(!r.commands.some((x) => x.kind === 'boot'));
});

function running(): PowerMachineState {
  let r = run(initialPowerState(0), [{ kind: 'reset', type: 'On' }]);
  r = run(r.state, [{ kind: 'timer', name: 'postDone', epoch: r.state.epoch }]);
  return run(r.state, [{ kind: 'booted', epoch: r.state.epoch, source: 'Hdd', name: 'hv', version: '1' }]).state;
}

test('graceful shutdown asks the program to stop, powers off when it exits; a stale timer is ignored', () => {
  const r = run(running(), [{ kind: 'reset', type: 'GracefulShutdown' }]);
  assert.equal(r.state.power, 'PoweringOff');
  assert.ok(r.commands.some((c) => c.kind === 'stop' && !c.force));
  const t = timerOf(r.commands, 'gracefulTimeout');
  const done = run(r.state, [{ kind: 'exited', epoch: r.state.epoch, code: 0, signal: null }]);
  assert.equal(done.state.power, 'Off');
  const late = run(done.state, [{ kind: 'timer', name: 'gracefulTimeout', epoch: t.epoch }]);
  assert.deepEqual(late.commands, []);
  assert.equal(late.state.power, 'Off');
});

test('graceful shutdown that the program ignores is forced after the timeout', () => {
  const r = run(running(), [{ kind: 'reset', type: 'GracefulShutdown' }]);
  const t = timerOf(r.commands, 'gracefulTimeout');
  const f = run(r.state, [{ kind: 'timer', name: 'gracefulTimeout', epoch: t.epoch }]);
  assert.equal(f.state.power, 'Off');
  assert.ok(f.commands.some((c) => c.kind === 'stop' && c.force));
});

test('graceful restart and ForceRestart post again; PowerCycle is off, then on', () => {
  const g = run(running(), [{ kind: 'reset', type: 'GracefulRestart' }]);
  const g2 = run(g.state, [{ kind: 'exited', epoch: g.state.epoch, code: null, signal: 'SIGTERM' }]);
  assert.equal(g2.state.phase, 'post');
  const f = run(running(), [{ kind: 'reset', type: 'ForceRestart' }]);
  assert.equal(f.state.phase, 'post');
  assert.ok(f.commands[0]?.kind === 'stop' && f.commands[0].force);
  const c = run(running(), [{ kind: 'reset', type: 'PowerCycle' }]);
  assert.equal(c.state.power, 'Off');
  const on = run(c.state, [{ kind: 'timer', name: 'cycleOn', epoch: timerOf(c.commands, 'cycleOn').epoch }]);
  assert.equal(on.state.phase, 'post');
});

test('program exits: 0 powers off, 3 reboots, anything else halts with a critical event', () => {
  const s = running();
  assert.equal(run(s, [{ kind: 'exited', epoch: s.epoch, code: 0, signal: null }]).state.power, 'Off');
  assert.equal(run(s, [{ kind: 'exited', epoch: s.epoch, code: 3, signal: null }]).state.phase, 'post');
  const crash = run(s, [{ kind: 'exited', epoch: s.epoch, code: 1, signal: null }]);
  assert.equal(crash.state.phase, 'halted');
  assert.equal(crash.state.power, 'On');
  assert.equal(crash.state.bootProgress.oemLastState, 'OSCrashed');
  // an exit from an earlier boot changes nothing
  assert.equal(run(s, [{ kind: 'exited', epoch: s.epoch - 1, code: 1, signal: null }]).state.phase, 'running');
});

test('Nmi and restarts are refused while off; ForceOff while off is a no-op', () => {
  const off = initialPowerState(0);
  assert.throws(() => step(off, { kind: 'reset', type: 'Nmi' }, ctx()), ConflictError);
  assert.throws(() => step(off, { kind: 'reset', type: 'ForceRestart' }, ctx()), ConflictError);
  assert.deepEqual(step(off, { kind: 'reset', type: 'ForceOff' }, ctx()).commands, []);
  const nmi = step(running(), { kind: 'reset', type: 'Nmi' }, ctx());
  assert.ok(nmi.commands.some((c) => c.kind === 'nmi'));
});

test('boot failure halts with NoBootableDevice', () => {
  let r = run(initialPowerState(0), [{ kind: 'reset', type: 'On' }]);
  r = run(r.state, [{ kind: 'timer', name: 'postDone', epoch: r.state.epoch }]);
  r = run(r.state, [{ kind: 'bootFailed', epoch: r.state.epoch, reason: 'no bootable device' }]);
  assert.equal(r.state.phase, 'halted');
  assert.equal(r.state.bootProgress.lastState, 'OEM');
  assert.equal(r.state.bootProgress.oemLastState, 'NoBootableDevice');
});

test('restore after a rack restart powers a node that was on', () => {
  const s = running();
  const r = step(s, { kind: 'restore' }, ctx());
  assert.equal(r.state.phase, 'post');
  assert.deepEqual(step(initialPowerState(0), { kind: 'restore' }, ctx()).commands, []);
});

test('restore of a node that was gracefully shutting down leaves it off; one that was restarting boots', () => {
  const stopping = run(running(), [{ kind: 'reset', type: 'GracefulShutdown' }]).state;
  assert.equal(stopping.phase, 'stopping');
  const r = step(stopping, { kind: 'restore' }, ctx());
  assert.equal(r.state.power, 'Off');
  assert.equal(r.state.phase, 'off');
  assert.ok(!r.commands.some((c) => c.kind === 'timer' || c.kind === 'boot'), 'no POST, no boot');
  // a stale graceful timeout of the interrupted shutdown changes nothing
  const t = step(r.state, { kind: 'timer', name: 'gracefulTimeout', epoch: stopping.epoch }, ctx());
  assert.equal(t.state.power, 'Off');
  const restarting = run(running(), [{ kind: 'reset', type: 'GracefulRestart' }]).state;
  assert.equal(step(restarting, { kind: 'restore' }, ctx()).state.phase, 'post');
});
