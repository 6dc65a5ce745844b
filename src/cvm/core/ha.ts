/**
 * @module
 * High availability of VMs (pure; the clock's time is passed in): which hosts are alive, when a
 * host is declared down, when to fence it, and where its VMs restart. Also the plans of
 * maintenance mode (evacuate a host; bring its VMs back). docs/ha.md says it for operators.
 *
 * The tracker is fed observations (a host answered its poll, with the VMs it runs; a host did not
 * answer; a fence or restart finished) and answers decisions as data (HaDecision): the leader's
 * HaMonitor (node/ha-monitor.ts) performs them and feeds their outcome back.
 *
 * Liveness of a host:
 *   up        answers its polls
 *   suspect   missed a poll (no restart is placed on it)
 *   down      no answer for downAfterMs (10 s); fenced when it holds an HA VM that should run
 *   fencing   its BMC was asked to power it off (ForceOff, then PowerState Off)
 *   fence-failed  the BMC did not confirm Off: retried with backoff; answering again makes it up
 *   fenced    its BMC said Off; its HA VMs restart elsewhere; it stays fenced until powered on
 *             through the cluster (released) and it reports no running VM, then up
 * Safety rules (each one a test in ha.test.ts and ha.sim.test.ts):
 * - a VM restarts only once its old host's BMC confirmed the host is Off (fenced): a host that
 *   merely stopped answering may still run its VMs (a network partition);
 * - a fence that fails restarts nothing; the VMs are reported `ha-blocked` with the reason;
 * - each restart raises the VM's placement epoch (a host refuses an order with a lower epoch);
 * - the leader fences nothing while it reaches fewer than half of the hosts (it may be the one cut
 *   off), and nothing in maintenance (no VMs are placed there);
 * - a fenced host stays fenced when it answers again until it is powered on through the cluster
 *   and reports no running VM.
 * After a leader change the tracker is rebuilt from the persisted fence records (FenceRecord):
 * hosts being fenced are fenced again (ForceOff of an Off system is harmless), fenced hosts stay
 * fenced, and every other host gets downAfterMs from the new leader's start to answer.
 */
import { InputError } from '../../shared/errors.ts';
import type { Vm, VmHost } from '../protocol/vms.ts';

/**
 * Where a VM goes: one of `hosts` (each already counts what the plan placed on it so far), or an
 * InputError saying why it fits nowhere. The VM service's placement (core/vm-placement.ts) is one.
 */
export type PlaceFn = (vm: Vm, hosts: readonly VmHost[]) => VmHost | InputError;

export type Liveness = 'up' | 'suspect' | 'down' | 'fencing' | 'fence-failed' | 'fenced';

export interface HaOptions {
  /** A host that has not answered for this long is down (default 10 s). */
  downAfterMs: number;
  /** The first retry of a failed fence; doubles each time up to fenceRetryMaxMs. */
  fenceRetryMs: number;
  fenceRetryMaxMs: number;
  /** A failed restart is tried again (on any host that fits) after this long. */
  restartRetryMs: number;
}

export const DEFAULT_HA_OPTIONS: HaOptions = { downAfterMs: 10_000, fenceRetryMs: 2_000, fenceRetryMaxMs: 60_000, restartRetryMs: 5_000 };

/** What the leader persists (etcd, `acropolis/ha/fences/<serial>`) so that a new leader knows. */
export interface FenceRecord {
  host: string;
  /** fencing: the leader decided to power it off; fenced: its BMC said Off; released: powered on again, waiting for it to report no VMs. */
  state: 'fencing' | 'fenced' | 'released';
  since: number;
  attempts: number;
  reason: string | null;
}

/** A VM as its host reports it (HostVm's uuid and state). */
export interface ReportedVm {
  uuid: string;
  state: string;
}

export type HaDecision =
  | { kind: 'host-state'; host: string; state: Liveness; reason: string }
  /** Power the host off through its BMC (ForceOff, then PowerState Off); answer with fenceDone. */
  | { kind: 'fence'; host: string; attempt: number }
  | { kind: 'record-fence'; record: FenceRecord }
  | { kind: 'forget-fence'; host: string }
  /** Start the VM on `host` with placement `epoch` (store {host, epoch} first, compared on the VM's previous epoch); answer with restartDone. */
  | { kind: 'restart'; vm: string; name: string; host: string; from: string; epoch: number }
  /** The VM should run but cannot be restarted now: why (said once per reason). */
  | { kind: 'ha-blocked'; vm: string; name: string; host: string; reason: string }
  /** A VM of a fenced host that is not restarted (ha is off): the service marks it off. */
  | { kind: 'not-restarted'; vm: string; name: string; host: string; reason: string };

