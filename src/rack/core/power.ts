/**
 * @module
 * The power and boot state machine of one node: `step(state, event, ctx) → { state, commands }`
 * (STYLE.md C3). Pure: timers, program launches and console lines are commands that the node
 * runtime (node/node-runtime.ts) carries out and answers with events.
 *
 * ```
 *             reset On                  postDone                  booted
 *   ┌─────┐ ───────────► ┌──────┐ ──────────────► ┌─────────┐ ─────────────► ┌─────────┐
 *   │ off │              │ post │                 │ booting │                │ running │
 *   └─────┘ ◄─────────── └──────┘                 └─────────┘                └─────────┘
 *      ▲    power-on fault   │ ForceOff                │ bootFailed               │ exit 0: off
 *      │                     ▼                         ▼                          │ exit 3: restart (post)
 *      │   ForceOff      (any state)              ┌────────┐ ◄── other exit ──────┘
 *      └───────────────────────────────────────── │ halted │
 *                                                  └────────┘
 *   GracefulShutdown / GracefulRestart while running: stopping ──exited──► off | post
 *   (after gracefulTimeoutMs the program is killed). PowerCycle: off for cycleOffMs, then post.
 * ```
 * Every transition that abandons pending work bumps `epoch`; timers and program events carry the
 * epoch they belong to, and stale ones are ignored.
 */
import { ConflictError, InputError } from '../../shared/errors.ts';
import type { Random } from '../../shared/random.ts';

export type PowerState = 'Off' | 'On' | 'PoweringOn' | 'PoweringOff';
export const RESET_TYPES = ['On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart', 'PowerCycle', 'Nmi'] as const;
export type ResetType = (typeof RESET_TYPES)[number];
export const BOOT_TARGETS = ['None', 'Pxe', 'Cd', 'Hdd'] as const;
export type BootTarget = (typeof BOOT_TARGETS)[number];
export const BOOT_ENABLED = ['Disabled', 'Once', 'Continuous'] as const;
export type BootEnabled = (typeof BOOT_ENABLED)[number];
export type BootLastState =
  | 'None'
  | 'PrimaryProcessorInitializationStarted'
  | 'MemoryInitializationStarted'
  | 'SystemHardwareInitializationComplete'
  | 'OSBootStarted'
  | 'OSRunning'
  | 'OEM';

export type Phase = 'off' | 'post' | 'booting' | 'running' | 'halted' | 'stopping' | 'cycling';
export type TimerName = 'postDone' | 'gracefulTimeout' | 'cycleOn';

export interface PowerMachineState {
  power: PowerState;
  phase: Phase;
  /** What follows a graceful stop. */
  after: 'off' | 'restart';
  bootOverride: { target: BootTarget; enabled: BootEnabled };
  bootProgress: { lastState: BootLastState; oemLastState?: string; time: number };
  running?: { source: 'Cd' | 'Hdd'; name: string; version: string };
  epoch: number;
}

export type PowerEvent =
  | { kind: 'reset'; type: ResetType }
  | { kind: 'timer'; name: TimerName; epoch: number }
  | { kind: 'booted'; epoch: number; source: 'Cd' | 'Hdd'; name: string; version: string }
  | { kind: 'bootFailed'; epoch: number; reason: string }
  | { kind: 'exited'; epoch: number; code: number | null; signal: string | null }
  /** The rack started again and the node was on before: power is restored (PowerRestorePolicy LastState). */
  | { kind: 'restore' };

export type PowerCommand =
  | { kind: 'timer'; name: TimerName; ms: number; epoch: number }
  | { kind: 'boot'; target: 'Cd' | 'Hdd' | 'Pxe'; epoch: number }
  | { kind: 'stop'; force: boolean }
  | { kind: 'nmi' }
  | { kind: 'console'; line: string }
  | { kind: 'event'; severity: 'OK' | 'Warning' | 'Critical'; message: string };

export interface Delays {
  postMs: number;
  cycleOffMs: number;
  gracefulTimeoutMs: number;
}

export interface PowerContext {
  now: number;
  delays: Delays;
  faults: { powerOnFailure: boolean };
}

