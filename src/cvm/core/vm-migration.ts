/**
 * @module
 * Live migration's decisions (pure; the VM service's vm.migrate task performs them): which host a
 * VM moves to, and — from what the source and target hosts report — the next step of a migration,
 * so that a run resumed by a new leader carries on from wherever the last one stopped. Also the
 * state a host shows in GET /hosts, from its poll, its maintenance flags and HA's liveness.
 * ```
 *  record: epoch raised, migrating {to, epoch}  ─► prepare: PUT /vms/:uuid/incoming on the target → port
 *    ─► send: POST /vms/:uuid/migrate on the source {targetHostIp, port} (returns when done)
 *    ─► done: the target runs it at the new epoch → record host = target
 *  failure: the target's incoming QEMU is dropped (off + delete); the record's epoch goes back to
 *  the one the source runs it at; the VM keeps running on the source
 * ```
 */
import { InputError } from '../../shared/errors.ts';
import type { VmHost } from '../protocol/vms.ts';
import type { Liveness } from './ha.ts';
import { chooseHost, type PlacementNeed } from './vm-placement.ts';

/**
 * The host a running VM moves to: `wanted` (a serial or host IP) when given, else the placement's
 * choice among the other hosts. Refused with InputError('host', …) when the wanted host is the
 * VM's own, unknown, not up (down, fenced, in maintenance) or lacks room, or when no other host
 * can take it.
 */
export function chooseMigrationTarget<H extends VmHost>(hosts: readonly H[], vm: PlacementNeed & { name: string; host: { serial: string } }, wanted?: string): H {
  const from = vm.host.serial;
  if (wanted !== undefined) {
    const h = hosts.find((x) => x.serial === wanted || x.hostIp === wanted);
    if (!h) throw new InputError('host', `no host ${wanted} in the cluster (give a serial or a host IP)`);
    if (h.serial === from) throw new InputError('host', `VM ${vm.name} runs on host ${from} already`);
    if (h.state !== 'up') throw new InputError('host', `host ${h.serial} is ${h.state}; a VM moves only to a host that is up`);
    if (h.freeMemoryMiB < vm.memoryMiB) throw new InputError('host', `host ${h.serial} has ${Math.max(0, h.freeMemoryMiB)} MiB free; VM ${vm.name} needs ${vm.memoryMiB} MiB`);
    if (h.freeVcpus < vm.vcpus) throw new InputError('host', `host ${h.serial} has ${Math.max(0, h.freeVcpus)} vCPUs free; VM ${vm.name} needs ${vm.vcpus}`);
    return h;
  }
  try {
    return chooseHost(hosts, vm, [from]);
  } catch (e) {
    if (e instanceof InputError) throw new InputError('host', `no other host can take VM ${vm.name}: ${e.reason}`);
    throw e;
  }
}

/** What a host reports of the VM (HostVm's epoch and state), or undefined when it does not have it. */
export interface Copy {
  epoch: number;
  state: string;
}

/** A migration in flight, as the VM's record keeps it. */
export interface MigrationProgress {
  /** The epoch the source runs the VM at (the record's before the migration). */
  fromEpoch: number;
  /** The epoch the target runs it at. */
  epoch: number;
  /** The port the target's incoming QEMU listens on, once known. */
  port: number | null;
}

export type MigrationStep =
  /** PUT /vms/:uuid/incoming on the target (a fresh incoming QEMU), then send. */
  | { kind: 'prepare' }
  /** The target waits with `port`: POST /vms/:uuid/migrate on the source. */
  | { kind: 'send'; port: number }
  /** The target has a copy this run cannot use (no port known, or it stopped): drop it, then prepare. */
  | { kind: 'drop-target'; reason: string }
  /** Under way (the source sends, or a host has not reported the outcome yet): look again. */
  | { kind: 'wait'; reason: string }
  /** The target runs it at the new epoch and the source no longer does: record the move. */
  | { kind: 'done' }
  /** Neither host runs it: the VM is lost (recorded off). */
  | { kind: 'lost'; reason: string };

const ACTIVE = new Set(['starting', 'running', 'paused', 'shutting-down']);

/** The next step of a migration from the two hosts' reports (undefined: the host does not have the VM). */
export function migrationStep(m: MigrationProgress, source: Copy | undefined, target: Copy | undefined): MigrationStep {
  const src = source && source.epoch === m.fromEpoch ? source : undefined;
  const tgt = target && target.epoch === m.epoch ? target : undefined;
  const srcActive = !!src && ACTIVE.has(src.state);
  const tgtRuns = !!tgt && (tgt.state === 'running' || tgt.state === 'paused');
  if (src?.state === 'migrating') return { kind: 'wait', reason: 'the source is sending it' };
  if (tgtRuns && !srcActive) return { kind: 'done' };
  if (tgtRuns) return { kind: 'wait', reason: 'the target runs it; the source has not reported it gone yet' };
  if (srcActive) {
    if (!tgt) return { kind: 'prepare' };
    if (tgt.state === 'incoming' && m.port !== null) return { kind: 'send', port: m.port };
    return { kind: 'drop-target', reason: tgt.state === 'incoming' ? 'the target waits on a port this run does not know' : `the target's copy is ${tgt.state}` };
  }
  if (src?.state === 'migrated' && tgt && (tgt.state === 'incoming' || tgt.state === 'starting')) return { kind: 'wait', reason: 'the source sent it; the target has not reported it running yet' };
  return { kind: 'lost', reason: `neither host runs it (source: ${source ? `${source.state} at epoch ${source.epoch}` : 'not there'}; target: ${target ? `${target.state} at epoch ${target.epoch}` : 'not there'})` };
}

/** A host's state in GET /hosts (and to placement): only `up` takes new VMs. */
export function hostStateOf(h: { answers: boolean; maintenance: boolean; evacuating: boolean; liveness: Liveness | undefined }): VmHost['state'] {
  switch (h.liveness) {
    case 'fenced':
      return 'fenced';
    case 'down':
    case 'fencing':
    case 'fence-failed':
      return 'down';
    case 'up':
    case 'suspect':
    case undefined:
      break;
    default: {
      const never: never = h.liveness;
      throw new Error(`unknown liveness ${String(never)}`);
    }
  }
  if (!h.answers) return 'down';
  if (h.maintenance) return h.evacuating ? 'entering-maintenance' : 'maintenance';
  return 'up';
}