export type Outcome = { ok: true } | { ok: false; reason: string };

interface Track {
  serial: string;
  liveness: Liveness;
  lastAnswer: number;
  reported: ReportedVm[];
  /** Fence attempts so far, when the next may start, whether one is running. */
  attempts: number;
  nextFenceAt: number;
  fenceInFlight: boolean;
  fenceReason: string | null;
  fenceSince: number;
  released: boolean;
  /** The last host-state reason said (to say each change once). */
  said: string;
}

interface Pending {
  host: string;
  from: string;
  epoch: number;
  /** In flight (undefined) or failed: retry from then. */
  retryAt: number | undefined;
}

/** VM states a host reports for a VM that is (or may be) executing. */
const NOT_RUNNING = new Set(['off', 'crashed', 'migrated']);
export const isRunningState = (s: string): boolean => !NOT_RUNNING.has(s);
/** Whether the VM should be running (what HA restarts). */
export const wantsOn = (vm: Vm): boolean => vm.powerState === 'on' || vm.powerState === 'paused';

/** A host with a VM's resources counted in (or out, sign -1). */
export function withVm(h: VmHost, vm: Vm, sign: 1 | -1 = 1): VmHost {
  return { ...h, freeMemoryMiB: h.freeMemoryMiB - sign * vm.memoryMiB, freeVcpus: h.freeVcpus - sign * vm.vcpus, vms: h.vms + sign };
}

const byPlacementOrder = (a: Vm, b: Vm): number => b.memoryMiB - a.memoryMiB || b.vcpus - a.vcpus || (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0);

export class HaTracker {
  private readonly o: HaOptions;
  private readonly tracks = new Map<string, Track>();
  private readonly pending = new Map<string, Pending>();
  /** vm uuid → the last ha-blocked / not-restarted reason said. */
  private readonly said = new Map<string, string>();
  /** host → its fence record as last persisted (JSON), to persist each change once. */
  private readonly persisted = new Map<string, string>();

  /**
   * `records`: the fence records persisted by earlier leaders; `now`: when this tracker starts
   * (each host not fenced gets downAfterMs from now to answer).
   */
  constructor(now: number, records: readonly FenceRecord[] = [], opts: Partial<HaOptions> = {}) {
    this.o = { ...DEFAULT_HA_OPTIONS, ...opts };
    for (const r of records) {
      this.persisted.set(r.host, JSON.stringify(r));
      const t = this.track(r.host, now);
      t.attempts = r.attempts;
      t.fenceReason = r.reason;
      t.fenceSince = r.since;
      if (r.state === 'fencing') {
        // the last leader may have been cut short: fence again, now
        t.liveness = 'down';
        t.lastAnswer = now - this.o.downAfterMs;
        t.nextFenceAt = now;
      } else {
        t.liveness = 'fenced';
        t.released = r.state === 'released';
      }
    }
  }

  get options(): Readonly<HaOptions> {
    return this.o;
  }

  liveness(host: string): Liveness | undefined {
    return this.tracks.get(host)?.liveness;
  }

  /** The fence records as they should be persisted now. */
  fenceRecords(): FenceRecord[] {
    return [...this.tracks.values()].flatMap((t) => {
      const rec = this.recordOf(t);
      return rec ? [rec] : [];
    });
  }

  private recordOf(t: Track): FenceRecord | undefined {
    const state = t.liveness === 'fenced' ? (t.released ? 'released' : 'fenced') : t.liveness === 'fencing' || t.liveness === 'fence-failed' ? 'fencing' : undefined;
    return state ? { host: t.serial, state, since: t.fenceSince, attempts: t.attempts, reason: t.fenceReason } : undefined;
  }

  private track(serial: string, now: number): Track {
    let t = this.tracks.get(serial);
    if (!t) {
      t = { serial, liveness: 'up', lastAnswer: now, reported: [], attempts: 0, nextFenceAt: 0, fenceInFlight: false, fenceReason: null, fenceSince: 0, released: false, said: '' };
      this.tracks.set(serial, t);
    }
    return t;
  }

  // ---- observations ------------------------------------------------------------------------

