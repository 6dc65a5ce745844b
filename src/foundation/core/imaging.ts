/**
 * @module
 * Imaging one node: a pure state machine `step(state, event, ctx) → { state, commands }`
 * (STYLE.md C3). The executor (node/session-runner.ts) performs the Redfish operations and
 * timers it asks for and feeds back what happened.
 *
 * ```
 *  pending ─start─► bmc_config? ─► media ─► booting ──first report──► installing ──done──► rebooting ──CVM announced──► done
 *     │                 (ipmi_config)  (power off,      (installer      (installer reports    (eject media;        (hypervisor +
 *     │                                 insert media,    not heard yet)   every step)          node boots its disk)  CVM up)
 *     │                                 one-time Cd,
 *     │                                 power on)
 *     └── image_now=false (pre-imaged): configuring (the hypervisor takes its addresses) ─► rebooting ──► done
 *  Any state: a step error, a timeout, the installer failing or the node crashing → failed ("fatal: …");
 *  abort → aborted (a Redfish step in flight finishes first; the node is left powered as it is).
 * ```
 * Every wait has a timeout; no state can neither finish nor fail.
 *
 * The media stage starts with the node powered off (ForceOff, then the BMC reporting Off): whatever
 * the node runs (an installer of an earlier attempt, the hypervisor and CVM of an earlier install)
 * is gone before Foundation touches its media and boot override, and the installer never meets it
 * (a retry after a restart of Foundation: docs/foundation.md, "Retry").
 */

export type Stage = 'pending' | 'bmc_config' | 'media' | 'booting' | 'installing' | 'configuring' | 'rebooting' | 'done' | 'failed' | 'aborted';
export type RedfishOp = 'configureBmc' | 'powerOff' | 'insertMedia' | 'bootOnceCd' | 'powerOnOrRestart' | 'ejectMedia';
export type TimerName = 'boot' | 'install' | 'cvm';

export interface NodeImagingState {
  serial: string;
  stage: Stage;
  percent: number;
  message: string;
  /** Set when failed: the reason, shown as "fatal: <reason>". */
  error: string | null;
  imageNow: boolean;
  configureBmc: boolean;
  startedAt: number | null;
  endedAt: number | null;
  /** Bumps on every transition that abandons a timer. */
  epoch: number;
  /** Versions the node reported when its CVM came up. */
  versions: { hypervisor: string; nos: string } | null;
}

export type ImagingEvent =
  | { kind: 'start' }
  | { kind: 'redfishDone'; op: RedfishOp }
  | { kind: 'redfishFailed'; op: RedfishOp; reason: string }
  | { kind: 'installerReport'; percent: number; message: string; status: 'running' | 'done' | 'failed' }
  /** What the BMC says the node is doing, polled while waiting on the installer. */
  | { kind: 'nodeHalted'; reason: string }
  | { kind: 'cvmAnnounced'; hypervisorVersion: string; nosVersion: string }
  /** A pre-imaged node's hypervisor took its new configuration (or could not). */
  | { kind: 'hostConfigured' }
  | { kind: 'hostConfigureFailed'; reason: string }
  | { kind: 'timer'; name: TimerName; epoch: number }
  | { kind: 'abort' };

export type ImagingCommand =
  | { kind: 'redfish'; op: RedfishOp }
  | { kind: 'timer'; name: TimerName; ms: number; epoch: number }
  | { kind: 'log'; message: string }
  | { kind: 'watchNode'; on: boolean }
  /** Poll the CVM's status endpoint at its planned address until it answers. */
  | { kind: 'watchCvm'; on: boolean }
  /** Send a pre-imaged node's hypervisor its configuration (addresses, host name, CVM size). */
  | { kind: 'configureHost' };

export interface ImagingContext {
  now: number;
  timeouts: { bootMs: number; installSilenceMs: number; cvmMs: number };
  /** The versions the bundle installs; a CVM that reports others fails the node. */
  expect: { hypervisor: string; nos: string } | null;
}

export function initialImagingState(serial: string, imageNow: boolean, configureBmc: boolean): NodeImagingState {
  return { serial, stage: 'pending', percent: 0, message: 'waiting to start', error: null, imageNow, configureBmc, startedAt: null, endedAt: null, epoch: 0, versions: null };
}

