import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../../shared/clock.ts';
import type { HostSubnet } from '../../protocol/vms.ts';
import { buildDhcp, DHCP, ipOpt, messageType, OPT, parseDhcp } from './dhcp.ts';
import { BROADCAST_MAC, buildUdpFrame, internetChecksum, macBytes, parseArp, parseFrame, ETHERTYPE_ARP } from './ethernet.ts';
import { Segment, type Verdict } from './segment.ts';

const SUBNET_A: HostSubnet = { uuid: 'aaaa', name: 'A', vlanId: 10, cidr: '10.10.0.0/24', gateway: '10.10.0.1', dns: ['10.10.0.53'] };
const SUBNET_B: HostSubnet = { uuid: 'bbbb', name: 'B', vlanId: 20, cidr: null, gateway: null, dns: [] };
const M1 = '52:54:00:00:00:01';
const M2 = '52:54:00:00:00:02';

function eth(dst: string, src: string, type = 0x0800, body = Buffer.alloc(46)): Buffer {
  const h = Buffer.alloc(14);
  macBytes(dst).copy(h, 0);
  macBytes(src).copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, body]);
}

function tagged(dst: string, src: string, vlan: number): Buffer {
  const b = eth(dst, src);
  return Buffer.concat([b.subarray(0, 12), Buffer.from([0x81, 0x00, vlan >> 8, vlan & 0xff]), b.subarray(12)]);
}

function dhcpFrame(src: string, type: number, extra: [number, Uint8Array][] = [], o: { chaddr?: string; srcPort?: number; dstPort?: number } = {}): Buffer {
  const payload = buildDhcp({ op: 1, xid: 42, chaddr: o.chaddr ?? src, options: [[OPT.MESSAGE_TYPE, Uint8Array.of(type)], ...extra] });
  return buildUdpFrame({ srcMac: src, dstMac: BROADCAST_MAC, srcIp: '0.0.0.0', dstIp: '255.255.255.255', srcPort: o.srcPort ?? 68, dstPort: o.dstPort ?? 67, payload });
}

function arpRequest(src: string, srcIp: string, targetIp: string): Buffer {
  const p = Buffer.alloc(28);
  p.writeUInt16BE(1, 0);
  p.writeUInt16BE(0x0800, 2);
  p[4] = 6;
  p[5] = 4;
  p.writeUInt16BE(1, 6);
  macBytes(src).copy(p, 8);
  Buffer.from(srcIp.split('.').map(Number)).copy(p, 14);
  Buffer.from(targetIp.split('.').map(Number)).copy(p, 24);
  return eth(BROADCAST_MAC, src, ETHERTYPE_ARP, Buffer.concat([p, Buffer.alloc(18)]));
}

function seg(subnet = SUBNET_A): Segment {
  const s = new Segment(subnet, new VirtualClock());
  s.addPort('vm:1', 'local');
  s.addPort('vm:2', 'local');
  s.addPort('tunnel:h2', 'tunnel');
  return s;
}

function answered(v: Verdict): Buffer {
  assert.equal(v.kind, 'answer', JSON.stringify(v));
  return v.kind === 'answer' ? v.frames[0]! : Buffer.alloc(0);
}

test('DHCP on a subnet with IPAM is answered on the port it came from and is not forwarded anywhere', () => {
  const s = seg();
  s.setReservation(M1, '10.10.0.11');
  const offerFrame = answered(s.receive('vm:1', dhcpFrame(M1, DHCP.DISCOVER)));
  const f = parseFrame(offerFrame)!;
  assert.equal(f.dst, M1, 'unicast to chaddr (no BROADCAST flag)');
  assert.equal(f.src, s.dhcpServer!.mac);
  assert.equal(f.ipv4!.src, '10.10.0.254');
  assert.equal(f.ipv4!.dst, '10.10.0.11');
  assert.deepEqual([f.ipv4!.udp!.srcPort, f.ipv4!.udp!.dstPort], [67, 68]);
  assert.equal(internetChecksum(offerFrame.subarray(14, 34)), 0, 'IPv4 header checksum verifies');
  assert.equal(messageType(parseDhcp(f.ipv4!.udp!.payload)), DHCP.OFFER);
  const ack = answered(s.receive('vm:1', dhcpFrame(M1, DHCP.REQUEST, [[OPT.REQUESTED_IP, ipOpt('10.10.0.11')], [OPT.SERVER_ID, ipOpt('10.10.0.254')], [OPT.HOSTNAME, Buffer.from('vm-one')]])));
  assert.equal(messageType(parseDhcp(parseFrame(ack)!.ipv4!.udp!.payload)), DHCP.ACK);
  assert.deepEqual(s.leaseList().map((l) => [l.mac, l.ip, l.state, l.hostname, l.expiresAt]), [[M1, '10.10.0.11', 'bound', 'vm-one', 3_600_000]]);
  assert.equal(s.receive('vm:1', dhcpFrame(M1, DHCP.RELEASE)).kind, 'drop');
  assert.equal(s.leaseList()[0]!.state, 'released');
});