  /** The host answered its poll at `at`, running these VMs. */
  answered(host: string, at: number, vms: readonly ReportedVm[]): void {
    const t = this.track(host, at);
    t.lastAnswer = Math.max(t.lastAnswer, at);
    t.reported = [...vms];
    const running = vms.filter((v) => isRunningState(v.state));
    switch (t.liveness) {
      case 'up':
      case 'suspect':
      case 'down':
        t.liveness = 'up';
        return;
      case 'fence-failed':
        // reachable again and nothing was restarted (no fence was confirmed): it simply keeps its VMs
        t.liveness = 'up';
        t.attempts = 0;
        t.fenceReason = null;
        return;
      case 'fencing':
        return; // a fence in flight completes; its outcome decides
      case 'fenced':
        if (running.length > 0) {
          // VMs run on a host its BMC called Off (or it was powered on with them): fence it again
          t.liveness = 'down';
          t.released = false;
          t.nextFenceAt = at;
          t.fenceReason = `it answers while fenced, running ${running.map((v) => v.uuid).join(', ')}`;
        } else if (t.released) {
          t.liveness = 'up';
          t.released = false;
          t.attempts = 0;
          t.fenceReason = null;
        }
        return;
      default: {
        const never: never = t.liveness;
        throw new Error(`unknown liveness ${String(never)}`);
      }
    }
  }

  /** The host did not answer its poll at `at`. */
  missed(host: string, at: number): void {
    const t = this.track(host, at);
    if (t.liveness === 'up') t.liveness = 'suspect';
  }

  /** A fence decided earlier finished: ok only when the BMC reported the system Off. */
  fenceDone(host: string, at: number, outcome: Outcome): void {
    const t = this.track(host, at);
    t.fenceInFlight = false;
    if (outcome.ok) {
      t.liveness = 'fenced';
      t.released = false;
      t.fenceReason = null;
      t.reported = [];
      return;
    }
    t.fenceReason = outcome.reason;
    if (t.liveness === 'fencing') t.liveness = 'fence-failed';
    const backoff = Math.min(this.o.fenceRetryMaxMs, this.o.fenceRetryMs * 2 ** Math.max(0, t.attempts - 1));
    t.nextFenceAt = at + backoff;
  }

  /** The host was powered on by the operator or the leader: it returns once it answers with no VM running. */
  released(host: string, at: number): void {
    const t = this.track(host, at);
    if (t.liveness === 'fenced') t.released = true;
  }

  /** A restart decided earlier finished (ok: the VM service placed it and the host started it). */
  restartDone(vm: string, at: number, outcome: Outcome): void {
    const p = this.pending.get(vm);
    if (!p) return;
    if (outcome.ok) {
      this.said.delete(vm);
      return; // kept until the VM's record shows the new host (decide drops it then)
    }
    p.retryAt = at + this.o.restartRetryMs;
    this.said.set(vm, `restart on ${p.host} failed: ${outcome.reason}`);
  }

  // ---- decisions ---------------------------------------------------------------------------

