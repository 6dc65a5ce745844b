/**
 * @module
 * One look at the cluster for LCM (ADR 018): each member's host (status, release slots) and CVM
 * (status), the VM service's hosts, the extent groups' resiliency, and each node's firmware read
 * from its BMC over Redfish (FirmwareInventory) with the credentials the cluster keeps for fencing.
 * Whatever does not answer is null: the pure code (core/) decides what that means.
 */
import { bmcBaseUrl, type BmcAccess } from '../../cvm/protocol/bmcs.ts';
import { cvmCall } from '../../cvm/protocol/client.ts';
import type { CvmStatus, ResiliencyReport } from '../../cvm/protocol/cluster.ts';
import type { VmHost } from '../../cvm/protocol/vms.ts';
import { hostCall } from '../../hypervisor/protocol/client.ts';
import type { HostStatus } from '../../hypervisor/protocol/node-config.ts';
import { RedfishClient } from '../../rack/protocol/redfish-client.ts';
import type { Identity } from '../../shared/identity.ts';
import type { ClusterSnapshot, MemberRef } from '../core/inventory.ts';
import type { NodeInventory } from '../protocol/lcm.ts';

export interface LookDeps {
  /** This CVM's address (the VM service and resiliency are asked here). */
  self: string;
  /** Who LCM calls as: this CVM's member certificate. */
  identity: Identity;
  members: () => readonly MemberRef[];
  /** A host's BMC as the cluster keeps it (undefined: none known). */
  bmc: (serial: string) => Promise<BmcAccess | undefined>;
}

/** What to read beyond the hosts and CVMs (resiliency scans every extent group's record; firmware asks every BMC). */
export interface LookNeeds {
  slots?: boolean;
  firmware?: boolean;
  resiliency?: boolean;
}

const orNull = <T>(p: Promise<T>): Promise<T | null> => p.catch(() => null);

export async function lookAt(d: LookDeps, need: LookNeeds = {}): Promise<ClusterSnapshot> {
  const members = d.members();
  const o = { identity: d.identity, timeoutMs: 4000 };
  const per = await Promise.all(members.map(async (m) => {
    const [cvm, host, slots, firmware] = await Promise.all([
      orNull(cvmCall<CvmStatus>(m.cvmIp, '/status', o)),
      orNull(hostCall<HostStatus>(m.hostIp, '/status', o)),
      need.slots ? orNull(hostCall<{ running: string; staged: string[] }>(m.hostIp, '/lcm/slots', o)) : Promise.resolve(null),
      need.firmware ? firmwareOf(d, m.serial) : Promise.resolve({ bmc: null, bios: null }),
    ]);
    return { serial: m.serial, cvm, host, slots, firmware };
  }));
  const [vmHosts, resiliency] = await Promise.all([
    orNull(cvmCall<VmHost[]>(d.self, '/hosts', o)),
    need.resiliency ? orNull(cvmCall<ResiliencyReport>(d.self, '/storage/resiliency', { ...o, timeoutMs: 60_000 })) : Promise.resolve(null),
  ]);
  return {
    members, vmHosts, resiliency,
    cvm: Object.fromEntries(per.map((p) => [p.serial, p.cvm])),
    host: Object.fromEntries(per.map((p) => [p.serial, p.host])),
    slots: Object.fromEntries(per.map((p) => [p.serial, p.slots])),
    firmware: Object.fromEntries(per.map((p) => [p.serial, p.firmware])),
  };
}

/** A node's firmware as its BMC reports it: BMC and BIOS (null: not read) and every other FirmwareInventory member (its drives'). */
export async function firmwareOf(d: Pick<LookDeps, 'bmc'>, serial: string): Promise<NodeInventory['firmware']> {
  const bmc = await d.bmc(serial).catch(() => undefined);
  if (!bmc) return { bmc: null, bios: null };
  const client = new RedfishClient(bmcBaseUrl(bmc.address), bmc.user, bmc.password, bmc.ca ?? undefined, 5000);
  type Member = { Id?: string; Version?: string; SoftwareId?: string; Name?: string };
  const read = (path: string): Promise<Member | null> => client.get<Member>(path).catch(() => null);
  try {
    const list = await client.get<{ Members?: { '@odata.id'?: string }[] }>('/redfish/v1/UpdateService/FirmwareInventory').catch(() => null);
    const paths = (list?.Members ?? []).map((m) => m['@odata.id']).filter((p): p is string => typeof p === 'string');
    const base = '/redfish/v1/UpdateService/FirmwareInventory/';
    const [b, bios, ...others] = await Promise.all([read(`${base}BMC`), read(`${base}BIOS`), ...paths.filter((p) => p !== `${base}BMC` && p !== `${base}BIOS`).map(read)]);
    const disks = others.filter((m): m is Member => m !== null && typeof m.Version === 'string')
      .map((m) => ({ id: m.Id ?? '', model: m.SoftwareId ?? m.Name ?? '', version: m.Version ?? '' }));
    return { bmc: b?.Version ?? null, bios: bios?.Version ?? null, ...(list ? { disks } : {}) };
  } finally {
    await client.close();
  }
}
