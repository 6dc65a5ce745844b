/**
 * @module
 * What LCM weighs, from what the cluster and a bundle say (pure): a node's inventory from its CVM's
 * status, a bundle's offer from its manifest, and the pre-checks' input from the VM service's hosts
 * and VMs, the extent groups' resiliency and the pool.
 */
import type { BundleManifest } from '../../shared/bundle/manifest.ts';
import type { CvmStatus, PoolView, ResiliencyReport } from '../../cvm/protocol/cluster.ts';
import type { Vm, VmHost } from '../../cvm/protocol/vms.ts';
import type { HostStatus } from '../../hypervisor/protocol/node-config.ts';
import type { BundleOffer, NodeInventory } from '../protocol/lcm.ts';
import type { PrecheckInput } from './prechecks.ts';
import type { NodeView, Observation } from './upgrade.ts';

export interface MemberRef {
  serial: string;
  cvmIp: string;
  hostIp: string;
}

export function offerOf(m: BundleManifest, sha256: string): BundleOffer {
  return {
    version: m.version, hypervisor: m.components.hypervisor.version, nos: m.components.cvm.version,
    compatibility: m.compatibility, sha256,
    minFirmware: { ...(m.minFirmware.bmc ? { bmc: m.minFirmware.bmc } : {}), ...(m.minFirmware.bios ? { bios: m.minFirmware.bios } : {}) },
    ...(m.upgradeFrom ? { upgradeFrom: m.upgradeFrom } : {}), ...(m.cvmProtocol ? { cvmProtocol: m.cvmProtocol } : {}),
    ...(m.firmwareImages ? { firmwareImages: { ...(m.firmwareImages.bmc ? { bmc: m.firmwareImages.bmc.version } : {}), ...(m.firmwareImages.bios ? { bios: m.firmwareImages.bios.version } : {}) } } : {}),
  };
}

/**
 * Each member as its host and CVM report it: the hypervisor and bundle from the host (else from its
 * CVM), the storage OS from the CVM (one that did not answer: unknown).
 */
export function inventoryOf(
  members: readonly MemberRef[], status: (cvmIp: string) => CvmStatus | null,
  firmware: (serial: string) => NodeInventory['firmware'] = () => ({ bmc: null, bios: null }),
  host: (serial: string) => HostStatus | null = () => null,
): NodeInventory[] {
  return members.map((m) => {
    const s = status(m.cvmIp);
    const h = host(m.serial);
    return {
      serial: m.serial, hostname: h?.hostname ?? m.serial, hostIp: m.hostIp, cvmIp: m.cvmIp,
      hypervisor: h?.hypervisorVersion ?? s?.hypervisorVersion ?? null, nos: s?.nosVersion ?? null, bundle: h?.bundleVersion ?? s?.nosVersion ?? null, firmware: firmware(m.serial),
    };
  });
}

/** What one look at the cluster found (null: did not answer, or was not asked). */
export interface ClusterSnapshot {
  members: readonly MemberRef[];
  cvm: Readonly<Record<string, CvmStatus | null>>;
  host: Readonly<Record<string, HostStatus | null>>;
  slots: Readonly<Record<string, { running: string; staged: string[] } | null>>;
  /** The VM service's hosts (null: it did not answer). */
  vmHosts: readonly VmHost[] | null;
  firmware: Readonly<Record<string, NodeInventory['firmware']>>;
  resiliency: ResiliencyReport | null;
}

/** A CVM's status in a snapshot by its address (inventoryOf's and precheckInputOf's `status`). */
export function cvmStatusOf(s: ClusterSnapshot): (cvmIp: string) => CvmStatus | null {
  return (ip) => s.cvm[s.members.find((m) => m.cvmIp === ip)?.serial ?? ''] ?? null;
}

/** The rolling upgrade's view of the cluster (upgrade.ts), toward bundle `target`. */
export function observationOf(s: ClusterSnapshot, target: string, now: number): Observation {
  const nodes: Record<string, NodeView> = {};
  for (const m of s.members) {
    const c = s.cvm[m.serial] ?? null;
    const h = s.host[m.serial] ?? null;
    const sl = s.slots[m.serial] ?? null;
    const vh = s.vmHosts?.find((x) => x.serial === m.serial);
    nodes[m.serial] = {
      hostUp: h !== null, cvmUp: c !== null, servicesUp: c !== null && c.services.every((x) => x.state === 'up'),
      // the VM service not answering (its leader moving): not known, so no maintenance step is judged on it
      hostState: vh?.state ?? (s.vmHosts === null ? 'unknown' : h ? 'up' : 'down'),
      hypervisor: h?.hypervisorVersion ?? null, nos: c?.nosVersion ?? null,
      staged: sl ? (sl.running === target || sl.staged.includes(target) ? target : (sl.staged[0] ?? null)) : null,
      firmware: s.firmware[m.serial] ?? { bmc: null, bios: null },
      hostStartedAt: h ? now - h.uptimeS * 1000 : null,
    };
  }
  return { now, nodes, resiliencyOk: s.resiliency?.ok === true };
}

/** The pre-checks' view of the cluster. */
export function precheckInputOf(o: {
  members: readonly MemberRef[];
  status: (cvmIp: string) => CvmStatus | null;
  hosts: readonly VmHost[] | null;
  vms: readonly Vm[];
  resiliency: ResiliencyReport | null;
  pool: PoolView | null;
  bundleProblems: string[];
  token: PrecheckInput['token'];
}): PrecheckInput {
  return {
    nodes: o.members.map((m) => {
      const s = o.status(m.cvmIp);
      const h = o.hosts?.find((x) => x.serial === m.serial);
      return {
        serial: m.serial, hostname: m.serial, hostUp: h ? h.state !== 'down' && h.state !== 'fenced' : s !== null, cvmUp: s !== null,
        servicesDown: (s?.services ?? []).filter((x) => x.state !== 'up').map((x) => x.name), hostState: h?.state ?? 'down',
        memoryMiB: h?.memoryMiB ?? 0, freeMemoryMiB: h?.freeMemoryMiB ?? 0, vcpus: h?.vcpus ?? 0, freeVcpus: h?.freeVcpus ?? 0,
      };
    }),
    vms: o.vms.filter((v) => v.powerState === 'on').map((v) => ({ name: v.name, host: v.host?.serial ?? null, memoryMiB: v.memoryMiB, vcpus: v.vcpus })),
    resiliency: o.resiliency ? { pending: o.resiliency.belowRf - o.resiliency.unavailable, stranded: o.resiliency.unavailable } : null,
    pool: o.pool ? { usedBytes: o.pool.usage.usedBytes, nodeCapacityBytes: Object.fromEntries(o.pool.usage.nodes.map((n) => [n.node, n.capacityBytes])) } : null,
    bundleProblems: o.bundleProblems,
    token: o.token,
  };
}