  /**
   * What to do now, given the VM service's hosts and VMs. Calling it again without new
   * observations answers nothing new (each decision is made once; retries when they are due).
   */
  decide(now: number, view: { hosts: readonly VmHost[]; vms: readonly Vm[] }, place: PlaceFn): HaDecision[] {
    const out: HaDecision[] = [];
    const hostOf = new Map(view.hosts.map((h) => [h.serial, h]));
    for (const h of view.hosts) this.track(h.serial, now);
    // a host gone from the cluster is no longer watched
    const tracks = [...this.tracks.values()].filter((t) => hostOf.has(t.serial));

    // VMs each host is responsible for: its records, and what it last reported running
    const vmsOn = new Map<string, Vm[]>();
    const byUuid = new Map(view.vms.map((v) => [v.uuid, v]));
    const add = (host: string, vm: Vm): void => {
      const l = vmsOn.get(host) ?? [];
      if (!l.includes(vm)) l.push(vm);
      vmsOn.set(host, l);
    };
    for (const vm of view.vms) if (vm.host) add(vm.host.serial, vm);
    for (const t of tracks) {
      for (const r of t.reported) {
        const vm = byUuid.get(r.uuid);
        if (vm && isRunningState(r.state) && (!vm.host || vm.host.serial === t.serial || this.tracks.get(vm.host.serial)?.liveness !== 'up')) add(t.serial, vm);
      }
    }
    const haVms = (host: string): Vm[] => (vmsOn.get(host) ?? []).filter((v) => v.ha && wantsOn(v));

    // liveness by time
    for (const t of tracks) {
      if ((t.liveness === 'up' || t.liveness === 'suspect') && now - t.lastAnswer >= this.o.downAfterMs) t.liveness = 'down';
    }

    const total = view.hosts.length;
    const reachable = view.hosts.filter((h) => {
      const l = this.tracks.get(h.serial)?.liveness;
      return l === 'up' || l === 'suspect';
    }).length;
    const quorate = reachable * 2 >= total;

    // fencing
    for (const t of tracks) {
      const h = hostOf.get(t.serial);
      const needsFence = t.liveness === 'down' && haVms(t.serial).length > 0;
      if (t.liveness === 'down' && !needsFence) {
        this.say(out, t, 'down', `no answer for ${this.o.downAfterMs / 1000} s; no HA VM to restart, so not fenced`);
        continue;
      }
      if (!needsFence && t.liveness !== 'fence-failed') continue;
      if (t.fenceInFlight || t.nextFenceAt > now) continue;
      if (h?.state === 'maintenance') {
        this.say(out, t, 'down', 'in maintenance: not fenced');
        continue;
      }
      if (!quorate) {
        const reason = `the leader reaches only ${reachable} of ${total} hosts: it fences nothing (it may be the one cut off)`;
        this.say(out, t, t.liveness, reason);
        for (const vm of haVms(t.serial)) this.blocked(out, vm, t.serial, reason);
        continue;
      }
      t.attempts += 1;
      if (t.liveness === 'down') t.fenceSince = now;
      t.liveness = 'fencing';
      t.fenceInFlight = true;
      this.say(out, t, 'fencing', t.attempts === 1 ? `no answer for ${Math.round((now - t.lastAnswer) / 1000)} s: powering it off through its BMC` : `fence attempt ${t.attempts} (last: ${t.fenceReason ?? 'none'})`);
      this.syncRecord(out, t);
      out.push({ kind: 'fence', host: t.serial, attempt: t.attempts });
    }

    // blocked while the fence is not confirmed
    for (const t of tracks) {
      if (t.liveness !== 'fence-failed') continue;
      this.say(out, t, 'fence-failed', `fence failed: ${t.fenceReason ?? ''}; retrying`);
      for (const vm of haVms(t.serial)) this.blocked(out, vm, t.serial, `host ${t.serial} could not be fenced (${t.fenceReason ?? ''}); its VMs may still run there, so none is restarted`);
    }

    // restarts of the VMs of fenced hosts
    let candidates = view.hosts.filter((h) => h.state === 'up' && this.tracks.get(h.serial)?.liveness === 'up');
    // what is in flight already counts on its target
    for (const [uuid, p] of this.pending) {
      const vm = byUuid.get(uuid);
      if (!vm || (vm.host && vm.host.serial !== p.from) || vm.epoch >= p.epoch) {
        this.pending.delete(uuid); // the VM service recorded the move (or the VM is gone)
        continue;
      }
      if (p.retryAt === undefined) candidates = candidates.map((h) => (h.serial === p.host ? withVm(h, vm) : h));
    }
    for (const t of tracks) {
      if (t.liveness !== 'fenced') continue;
      this.say(out, t, 'fenced', t.released ? 'powered on again: waits to report no running VM' : 'its BMC reports it Off');
      const vms = [...(vmsOn.get(t.serial) ?? [])].sort(byPlacementOrder);
      for (const vm of vms) {
        if (!wantsOn(vm)) continue;
        if (vm.host && vm.host.serial !== t.serial) continue; // it already runs elsewhere
        if (!vm.ha) {
          this.once(out, vm.uuid, { kind: 'not-restarted', vm: vm.uuid, name: vm.name, host: t.serial, reason: `host ${t.serial} was fenced and the VM's HA is off` });
          continue;
        }
        const p = this.pending.get(vm.uuid);
        if (p && (p.retryAt === undefined || p.retryAt > now)) continue;
        const where = place(vm, candidates);
        if (where instanceof InputError) {
          this.blocked(out, vm, t.serial, `no host can take it: ${where.reason}`);
          continue;
        }
        candidates = candidates.map((h) => (h.serial === where.serial ? withVm(h, vm) : h));
        const epoch = Math.max(vm.epoch, p?.epoch ?? 0) + 1;
        this.pending.set(vm.uuid, { host: where.serial, from: t.serial, epoch, retryAt: undefined });
        this.said.delete(vm.uuid);
        out.push({ kind: 'restart', vm: vm.uuid, name: vm.name, host: where.serial, from: t.serial, epoch });
      }
    }

    // hosts that came back
    for (const t of tracks) {
      if (t.liveness === 'up' && t.said !== '' && !t.said.startsWith('up:')) this.say(out, t, 'up', 'answers again');
      this.syncRecord(out, t);
    }
    return out;
  }

