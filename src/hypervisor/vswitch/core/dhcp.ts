/**
 * @module
 * DHCP as the virtual switch answers it for a subnet with IPAM (as AHV's IPAM answers on OVS):
 * the message codec [RFC 2131 §2, RFC 2132] and the server's decisions. Addresses are not picked
 * from a pool: every NIC's address was reserved by IPAM (the VM service), so the server only
 * answers a known MAC with its reservation. An unknown MAC gets no answer; a known MAC that asks
 * for another address gets a NAK.
 *
 * Message layout (big-endian): op, htype, hlen, hops (1 byte each), xid (4), secs (2), flags (2),
 * ciaddr, yiaddr, siaddr, giaddr (4 each), chaddr (16), sname (64), file (128), the magic cookie
 * 99.130.83.99, then options (code, length, data; 0 is padding, 255 ends them).
 */
import { intToIpv4, ipv4ToInt, macToString } from './ethernet.ts';

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
const BOOTREQUEST = 1;
const BOOTREPLY = 2;
const MAGIC_COOKIE = 0x63825363;
const FIXED = 236;
/** BOOTP's minimum message (RFC 1542 §2.1); some clients drop shorter replies. */
const MIN_MESSAGE = 300;
const FLAG_BROADCAST = 0x8000;

/** Option codes [RFC 2132], named as there. */
export const OPT = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_REQUEST_LIST: 55,
  MESSAGE: 56,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  CLIENT_ID: 61,
  END: 255,
} as const;

/** DHCP message types (option 53) [RFC 2132 §9.6]. */
export const DHCP = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;
export type DhcpMessageType = (typeof DHCP)[keyof typeof DHCP];

export function messageTypeName(t: number): string {
  const e = Object.entries(DHCP).find(([, v]) => v === t);
  return e ? e[0] : `type ${t}`;
}

export interface DhcpPacket {
  op: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** The client's hardware address (htype 1, hlen 6 only). */
  chaddr: string;
  /** Options in the order given; a repeated code's data is concatenated [RFC 3396]. */
  options: Map<number, Buffer>;
}

export class DhcpParseError extends Error {}

/** Parses a BOOTP/DHCP message (a UDP payload). Throws DhcpParseError on a malformed one. */
export function parseDhcp(b: Buffer): DhcpPacket {
  if (b.length < FIXED + 4) throw new DhcpParseError(`too short (${b.length} bytes)`);
  if (b[1] !== 1 || b[2] !== 6) throw new DhcpParseError(`not Ethernet (htype ${b[1]}, hlen ${b[2]})`);
  if (b.readUInt32BE(FIXED) !== MAGIC_COOKIE) throw new DhcpParseError('no DHCP magic cookie');
  const ip = (at: number): string => intToIpv4(b.readUInt32BE(at));
  const options = new Map<number, Buffer>();
  let at = FIXED + 4;
  for (;;) {
    if (at >= b.length) break; // a missing END is tolerated, as most servers do
    const code = b[at]!;
    if (code === OPT.END) break;
    if (code === OPT.PAD) {
      at++;
      continue;
    }
    if (at + 1 >= b.length) throw new DhcpParseError(`option ${code} has no length`);
    const len = b[at + 1]!;
    if (at + 2 + len > b.length) throw new DhcpParseError(`option ${code} runs past the end`);
    const data = b.subarray(at + 2, at + 2 + len);
    const prev = options.get(code);
    options.set(code, prev ? Buffer.concat([prev, data]) : Buffer.from(data));
    at += 2 + len;
  }
  return {
    op: b[0]!,
    xid: b.readUInt32BE(4),
    secs: b.readUInt16BE(8),
    flags: b.readUInt16BE(10),
    ciaddr: ip(12),
    yiaddr: ip(16),
    siaddr: ip(20),
    giaddr: ip(24),
    chaddr: macToString(b, 28),
    options,
  };
}

/** Option 53, or undefined (a BOOTP message without it). */
export function messageType(p: DhcpPacket): number | undefined {
  const o = p.options.get(OPT.MESSAGE_TYPE);
  return o && o.length === 1 ? o[0] : undefined;
}

function optIp(p: DhcpPacket, code: number): string | undefined {
  const o = p.options.get(code);
  return o && o.length === 4 ? intToIpv4(o.readUInt32BE(0)) : undefined;
}

export const requestedIp = (p: DhcpPacket): string | undefined => optIp(p, OPT.REQUESTED_IP);
export const serverId = (p: DhcpPacket): string | undefined => optIp(p, OPT.SERVER_ID);
export const hostname = (p: DhcpPacket): string | undefined => p.options.get(OPT.HOSTNAME)?.toString('latin1');
export const clientId = (p: DhcpPacket): Buffer | undefined => p.options.get(OPT.CLIENT_ID);
export const paramRequestList = (p: DhcpPacket): number[] => [...(p.options.get(OPT.PARAM_REQUEST_LIST) ?? [])];

