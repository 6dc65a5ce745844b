/**
 * @module
 * IP address management for the VM service's subnets: CIDR parsing, the pool's rules (inside the
 * CIDR, and neither the network, the broadcast nor the gateway address), the next free address of
 * a pool, and checks of a fixed address. IPv4 only. Pure: no I/O.
 */
import { ConflictError, InputError } from '../../shared/errors.ts';
import type { SubnetCreateRequest } from '../protocol/vms.ts';

export interface Cidr {
  /** The network address as a 32-bit unsigned number. */
  network: number;
  prefix: number;
  broadcast: number;
}

export function ipToNum(field: string, ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw new InputError(field, `${ip} is not an IPv4 address`);
  return parts.reduce((a, p) => a * 256 + Number(p), 0);
}

export function numToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function parseCidr(field: string, s: string): Cidr {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(s);
  if (!m) throw new InputError(field, `${s} is not a CIDR like 10.10.0.0/24`);
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 30) throw new InputError(field, `prefix /${prefix}: between /8 and /30`);
  const addr = ipToNum(field, m[1] ?? '');
  const size = 2 ** (32 - prefix);
  const network = addr - (addr % size);
  if (network !== addr) throw new InputError(field, `${s} has host bits set; the network is ${numToIp(network)}/${prefix}`);
  return { network, prefix, broadcast: network + size - 1 };
}

function inside(c: Cidr, n: number): boolean {
  return n >= c.network && n <= c.broadcast;
}

/** The subnet's addressing, checked: the gateway and the pool inside the CIDR, the pool clear of network, broadcast and gateway. Defaults the pool to every usable address but the gateway's side. */
/**
 * The address each host's virtual switch answers DHCP from (hypervisor/protocol/vms.ts, HostSubnet):
 * the last usable address, or the one below it when the gateway has that one. IPAM never gives it out.
 */
export function switchAddress(c: Cidr, gateway: number | null): number {
  return c.broadcast - 1 === gateway ? c.broadcast - 2 : c.broadcast - 1;
}

export function checkSubnet(s: SubnetCreateRequest): { cidr: string | null; gateway: string | null; pool: { start: string; end: string } | null } {
  if (!s.cidr) return { cidr: null, gateway: null, pool: null };
  const c = parseCidr('cidr', s.cidr);
  let gw: number | null = null;
  if (s.gateway) {
    gw = ipToNum('gateway', s.gateway);
    if (!inside(c, gw) || gw === c.network || gw === c.broadcast) throw new InputError('gateway', `${s.gateway} is not a host address of ${s.cidr}`);
  }
  let start: number;
  let end: number;
  if (s.pool) {
    start = ipToNum('pool.start', s.pool.start);
    end = ipToNum('pool.end', s.pool.end);
    for (const [f, n, ip] of [['pool.start', start, s.pool.start], ['pool.end', end, s.pool.end]] as const) {
      if (!inside(c, n)) throw new InputError(f, `${ip} is outside ${s.cidr}`);
      if (n === c.network) throw new InputError(f, `${ip} is the network address of ${s.cidr}`);
      if (n === c.broadcast) throw new InputError(f, `${ip} is the broadcast address of ${s.cidr}`);
    }
    if (end < start) throw new InputError('pool.end', `${s.pool.end} comes before pool.start ${s.pool.start}`);
    if (gw !== null && gw >= start && gw <= end) throw new InputError('pool', `holds the gateway ${s.gateway ?? ''}; start the pool after it or end it before`);
    const sw = switchAddress(c, gw);
    if (sw >= start && sw <= end) throw new InputError('pool', `holds ${numToIp(sw)}, the address the hosts' virtual switches answer DHCP from; end the pool before it`);
  } else {
    start = c.network + 1;
    end = switchAddress(c, gw) - 1;
    if (gw === start) start++;
    else if (gw === end) end--;
    else if (gw !== null && gw < end) start = gw + 1; // the addresses above the gateway
    if (end < start) throw new InputError('cidr', `${s.cidr} leaves no address for a pool`);
  }
  return { cidr: `${numToIp(c.network)}/${c.prefix}`, gateway: s.gateway ?? null, pool: { start: numToIp(start), end: numToIp(end) } };
}

export interface Addressing {
  cidr: string | null;
  gateway: string | null;
  pool: { start: string; end: string } | null;
  /** ip → holder (a NIC's MAC). */
  leases: Record<string, string>;
}

/** The lowest free address of the pool (InputError naming `field` when the pool is used up or there is no IPAM). */
export function nextFree(s: Addressing, field: string, subnetName: string): string {
  if (!s.pool) throw new InputError(field, `subnet ${subnetName} has no IPAM (no CIDR); give the NIC no address`);
  const start = ipToNum('pool.start', s.pool.start);
  const end = ipToNum('pool.end', s.pool.end);
  for (let n = start; n <= end; n++) {
    const ip = numToIp(n);
    if (!(ip in s.leases) && ip !== s.gateway) return ip;
  }
  throw new ConflictError(`${field}: subnet ${subnetName}'s pool ${s.pool.start}–${s.pool.end} has no free address (${Object.keys(s.leases).length} leased)`);
}

/** A fixed address: inside the CIDR (the pool or not), a host address, not the gateway, not leased to another holder. */
export function checkFixed(s: Addressing, ip: string, holder: string, field: string, subnetName: string): void {
  if (!s.cidr) throw new InputError(field, `subnet ${subnetName} has no IPAM (no CIDR); a NIC on it takes no fixed address`);
  const c = parseCidr('cidr', s.cidr);
  const n = ipToNum(field, ip);
  if (!inside(c, n)) throw new InputError(field, `${ip} is outside subnet ${subnetName} (${s.cidr})`);
  if (n === c.network || n === c.broadcast) throw new InputError(field, `${ip} is the ${n === c.network ? 'network' : 'broadcast'} address of ${s.cidr}`);
  if (ip === s.gateway) throw new InputError(field, `${ip} is the gateway of subnet ${subnetName}`);
  if (n === switchAddress(c, s.gateway === null ? null : ipToNum('gateway', s.gateway))) throw new InputError(field, `${ip} is the address the virtual switch answers DHCP from on subnet ${subnetName}`);
  const held = s.leases[ip];
  if (held !== undefined && held !== holder) throw new ConflictError(`${field}: ${ip} is already leased on subnet ${subnetName} (to ${held})`);
}
