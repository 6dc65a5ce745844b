/**
 * @module
 * Where a VM runs: the up host with the most free memory that has the VM's memory and vCPUs free
 * (spread, not pack: a host failure then costs the fewest VMs). Ties go to more free vCPUs, then
 * the lower serial, so the choice is the same every time for the same inventory. Pure: no I/O.
 */
import { InputError } from '../../shared/errors.ts';
import type { VmHost } from '../protocol/vms.ts';

export interface PlacementNeed {
  vcpus: number;
  memoryMiB: number;
}

/** What placement reads of a host (VmHost's fields). */
export type PlacementHost = Pick<VmHost, 'serial' | 'hostIp' | 'state' | 'freeMemoryMiB' | 'freeVcpus'>;

/** Hosts ordered best first (most free memory, then free vCPUs, then serial). */
export function rankHosts<H extends PlacementHost>(hosts: readonly H[]): H[] {
  return [...hosts].sort((a, b) => b.freeMemoryMiB - a.freeMemoryMiB || b.freeVcpus - a.freeVcpus || a.serial.localeCompare(b.serial));
}

/**
 * The host to place a VM on. Only `up` hosts count (down, fenced and those in maintenance take no
 * VMs); `exclude` names hosts (serial or host IP) not to use, e.g. the one an HA restart leaves.
 * A VM that fits no host is refused naming what is short: `memoryMiB` or `vcpus`, with the most
 * any host has free.
 */
export function chooseHost<H extends PlacementHost>(hosts: readonly H[], need: PlacementNeed, exclude: readonly string[] = []): H {
  const usable = hosts.filter((h) => h.state === 'up' && !exclude.includes(h.serial) && !exclude.includes(h.hostIp));
  if (usable.length === 0) {
    const why = hosts.length === 0 ? 'no host reports its resources yet' : `no host is up and available (${hosts.map((h) => `${h.serial}: ${exclude.includes(h.serial) || exclude.includes(h.hostIp) ? 'excluded' : h.state}`).join(', ')})`;
    throw new InputError('host', why);
  }
  const fit = rankHosts(usable).find((h) => h.freeMemoryMiB >= need.memoryMiB && h.freeVcpus >= need.vcpus);
  if (fit) return fit;
  const maxMem = Math.max(...usable.map((h) => h.freeMemoryMiB));
  const maxCpu = Math.max(...usable.map((h) => h.freeVcpus));
  if (maxMem < need.memoryMiB) throw new InputError('memoryMiB', `no host has ${need.memoryMiB} MiB free; the most any host has is ${Math.max(0, maxMem)} MiB`);
  if (maxCpu < need.vcpus) throw new InputError('vcpus', `no host has ${need.vcpus} vCPUs free; the most any host has is ${Math.max(0, maxCpu)}`);
  // each alone fits somewhere, never both on one host
  const bestMem = rankHosts(usable.filter((h) => h.freeVcpus >= need.vcpus))[0];
  throw new InputError('memoryMiB', `no host has both ${need.memoryMiB} MiB and ${need.vcpus} vCPUs free; the most memory a host with ${need.vcpus} vCPUs free has is ${Math.max(0, bestMem?.freeMemoryMiB ?? 0)} MiB`);
}

/**
 * A VM no host could ever hold (more memory or vCPUs than any host has for VMs, its CVM's share
 * aside) is refused when it is created or resized, not at power on, naming the field. No host
 * reported yet: nothing to check against.
 */
export function checkCapacity(hosts: readonly { serial: string; memoryMiB: number; vcpus: number }[], need: PlacementNeed): void {
  if (hosts.length === 0) return;
  const mem = Math.max(...hosts.map((h) => h.memoryMiB));
  if (need.memoryMiB > mem) throw new InputError('memoryMiB', `${need.memoryMiB} MiB is more than any host can give a VM; the largest host has ${mem} MiB for VMs`);
  const cpu = Math.max(...hosts.filter((h) => h.memoryMiB >= need.memoryMiB).map((h) => h.vcpus));
  if (need.vcpus > cpu) throw new InputError('vcpus', `${need.vcpus} vCPUs is more than any host with ${need.memoryMiB} MiB for VMs has; the most is ${cpu}`);
}