export type DhcpOption = [code: number, data: Uint8Array];

export interface DhcpBuild {
  op: number;
  xid: number;
  secs?: number;
  flags?: number;
  ciaddr?: string;
  yiaddr?: string;
  siaddr?: string;
  giaddr?: string;
  chaddr: string;
  /** Written in this order; END is appended. */
  options: DhcpOption[];
}

/** Encodes a message, padded to BOOTP's 300-byte minimum. */
export function buildDhcp(m: DhcpBuild): Buffer {
  const optLen = m.options.reduce((n, [, d]) => n + 2 + d.length, 0) + 1;
  const b = Buffer.alloc(Math.max(MIN_MESSAGE, FIXED + 4 + optLen));
  b[0] = m.op;
  b[1] = 1;
  b[2] = 6;
  b.writeUInt32BE(m.xid >>> 0, 4);
  b.writeUInt16BE(m.secs ?? 0, 8);
  b.writeUInt16BE(m.flags ?? 0, 10);
  const ip = (s: string | undefined, at: number): void => void b.writeUInt32BE(ipv4ToInt(s ?? '0.0.0.0') ?? 0, at);
  ip(m.ciaddr, 12);
  ip(m.yiaddr, 16);
  ip(m.siaddr, 20);
  ip(m.giaddr, 24);
  Buffer.from(m.chaddr.replace(/:/g, ''), 'hex').copy(b, 28);
  b.writeUInt32BE(MAGIC_COOKIE, FIXED);
  let at = FIXED + 4;
  for (const [code, data] of m.options) {
    if (data.length > 255) throw new RangeError(`option ${code} is longer than 255 bytes`);
    b[at] = code;
    b[at + 1] = data.length;
    Buffer.from(data).copy(b, at + 2);
    at += 2 + data.length;
  }
  b[at] = OPT.END;
  return b;
}

