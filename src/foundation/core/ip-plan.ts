/**
 * @module
 * The IP plan of a deployment: IPv4 helpers, `makePlan` (validate the user's input and assign
 * every node its BMC, host and CVM address and its hostname), and the plan's JSON form.
 *
 * Pure (STYLE.md C2): no I/O, no clock. What already answers on the network is passed in as `inUse`.
 *
 * Assignment (reference: nutanix-facts.md "IP plan"):
 * - networks are filled one after the other (BMC, then host, then CVM), each in node order;
 * - a node's explicit address wins; the others take the next free address from the network's
 *   `start`, skipping the network and broadcast addresses, every gateway, 192.168.5.0/24 (the
 *   internal host↔CVM link of every node), the cluster VIP, every explicit address of any node,
 *   every address assigned so far, anything in `inUse`, and (lab mode) anything outside 127.0.0.0/8;
 * - hostnames are explicit or `${hostnamePrefix}-${n}`, n being the 1-based node order.
 *
 * Every problem is reported (the first one does not stop the others) as a `PlanError` naming the
 * node (its serial) where there is one, the field, and the reason; the plan is null when there is any.
 */
import { InputError } from '../../shared/errors.ts';
import type { NetworkSpec, Plan, PlanError, PlanInput, PlanNode, PlanNodeInput } from './types.ts';

/** The internal host↔CVM link of every node (host .1, CVM .2): no external address may be in it. */
export const RESERVED_SUBNET = '192.168.5.0/24';
/** Lab deployments keep every address on loopback. */
export const LAB_SUBNET = '127.0.0.0/8';
export const MAX_VLAN = 4094;
/** Narrowest netmask a plan accepts (/30: two usable addresses, one of them the gateway). */
export const MAX_PREFIX = 30;

const ADDRESS_FORMAT = 'dotted quad, each octet 0-255, no leading zeros';

// ---------------------------------------------------------------------------------------------
// IPv4 helpers. Addresses as numbers are unsigned 32-bit integers (0 .. 4294967295).
// ---------------------------------------------------------------------------------------------

const OCTET = /^(?:0|[1-9][0-9]{0,2})$/;

/** Parses a dotted quad (each octet 0-255, no leading zeros) into its 32-bit value; null if malformed. */
export function parseIpv4(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!OCTET.test(part)) return null;
    const octet = Number(part);
    if (octet > 255) return null;
    value = value * 256 + octet;
  }
  return value;
}

/** Formats a 32-bit value as a dotted quad. Throws InputError for a value out of range. */
export function formatIpv4(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new InputError('address', 'must be an integer from 0 to 4294967295', undefined, value);
  }
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

export function isIpv4(text: string): boolean {
  return parseIpv4(text) !== null;
}

/** The netmask of a prefix length (0..32) as a 32-bit value. */
export function maskOfPrefix(prefix: number): number {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) {
    throw new InputError('prefix', 'must be an integer from 0 to 32', undefined, prefix);
  }
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

function prefixOfMask(mask: number): number | null {
  const hostBits = ~mask >>> 0;
  // Contiguous ones then zeros ⇔ the host part is 2^k − 1.
  if ((hostBits & (hostBits + 1)) !== 0) return null;
  let prefix = 0;
  for (let m = mask; m !== 0; m = (m << 1) >>> 0) prefix++;
  return prefix;
}

/** The prefix length of a netmask (255.255.0.0 → 16); null if it is not a valid (contiguous) netmask. */
export function prefixLength(netmask: string): number | null {
  const mask = parseIpv4(netmask);
  return mask === null ? null : prefixOfMask(mask);
}

/** True for a dotted-quad netmask whose ones are contiguous (0.0.0.0 and 255.255.255.255 included). */
export function isValidNetmask(netmask: string): boolean {
  return prefixLength(netmask) !== null;
}

interface Subnet {
  network: number;
  broadcast: number;
  prefix: number;
}

function subnetOfValue(address: number, prefix: number): Subnet {
  const mask = maskOfPrefix(prefix);
  const network = (address & mask) >>> 0;
  return { network, broadcast: (network | ~mask) >>> 0, prefix };
}