export const isFinal = (s: Stage): boolean => s === 'done' || s === 'failed' || s === 'aborted';

interface Out {
  state: NodeImagingState;
  commands: ImagingCommand[];
}

function go(s: NodeImagingState, stage: Stage, percent: number, message: string, cmds: ImagingCommand[], extra: Partial<NodeImagingState> = {}): Out {
  return { state: { ...s, ...extra, stage, percent, message, epoch: s.epoch + 1 }, commands: [{ kind: 'log', message }, ...cmds] };
}

function fail(s: NodeImagingState, reason: string, ctx: ImagingContext): Out {
  return {
    state: { ...s, stage: 'failed', error: reason, message: `fatal: ${reason}`, endedAt: ctx.now, epoch: s.epoch + 1 },
    commands: [{ kind: 'log', message: `fatal: ${reason}` }, { kind: 'watchNode', on: false }, { kind: 'watchCvm', on: false }],
  };
}

const timer = (name: TimerName, ms: number, epoch: number): ImagingCommand => ({ kind: 'timer', name, ms, epoch });

function waitForCvm(s: NodeImagingState, ctx: ImagingContext, percent: number, message: string, extraCmds: ImagingCommand[] = []): Out {
  const o = go(s, 'rebooting', percent, message, [...extraCmds, { kind: 'watchCvm', on: true }]);
  o.commands.push(timer('cvm', ctx.timeouts.cvmMs, o.state.epoch));
  return o;
}

/** The first step of the media stage: nothing the node ran before is left when the installer boots. */
const POWER_OFF_STEP = 'power the node off (what it runs now stops before the installer boots)';

const STEP_NAMES: Record<RedfishOp, string> = {
  configureBmc: 'configure the BMC network',
  powerOff: 'power the node off',
  insertMedia: 'insert the installer as virtual media',
  bootOnceCd: 'set a one-time boot from virtual CD',
  powerOnOrRestart: 'power the node on',
  ejectMedia: 'eject the virtual media',
};

