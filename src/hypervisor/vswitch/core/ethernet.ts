/**
 * @module
 * Ethernet II frames as the virtual switch sees them (no preamble, no FCS: what QEMU's stream
 * netdev carries), and just enough IPv4/UDP to spot and answer DHCP. Multi-byte fields are
 * big-endian (network order) everywhere. [IEEE 802.3 clause 3; IEEE 802.1Q §9.6; RFC 791; RFC 768]
 */

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
/** A C-tag (IEEE 802.1Q). */
export const ETHERTYPE_VLAN = 0x8100;
/** An S-tag (IEEE 802.1ad, Q-in-Q). */
export const ETHERTYPE_QINQ = 0x88a8;
export const IPPROTO_UDP = 17;
/** Destination and source MAC, and the ethertype. */
export const ETH_HEADER = 14;
/** No Ethernet frame (without FCS) is shorter (a shorter one is padded by its sender). */
export const ETH_MIN_FRAME = 60;
/** The largest frame the switch carries: 64 KiB (QEMU's stream netdev accepts up to 68 KiB; virtio-net's largest without GSO is 65550). */
export const ETH_MAX_FRAME = 65_536;

export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';

export interface Udp {
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

export interface Ipv4 {
  src: string;
  dst: string;
  protocol: number;
  /** Present when the packet is UDP, whole (not a fragment) and its lengths agree. */
  udp?: Udp;
}

export interface EthernetFrame {
  dst: string;
  src: string;
  /** The 802.1Q VLAN id when the frame carries a tag (C-tag or S-tag). */
  vlanId?: number;
  /** The ethertype after any tags. */
  etherType: number;
  /** The bytes after the (last) ethertype. */
  payload: Buffer;
  ipv4?: Ipv4;
}

export function macToString(b: Uint8Array, at = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push((b[at + i] ?? 0).toString(16).padStart(2, '0'));
  return parts.join(':');
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** A MAC in its canonical form (lower case, colons), or undefined when `s` is not one. */
export function normalizeMac(s: string): string | undefined {
  const m = s.trim().toLowerCase().replace(/-/g, ':');
  return MAC_RE.test(m) ? m : undefined;
}

export function macBytes(mac: string): Buffer {
  return Buffer.from(mac.replace(/:/g, ''), 'hex');
}

/** Group addresses (broadcast included) have the I/G bit, the lowest bit of the first octet, set. */
export function isGroupMac(mac: string): boolean {
  return (parseInt(mac.slice(0, 2), 16) & 1) === 1;
}

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** An IPv4 address as a 32-bit unsigned number, or undefined when `s` is not one. */
export function ipv4ToInt(s: string): number | undefined {
  const m = IPV4_RE.exec(s.trim());
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return undefined;
    n = n * 256 + o;
  }
  return n;
}

export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function ipAt(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** Parses a frame; undefined when it is shorter than an Ethernet header (or its tags). */
export function parseFrame(b: Buffer): EthernetFrame | undefined {
  if (b.length < ETH_HEADER) return undefined;
  let at = 12;
  let etherType = b.readUInt16BE(at);
  let vlanId: number | undefined;
  // [802.1Q §9.6] a tag is TPID (2 bytes) + TCI (PCP 3 bits, DEI 1 bit, VID 12 bits); Q-in-Q stacks them
  while (etherType === ETHERTYPE_VLAN || etherType === ETHERTYPE_QINQ) {
    if (b.length < at + 6) return undefined;
    vlanId ??= b.readUInt16BE(at + 2) & 0x0fff;
    at += 4;
    etherType = b.readUInt16BE(at);
  }
  const payload = b.subarray(at + 2);
  const f: EthernetFrame = { dst: macToString(b, 0), src: macToString(b, 6), etherType, payload };
  if (vlanId !== undefined) f.vlanId = vlanId;
  if (etherType === ETHERTYPE_IPV4) {
    const ip = parseIpv4(payload);
    if (ip) f.ipv4 = ip;
  }
  return f;
}

function parseIpv4(p: Buffer): Ipv4 | undefined {
  // [RFC 791 §3.1]
  if (p.length < 20 || p[0]! >> 4 !== 4) return undefined;
  const ihl = (p[0]! & 0x0f) * 4;
  const total = p.readUInt16BE(2);
  if (ihl < 20 || total < ihl || total > p.length) return undefined;
  const ip: Ipv4 = { src: ipAt(p, 12), dst: ipAt(p, 16), protocol: p[9]! };
  const fragmented = (p.readUInt16BE(6) & 0x3fff) !== 0; // MF set or a fragment offset
  if (ip.protocol === IPPROTO_UDP && !fragmented && total >= ihl + 8) {
    const u = p.subarray(ihl, total);
    const len = u.readUInt16BE(4);
    if (len >= 8 && len <= u.length) ip.udp = { srcPort: u.readUInt16BE(0), dstPort: u.readUInt16BE(2), payload: u.subarray(8, len) };
  }
  return ip;
}

/** The Internet checksum: one's complement of the one's complement sum of 16-bit words. [RFC 1071] */
export function internetChecksum(...parts: Uint8Array[]): number {
  let sum = 0;
  let odd: number | undefined;
  for (const p of parts) {
    for (let i = 0; i < p.length; i++) {
      if (odd === undefined) odd = p[i]!;
      else {
        sum += (odd << 8) | p[i]!;
        odd = undefined;
      }
    }
  }
  if (odd !== undefined) sum += odd << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface UdpFrameSpec {
  srcMac: string;
  dstMac: string;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
  ttl?: number;
}

/** An untagged Ethernet II frame carrying one IPv4/UDP datagram, checksums filled in, padded to 60 bytes. */
export function buildUdpFrame(s: UdpFrameSpec): Buffer {
  const udpLen = 8 + s.payload.length;
  const ipLen = 20 + udpLen;
  const b = Buffer.alloc(Math.max(ETH_MIN_FRAME, ETH_HEADER + ipLen));
  macBytes(s.dstMac).copy(b, 0);
  macBytes(s.srcMac).copy(b, 6);
  b.writeUInt16BE(ETHERTYPE_IPV4, 12);
  const ip = b.subarray(ETH_HEADER, ETH_HEADER + 20);
  ip[0] = 0x45; // version 4, 5 words of header
  ip.writeUInt16BE(ipLen, 2);
  ip[8] = s.ttl ?? 64;
  ip[9] = IPPROTO_UDP;
  const src = ipv4ToInt(s.srcIp) ?? 0;
  const dst = ipv4ToInt(s.dstIp) ?? 0;
  ip.writeUInt32BE(src, 12);
  ip.writeUInt32BE(dst, 16);
  ip.writeUInt16BE(internetChecksum(ip), 10);
  const udp = b.subarray(ETH_HEADER + 20, ETH_HEADER + ipLen);
  udp.writeUInt16BE(s.srcPort, 0);
  udp.writeUInt16BE(s.dstPort, 2);
  udp.writeUInt16BE(udpLen, 4);
  Buffer.from(s.payload).copy(udp, 8);
  // [RFC 768] the checksum covers a pseudo-header: source, destination, zero, protocol, UDP length
  const pseudo = Buffer.alloc(12);
  pseudo.writeUInt32BE(src, 0);
  pseudo.writeUInt32BE(dst, 4);
  pseudo[9] = IPPROTO_UDP;
  pseudo.writeUInt16BE(udpLen, 10);
  const sum = internetChecksum(pseudo, udp);
  udp.writeUInt16BE(sum === 0 ? 0xffff : sum, 6);
  return b;
}

// ---- ARP [RFC 826], for Ethernet and IPv4 only --------------------------------------------------

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

export interface Arp {
  op: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

/** Parses an ARP payload (after the ethertype); undefined unless it is Ethernet/IPv4 ARP. */
export function parseArp(p: Buffer): Arp | undefined {
  if (p.length < 28 || p.readUInt16BE(0) !== 1 || p.readUInt16BE(2) !== ETHERTYPE_IPV4 || p[4] !== 6 || p[5] !== 4) return undefined;
  return { op: p.readUInt16BE(6), senderMac: macToString(p, 8), senderIp: ipAt(p, 14), targetMac: macToString(p, 18), targetIp: ipAt(p, 24) };
}

/** The reply to `req` from `mac` (which has the address `req` asked for), padded to 60 bytes. */
export function buildArpReply(req: Arp, mac: string): Buffer {
  const b = Buffer.alloc(ETH_MIN_FRAME);
  macBytes(req.senderMac).copy(b, 0);
  macBytes(mac).copy(b, 6);
  b.writeUInt16BE(ETHERTYPE_ARP, 12);
  const p = b.subarray(ETH_HEADER);
  p.writeUInt16BE(1, 0);
  p.writeUInt16BE(ETHERTYPE_IPV4, 2);
  p[4] = 6;
  p[5] = 4;
  p.writeUInt16BE(ARP_REPLY, 6);
  macBytes(mac).copy(p, 8);
  p.writeUInt32BE(ipv4ToInt(req.targetIp) ?? 0, 14);
  macBytes(req.senderMac).copy(p, 18);
  p.writeUInt32BE(ipv4ToInt(req.senderIp) ?? 0, 24);
  return b;
}