function contains(subnet: Subnet, address: number): boolean {
  return address >= subnet.network && address <= subnet.broadcast;
}

function cidr(subnet: Subnet): string {
  return `${formatIpv4(subnet.network)}/${subnet.prefix}`;
}

function parseSubnet(address: string, netmask: string): Subnet | null {
  const a = parseIpv4(address);
  const prefix = prefixLength(netmask);
  return a === null || prefix === null ? null : subnetOfValue(a, prefix);
}

/** The network address of `address` under `netmask`; null if either is malformed. */
export function networkAddress(address: string, netmask: string): string | null {
  const s = parseSubnet(address, netmask);
  return s === null ? null : formatIpv4(s.network);
}

/** The broadcast address of `address` under `netmask`; null if either is malformed. */
export function broadcastAddress(address: string, netmask: string): string | null {
  const s = parseSubnet(address, netmask);
  return s === null ? null : formatIpv4(s.broadcast);
}

/** The subnet of `address` under `netmask` in CIDR form ("127.20.0.0/16"); null if either is malformed. */
export function subnetOf(address: string, netmask: string): string | null {
  const s = parseSubnet(address, netmask);
  return s === null ? null : cidr(s);
}

function parseCidr(text: string): Subnet | null {
  const m = /^([^/]+)\/(0|[1-9][0-9]?)$/.exec(text);
  if (m === null) return null;
  const address = parseIpv4(m[1] ?? '');
  const prefix = Number(m[2]);
  return address === null || prefix > 32 ? null : subnetOfValue(address, prefix);
}

/** True when `address` lies in `subnet` (CIDR, "127.0.0.0/8"); false if either is malformed. */
export function inSubnet(address: string, subnet: string): boolean {
  const a = parseIpv4(address);
  const s = parseCidr(subnet);
  return a !== null && s !== null && contains(s, a);
}

const RESERVED = parseCidr(RESERVED_SUBNET) as Subnet;
const LAB = parseCidr(LAB_SUBNET) as Subnet;

// ---------------------------------------------------------------------------------------------
// Names.
// ---------------------------------------------------------------------------------------------

const DNS_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const CLUSTER_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/;

/** A valid DNS label (RFC 1123): 1-63 letters, digits and hyphens, not starting or ending with a hyphen. */
export function isDnsLabel(name: string): boolean {
  return DNS_LABEL.test(name);
}

/** A valid host name: dot-separated DNS labels, at most 253 characters, the last label not all digits. */
export function isHostName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  return labels.every(isDnsLabel) && !/^[0-9]+$/.test(labels[labels.length - 1] ?? '');
}

// ---------------------------------------------------------------------------------------------
// makePlan.
// ---------------------------------------------------------------------------------------------

type NetName = 'bmc' | 'host' | 'cvm';
type AddressField = 'bmcIp' | 'hostIp' | 'cvmIp';
const NETS: readonly NetName[] = ['bmc', 'host', 'cvm'];
const FIELD: Record<NetName, AddressField> = { bmc: 'bmcIp', host: 'hostIp', cvm: 'cvmIp' };
const LABEL: Record<NetName, string> = { bmc: 'BMC', host: 'host', cvm: 'CVM' };

interface Net {
  subnet: Subnet | null;
  gateway: number | null;
  /** Parsed start; null when absent or unusable. */
  start: number | null;
  startGiven: boolean;
}

export interface PlanResult {
  plan: Plan | null;
  errors: PlanError[];
}

function copyNet(spec: NetworkSpec): NetworkSpec {
  const out: NetworkSpec = { netmask: spec.netmask, gateway: spec.gateway };
  if (spec.vlan !== undefined) out.vlan = spec.vlan;
  if (spec.start !== undefined) out.start = spec.start;
  return out;
}

/**
 * Validates `input` and assigns the addresses and hostnames it leaves open. `inUse` holds addresses
 * already answering on the network: refused when given explicitly (node addresses, VIP), skipped
 * when assigning. Collects every error; `plan` is null when there is any.
 */