export interface StepResult {
  state: PowerMachineState;
  commands: PowerCommand[];
}

/** Real-world durations, scaled by the rack's pace (pace 1 = as slow as a real server). */
export const BASE_DELAYS = {
  postMs: 90_000,
  cycleOffMs: 5_000,
  bmcFirmwareUpdateMs: 600_000,
  biosFirmwareUpdateMs: 300_000,
  bmcRebootMs: 60_000,
} as const;

/** The OS's own shutdown budget is not hardware time, so pace does not scale it. */
export const GRACEFUL_TIMEOUT_MS = 30_000;

/** Scales a base delay by pace with a ±20 % spread, as real hardware varies. */
export function paced(baseMs: number, pace: number, rnd: Random): number {
  if (pace <= 0) return 0;
  return Math.round(baseMs * pace * (0.8 + 0.4 * rnd.next()));
}

export function delaysFor(pace: number, rnd: Random): Delays {
  return {
    postMs: paced(BASE_DELAYS.postMs, pace, rnd),
    cycleOffMs: paced(BASE_DELAYS.cycleOffMs, pace, rnd),
    gracefulTimeoutMs: GRACEFUL_TIMEOUT_MS,
  };
}

export function initialPowerState(now: number): PowerMachineState {
  return {
    power: 'Off',
    phase: 'off',
    after: 'off',
    bootOverride: { target: 'None', enabled: 'Disabled' },
    bootProgress: { lastState: 'None', time: now },
    epoch: 0,
  };
}

export function parseResetType(v: unknown): ResetType {
  if (typeof v !== 'string' || !(RESET_TYPES as readonly string[]).includes(v)) {
    throw new InputError('ResetType', `must be one of ${RESET_TYPES.join(', ')}`, RESET_TYPES, v);
  }
  return v as ResetType;
}

/** Validates and applies a boot override change (Redfish Boot PATCH). */
export function setBootOverride(state: PowerMachineState, target: unknown, enabled: unknown): PowerMachineState {
  let t = state.bootOverride.target;
  let e = state.bootOverride.enabled;
  if (target !== undefined) {
    if (typeof target !== 'string' || !(BOOT_TARGETS as readonly string[]).includes(target)) {
      throw new InputError('Boot/BootSourceOverrideTarget', `must be one of ${BOOT_TARGETS.join(', ')}`, BOOT_TARGETS, target);
    }
    t = target as BootTarget;
  }
  if (enabled !== undefined) {
    if (typeof enabled !== 'string' || !(BOOT_ENABLED as readonly string[]).includes(enabled)) {
      throw new InputError('Boot/BootSourceOverrideEnabled', `must be one of ${BOOT_ENABLED.join(', ')}`, BOOT_ENABLED, enabled);
    }
    e = enabled as BootEnabled;
  } else if (target !== undefined && target !== 'None' && e === 'Disabled') {
    // Setting a target alone arms it once, as most BMCs do.
    e = 'Once';
  }
  return { ...state, bootOverride: { target: t, enabled: e } };
}

function progress(state: PowerMachineState, lastState: BootLastState, now: number, oem?: string): PowerMachineState {
  const bp: PowerMachineState['bootProgress'] = { lastState, time: now };
  if (oem !== undefined) bp.oemLastState = oem;
  return { ...state, bootProgress: bp };
}

function toOff(state: PowerMachineState, ctx: PowerContext): PowerMachineState {
  const s: PowerMachineState = { ...state, power: 'Off', phase: 'off', after: 'off', epoch: state.epoch + 1 };
  delete s.running;
  return progress(s, 'None', ctx.now);
}

function startPost(state: PowerMachineState, ctx: PowerContext, commands: PowerCommand[]): PowerMachineState {
  const epoch = state.epoch + 1;
  let s: PowerMachineState = { ...state, power: 'PoweringOn', phase: 'post', after: 'off', epoch };
  delete s.running;
  s = progress(s, 'PrimaryProcessorInitializationStarted', ctx.now);
  commands.push({ kind: 'console', line: 'POST: power on, initializing processors and memory' });
  commands.push({ kind: 'timer', name: 'postDone', ms: ctx.delays.postMs, epoch });
  return s;
}

