import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  answerDhcp, buildDhcp, clientId, DHCP, dhcpServerIp, hostname, inCidr, ipOpt, messageType, OPT, paramRequestList, parseCidr, parseDhcp,
  requestedIp, serverId, type DhcpPacket, type Reservation,
} from './dhcp.ts';
import { parseFrame } from './ethernet.ts';

const MAC = '52:54:00:12:34:56';
const CFG = { serverIp: '10.10.0.254', leaseSeconds: 3600 };
const RES: Reservation = { ip: '10.10.0.11', prefix: 24, gateway: '10.10.0.1', dns: ['10.10.0.53', '1.1.1.1'] };

function request(type: number, extra: [number, Uint8Array][] = [], o: { ciaddr?: string; flags?: number; giaddr?: string } = {}): DhcpPacket {
  return parseDhcp(buildDhcp({ op: 1, xid: 0x1234abcd, chaddr: MAC, ...o, options: [[OPT.MESSAGE_TYPE, Uint8Array.of(type)], ...extra] }));
}

function optionsOf(m: Buffer): DhcpPacket {
  return parseDhcp(m);
}

test('a DISCOVER captured from busybox udhcpc (QEMU stream netdev) parses: type, chaddr, hostname, parameter list', () => {
  const frame = Buffer.from(readFileSync(new URL('./fixtures/udhcpc-discover.hex', import.meta.url), 'utf8').trim(), 'hex');
  const f = parseFrame(frame)!;
  assert.equal(f.dst, 'ff:ff:ff:ff:ff:ff');
  assert.equal(f.ipv4?.src, '0.0.0.0');
  assert.equal(f.ipv4?.dst, '255.255.255.255');
  assert.deepEqual([f.ipv4?.udp?.srcPort, f.ipv4?.udp?.dstPort], [68, 67]);
  const p = parseDhcp(f.ipv4.udp!.payload);
  assert.equal(messageType(p), DHCP.DISCOVER);
  assert.equal(p.chaddr, f.src);
  assert.equal(p.op, 1);
  assert.equal(clientId(p)?.[0], 1, 'udhcpc sends a client id of type 1 (Ethernet) + its MAC');
  assert.equal(hostname(p), '525400123456', 'option 12 from udhcpc -x hostname:…');
  for (const o of [OPT.SUBNET_MASK, OPT.ROUTER, OPT.DNS]) assert.ok(paramRequestList(p).includes(o), `asks for option ${o}`);
  // and the switch offers the reservation to it
  const a = answerDhcp(p, RES, CFG);
  assert.equal(a.kind, 'reply');
  assert.equal(a.kind === 'reply' && messageType(parseDhcp(a.message)), DHCP.OFFER);
});

test('OFFER and ACK carry the reservation: yiaddr, mask, router, DNS, lease time with T1 = 1/2 and T2 = 7/8, server id', () => {
  const offer = answerDhcp(request(DHCP.DISCOVER), RES, CFG);
  assert.equal(offer.kind, 'reply');
  if (offer.kind !== 'reply') return;
  const o = optionsOf(offer.message);
  assert.equal(o.op, 2);
  assert.equal(o.xid, 0x1234abcd);
  assert.equal(o.chaddr, MAC);
  assert.equal(o.yiaddr, '10.10.0.11');
  assert.equal(messageType(o), DHCP.OFFER);
  assert.deepEqual(o.options.get(OPT.SUBNET_MASK), ipOpt('255.255.255.0'));
  assert.deepEqual(o.options.get(OPT.ROUTER), ipOpt('10.10.0.1'));
  assert.deepEqual(o.options.get(OPT.DNS), ipOpt('10.10.0.53', '1.1.1.1'));
  assert.equal(o.options.get(OPT.LEASE_TIME)?.readUInt32BE(0), 3600);
  assert.equal(o.options.get(OPT.RENEWAL_TIME)?.readUInt32BE(0), 1800);
  assert.equal(o.options.get(OPT.REBINDING_TIME)?.readUInt32BE(0), 3150);
  assert.equal(serverId(o), '10.10.0.254');
  assert.equal(offer.dstIp, '10.10.0.11', 'no BROADCAST flag: unicast to yiaddr at chaddr');
  assert.equal(offer.broadcast, false);
  assert.ok(offer.message.length >= 300, 'padded to BOOTP minimum');

  const ack = answerDhcp(request(DHCP.REQUEST, [[OPT.REQUESTED_IP, ipOpt('10.10.0.11')], [OPT.SERVER_ID, ipOpt('10.10.0.254')]], { flags: 0x8000 }), RES, CFG);
  assert.equal(ack.kind, 'reply');
  if (ack.kind !== 'reply') return;
  assert.equal(messageType(parseDhcp(ack.message)), DHCP.ACK);
  assert.equal(ack.broadcast, true, 'BROADCAST flag set: broadcast');
  assert.equal(ack.dstIp, '255.255.255.255');
});