export function stepImaging(s: NodeImagingState, e: ImagingEvent, ctx: ImagingContext): Out {
  if (isFinal(s.stage)) return { state: s, commands: [] };
  switch (e.kind) {
    case 'abort': {
      const state: NodeImagingState = { ...s, stage: 'aborted', message: 'aborted', error: 'aborted by the user', endedAt: ctx.now, epoch: s.epoch + 1 };
      return { state, commands: [{ kind: 'log', message: 'aborted' }, { kind: 'watchNode', on: false }, { kind: 'watchCvm', on: false }] };
    }
    case 'start': {
      if (s.stage !== 'pending') return { state: s, commands: [] };
      const base = { ...s, startedAt: ctx.now };
      if (!s.imageNow) return go(base, 'configuring', 40, 'pre-imaged node (image_now false): sending the hypervisor its configuration', [{ kind: 'configureHost' }]);
      if (s.configureBmc) return go(base, 'bmc_config', 2, `${STEP_NAMES.configureBmc}`, [{ kind: 'redfish', op: 'configureBmc' }]);
      return go(base, 'media', 3, POWER_OFF_STEP, [{ kind: 'redfish', op: 'powerOff' }]);
    }
    case 'hostConfigured':
      if (s.stage !== 'configuring') return { state: s, commands: [] };
      return waitForCvm(s, ctx, 80, 'configuration applied: waiting for the CVM at its new address');
    case 'hostConfigureFailed':
      if (s.stage !== 'configuring') return { state: s, commands: [] };
      return fail(s, `could not configure the pre-imaged node: ${e.reason}`, ctx);
    case 'redfishFailed':
      return fail(s, `could not ${STEP_NAMES[e.op]}: ${e.reason}`, ctx);
    case 'redfishDone':
      switch (e.op) {
        case 'configureBmc':
          return go(s, 'media', 3, POWER_OFF_STEP, [{ kind: 'redfish', op: 'powerOff' }]);
        case 'powerOff':
          return { state: { ...s, percent: 4, message: STEP_NAMES.insertMedia }, commands: [{ kind: 'log', message: 'node powered off' }, { kind: 'log', message: STEP_NAMES.insertMedia }, { kind: 'redfish', op: 'insertMedia' }] };
        case 'insertMedia':
          return { state: { ...s, percent: 5, message: STEP_NAMES.bootOnceCd }, commands: [{ kind: 'log', message: STEP_NAMES.bootOnceCd }, { kind: 'redfish', op: 'bootOnceCd' }] };
        case 'bootOnceCd':
          return { state: { ...s, percent: 6, message: STEP_NAMES.powerOnOrRestart }, commands: [{ kind: 'log', message: STEP_NAMES.powerOnOrRestart }, { kind: 'redfish', op: 'powerOnOrRestart' }] };
        case 'powerOnOrRestart': {
          const o = go(s, 'booting', 8, 'node powered on: booting the installer from virtual media', [{ kind: 'watchNode', on: true }]);
          o.commands.push(timer('boot', ctx.timeouts.bootMs, o.state.epoch));
          return o;
        }
        case 'ejectMedia':
          return { state: s, commands: [{ kind: 'log', message: 'virtual media ejected' }] };
      }
      break;
    case 'installerReport': {
      if (s.stage !== 'booting' && s.stage !== 'installing') return { state: s, commands: [] };
      if (e.status === 'failed') return fail(s, `installer: ${e.message}`, ctx);
      const pct = Math.max(0, Math.min(100, e.percent));
      if (e.status === 'done') {
        return waitForCvm(s, ctx, 88, 'installed: rebooting into the hypervisor; waiting for the CVM', [{ kind: 'redfish', op: 'ejectMedia' }, { kind: 'watchNode', on: false }]);
      }
      const o = go(s, 'installing', Math.max(s.percent, 10 + Math.round(pct * 0.75)), e.message, []);
      o.commands.push(timer('install', ctx.timeouts.installSilenceMs, o.state.epoch));
      return o;
    }
    case 'nodeHalted':
      if (s.stage !== 'booting' && s.stage !== 'installing') return { state: s, commands: [] };
      return fail(s, e.reason, ctx);
    case 'cvmAnnounced': {
      if (s.stage !== 'rebooting') return { state: s, commands: [] };
      if (ctx.expect && (e.hypervisorVersion !== ctx.expect.hypervisor || e.nosVersion !== ctx.expect.nos)) {
        return fail(s, `the node runs hypervisor ${e.hypervisorVersion} / storage OS ${e.nosVersion}, expected ${ctx.expect.hypervisor} / ${ctx.expect.nos}`, ctx);
      }
      return go(s, 'done', 100, `CVM up: hypervisor ${e.hypervisorVersion}, storage OS ${e.nosVersion}`, [{ kind: 'watchCvm', on: false }], { endedAt: ctx.now, versions: { hypervisor: e.hypervisorVersion, nos: e.nosVersion } });
    }
    case 'timer': {
      if (e.epoch !== s.epoch) return { state: s, commands: [] };
      const secs = (ms: number): string => `${Math.round(ms / 1000)} s`;
      switch (e.name) {
        case 'boot':
          return s.stage === 'booting' ? fail(s, `the installer did not report within ${secs(ctx.timeouts.bootMs)} of power-on (see the node's console log)`, ctx) : { state: s, commands: [] };
        case 'install':
          return s.stage === 'installing' ? fail(s, `the installer went silent for ${secs(ctx.timeouts.installSilenceMs)} at ${s.percent}% (${s.message})`, ctx) : { state: s, commands: [] };
        case 'cvm':
          return s.stage === 'rebooting' ? fail(s, `the CVM did not come up within ${secs(ctx.timeouts.cvmMs)} of the reboot`, ctx) : { state: s, commands: [] };
      }
    }
  }
  return { state: s, commands: [] };
}

/** Foundation's progress status string for a node: "fatal: …" when failed. */
export function statusText(s: NodeImagingState): string {
  if (s.stage === 'failed') return `fatal: ${s.error ?? 'unknown error'}`;
  if (s.stage === 'aborted') return 'fatal: aborted';
  return s.message;
}