/** Begins a graceful stop: asks the program to stop, with a deadline. */
function startGraceful(state: PowerMachineState, ctx: PowerContext, after: 'off' | 'restart', commands: PowerCommand[]): PowerMachineState {
  // The epoch stays: the running program's exit belongs to it and completes the stop.
  const epoch = state.epoch;
  commands.push({ kind: 'console', line: after === 'off' ? 'ACPI: graceful shutdown requested' : 'ACPI: graceful restart requested' });
  commands.push({ kind: 'stop', force: false });
  commands.push({ kind: 'timer', name: 'gracefulTimeout', ms: ctx.delays.gracefulTimeoutMs, epoch });
  return { ...state, power: after === 'off' ? 'PoweringOff' : 'On', phase: 'stopping', after, epoch };
}

function reset(state: PowerMachineState, type: ResetType, ctx: PowerContext): StepResult {
  const commands: PowerCommand[] = [];
  const on = state.phase !== 'off' && state.phase !== 'cycling';
  switch (type) {
    case 'On':
      if (on) return { state, commands };
      return { state: startPost(state, ctx, commands), commands };
    case 'ForceOff':
      if (!on && state.phase === 'off') return { state, commands };
      commands.push({ kind: 'stop', force: true }, { kind: 'console', line: 'power off (forced)' });
      return { state: toOff(state, ctx), commands };
    case 'GracefulShutdown':
      if (!on) return { state, commands };
      if (state.phase === 'running') return { state: startGraceful(state, ctx, 'off', commands), commands };
      if (state.phase === 'stopping') return { state: { ...state, after: 'off', power: 'PoweringOff' }, commands };
      commands.push({ kind: 'stop', force: true }, { kind: 'console', line: 'power off (no OS to shut down)' });
      return { state: toOff(state, ctx), commands };
    case 'GracefulRestart':
      if (!on) throw new ConflictError('the system is powered off; GracefulRestart needs a running system (use On)');
      if (state.phase === 'running') return { state: startGraceful(state, ctx, 'restart', commands), commands };
      if (state.phase === 'stopping') return { state: { ...state, after: 'restart', power: 'On' }, commands };
      commands.push({ kind: 'stop', force: true });
      return { state: startPost(state, ctx, commands), commands };
    case 'ForceRestart':
      if (!on) throw new ConflictError('the system is powered off; ForceRestart needs a powered-on system (use On)');
      commands.push({ kind: 'stop', force: true }, { kind: 'console', line: 'reset (forced)' });
      return { state: startPost(state, ctx, commands), commands };
    case 'PowerCycle': {
      if (!on) return { state: startPost(state, ctx, commands), commands };
      commands.push({ kind: 'stop', force: true }, { kind: 'console', line: 'power cycle: power off' });
      const off = toOff(state, ctx);
      const s: PowerMachineState = { ...off, phase: 'cycling' };
      commands.push({ kind: 'timer', name: 'cycleOn', ms: ctx.delays.cycleOffMs, epoch: s.epoch });
      return { state: s, commands };
    }
    case 'Nmi':
      if (!on) throw new ConflictError('the system is powered off; an NMI needs a powered-on system');
      commands.push({ kind: 'console', line: 'NMI: diagnostic interrupt received' }, { kind: 'event', severity: 'Warning', message: 'Diagnostic interrupt (NMI) issued' });
      if (state.phase === 'running') commands.push({ kind: 'nmi' });
      return { state, commands };
  }
}

