/**
 * @module
 * One subnet's L2 segment on one host: what happens to each frame that arrives on one of its
 * ports (a local VM NIC or the tunnel from another host). A segment knows only its own ports,
 * so a frame can never leave by another subnet's port: isolation is by construction, not by
 * trusting a tag the guest wrote.
 *
 * A frame from a local port, in order:
 *  1. runt (< 14 bytes) or oversize (> 64 KiB): dropped;
 *  2. it carries an 802.1Q/802.1ad tag: dropped (`tagged`). A VM NIC is an access port of its
 *     subnet; a guest's own tag would otherwise name a VLAN it does not belong to;
 *  3. a group (multicast) source MAC: dropped (no NIC sends from one);
 *  4. on a subnet with IPAM: a DHCP server message (UDP source port 67) is dropped (`rogue-dhcp`:
 *     only the switch answers DHCP there); a DHCP client message (UDP 68 → 67) is answered here,
 *     on this host, and goes nowhere else; an ARP request for the DHCP server's address is
 *     answered (a client renews by unicast to it);
 *  5. otherwise the learning switch forwards it (learning-switch.ts).
 * A frame from a tunnel: tagged or DHCP (either port 67 or 68 on a subnet with IPAM) is dropped,
 * since the sending host never sends those; the rest is forwarded to local ports (split horizon).
 */
import type { Clock } from '../../../shared/clock.ts';
import type { HostSubnet } from '../../protocol/vms.ts';
import {
  answerDhcp, dhcpServerIp, DHCP, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, DhcpParseError, hostname, inCidr, parseCidr, parseDhcp,
  type Cidr, type Reservation,
} from './dhcp.ts';
import {
  ARP_REQUEST, BROADCAST_MAC, buildArpReply, buildUdpFrame, ETH_HEADER, ETH_MAX_FRAME, ETHERTYPE_ARP, isGroupMac, ipv4ToInt, parseArp,
  parseFrame, type EthernetFrame,
} from './ethernet.ts';
import { LearningSwitch, type LearningSwitchOptions, type PortKind } from './learning-switch.ts';

export type DropReason =
  | 'unknown-port'
  | 'runt'
  | 'oversize'
  | 'tagged'
  | 'bad-source'
  | 'rogue-dhcp'
  | 'dhcp-from-tunnel'
  | 'dhcp-unanswered'
  | 'no-destination';

export type Verdict =
  /** Send the frame as it came to these ports. */
  | { kind: 'forward'; ports: string[] }
  /** The switch answered: send these frames back to the port the frame came from. */
  | { kind: 'answer'; frames: Buffer[]; what: string }
  | { kind: 'drop'; reason: DropReason; detail?: string };

export type LeaseState = 'offered' | 'bound' | 'released' | 'declined';

export interface LeaseStatus {
  mac: string;
  ip: string;
  state: LeaseState;
  hostname?: string;
  /** When the bound lease ends (clock ms), for `bound`. */
  expiresAt?: number;
  at: number;
}

export interface SegmentOptions extends LearningSwitchOptions {
  /** DHCP lease time, seconds (default one hour: a changed reservation reaches the guest at its renewal). */
  leaseSeconds?: number;
}

export const DEFAULT_LEASE_SECONDS = 3600;

export class Segment {
  readonly switch: LearningSwitch;
  private subnetValue: HostSubnet;
  private cidr: Cidr | undefined;
  private serverIp: string | undefined;
  private serverMac: string | undefined;
  private readonly reservations = new Map<string, string>();
  private readonly leases = new Map<string, LeaseStatus>();
  readonly leaseSeconds: number;

  constructor(subnet: HostSubnet, private readonly clock: Clock, o: SegmentOptions = {}) {
    this.switch = new LearningSwitch(clock, o);
    this.leaseSeconds = o.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
    this.subnetValue = subnet;
    this.update(subnet);
  }

  get subnet(): HostSubnet {
    return this.subnetValue;
  }

  /** The subnet's DHCP server address and MAC, when it has IPAM. */
  get dhcpServer(): { ip: string; mac: string } | undefined {
    return this.serverIp && this.serverMac ? { ip: this.serverIp, mac: this.serverMac } : undefined;
  }

  /** Takes a changed subnet (same uuid): CIDR, gateway, DNS. Ports and learned MACs stay. */
  update(subnet: HostSubnet): void {
    this.subnetValue = subnet;
    this.cidr = subnet.cidr === null ? undefined : parseCidr(subnet.cidr);
    this.serverIp = this.cidr ? dhcpServerIp(this.cidr, subnet.gateway) : undefined;
    // a locally administered unicast MAC (02:…) named after the server address: the same on every host,
    // so a guest that moves keeps a valid ARP entry for its DHCP server
    this.serverMac = this.serverIp ? '02:00:' + (this.serverIp.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join(':')) : undefined;
  }

  addPort(id: string, kind: PortKind): void {
    this.switch.addPort(id, kind);
  }

  removePort(id: string): void {
    this.switch.removePort(id);
  }

  /** IPAM's address for a NIC (null: none; its DHCP goes unanswered). */
  setReservation(mac: string, ip: string | null): void {
    if (ip === null) {
      this.reservations.delete(mac);
      this.leases.delete(mac);
    } else {
      this.reservations.set(mac, ip);
      const l = this.leases.get(mac);
      if (l && l.ip !== ip) this.leases.delete(mac);
    }
  }