test('REQUEST: INIT-REBOOT and RENEWING are ACKed for the reservation, NAKed for another address; another server chosen: silence', () => {
  const reboot = answerDhcp(request(DHCP.REQUEST, [[OPT.REQUESTED_IP, ipOpt('10.10.0.11')]]), RES, CFG);
  assert.equal(reboot.kind === 'reply' && reboot.type, DHCP.ACK);
  const renew = answerDhcp(request(DHCP.REQUEST, [], { ciaddr: '10.10.0.11' }), RES, CFG);
  assert.equal(renew.kind === 'reply' && renew.type, DHCP.ACK);
  assert.equal(renew.kind === 'reply' && renew.dstIp, '10.10.0.11', 'to ciaddr');
  const wrong = answerDhcp(request(DHCP.REQUEST, [[OPT.REQUESTED_IP, ipOpt('10.10.0.99')]]), RES, CFG);
  assert.equal(wrong.kind, 'reply');
  if (wrong.kind === 'reply') {
    assert.equal(wrong.type, DHCP.NAK);
    assert.equal(wrong.broadcast, true, 'a NAK is broadcast (RFC 2131 §4.1)');
    const n = parseDhcp(wrong.message);
    assert.equal(n.yiaddr, '0.0.0.0');
    assert.equal(n.options.get(OPT.LEASE_TIME), undefined);
    assert.match(n.options.get(OPT.MESSAGE)!.toString(), /10\.10\.0\.99/);
  }
  const renewWrong = answerDhcp(request(DHCP.REQUEST, [], { ciaddr: '10.10.0.77' }), RES, CFG);
  assert.equal(renewWrong.kind === 'reply' && renewWrong.type, DHCP.NAK);
  const other = answerDhcp(request(DHCP.REQUEST, [[OPT.REQUESTED_IP, ipOpt('10.10.0.11')], [OPT.SERVER_ID, ipOpt('10.10.0.2')]]), RES, CFG);
  assert.equal(other.kind, 'silent');
});

test('an unknown MAC gets no answer, to DISCOVER or REQUEST', () => {
  assert.equal(answerDhcp(request(DHCP.DISCOVER), undefined, CFG).kind, 'silent');
  assert.equal(answerDhcp(request(DHCP.REQUEST, [[OPT.REQUESTED_IP, ipOpt('10.10.0.11')]]), undefined, CFG).kind, 'silent');
});

test('RELEASE and DECLINE are noted and get no reply; relayed, BOOTP and reply messages are not answered', () => {
  assert.deepEqual(answerDhcp(request(DHCP.RELEASE, [[OPT.SERVER_ID, ipOpt(CFG.serverIp)]], { ciaddr: '10.10.0.11' }), RES, CFG), { kind: 'noted', type: DHCP.RELEASE });
  assert.deepEqual(answerDhcp(request(DHCP.DECLINE, [[OPT.REQUESTED_IP, ipOpt('10.10.0.11')]]), RES, CFG), { kind: 'noted', type: DHCP.DECLINE });
  assert.equal(answerDhcp(request(DHCP.DISCOVER, [], { giaddr: '10.0.0.1' }), RES, CFG).kind, 'silent');
  const bootp = parseDhcp(buildDhcp({ op: 1, xid: 1, chaddr: MAC, options: [] }));
  assert.equal(answerDhcp(bootp, RES, CFG).kind, 'silent');
  assert.equal(answerDhcp(request(DHCP.OFFER), RES, CFG).kind, 'silent');
});

