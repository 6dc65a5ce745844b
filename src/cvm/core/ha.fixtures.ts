/**
 * @module
 * Test fixtures for HA (core/ha.ts): VMs and hosts as the VM service answers them, a simple
 * placement (the most free memory that fits), and a deterministic simulation of a cluster — fake
 * hosts that run VMs, fake BMCs that may fail, a network that may cut a host off, a VM service that
 * keeps the records, and a leader that may change — all on a VirtualClock. Used by ha.test.ts and
 * ha.sim.test.ts only.
 */
import { InputError } from '../../shared/errors.ts';
import { VirtualClock } from '../../shared/clock.ts';
import type { Vm, VmHost } from '../protocol/vms.ts';
import { HaTracker, type FenceRecord, type HaDecision, type HaOptions, type PlaceFn } from './ha.ts';

export function vm(uuid: string, o: Partial<Vm> & { on?: string } = {}): Vm {
  const { on, ...rest } = o;
  return {
    uuid, name: `vm-${uuid}`, specVersion: 1, vcpus: 1, memoryMiB: 1024, disks: [], nics: [], ha: true,
    powerState: on === undefined ? 'off' : 'on', host: on === undefined ? null : { serial: on, hostIp: `ip-${on}` }, epoch: 1, runtimeState: on === undefined ? 'off' : 'running', createdAt: '2024-01-01T00:00:00Z',
    ...rest,
  };
}

export function host(serial: string, o: Partial<VmHost> = {}): VmHost {
  return { serial, hostIp: `ip-${serial}`, cvmIp: `cvm-${serial}`, state: 'up', memoryMiB: 8192, freeMemoryMiB: 8192, vcpus: 8, freeVcpus: 8, vms: 0, ...o };
}

/** The most free memory that fits (ties: the serial), on hosts that are up. */
export const simplePlace: PlaceFn = (v, hosts) => {
  const fits = hosts.filter((h) => h.state === 'up' && h.freeMemoryMiB >= v.memoryMiB && h.freeVcpus >= v.vcpus);
  if (fits.length === 0) return new InputError('memoryMiB', `no host that is up has ${v.memoryMiB} MiB and ${v.vcpus} vCPUs free`);
  return [...fits].sort((a, b) => b.freeMemoryMiB - a.freeMemoryMiB || (a.serial < b.serial ? -1 : 1))[0]!;
};

interface SimHost {
  serial: string;
  powered: boolean;
  reachable: boolean;
  bmcOk: boolean;
  memoryMiB: number;
  vcpus: number;
  maintenance: boolean;
  /** VM uuid → the epoch it runs with. */
  running: Map<string, number>;
  /** The highest epoch seen per VM (a lower one is refused). */
  seen: Map<string, number>;
}

export interface SimOptions {
  hosts: number;
  vms: number;
  vmMemoryMiB?: number;
  hostMemoryMiB?: number;
  pollMs?: number;
  fenceMs?: number;
  restartMs?: number;
  ha?: Partial<HaOptions>;
}

/**
 * A cluster in virtual time. Every poll the leader polls each host, feeds the tracker and performs
 * its decisions: a fence takes fenceMs at the BMC, a restart stores {host, epoch} on the VM record
 * (compared on the epoch) and starts the VM on its host after restartMs. The checker runs after
 * every step: no VM runs on two powered hosts.
 */
export class Sim {
  readonly clock = new VirtualClock(0);
  readonly hosts = new Map<string, SimHost>();
  readonly vms = new Map<string, Vm>();
  readonly fences = new Map<string, FenceRecord>();
  readonly log: string[] = [];
  readonly decisions: (HaDecision & { at: number })[] = [];
  tracker: HaTracker;
  private gen = 0;
  readonly pollMs: number;
  readonly fenceMs: number;
  readonly restartMs: number;
  violations: string[] = [];
  private readonly haOpts: Partial<HaOptions>;

