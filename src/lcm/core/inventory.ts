/**
 * @module
 * What LCM weighs, from what the cluster and a bundle say (pure): a node's inventory from its CVM's
 * status, a bundle's offer from its manifest, and the pre-checks' input from the VM service's hosts
 * and VMs, the extent groups' resiliency and the pool.
 */
import type { BundleManifest } from '../../shared/bundle/manifest.ts';
import type { CvmStatus, PoolView, ResiliencyReport } from '../../cvm/protocol/cluster.ts';
import type { Vm, VmHost } from '../../cvm/protocol/vms.ts';
import type { BundleOffer, NodeInventory } from '../protocol/lcm.ts';
import type { PrecheckInput } from './prechecks.ts';

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
  };
}

/** Each member as its CVM reports it (a CVM that did not answer: versions unknown). */
export function inventoryOf(members: readonly MemberRef[], status: (cvmIp: string) => CvmStatus | null, firmware: (serial: string) => NodeInventory['firmware'] = () => ({ bmc: null, bios: null })): NodeInventory[] {
  return members.map((m) => {
    const s = status(m.cvmIp);
    return {
      serial: m.serial, hostname: m.serial, hostIp: m.hostIp, cvmIp: m.cvmIp,
      hypervisor: s?.hypervisorVersion ?? null, nos: s?.nosVersion ?? null, bundle: s?.nosVersion ?? null, firmware: firmware(m.serial),
    };
  });
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
