/**
 * @module
 * HA on the VM service's leader (docs/ha.md): every pollMs it polls each host's agent, feeds the
 * answers to the tracker (core/ha.ts) and performs its decisions through HaPorts — persist the
 * fence record, fence through the BMC, restart VMs, record events. Fences and restarts run in the
 * background (each with a timeout); their outcome is fed back and decided on at once.
 *
 * Wiring (the VM service, on becoming leader):
 *
 *   const bmcs = new BmcFencing({ clock, read: (serial) => readJson(BMCS_PREFIX + serial) });
 *   const ha = new HaMonitor({ clock, place, ports: {
 *     view: () => service.hostsAndVms(),
 *     pollHost: (h, signal) => hostCall<HostVm[]>(h.hostIp, '/vms', { signal }).then((l) => l.map((v) => ({ uuid: v.spec.uuid, state: v.state }))),
 *     fence: (serial, signal) => bmcs.fence(serial, signal),
 *     powerOn: (serial, signal) => bmcs.powerOn(serial, signal),
 *     restartVm: (uuid, host, epoch) => service.haRestart(uuid, host, epoch),
 *     loadFenceRecords / saveFenceRecord / deleteFenceRecord: etcd under HA_FENCES_PREFIX,
 *     record: (e) => service.haEvent(e),
 *   } });
 *   await ha.start();   …   await ha.stop();   // on losing leadership
 */
import type { Clock, Disposable } from '../../shared/clock.ts';
import { errorMessage, TimeoutError } from '../../shared/errors.ts';
import type { Vm, VmHost } from '../protocol/vms.ts';
import { HaTracker, type FenceRecord, type HaDecision, type HaOptions, type Liveness, type PlaceFn, type ReportedVm } from '../core/ha.ts';

/** Where the leader keeps fence records (value: FenceRecord), so that the next leader knows. */
export const HA_FENCES_PREFIX = 'acropolis/ha/fences/';

/** What HA records: the tracker's decisions as they are made, and the outcome of each fence and restart. */
export type HaEvent =
  | HaDecision
  | { kind: 'fence-done'; host: string; ok: boolean; reason: string | null; tookMs: number }
  | { kind: 'restart-done'; vm: string; host: string; epoch: number; ok: boolean; reason: string | null };

export interface HaPorts {
  /** The VM service's hosts and VMs (its records). */
  view(): Promise<{ hosts: VmHost[]; vms: Vm[] }>;
  /** The host agent's VMs (GET /vms on hostIp:8100); throws when it does not answer. */
  pollHost(host: VmHost, signal: AbortSignal): Promise<ReportedVm[]>;
  /** Powers the host off through its BMC; resolves only once the BMC reports Off (BmcFencing.fence). */
  fence(serial: string, signal: AbortSignal): Promise<unknown>;
  /** Powers a fenced host on through its BMC (BmcFencing.powerOn). */
  powerOn(serial: string, signal: AbortSignal): Promise<unknown>;
  /**
   * Places the VM on `host` with placement `epoch`: store {host, epoch} on its record only if its
   * epoch is still epoch - 1 (else reject), then start it there (the host refuses a lower epoch).
   * Resolves once the host runs it.
   */
  restartVm(uuid: string, host: string, epoch: number): Promise<unknown>;
  loadFenceRecords(): Promise<FenceRecord[]>;
  saveFenceRecord(r: FenceRecord): Promise<void>;
  deleteFenceRecord(host: string): Promise<void>;
  /** Events and tasks (a host's state, host.fence, vm.ha-restart, ha-blocked) as the service keeps them. */
  record(e: HaEvent): void;
}

export interface HaMonitorDeps {
  ports: HaPorts;
  place: PlaceFn;
  clock: Clock;
  /** Between polls (default 2 s). */
  pollMs?: number;
  /** A host's answer must come within this (default 1.5 s). */
  pollTimeoutMs?: number;
  /** A fence (ForceOff until Off) gives up after this (default 90 s); a restart after restartTimeoutMs (default 120 s). */
  fenceTimeoutMs?: number;
  restartTimeoutMs?: number;
  ha?: Partial<HaOptions>;
  log?: (m: string) => void;
}

export class HaMonitor {
  private tracker: HaTracker | undefined;
  private timer: Disposable | undefined;
  private readonly stopping = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();
  /** Decisions run one round at a time. */
  private round: Promise<void> = Promise.resolve();
  private readonly pollMs: number;
  private readonly pollTimeoutMs: number;
  private readonly fenceTimeoutMs: number;
  private readonly restartTimeoutMs: number;

  constructor(private readonly d: HaMonitorDeps) {
    this.pollMs = d.pollMs ?? 2000;
    this.pollTimeoutMs = d.pollTimeoutMs ?? 1500;
    this.fenceTimeoutMs = d.fenceTimeoutMs ?? 90_000;
    this.restartTimeoutMs = d.restartTimeoutMs ?? 120_000;
  }

  /** Rebuilds the tracker from the persisted fence records and starts polling. */
  async start(): Promise<void> {
    const records = await this.d.ports.loadFenceRecords();
    this.tracker = new HaTracker(this.d.clock.now(), records, this.d.ha);
    if (records.length) this.d.log?.(`HA: carrying on with fence records of ${records.map((r) => `${r.host} (${r.state})`).join(', ')}`);
    this.schedule();
  }