test('an unknown MAC is not answered; a chaddr other than the sender is not answered; a REQUEST for a wrong address is NAKed', () => {
  const s = seg();
  s.setReservation(M1, '10.10.0.11');
  assert.deepEqual(s.receive('vm:2', dhcpFrame(M2, DHCP.DISCOVER)), { kind: 'drop', reason: 'dhcp-unanswered', detail: `no reservation for ${M2}` });
  const spoof = s.receive('vm:2', dhcpFrame(M2, DHCP.DISCOVER, [], { chaddr: M1 }));
  assert.equal(spoof.kind === 'drop' && spoof.reason, 'dhcp-unanswered');
  const nak = answered(s.receive('vm:1', dhcpFrame(M1, DHCP.REQUEST, [[OPT.REQUESTED_IP, ipOpt('10.10.0.99')]])));
  assert.equal(parseFrame(nak)!.dst, BROADCAST_MAC);
  assert.equal(messageType(parseDhcp(parseFrame(nak)!.ipv4!.udp!.payload)), DHCP.NAK);
  s.setReservation(M1, null);
  assert.equal(s.receive('vm:1', dhcpFrame(M1, DHCP.DISCOVER)).kind, 'drop');
  s.setReservation(M1, '10.20.0.5'); // outside the subnet: never offered
  assert.equal(s.receive('vm:1', dhcpFrame(M1, DHCP.DISCOVER)).kind, 'drop');
});

test('rogue DHCP: server messages (UDP source port 67) from a VM port are dropped on a subnet with IPAM', () => {
  const s = seg();
  const offer = dhcpFrame(M2, DHCP.OFFER, [], { srcPort: 67, dstPort: 68 });
  assert.equal(s.receive('vm:2', offer).kind === 'drop' && (s.receive('vm:2', offer) as { reason: string }).reason, 'rogue-dhcp');
  assert.equal((s.receive('tunnel:h2', offer) as { reason: string }).reason, 'dhcp-from-tunnel');
  assert.equal((s.receive('tunnel:h2', dhcpFrame(M2, DHCP.DISCOVER)) as { reason: string }).reason, 'dhcp-from-tunnel');
});

test('a subnet without IPAM answers no DHCP: client and server messages are switched like any frame', () => {
  const s = seg(SUBNET_B);
  s.setReservation(M1, '10.10.0.11');
  assert.deepEqual(s.receive('vm:1', dhcpFrame(M1, DHCP.DISCOVER)), { kind: 'forward', ports: ['vm:2', 'tunnel:h2'] });
  assert.deepEqual(s.receive('vm:2', dhcpFrame(M2, DHCP.OFFER, [], { srcPort: 67, dstPort: 68 })), { kind: 'forward', ports: ['vm:1', 'tunnel:h2'] });
  assert.equal(s.dhcpServer, undefined);
});

test('the switch answers ARP for its DHCP server address (a client renews by unicast); other ARP is switched', () => {
  const s = seg();
  const reply = answered(s.receive('vm:1', arpRequest(M1, '10.10.0.11', '10.10.0.254')));
  const f = parseFrame(reply)!;
  assert.equal(f.dst, M1);
  const arp = parseArp(f.payload)!;
  assert.deepEqual([arp.op, arp.senderIp, arp.senderMac, arp.targetIp, arp.targetMac], [2, '10.10.0.254', s.dhcpServer!.mac, '10.10.0.11', M1]);
  assert.deepEqual(s.receive('vm:1', arpRequest(M1, '10.10.0.11', '10.10.0.12')), { kind: 'forward', ports: ['vm:2', 'tunnel:h2'] });
});

test('guest VLAN tags: a tagged frame is dropped, whatever VLAN it names (its own subnet\'s too)', () => {
  const s = seg();
  assert.deepEqual(s.receive('vm:1', tagged(BROADCAST_MAC, M1, 20)), { kind: 'drop', reason: 'tagged', detail: 'VLAN 20' });
  assert.deepEqual(s.receive('vm:1', tagged(BROADCAST_MAC, M1, 10)), { kind: 'drop', reason: 'tagged', detail: 'VLAN 10' });
  assert.equal((s.receive('tunnel:h2', tagged(BROADCAST_MAC, M1, 10)) as { reason: string }).reason, 'tagged');
});

test('isolation: two segments share no ports, so a frame of one never comes out of the other', () => {
  const a = seg(SUBNET_A);
  const b = new Segment(SUBNET_B, new VirtualClock());
  b.addPort('vm:9', 'local');
  b.addPort('tunnel:h2', 'tunnel');
  const outs = new Set<string>();
  for (const frame of [eth(BROADCAST_MAC, M1), eth(M2, M1), eth('01:00:5e:00:00:01', M1)]) {
    const v = a.receive('vm:1', frame);
    if (v.kind === 'forward') v.ports.forEach((p) => outs.add(p));
  }
  assert.ok(!outs.has('vm:9'));
  // a port of B used on A is unknown there
  assert.deepEqual(a.receive('vm:9', eth(BROADCAST_MAC, M2)), { kind: 'drop', reason: 'unknown-port' });
});

test('runts, group source MACs and unknown ports are dropped', () => {
  const s = seg();
  assert.equal((s.receive('vm:1', Buffer.alloc(10)) as { reason: string }).reason, 'runt');
  assert.equal((s.receive('vm:1', eth(BROADCAST_MAC, '01:00:5e:00:00:01')) as { reason: string }).reason, 'bad-source');
  assert.equal((s.receive('vm:1', Buffer.alloc(70_000)) as { reason: string }).reason, 'oversize');
});