  constructor(o: SimOptions) {
    this.pollMs = o.pollMs ?? 2000;
    this.fenceMs = o.fenceMs ?? 3000;
    this.restartMs = o.restartMs ?? 1000;
    this.haOpts = o.ha ?? {};
    for (let i = 0; i < o.hosts; i++) {
      const serial = `h${i}`;
      this.hosts.set(serial, { serial, powered: true, reachable: true, bmcOk: true, memoryMiB: o.hostMemoryMiB ?? 8192, vcpus: 8, maintenance: false, running: new Map(), seen: new Map() });
    }
    for (let i = 0; i < o.vms; i++) {
      const on = `h${i % o.hosts}`;
      const v = vm(`v${i}`, { on, memoryMiB: o.vmMemoryMiB ?? 1024 });
      this.vms.set(v.uuid, v);
      this.hosts.get(on)!.running.set(v.uuid, v.epoch);
      this.hosts.get(on)!.seen.set(v.uuid, v.epoch);
    }
    this.tracker = new HaTracker(0, [], this.haOpts);
    this.schedulePoll();
  }

  h(serial: string): SimHost {
    const x = this.hosts.get(serial);
    if (!x) throw new Error(`no host ${serial}`);
    return x;
  }

  /** The VM service's hosts: resources counted from the VM records. */
  view(): { hosts: VmHost[]; vms: Vm[] } {
    const vms = [...this.vms.values()];
    const hosts = [...this.hosts.values()].map((x) => {
      const mine = vms.filter((v) => v.host?.serial === x.serial && v.powerState !== 'off');
      const mem = mine.reduce((a, v) => a + v.memoryMiB, 0);
      const cpu = mine.reduce((a, v) => a + v.vcpus, 0);
      return host(x.serial, { state: x.maintenance ? 'maintenance' : 'up', memoryMiB: x.memoryMiB, freeMemoryMiB: x.memoryMiB - mem, vcpus: x.vcpus, freeVcpus: x.vcpus - cpu, vms: mine.length });
    });
    return { hosts, vms };
  }

  private schedulePoll(): void {
    this.clock.setTimeout(() => {
      this.poll();
      this.schedulePoll();
    }, this.pollMs);
  }

  /** One round of the leader: poll every host, then decide and act. */
  poll(): void {
    const now = this.clock.now();
    for (const x of this.hosts.values()) {
      if (x.powered && x.reachable) this.tracker.answered(x.serial, now, [...x.running.keys()].map((uuid) => ({ uuid, state: 'running' })));
      else this.tracker.missed(x.serial, now);
    }
    this.reconcile();
    for (const d of this.tracker.decide(now, this.view(), simplePlace)) this.act(d);
    this.check();
  }

  /** The VM service drives a reachable host toward its records (a VM placed there but not running is started, same epoch). */
  private reconcile(): void {
    for (const v of this.vms.values()) {
      if (!v.host || v.powerState === 'off') continue;
      const x = this.h(v.host.serial);
      if (x.powered && x.reachable && !x.running.has(v.uuid) && this.tracker.liveness(x.serial) === 'up') this.start(x, v.uuid, v.epoch);
    }
  }

  private start(x: SimHost, uuid: string, epoch: number): boolean {
    if (!x.powered) return false;
    if ((x.seen.get(uuid) ?? 0) > epoch) return false;
    x.seen.set(uuid, epoch);
    x.running.set(uuid, epoch);
    return true;
  }