  /** Stops polling, aborts fences and restarts in flight, and waits for them to end. */
  async stop(): Promise<void> {
    this.timer?.dispose();
    this.timer = undefined;
    this.stopping.abort(new Error('HA monitor stopped (no longer the leader)'));
    await Promise.allSettled([...this.inFlight, this.round]);
  }

  liveness(serial: string): Liveness | undefined {
    return this.tracker?.liveness(serial);
  }

  /** Powers a fenced host on through its BMC; it returns to service once it reports no running VM. */
  async powerOn(serial: string): Promise<void> {
    await this.d.ports.powerOn(serial, AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.fenceTimeoutMs)]));
    this.release(serial);
  }

  /** The operator powered a fenced host on some other way: it may return once it reports no running VM. */
  release(serial: string): void {
    this.tracker?.released(serial, this.d.clock.now());
  }

  private schedule(): void {
    if (this.stopping.signal.aborted) return;
    this.timer = this.d.clock.setTimeout(() => {
      void this.tick().finally(() => this.schedule());
    }, this.pollMs);
  }

  /** One round: poll every host (concurrently, each with a timeout), then decide and act. */
  async tick(): Promise<void> {
    const t = this.tracker;
    if (!t || this.stopping.signal.aborted) return;
    let view: { hosts: VmHost[]; vms: Vm[] };
    try {
      view = await this.d.ports.view();
    } catch (e) {
      this.d.log?.(`HA: cannot read the VM service's records (${errorMessage(e)}); nothing decided this round`);
      return;
    }
    const at = this.d.clock.now();
    await Promise.all(view.hosts.map(async (h) => {
      try {
        const vms = await this.d.ports.pollHost(h, AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.pollTimeoutMs)]));
        t.answered(h.serial, at, vms);
      } catch {
        t.missed(h.serial, at);
      }
    }));
    await this.decide(view);
  }

  /** Decides on `view` (or a fresh one) and performs the decisions, one round at a time. */
  private decide(view?: { hosts: VmHost[]; vms: Vm[] }): Promise<void> {
    const next = this.round.then(async () => {
      const t = this.tracker;
      if (!t || this.stopping.signal.aborted) return;
      const v = view ?? (await this.d.ports.view());
      for (const dec of t.decide(this.d.clock.now(), v, this.d.place)) await this.act(t, dec);
    }).catch((e: unknown) => this.d.log?.(`HA: a round failed: ${errorMessage(e)}`));
    this.round = next;
    return next;
  }

  private async act(t: HaTracker, dec: HaDecision): Promise<void> {
    const p = this.d.ports;
    switch (dec.kind) {
      case 'record-fence':
        await p.saveFenceRecord(dec.record); // persisted before the fence it announces
        return;
      case 'forget-fence':
        await p.deleteFenceRecord(dec.host);
        return;
      case 'host-state':
      case 'ha-blocked':
      case 'not-restarted':
        p.record(dec);
        this.d.log?.(`HA: ${dec.kind} ${'vm' in dec ? `VM ${dec.name}` : `host ${dec.host}`}${dec.kind === 'host-state' ? ` ${dec.state}` : ''}: ${dec.reason}`);
        return;
      case 'fence':
        p.record(dec);
        this.background(async () => {
          const t0 = this.d.clock.now();
          let outcome: { ok: true } | { ok: false; reason: string };
          try {
            await p.fence(dec.host, AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.fenceTimeoutMs)]));
            outcome = { ok: true };
          } catch (e) {
            outcome = { ok: false, reason: errorMessage(e) };
          }
          if (this.stopping.signal.aborted || this.tracker !== t) return;
          t.fenceDone(dec.host, this.d.clock.now(), outcome);
          p.record({ kind: 'fence-done', host: dec.host, ok: outcome.ok, reason: outcome.ok ? null : outcome.reason, tookMs: this.d.clock.now() - t0 });
          await this.decide();
        });
        return;
      case 'restart':
        p.record(dec);
        this.background(async () => {
          let outcome: { ok: true } | { ok: false; reason: string };
          try {
            await withTimeout(this.d.clock, p.restartVm(dec.vm, dec.host, dec.epoch), this.restartTimeoutMs, `the restart of ${dec.name} on ${dec.host}`);
            outcome = { ok: true };
          } catch (e) {
            outcome = { ok: false, reason: errorMessage(e) };
          }
          if (this.stopping.signal.aborted || this.tracker !== t) return;
          t.restartDone(dec.vm, this.d.clock.now(), outcome);
          p.record({ kind: 'restart-done', vm: dec.vm, host: dec.host, epoch: dec.epoch, ok: outcome.ok, reason: outcome.ok ? null : outcome.reason });
        });
        return;
      default: {
        const never: never = dec;
        throw new Error(`unknown HA decision ${JSON.stringify(never)}`);
      }
    }
  }

  private background(f: () => Promise<void>): void {
    const run = f().catch((e: unknown) => this.d.log?.(`HA: ${errorMessage(e)}`)).finally(() => this.inFlight.delete(run));
    this.inFlight.add(run);
  }
}

function withTimeout<T>(clock: Clock, p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = clock.setTimeout(() => reject(new TimeoutError(`${what} did not finish within ${Math.round(ms / 1000)} s`)), ms);
    p.then(resolve, reject).finally(() => t.dispose());
  });
}