  reservationOf(mac: string): Reservation | undefined {
    const ip = this.reservations.get(mac);
    if (ip === undefined || !this.cidr || !inCidr(ip, this.cidr)) return undefined;
    return { ip, prefix: this.cidr.prefix, gateway: this.subnetValue.gateway, dns: this.subnetValue.dns };
  }

  leaseList(): LeaseStatus[] {
    return [...this.leases.values()];
  }

  receive(inPort: string, frame: Buffer): Verdict {
    const kind = this.switch.portKind(inPort);
    if (kind === undefined) return { kind: 'drop', reason: 'unknown-port' };
    if (frame.length < ETH_HEADER) return { kind: 'drop', reason: 'runt' };
    if (frame.length > ETH_MAX_FRAME) return { kind: 'drop', reason: 'oversize' };
    const f = parseFrame(frame);
    if (!f) return { kind: 'drop', reason: 'runt' };
    if (f.vlanId !== undefined) return { kind: 'drop', reason: 'tagged', detail: `VLAN ${f.vlanId}` };
    if (isGroupMac(f.src)) return { kind: 'drop', reason: 'bad-source', detail: f.src };
    if (this.cidr) {
      const udp = f.ipv4?.udp;
      if (kind === 'tunnel') {
        if (udp && (udp.srcPort === DHCP_SERVER_PORT || udp.dstPort === DHCP_SERVER_PORT)) return { kind: 'drop', reason: 'dhcp-from-tunnel' };
      } else {
        if (udp?.srcPort === DHCP_SERVER_PORT) return { kind: 'drop', reason: 'rogue-dhcp', detail: `from ${f.src}` };
        if (udp?.dstPort === DHCP_SERVER_PORT && udp.srcPort === DHCP_CLIENT_PORT) return this.dhcp(inPort, f, udp.payload);
        if (f.etherType === ETHERTYPE_ARP) {
          const arp = parseArp(f.payload);
          if (arp?.op === ARP_REQUEST && arp.targetIp === this.serverIp && this.serverMac) {
            this.switch.learn(f.src, inPort);
            return { kind: 'answer', frames: [buildArpReply(arp, this.serverMac)], what: `ARP reply for ${this.serverIp}` };
          }
        }
      }
    }
    const ports = this.switch.forward(inPort, f.src, f.dst);
    return ports.length > 0 ? { kind: 'forward', ports } : { kind: 'drop', reason: 'no-destination' };
  }

  private dhcp(inPort: string, f: EthernetFrame, payload: Buffer): Verdict {
    this.switch.learn(f.src, inPort);
    let req;
    try {
      req = parseDhcp(payload);
    } catch (e) {
      if (e instanceof DhcpParseError) return { kind: 'drop', reason: 'dhcp-unanswered', detail: `malformed: ${e.message}` };
      throw e;
    }
    // a NIC asks for itself: another MAC's address is not given to it
    if (req.chaddr !== f.src) return { kind: 'drop', reason: 'dhcp-unanswered', detail: `chaddr ${req.chaddr} is not the sender ${f.src}` };
    const serverIp = this.serverIp!;
    const r = this.reservationOf(req.chaddr);
    const a = answerDhcp(req, r, { serverIp, leaseSeconds: this.leaseSeconds });
    const now = this.clock.now();
    switch (a.kind) {
      case 'silent':
        return { kind: 'drop', reason: 'dhcp-unanswered', detail: a.reason };
      case 'noted': {
        const l = this.leases.get(req.chaddr);
        if (l) Object.assign(l, { state: a.type === DHCP.RELEASE ? 'released' : 'declined', at: now });
        return { kind: 'drop', reason: 'dhcp-unanswered', detail: a.type === DHCP.RELEASE ? 'RELEASE noted' : 'DECLINE noted' };
      }
      case 'reply': {
        if (r && a.type !== DHCP.NAK) {
          const l: LeaseStatus = { mac: req.chaddr, ip: r.ip, state: a.type === DHCP.ACK ? 'bound' : 'offered', at: now };
          const name = hostname(req) ?? this.leases.get(req.chaddr)?.hostname;
          if (name !== undefined) l.hostname = name;
          if (a.type === DHCP.ACK) l.expiresAt = now + this.leaseSeconds * 1000;
          this.leases.set(req.chaddr, l);
        }
        const dstMac = a.broadcast ? BROADCAST_MAC : req.chaddr;
        const frame = buildUdpFrame({
          srcMac: this.serverMac!, dstMac, srcIp: serverIp, dstIp: a.dstIp, srcPort: DHCP_SERVER_PORT, dstPort: DHCP_CLIENT_PORT, payload: a.message,
        });
        const names: Record<number, string> = { [DHCP.OFFER]: 'OFFER', [DHCP.ACK]: 'ACK', [DHCP.NAK]: 'NAK' };
        return { kind: 'answer', frames: [frame], what: `DHCP ${names[a.type]} ${r?.ip ?? ''} to ${req.chaddr}`.replace('  ', ' ') };
      }
    }
  }
}

/** Whether `ip` is a dotted IPv4 address (for callers that validate before setting a reservation). */
export function isIpv4(ip: string): boolean {
  return ipv4ToInt(ip) !== undefined;
}