/** Applies one event. Throws ConflictError / InputError for resets that are not allowed now. */
export function step(state: PowerMachineState, event: PowerEvent, ctx: PowerContext): StepResult {
  const commands: PowerCommand[] = [];
  switch (event.kind) {
    case 'reset':
      return reset(state, event.type, ctx);
    case 'restore':
      if (state.power === 'Off' && state.phase !== 'cycling') return { state, commands };
      if (state.phase === 'stopping' && state.after === 'off') {
        // The rack stopped during a graceful shutdown: the node was on its way off, so it stays off.
        commands.push({ kind: 'console', line: 'AC power restored: the system was shutting down; it stays off' });
        return { state: toOff(state, ctx), commands };
      }
      commands.push({ kind: 'console', line: 'AC power restored: power restore policy LastState' });
      return { state: startPost({ ...state, power: 'Off', phase: 'off' }, ctx, commands), commands };
    case 'timer': {
      if (event.epoch !== state.epoch) return { state, commands };
      switch (event.name) {
        case 'cycleOn':
          if (state.phase !== 'cycling') return { state, commands };
          return { state: startPost(state, ctx, commands), commands };
        case 'gracefulTimeout':
          if (state.phase !== 'stopping') return { state, commands };
          commands.push({ kind: 'console', line: `ACPI: the OS did not stop within ${Math.round(ctx.delays.gracefulTimeoutMs / 1000)} s; forcing` }, { kind: 'stop', force: true });
          return state.after === 'off' ? { state: toOff(state, ctx), commands } : { state: startPost(state, ctx, commands), commands };
        case 'postDone': {
          if (state.phase !== 'post') return { state, commands };
          if (ctx.faults.powerOnFailure) {
            commands.push(
              { kind: 'console', line: 'POST: fatal error: memory training failed on P1-DIMMA1; system halted and powered off' },
              { kind: 'event', severity: 'Critical', message: 'Power-on self test failed: memory training error on P1-DIMMA1' },
            );
            return { state: toOff(state, ctx), commands };
          }
          let s = progress({ ...state, power: 'On', phase: 'booting' }, 'SystemHardwareInitializationComplete', ctx.now);
          const o = s.bootOverride;
          const useOverride = o.enabled !== 'Disabled' && o.target !== 'None';
          const target = useOverride ? (o.target as 'Cd' | 'Hdd' | 'Pxe') : 'Hdd';
          if (useOverride && o.enabled === 'Once') s = { ...s, bootOverride: { target: 'None', enabled: 'Disabled' } };
          commands.push({ kind: 'console', line: `POST complete; booting from ${target}${useOverride ? ' (boot override)' : ''}` });
          commands.push({ kind: 'boot', target, epoch: s.epoch });
          return { state: s, commands };
        }
      }
      break;
    }
    case 'booted': {
      if (event.epoch !== state.epoch || state.phase !== 'booting') return { state, commands };
      commands.push({ kind: 'console', line: `booted ${event.name} ${event.version} from ${event.source}` });
      const s = progress({ ...state, phase: 'running', running: { source: event.source, name: event.name, version: event.version } }, 'OSRunning', ctx.now);
      return { state: s, commands };
    }
    case 'bootFailed': {
      if (event.epoch !== state.epoch || state.phase !== 'booting') return { state, commands };
      commands.push({ kind: 'console', line: `boot failed: ${event.reason}` }, { kind: 'event', severity: 'Critical', message: `Boot failed: ${event.reason}` });
      return { state: progress({ ...state, phase: 'halted' }, 'OEM', ctx.now, 'NoBootableDevice'), commands };
    }
    case 'exited': {
      if (event.epoch !== state.epoch) return { state, commands };
      if (state.phase === 'stopping') {
        commands.push({ kind: 'console', line: 'OS stopped' });
        return state.after === 'off' ? { state: toOff(state, ctx), commands } : { state: startPost(state, ctx, commands), commands };
      }
      if (state.phase !== 'running') return { state, commands };
      if (event.code === 0) {
        commands.push({ kind: 'console', line: 'OS requested power off' });
        return { state: toOff(state, ctx), commands };
      }
      if (event.code === 3) {
        commands.push({ kind: 'console', line: 'OS requested reboot' });
        return { state: startPost(state, ctx, commands), commands };
      }
      const how = event.signal ? `signal ${event.signal}` : `exit code ${event.code}`;
      commands.push({ kind: 'console', line: `OS crashed (${how}); system halted` }, { kind: 'event', severity: 'Critical', message: `Operating system stopped unexpectedly (${how})` });
      const s = progress({ ...state, phase: 'halted' }, 'OEM', ctx.now, 'OSCrashed');
      delete s.running;
      return { state: s, commands };
    }
  }
  return { state, commands };
}