export function makePlan(input: PlanInput, inUse: ReadonlySet<string> = new Set<string>()): PlanResult {
  const errors: PlanError[] = [];
  const report = (field: string, reason: string, node?: string): void => {
    errors.push(node === undefined ? { field, reason } : { node, field, reason });
  };
  const lab = input.lab;
  const busy = new Set<number>();
  for (const a of inUse) {
    const v = parseIpv4(a);
    if (v !== null) busy.add(v);
  }
  const nodeName = (n: PlanNodeInput, i: number): string => (n.serial === '' ? `nodes[${i}]` : n.serial);

  // Nodes and serials.
  if (input.nodes.length === 0) report('nodes', 'at least one node is required');
  const serials = new Map<string, number>();
  input.nodes.forEach((n, i) => {
    if (n.serial.trim() === '') {
      report(`nodes[${i}].serial`, 'the serial is empty');
      return;
    }
    const first = serials.get(n.serial);
    if (first !== undefined) report('serial', `duplicate serial: node #${first + 1} has the same serial`, n.serial);
    else serials.set(n.serial, i);
  });

  if (!CLUSTER_NAME.test(input.clusterName)) {
    report('clusterName', `"${input.clusterName}" is not a valid cluster name: 1-63 letters, digits, "-" or "_", starting with a letter`);
  }

  /** Format, reserved range and lab range: the checks every address of the plan gets. */
  const address = (text: string, field: string, node?: string): number | null => {
    const v = parseIpv4(text);
    if (v === null) {
      report(field, `"${text}" is not an IPv4 address (${ADDRESS_FORMAT})`, node);
      return null;
    }
    if (contains(RESERVED, v)) report(field, `${text} is in ${RESERVED_SUBNET}, reserved for the internal host↔CVM link of every node`, node);
    if (lab && !contains(LAB, v)) report(field, `lab mode: ${text} is not a loopback address (${LAB_SUBNET})`, node);
    return v;
  };

  // Networks.
  const nets = {} as Record<NetName, Net>;
  for (const name of NETS) {
    const spec = input[name];
    let prefix = prefixLength(spec.netmask);
    if (parseIpv4(spec.netmask) === null) {
      report(`${name}.netmask`, `"${spec.netmask}" is not a netmask (${ADDRESS_FORMAT})`);
    } else if (prefix === null) {
      report(`${name}.netmask`, `${spec.netmask} is not a valid netmask: its one bits must be contiguous`);
    } else if (prefix < 1 || prefix > MAX_PREFIX) {
      report(`${name}.netmask`, `${spec.netmask} (/${prefix}) is not usable: the prefix must be from /1 to /${MAX_PREFIX}`);
      prefix = null;
    }
    const gateway = address(spec.gateway, `${name}.gateway`);
    const subnet = prefix !== null && gateway !== null ? subnetOfValue(gateway, prefix) : null;
    if (subnet !== null && gateway === subnet.network) {
      report(`${name}.gateway`, `${spec.gateway} is the network address of ${cidr(subnet)}, not a usable gateway`);
    } else if (subnet !== null && gateway === subnet.broadcast) {
      report(`${name}.gateway`, `${spec.gateway} is the broadcast address of ${cidr(subnet)}, not a usable gateway`);
    }
    if (spec.vlan !== undefined && !(Number.isInteger(spec.vlan) && spec.vlan >= 0 && spec.vlan <= MAX_VLAN)) {
      report(`${name}.vlan`, `${spec.vlan} is not a VLAN id: it must be an integer from 0 (untagged) to ${MAX_VLAN}`);
    }
    let start: number | null = null;
    if (spec.start !== undefined) {
      const s = parseIpv4(spec.start);
      if (s === null) {
        report(`${name}.start`, `"${spec.start}" is not an IPv4 address (${ADDRESS_FORMAT})`);
      } else if (lab && !contains(LAB, s)) {
        report(`${name}.start`, `lab mode: ${spec.start} is not a loopback address (${LAB_SUBNET})`);
      } else if (subnet !== null && !contains(subnet, s)) {
        report(`${name}.start`, `${spec.start} is not in the ${LABEL[name]} subnet ${cidr(subnet)}`);
      } else {
        start = s;
      }
    }
    nets[name] = { subnet, gateway, start, startGiven: spec.start !== undefined };
  }

  const gatewayNames = (v: number): string[] => NETS.filter((n) => nets[n].gateway === v).map((n) => LABEL[n]);
  /** In the subnet of `net`, not its network or broadcast address, not a gateway, not in use. */
  const placement = (v: number, text: string, net: NetName, field: string, node?: string): void => {
    const subnet = nets[net].subnet;
    if (subnet !== null) {
      if (!contains(subnet, v)) report(field, `${text} is not in the ${LABEL[net]} subnet ${cidr(subnet)}`, node);
      else if (v === subnet.network) report(field, `${text} is the network address of ${cidr(subnet)}`, node);
      else if (v === subnet.broadcast) report(field, `${text} is the broadcast address of ${cidr(subnet)}`, node);
    }
    const gws = gatewayNames(v);
    if (gws.length > 0) report(field, `${text} is the gateway of the ${gws.join(' and ')} network${gws.length > 1 ? 's' : ''}`, node);
    if (busy.has(v)) report(field, `${text} is already in use (it answers on the network)`, node);
  };

  // Cluster VIP: on the host network.
  let vip: number | null = null;
  if (input.clusterVip !== undefined) {
    vip = address(input.clusterVip, 'clusterVip');
    if (vip !== null) placement(vip, input.clusterVip, 'host', 'clusterVip');
  }

  input.dns.forEach((d, i) => {
    address(d, `dns[${i}]`);
  });
  input.ntp.forEach((t, i) => {
    const field = `ntp[${i}]`;
    if (/^[0-9.]+$/.test(t)) {
      address(t, field);
    } else if (lab) {
      report(field, `lab mode: NTP servers must be loopback addresses (${LAB_SUBNET}); the host name "${t}" could resolve off the machine`);
    } else if (!isHostName(t)) {
      report(field, `"${t}" is neither an IPv4 address nor a valid host name`);
    }
  });

  // Explicit node addresses.
  const taken = new Set<number>();
  if (vip !== null) taken.add(vip);
  /** final[i][net]: the node's address; null when missing or invalid. */
  const final: Record<NetName, number | null>[] = input.nodes.map(() => ({ bmc: null, host: null, cvm: null }));
  input.nodes.forEach((n, i) => {
    for (const net of NETS) {
      const text = n[FIELD[net]];
      if (text === undefined) continue;
      const v = address(text, FIELD[net], nodeName(n, i));
      if (v === null) continue;
      placement(v, text, net, FIELD[net], nodeName(n, i));
      taken.add(v);
      (final[i] as Record<NetName, number | null>)[net] = v;
    }
  });

  // Assignment: one network after the other, in node order.
  const gateways = new Set<number>();
  for (const net of NETS) {
    const g = nets[net].gateway;
    if (g !== null) gateways.add(g);
  }
  const free = (v: number, subnet: Subnet): boolean =>
    v !== subnet.network && v !== subnet.broadcast && !gateways.has(v) && !contains(RESERVED, v) &&
    !taken.has(v) && !busy.has(v) && (!lab || contains(LAB, v));
  for (const net of NETS) {
    const { subnet, start, startGiven } = nets[net];
    let cursor = start ?? 0;
    input.nodes.forEach((n, i) => {
      if (n[FIELD[net]] !== undefined) return;
      if (!startGiven) {
        report(FIELD[net], `no ${LABEL[net]} address given and ${net}.start is not set`, nodeName(n, i));
        return;
      }
      // A broken network or start is reported already.
      if (subnet === null || start === null) return;
      while (cursor <= subnet.broadcast && !free(cursor, subnet)) cursor++;
      if (cursor > subnet.broadcast) {
        report(FIELD[net], `no free address left in the ${LABEL[net]} subnet ${cidr(subnet)} from ${formatIpv4(start)}`, nodeName(n, i));
        return;
      }
      taken.add(cursor);
      (final[i] as Record<NetName, number | null>)[net] = cursor;
      cursor++;
    });
  }

  // Uniqueness across every node address and the VIP; host and CVM of a node on one subnet.
  const owners = new Map<number, string>();
  const hostPrefix = nets.host.subnet?.prefix ?? null;
  const cvmPrefix = nets.cvm.subnet?.prefix ?? null;
  input.nodes.forEach((n, i) => {
    const addrs = final[i] as Record<NetName, number | null>;
    for (const net of NETS) {
      const v = addrs[net];
      if (v === null) continue;
      const owner = owners.get(v);
      if (owner !== undefined) report(FIELD[net], `${formatIpv4(v)} is already the ${owner}`, nodeName(n, i));
      else owners.set(v, `${LABEL[net]} address of node ${nodeName(n, i)}`);
    }
    if (addrs.host !== null && addrs.cvm !== null && hostPrefix !== null && cvmPrefix !== null) {
      const hs = subnetOfValue(addrs.host, hostPrefix);
      const cs = subnetOfValue(addrs.cvm, cvmPrefix);
      if (hs.network !== cs.network || hs.prefix !== cs.prefix) {
        report('cvmIp', `CVM address ${formatIpv4(addrs.cvm)} (${cidr(cs)}) is not on the subnet of host address ${formatIpv4(addrs.host)} (${cidr(hs)}); host and CVM of a node must share a subnet`, nodeName(n, i));
      }
    }
  });
  if (vip !== null) {
    const owner = owners.get(vip);
    if (owner !== undefined) report('clusterVip', `${formatIpv4(vip)} is already the ${owner}`);
  }

  // Hostnames.
  const prefix = input.hostnamePrefix;
  let prefixOk = true;
  if (input.nodes.some((n) => n.hostname === undefined)) {
    prefixOk = prefix !== '' && isDnsLabel(`${prefix}-${input.nodes.length}`);
    if (!prefixOk) report('hostnamePrefix', `"${prefix}" cannot make host names like "${prefix}-1": they must be DNS labels (letters, digits, hyphens; 1-63 characters; not starting or ending with a hyphen)`);
  }
  const hostnames: (string | null)[] = [];
  const hostnameOwners = new Map<string, string>();
  input.nodes.forEach((n, i) => {
    let name: string | null = null;
    if (n.hostname !== undefined) {
      if (isDnsLabel(n.hostname)) name = n.hostname;
      else report('hostname', `"${n.hostname}" is not a valid host name: a DNS label of 1-63 letters, digits and hyphens, not starting or ending with a hyphen`, nodeName(n, i));
    } else if (prefixOk) {
      name = `${prefix}-${i + 1}`;
    }
    hostnames.push(name);
    if (name === null) return;
    const owner = hostnameOwners.get(name.toLowerCase());
    if (owner !== undefined) report('hostname', `"${name}" is already the host name of node ${owner}`, nodeName(n, i));
    else hostnameOwners.set(name.toLowerCase(), nodeName(n, i));
  });

  if (errors.length > 0) return { plan: null, errors };
  const nodes: PlanNode[] = input.nodes.map((n, i) => {
    const a = final[i] as Record<NetName, number>;
    return { serial: n.serial, bmcIp: formatIpv4(a.bmc), hostIp: formatIpv4(a.host), cvmIp: formatIpv4(a.cvm), hostname: hostnames[i] as string };
  });
  const plan: Plan = {
    clusterName: input.clusterName,
    clusterVip: input.clusterVip ?? null,
    dns: [...input.dns],
    ntp: [...input.ntp],
    bmc: copyNet(input.bmc),
    host: copyNet(input.host),
    cvm: copyNet(input.cvm),
    lab,
    nodes,
  };
  return { plan, errors };
}