export function ipOpt(...ips: string[]): Buffer {
  const b = Buffer.alloc(4 * ips.length);
  ips.forEach((s, i) => b.writeUInt32BE(ipv4ToInt(s) ?? 0, 4 * i));
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

// ---- CIDR ------------------------------------------------------------------------------------

export interface Cidr {
  network: string;
  prefix: number;
}

/** Parses "a.b.c.d/n"; undefined when it is not one (the host bits must be zero). */
export function parseCidr(s: string): Cidr | undefined {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(s.trim());
  if (!m) return undefined;
  const n = ipv4ToInt(m[1]!);
  const prefix = Number(m[2]);
  if (n === undefined || prefix > 32) return undefined;
  if ((n & ~maskOf(prefix)) >>> 0 !== 0) return undefined;
  return { network: intToIpv4(n), prefix };
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function prefixMask(prefix: number): string {
  return intToIpv4(maskOf(prefix));
}

export function inCidr(ip: string, c: Cidr): boolean {
  const n = ipv4ToInt(ip);
  const net = ipv4ToInt(c.network);
  return n !== undefined && net !== undefined && ((n & maskOf(c.prefix)) >>> 0) === net;
}

/**
 * The address the switch answers DHCP from on a subnet: the last usable host address (the
 * broadcast address less one), as AHV's IPAM picks by default, or the one below it when the
 * gateway has that one. It is never given to a VM by IPAM's pool (docs/networking.md).
 */
export function dhcpServerIp(c: Cidr, gateway: string | null): string {
  const net = ipv4ToInt(c.network) ?? 0;
  const last = (net | (~maskOf(c.prefix) >>> 0)) >>> 0;
  const candidate = intToIpv4(last - 1);
  return candidate === gateway ? intToIpv4(last - 2) : candidate;
}

// ---- the server's decisions -------------------------------------------------------------------

/** What IPAM reserved for a MAC on the subnet. */
export interface Reservation {
  ip: string;
  prefix: number;
  gateway: string | null;
  dns: string[];
}

export interface DhcpServerConfig {
  /** The server identifier (option 54) and the replies' source address. */
  serverIp: string;
  /** Seconds (option 51); T1 (58) is half of it and T2 (59) seven eighths [RFC 2131 §4.4.5]. */
  leaseSeconds: number;
}

export type DhcpAnswer =
  | { kind: 'reply'; type: typeof DHCP.OFFER | typeof DHCP.ACK | typeof DHCP.NAK; message: Buffer; dstIp: string; broadcast: boolean }
  | { kind: 'silent'; reason: string }
  /** A RELEASE or DECLINE, noted: no reply is sent to either [RFC 2131 §4.3.3, §4.3.4]. */
  | { kind: 'noted'; type: typeof DHCP.RELEASE | typeof DHCP.DECLINE };

/**
 * Answers one client message. `reservation` is the reservation of the message's chaddr, if any.
 * Replies go out per RFC 2131 §4.1: to ciaddr when the client has one, else broadcast when it set
 * the BROADCAST flag (and always for a NAK), else unicast to yiaddr at chaddr.
 */
export function answerDhcp(req: DhcpPacket, reservation: Reservation | undefined, cfg: DhcpServerConfig): DhcpAnswer {
  if (req.op !== BOOTREQUEST) return { kind: 'silent', reason: 'not a BOOTREQUEST' };
  if (req.giaddr !== '0.0.0.0') return { kind: 'silent', reason: 'relayed (giaddr set): the switch answers its own segment only' };
  const type = messageType(req);
  if (type === undefined) return { kind: 'silent', reason: 'BOOTP without a DHCP message type' };
  const sid = serverId(req);
  switch (type) {
    case DHCP.DISCOVER:
      if (!reservation) return { kind: 'silent', reason: `no reservation for ${req.chaddr}` };
      return reply(req, DHCP.OFFER, reservation, cfg);
    case DHCP.REQUEST: {
      // SELECTING: the client names the server it chose; another server's offer is none of ours
      if (sid !== undefined && sid !== cfg.serverIp) return { kind: 'silent', reason: `the client chose server ${sid}` };
      if (!reservation) return { kind: 'silent', reason: `no reservation for ${req.chaddr}` };
      // SELECTING and INIT-REBOOT carry option 50; RENEWING and REBINDING carry ciaddr instead
      const asked = requestedIp(req) ?? (req.ciaddr !== '0.0.0.0' ? req.ciaddr : undefined);
      if (asked !== reservation.ip) return nak(req, cfg, `${asked ?? 'no address'} is not this client's address`);
      return reply(req, DHCP.ACK, reservation, cfg);
    }
    case DHCP.INFORM:
      if (!reservation) return { kind: 'silent', reason: `no reservation for ${req.chaddr}` };
      return reply(req, DHCP.ACK, reservation, cfg, true);
    case DHCP.RELEASE:
    case DHCP.DECLINE:
      if (sid !== undefined && sid !== cfg.serverIp) return { kind: 'silent', reason: `addressed to server ${sid}` };
      return { kind: 'noted', type };
    default:
      return { kind: 'silent', reason: `a client does not send ${messageTypeName(type)}` };
  }
}

function reply(req: DhcpPacket, type: typeof DHCP.OFFER | typeof DHCP.ACK, r: Reservation, cfg: DhcpServerConfig, inform = false): DhcpAnswer {
  const opts: DhcpOption[] = [
    [OPT.MESSAGE_TYPE, Uint8Array.of(type)],
    [OPT.SERVER_ID, ipOpt(cfg.serverIp)],
  ];
  // [RFC 2131 §3.4] an ACK to an INFORM carries no lease time
  if (!inform) {
    opts.push([OPT.LEASE_TIME, u32(cfg.leaseSeconds)]);
    opts.push([OPT.RENEWAL_TIME, u32(Math.floor(cfg.leaseSeconds / 2))]);
    opts.push([OPT.REBINDING_TIME, u32(Math.floor((cfg.leaseSeconds * 7) / 8))]);
  }
  opts.push([OPT.SUBNET_MASK, ipOpt(prefixMask(r.prefix))]);
  if (r.gateway) opts.push([OPT.ROUTER, ipOpt(r.gateway)]);
  if (r.dns.length > 0) opts.push([OPT.DNS, ipOpt(...r.dns.slice(0, 63))]);
  const message = buildDhcp({
    op: BOOTREPLY,
    xid: req.xid,
    flags: req.flags,
    ciaddr: inform || type === DHCP.ACK ? req.ciaddr : '0.0.0.0',
    yiaddr: inform ? '0.0.0.0' : r.ip,
    chaddr: req.chaddr,
    options: opts,
  });
  const toCiaddr = req.ciaddr !== '0.0.0.0';
  const broadcast = !toCiaddr && (req.flags & FLAG_BROADCAST) !== 0;
  return { kind: 'reply', type, message, dstIp: toCiaddr ? req.ciaddr : broadcast ? '255.255.255.255' : r.ip, broadcast };
}

function nak(req: DhcpPacket, cfg: DhcpServerConfig, why: string): DhcpAnswer {
  const message = buildDhcp({
    op: BOOTREPLY,
    xid: req.xid,
    flags: req.flags,
    chaddr: req.chaddr,
    options: [
      [OPT.MESSAGE_TYPE, Uint8Array.of(DHCP.NAK)],
      [OPT.SERVER_ID, ipOpt(cfg.serverIp)],
      [OPT.MESSAGE, Buffer.from(why.slice(0, 255), 'latin1')],
    ],
  });
  return { kind: 'reply', type: DHCP.NAK, message, dstIp: '255.255.255.255', broadcast: true };
}