  private act(d: HaDecision): void {
    const now = this.clock.now();
    this.decisions.push({ ...d, at: now });
    const gen = this.gen;
    switch (d.kind) {
      case 'host-state':
      case 'ha-blocked':
      case 'not-restarted':
        this.log.push(`${now} ${d.kind} ${'vm' in d ? d.vm : d.host} ${'state' in d ? d.state : ''} ${d.reason}`);
        return;
      case 'record-fence':
        this.fences.set(d.record.host, d.record);
        return;
      case 'forget-fence':
        this.fences.delete(d.host);
        return;
      case 'fence':
        this.log.push(`${now} fence ${d.host} #${d.attempt}`);
        this.clock.setTimeout(() => {
          const x = this.h(d.host);
          const ok = x.bmcOk;
          if (ok) this.powerOff(x);
          if (gen === this.gen) this.tracker.fenceDone(d.host, this.clock.now(), ok ? { ok: true } : { ok: false, reason: 'the BMC does not answer' });
          this.check();
        }, this.fenceMs);
        return;
      case 'restart': {
        const v = this.vms.get(d.vm);
        if (!v || v.epoch !== d.epoch - 1) {
          this.tracker.restartDone(d.vm, now, { ok: false, reason: 'the VM record moved on' });
          return;
        }
        this.vms.set(d.vm, { ...v, host: { serial: d.host, hostIp: `ip-${d.host}` }, epoch: d.epoch });
        this.log.push(`${now} restart ${d.vm} on ${d.host} epoch ${d.epoch}`);
        this.clock.setTimeout(() => {
          const x = this.h(d.host);
          const ok = x.reachable && this.start(x, d.vm, d.epoch);
          if (gen === this.gen) this.tracker.restartDone(d.vm, this.clock.now(), ok ? { ok: true } : { ok: false, reason: 'the host did not start it' });
          this.check();
        }, this.restartMs);
        return;
      }
      default: {
        const never: never = d;
        throw new Error(`unknown decision ${JSON.stringify(never)}`);
      }
    }
  }

  private powerOff(x: SimHost): void {
    x.powered = false;
    x.running.clear();
  }

  // ---- faults ----

  crash(serial: string): void {
    this.powerOff(this.h(serial));
    this.log.push(`${this.clock.now()} FAULT crash ${serial}`);
  }

  partition(serial: string, cut = true): void {
    this.h(serial).reachable = !cut;
    this.log.push(`${this.clock.now()} FAULT ${cut ? 'partition' : 'heal'} ${serial}`);
  }

  bmc(serial: string, ok: boolean): void {
    this.h(serial).bmcOk = ok;
    this.log.push(`${this.clock.now()} FAULT bmc ${serial} ${ok ? 'ok' : 'failing'}`);
  }

  /** The operator powers a host on through the cluster (a fresh boot: no VM runs). */
  powerOn(serial: string): void {
    const x = this.h(serial);
    if (x.powered) return;
    x.powered = true;
    this.tracker.released(serial, this.clock.now());
    this.log.push(`${this.clock.now()} power on ${serial}`);
  }

  /** A new leader: its tracker rebuilt from the persisted fence records; the old one's answers are lost. */
  leaderChange(): void {
    this.gen += 1;
    this.tracker = new HaTracker(this.clock.now(), [...this.fences.values()], this.haOpts);
    this.log.push(`${this.clock.now()} LEADER CHANGE (gen ${this.gen})`);
  }

  run(ms: number): void {
    this.clock.advance(ms);
  }

  /** Safety: no VM runs on two powered hosts. */
  check(): void {
    const where = new Map<string, string[]>();
    for (const x of this.hosts.values()) {
      if (!x.powered) continue;
      for (const uuid of x.running.keys()) where.set(uuid, [...(where.get(uuid) ?? []), x.serial]);
    }
    for (const [uuid, hs] of where) if (hs.length > 1) this.violations.push(`${this.clock.now()}: ${uuid} runs on ${hs.join(' and ')}`);
  }

  /** Where each VM runs now (powered hosts). */
  placements(): Map<string, string[]> {
    const where = new Map<string, string[]>();
    for (const x of this.hosts.values()) {
      if (!x.powered) continue;
      for (const uuid of x.running.keys()) where.set(uuid, [...(where.get(uuid) ?? []), x.serial]);
    }
    return where;
  }

  /** Everything back to normal: BMCs answer, cuts healed, hosts powered on (and released by the operator). */
  healAll(): void {
    for (const x of this.hosts.values()) {
      x.bmcOk = true;
      x.reachable = true;
      if (!x.powered) this.powerOn(x.serial);
      else if (this.tracker.liveness(x.serial) === 'fenced') this.tracker.released(x.serial, this.clock.now());
    }
  }
}