// ---------------------------------------------------------------------------------------------
// JSON.
// ---------------------------------------------------------------------------------------------

/** The plan as pretty-printed JSON with a fixed key order (a file people read and diff). */
export function planToJson(plan: Plan): string {
  const ordered = {
    clusterName: plan.clusterName,
    clusterVip: plan.clusterVip,
    dns: plan.dns,
    ntp: plan.ntp,
    lab: plan.lab,
    bmc: copyNet(plan.bmc),
    host: copyNet(plan.host),
    cvm: copyNet(plan.cvm),
    nodes: plan.nodes.map((n) => ({ serial: n.serial, bmcIp: n.bmcIp, hostIp: n.hostIp, cvmIp: n.cvmIp, hostname: n.hostname })),
  };
  return `${JSON.stringify(ordered, null, 2)}\n`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

/**
 * Reads a plan written by `planToJson` and validates it again: every address and host name becomes
 * explicit input to `makePlan`. Malformed JSON or a wrong shape gives errors naming the field.
 */
export function planFromJson(text: string): PlanResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { plan: null, errors: [{ field: 'json', reason: `not valid JSON: ${e instanceof Error ? e.message : String(e)}` }] };
  }
  if (!isRecord(raw)) return { plan: null, errors: [{ field: 'json', reason: `a plan must be a JSON object, not ${describe(raw)}` }] };
  const errors: PlanError[] = [];
  const wrong = (field: string, expected: string, v: unknown): void => {
    errors.push({ field, reason: `must be ${expected}, not ${describe(v)}` });
  };
  const str = (v: unknown, field: string): string => {
    if (typeof v === 'string') return v;
    wrong(field, 'a string', v);
    return '';
  };
  const strings = (v: unknown, field: string): string[] => {
    if (!Array.isArray(v)) {
      wrong(field, 'an array of strings', v);
      return [];
    }
    return v.map((x: unknown, i) => str(x, `${field}[${i}]`));
  };
  const net = (v: unknown, field: string): NetworkSpec => {
    if (!isRecord(v)) {
      wrong(field, 'an object', v);
      return { netmask: '', gateway: '' };
    }
    const out: NetworkSpec = { netmask: str(v.netmask, `${field}.netmask`), gateway: str(v.gateway, `${field}.gateway`) };
    if (v.vlan !== undefined) {
      if (typeof v.vlan === 'number') out.vlan = v.vlan;
      else wrong(`${field}.vlan`, 'a number', v.vlan);
    }
    if (v.start !== undefined) out.start = str(v.start, `${field}.start`);
    return out;
  };

  const clusterName = str(raw.clusterName, 'clusterName');
  let clusterVip: string | null = null;
  if (typeof raw.clusterVip === 'string') clusterVip = raw.clusterVip;
  else if (raw.clusterVip !== null) wrong('clusterVip', 'a string or null', raw.clusterVip);
  const dns = strings(raw.dns, 'dns');
  const ntp = strings(raw.ntp, 'ntp');
  let lab = false;
  if (typeof raw.lab === 'boolean') lab = raw.lab;
  else wrong('lab', 'a boolean', raw.lab);
  const bmc = net(raw.bmc, 'bmc');
  const host = net(raw.host, 'host');
  const cvm = net(raw.cvm, 'cvm');
  const nodes: PlanNodeInput[] = [];
  if (!Array.isArray(raw.nodes)) {
    wrong('nodes', 'an array of nodes', raw.nodes);
  } else {
    raw.nodes.forEach((n: unknown, i) => {
      if (!isRecord(n)) {
        wrong(`nodes[${i}]`, 'an object', n);
        return;
      }
      nodes.push({
        serial: str(n.serial, `nodes[${i}].serial`),
        bmcIp: str(n.bmcIp, `nodes[${i}].bmcIp`),
        hostIp: str(n.hostIp, `nodes[${i}].hostIp`),
        cvmIp: str(n.cvmIp, `nodes[${i}].cvmIp`),
        hostname: str(n.hostname, `nodes[${i}].hostname`),
      });
    });
  }
  if (errors.length > 0) return { plan: null, errors };

  const input: PlanInput = { clusterName, dns, ntp, hostnamePrefix: '', bmc, host, cvm, nodes, lab };
  if (clusterVip !== null) input.clusterVip = clusterVip;
  return makePlan(input);
}