test('INFORM is ACKed with configuration and no lease time or address', () => {
  const a = answerDhcp(request(DHCP.INFORM, [], { ciaddr: '10.10.0.11' }), RES, CFG);
  assert.equal(a.kind, 'reply');
  if (a.kind !== 'reply') return;
  const p = parseDhcp(a.message);
  assert.equal(p.yiaddr, '0.0.0.0');
  assert.equal(p.options.get(OPT.LEASE_TIME), undefined);
  assert.deepEqual(p.options.get(OPT.ROUTER), ipOpt('10.10.0.1'));
});

test('codec: round trip of every field and options (50, 54, 61, 12, 55); repeated options concatenate; malformed input is refused', () => {
  const b = buildDhcp({
    op: 1, xid: 0xdeadbeef, secs: 7, flags: 0x8000, ciaddr: '1.2.3.4', yiaddr: '5.6.7.8', siaddr: '9.10.11.12', giaddr: '0.0.0.0', chaddr: MAC,
    options: [
      [OPT.MESSAGE_TYPE, Uint8Array.of(DHCP.REQUEST)],
      [OPT.REQUESTED_IP, ipOpt('10.10.0.11')],
      [OPT.SERVER_ID, ipOpt('10.10.0.254')],
      [OPT.CLIENT_ID, Uint8Array.of(1, 0x52, 0x54, 0, 0x12, 0x34, 0x56)],
      [OPT.HOSTNAME, Buffer.from('web-1')],
      [OPT.PARAM_REQUEST_LIST, Uint8Array.of(1, 3, 6, 15)],
      [OPT.PARAM_REQUEST_LIST, Uint8Array.of(51)],
    ],
  });
  const p = parseDhcp(b);
  assert.deepEqual([p.op, p.xid, p.secs, p.flags, p.ciaddr, p.yiaddr, p.siaddr, p.giaddr, p.chaddr], [1, 0xdeadbeef, 7, 0x8000, '1.2.3.4', '5.6.7.8', '9.10.11.12', '0.0.0.0', MAC]);
  assert.equal(requestedIp(p), '10.10.0.11');
  assert.equal(serverId(p), '10.10.0.254');
  assert.deepEqual([...clientId(p)!], [1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]);
  assert.equal(hostname(p), 'web-1');
  assert.deepEqual(paramRequestList(p), [1, 3, 6, 15, 51]);
  assert.throws(() => parseDhcp(b.subarray(0, 200)), /too short/);
  const noCookie = Buffer.from(b);
  noCookie.writeUInt32BE(0, 236);
  assert.throws(() => parseDhcp(noCookie), /cookie/);
  const overrun = Buffer.from(b.subarray(0, 240 + 3));
  overrun[240] = OPT.HOSTNAME;
  overrun[241] = 50;
  assert.throws(() => parseDhcp(overrun), /past the end/);
});

test('CIDR: parsing, membership, the DHCP server address (last usable, or the one below when it is the gateway)', () => {
  const c = parseCidr('10.10.0.0/24')!;
  assert.deepEqual(c, { network: '10.10.0.0', prefix: 24 });
  assert.equal(parseCidr('10.10.0.1/24'), undefined, 'host bits set');
  assert.equal(parseCidr('10.10.0.0/33'), undefined);
  assert.equal(parseCidr('nonsense'), undefined);
  assert.ok(inCidr('10.10.0.200', c));
  assert.ok(!inCidr('10.10.1.1', c));
  assert.equal(dhcpServerIp(c, '10.10.0.1'), '10.10.0.254');
  assert.equal(dhcpServerIp(c, '10.10.0.254'), '10.10.0.253');
  assert.equal(dhcpServerIp(parseCidr('192.168.4.0/22')!, null), '192.168.7.254');
});