  /** Persists the host's fence record when it changed (written before the fence it announces). */
  private syncRecord(out: HaDecision[], t: Track): void {
    const rec = this.recordOf(t);
    const json = rec ? JSON.stringify(rec) : undefined;
    if (json === this.persisted.get(t.serial)) return;
    if (rec && json) {
      this.persisted.set(t.serial, json);
      out.push({ kind: 'record-fence', record: rec });
    } else {
      this.persisted.delete(t.serial);
      out.push({ kind: 'forget-fence', host: t.serial });
    }
  }

  private say(out: HaDecision[], t: Track, state: Liveness, reason: string): void {
    const key = `${state}:${reason}`;
    if (t.said === key) return;
    t.said = key;
    out.push({ kind: 'host-state', host: t.serial, state, reason });
  }

  private blocked(out: HaDecision[], vm: Vm, host: string, reason: string): void {
    this.once(out, vm.uuid, { kind: 'ha-blocked', vm: vm.uuid, name: vm.name, host, reason });
  }

  private once(out: HaDecision[], vm: string, d: HaDecision & { reason: string }): void {
    if (this.said.get(vm) === d.reason) return;
    this.said.set(vm, d.reason);
    out.push(d);
  }
}

// ---- maintenance mode ---------------------------------------------------------------------------

export interface Migration {
  vm: string;
  name: string;
  from: string;
  to: string;
}

export type EvacuationPlan =
  | { ok: true; migrations: Migration[] }
  | { ok: false; vm: { uuid: string; name: string }; reason: string };

/**
 * Where each VM running on `host` goes before the host enters maintenance: live migrations in
 * order (largest first, so the hardest to place gets the most room). Refused, naming the VM, when
 * one fits on no other host that is up; then nothing moves.
 */
export function planEvacuation(host: string, vms: readonly Vm[], hosts: readonly VmHost[], place: PlaceFn): EvacuationPlan {
  let targets = hosts.filter((h) => h.serial !== host && h.state === 'up');
  const moving = vms.filter((v) => v.host?.serial === host && v.powerState !== 'off').sort(byPlacementOrder);
  const migrations: Migration[] = [];
  for (const vm of moving) {
    if (targets.length === 0) return { ok: false, vm: { uuid: vm.uuid, name: vm.name }, reason: `VM ${vm.name} (${vm.uuid}) has nowhere to go: no other host is up` };
    const where = place(vm, targets);
    if (where instanceof InputError) return { ok: false, vm: { uuid: vm.uuid, name: vm.name }, reason: `VM ${vm.name} (${vm.uuid}) fits on no other host: ${where.reason}` };
    targets = targets.map((h) => (h.serial === where.serial ? withVm(h, vm) : h));
    migrations.push({ vm: vm.uuid, name: vm.name, from: host, to: where.serial });
  }
  return { ok: true, migrations };
}

export interface ReturnPlan {
  migrations: Migration[];
  /** VMs that were moved away but do not go back, and why. */
  skipped: { vm: string; name: string; reason: string }[];
}

/**
 * When `host` leaves maintenance: the VMs that were moved away from it (`movedAway`, as the
 * evacuation recorded them) go back, in the evacuation's order, as long as they still run
 * elsewhere and the host can take them (the placement's own rules decide, on this host alone).
 */
export function planReturn(host: VmHost, movedAway: readonly string[], vms: readonly Vm[], place: PlaceFn): ReturnPlan {
  const byUuid = new Map(vms.map((v) => [v.uuid, v]));
  let home: VmHost = { ...host, state: 'up' };
  const migrations: Migration[] = [];
  const skipped: ReturnPlan['skipped'] = [];
  for (const uuid of movedAway) {
    const vm = byUuid.get(uuid);
    if (!vm) {
      skipped.push({ vm: uuid, name: '', reason: 'the VM no longer exists' });
      continue;
    }
    if (!vm.host || vm.powerState === 'off') {
      skipped.push({ vm: uuid, name: vm.name, reason: 'the VM is off' });
      continue;
    }
    if (vm.host.serial === host.serial) {
      skipped.push({ vm: uuid, name: vm.name, reason: 'already on the host' });
      continue;
    }
    const where = place(vm, [home]);
    if (where instanceof InputError) {
      skipped.push({ vm: uuid, name: vm.name, reason: `the host cannot take it back: ${where.reason}` });
      continue;
    }
    home = withVm(home, vm);
    migrations.push({ vm: uuid, name: vm.name, from: vm.host.serial, to: host.serial });
  }
  return { migrations, skipped };
}
