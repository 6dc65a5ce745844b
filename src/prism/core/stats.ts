/**
 * @module
 * Performance series for Prism's charts (pure): the CVMs' per-vdisk I/O samples
 * (cvm/protocol/stats.ts) summed for a vdisk, a VM (its disks), a host (the VMs it runs) or the
 * cluster; rates added per time, latencies weighted by their I/Os.
 */
import { InputError } from '../../shared/errors.ts';
import type { IoSample, StatsAnswer } from '../../cvm/protocol/stats.ts';
import type { Vm } from '../../cvm/protocol/vms.ts';

export type StatsEntity = { kind: 'cluster' } | { kind: 'vm' | 'host' | 'vdisk'; uuid: string };

/** `cluster`, `vm:<uuid>`, `host:<uuid>` or `vdisk:<uuid>`. */
export function parseStatsEntity(raw: unknown): StatsEntity {
  if (raw === undefined || raw === 'cluster') return { kind: 'cluster' };
  const m = typeof raw === 'string' ? /^(vm|host|vdisk):([A-Za-z0-9-]{1,64})$/.exec(raw) : null;
  if (!m) throw new InputError('entity', 'must be cluster, vm:<uuid>, host:<uuid> or vdisk:<uuid>');
  return { kind: m[1] as 'vm', uuid: m[2] ?? '' };
}

/** Samples of several sources summed per time. */
export function sumSeries(all: readonly (readonly IoSample[])[]): IoSample[] {
  const byT = new Map<number, IoSample[]>();
  for (const xs of all) {
    for (const x of xs) {
      const at = byT.get(x.t);
      if (at) at.push(x);
      else byT.set(x.t, [x]);
    }
  }
  return [...byT.entries()].sort(([a], [b]) => a - b).map(([t, xs]) => {
    const sum = (f: (x: IoSample) => number): number => xs.reduce((a, x) => a + f(x), 0);
    const reads = sum((x) => x.readIops);
    const writes = sum((x) => x.writeIops);
    return {
      t, readIops: reads, writeIops: writes, readBps: sum((x) => x.readBps), writeBps: sum((x) => x.writeBps),
      readLatUs: reads ? sum((x) => x.readLatUs * x.readIops) / reads : 0, writeLatUs: writes ? sum((x) => x.writeLatUs * x.writeIops) / writes : 0,
    };
  });
}

/**
 * The vdisks (by uuid) whose I/O is the entity's, or null for every vdisk (the cluster). A VM's
 * disks name their vdisks; `vdiskUuid` maps a name to its uuid.
 */
export function vdisksOf(e: StatsEntity, vms: readonly Vm[], hostSerial: (hostUuid: string) => string | undefined, vdiskUuid: (name: string) => string | undefined): string[] | null {
  switch (e.kind) {
    case 'cluster':
      return null;
    case 'vdisk':
      return [e.uuid];
    case 'vm': {
      const vm = vms.find((v) => v.uuid === e.uuid);
      return vm ? vm.disks.map((d) => vdiskUuid(d.vdisk) ?? d.vdisk) : [];
    }
    case 'host': {
      const serial = hostSerial(e.uuid);
      return vms.filter((v) => v.host && v.host.serial === serial).flatMap((v) => v.disks.map((d) => vdiskUuid(d.vdisk) ?? d.vdisk));
    }
  }
}

/** The entity's series from every CVM's answer. */
export function seriesOf(answers: readonly StatsAnswer[], vdisks: readonly string[] | null): { stepMs: number; points: IoSample[] } {
  const parts = answers.flatMap((a) => Object.entries(a.series).filter(([v]) => vdisks === null || vdisks.includes(v)).map(([, xs]) => xs));
  return { stepMs: Math.max(0, ...answers.map((a) => a.stepMs)), points: sumSeries(parts) };
}
