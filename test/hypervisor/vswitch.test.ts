/**
 * The virtual switch across two hosts: two VirtualSwitch instances (host 1 on 127.102.0.1, host 2
 * on 127.102.0.2) linked by their mutual-TLS tunnel with `host` certificates from a cluster CA,
 * then real QEMU guests (TCG, 128 MiB, 1 vCPU; Debian's kernel + a busybox initramfs) whose NICs are
 * ports of the switches: DHCP answered from IPAM's reservations, pings across hosts within a
 * subnet, and nothing across subnets.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { memberIdentities } from '../../src/shared/identity.ts';
import { createCa, issueCert, type Pem } from '../../src/shared/tls.ts';
import type { HostNetwork, HostSubnet } from '../../src/hypervisor/protocol/vms.ts';
import { VSWITCH_TUNNEL_PORT } from '../../src/hypervisor/protocol/vms.ts';
import { VirtualSwitch, type SwitchTls } from '../../src/hypervisor/vswitch/node/virtual-switch.ts';
import { encodeStreamFrame, LengthPrefixedReader } from '../../src/hypervisor/vswitch/core/framing.ts';
import { macBytes, parseFrame } from '../../src/hypervisor/vswitch/core/ethernet.ts';
import { ensureGuestKit, TinyGuest } from '../drivers/tiny-guest.ts';

const H1 = '127.102.0.1';
const H2 = '127.102.0.2';
const A: HostSubnet = { uuid: '6f1c0a52-1d8e-4d8e-9a63-0000000000aa', name: 'subnet-a', vlanId: 10, cidr: '10.10.0.0/24', gateway: '10.10.0.1', dns: ['10.10.0.53'] };
const B: HostSubnet = { uuid: '6f1c0a52-1d8e-4d8e-9a63-0000000000bb', name: 'subnet-b', vlanId: 20, cidr: '10.20.0.0/24', gateway: '10.20.0.1', dns: [] };
const NET: HostNetwork = { subnets: [A, B], peers: [H1, H2] };

const dir = mkdtempSync(join(tmpdir(), 'cvg-vsw-'));
let ca: Pem;
const tls: Record<string, SwitchTls> = {};
const switches: VirtualSwitch[] = [];
const guests: TinyGuest[] = [];
const nics: FakeNic[] = [];
const logs: string[] = [];

function newSwitch(name: string): VirtualSwitch {
  const socketDir = join(dir, name);
  mkdirSync(socketDir, { recursive: true });
  const sw = new VirtualSwitch({ socketDir, log: (m) => logs.push(`${name}: ${m}`), backoff: { initialMs: 100, maxMs: 1000 } });
  switches.push(sw);
  return sw;
}

async function until(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${logs.slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const up = (sw: VirtualSwitch, peer: string): boolean => sw.stats().tunnels.some((t) => t.peer === peer && t.state === 'up') && true;

/** A NIC played by the test: a raw connection to a subnet's socket, speaking QEMU's stream framing. */
class FakeNic {
  readonly frames: Buffer[] = [];
  private readonly sock: Socket;
  readonly ready: Promise<void>;

  constructor(path: string) {
    this.sock = netConnect(path);
    const r = new LengthPrefixedReader(65_536);
    this.sock.on('data', (c: Buffer) => this.frames.push(...r.push(c)));
    this.ready = new Promise((res, rej) => this.sock.once('connect', () => res()).once('error', rej));
    nics.push(this);
  }

  send(frame: Buffer): void {
    this.sock.write(encodeStreamFrame(frame));
  }

  close(): void {
    this.sock.destroy();
  }
}

function frame(dst: string, src: string, marker: string): Buffer {
  const b = Buffer.alloc(60);
  macBytes(dst).copy(b, 0);
  macBytes(src).copy(b, 6);
  b.writeUInt16BE(0x88b5, 12); // IEEE local experimental ethertype
  b.write(marker, 14, 'latin1');
  return b;
}

let sw1: VirtualSwitch;
let sw2: VirtualSwitch;

before(async () => {
  ca = await createCa('vswitch test cluster');
  const m1 = await memberIdentities(ca, { serial: 'node-1', cvmIp: '127.102.1.1', hostIp: H1 });
  const m2 = await memberIdentities(ca, { serial: 'node-2', cvmIp: '127.102.1.2', hostIp: H2 });
  tls[H1] = { identity: m1.host, clusterCa: ca.cert };
  tls[H2] = { identity: m2.host, clusterCa: ca.cert };
  tls.cvm = { identity: m1.cvm, clusterCa: ca.cert };
  sw1 = newSwitch('h1');
  sw2 = newSwitch('h2');
  await sw1.configure(NET);
  await sw2.configure(NET);
  await sw1.listen(H1, tls[H1]);
  await sw2.listen(H2, tls[H2]);
  await until('both tunnels up', () => up(sw1, H2) && up(sw2, H1));
});

after(async () => {
  await Promise.all(guests.map((g) => g.kill()));
  for (const n of nics) n.close();
  await Promise.all(switches.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

test('the hosts link by mutual TLS with their host certificates; without one, or with another role or CA, no tunnel', async () => {
  await until('incoming tunnels named', () => sw1.stats().incoming.includes(H2) && sw2.stats().incoming.includes(H1));
  // no client certificate: the handshake fails
  const anon = tlsConnect({ host: H1, port: VSWITCH_TUNNEL_PORT, ca: [ca.cert] });
  const anonEnd = await new Promise<string>((r) => {
    anon.once('error', (e) => r(`error: ${e.message}`));
    anon.once('close', () => r('closed'));
  });
  assert.match(anonEnd, /error|closed/);
  // a certificate of this cluster, but a CVM's: closed once the handshake is done, never a tunnel
  const cvm = tlsConnect({ host: H1, port: VSWITCH_TUNNEL_PORT, ca: [ca.cert], cert: tls.cvm!.identity.cert, key: tls.cvm!.identity.key });
  await new Promise<void>((r) => cvm.once('close', () => r()).once('error', () => undefined));
  // a host certificate from another CA
  const other = await createCa('another cluster');
  const stranger = await issueCert(other, { cn: 'intruder', ou: 'host', ips: [H2], usage: 'both' });
  const s3 = tlsConnect({ host: H1, port: VSWITCH_TUNNEL_PORT, ca: [ca.cert], cert: stranger.cert, key: stranger.key });
  await new Promise<void>((r) => s3.once('close', () => r()).once('error', () => undefined));
  assert.deepEqual(sw1.stats().incoming, [H2], 'only host 2 has a tunnel into host 1');
  // a member host whose HELLO names another host than its certificate does: closed
  const liar = tlsConnect({ host: H1, port: VSWITCH_TUNNEL_PORT, ca: [ca.cert], cert: tls[H2]!.identity.cert, key: tls[H2]!.identity.key });
  await new Promise<void>((r) => liar.once('secureConnect', () => r()));
  const hello = Buffer.from('127.102.0.9', 'latin1');
  const msg = Buffer.alloc(6 + hello.length);
  msg.writeUInt32BE(2 + hello.length);
  msg[4] = 1;
  msg[5] = 1;
  hello.copy(msg, 6);
  liar.write(msg);
  await new Promise<void>((r) => liar.once('close', () => r()).once('error', () => undefined));
  assert.ok(logs.some((l) => /HELLO from 127\.102\.0\.9: the peer's certificate does not name/.test(l)), logs.join('\n'));
});

test('frames cross the tunnel within their subnet only, are not sent back, and a guest VLAN tag does not cross subnets (raw NICs)', async () => {
  const a1 = new FakeNic(sw1.portPath(A.uuid));
  const a2 = new FakeNic(sw2.portPath(A.uuid));
  const b1 = new FakeNic(sw1.portPath(B.uuid));
  const b2 = new FakeNic(sw2.portPath(B.uuid));
  await Promise.all([a1.ready, a2.ready, b1.ready, b2.ready]);
  await until('ports attached', () => sw1.stats().subnets.every((s) => s.ports === 1) && sw2.stats().subnets.every((s) => s.ports === 1));
  const M1 = '02:aa:00:00:00:01';
  const M2 = '02:aa:00:00:00:02';
  a1.send(frame('ff:ff:ff:ff:ff:ff', M1, 'hello-from-a1'));
  await until('host 2 A port gets the broadcast', () => a2.frames.some((f) => f.includes('hello-from-a1')));
  a2.send(frame(M1, M2, 'unicast-a2-to-a1'));
  await until('host 1 A port gets the unicast', () => a1.frames.some((f) => f.includes('unicast-a2-to-a1')));
  // host 2 floods what came from the tunnel to its local ports only: nothing came back to host 1 (the unicast sent later has arrived)
  assert.ok(!a1.frames.some((f) => f.includes('hello-from-a1')), 'a broadcast does not come back to its sender');
  // host 1 learned M2 behind the tunnel, host 2 learned M1 behind it
  assert.equal(sw1.stats().subnets.find((s) => s.uuid === A.uuid)!.macs.find((m) => m.mac === M2)?.port, `tunnel:${H2}`);
  assert.equal(sw2.stats().subnets.find((s) => s.uuid === A.uuid)!.macs.find((m) => m.mac === M1)?.port, `tunnel:${H1}`);
  // a guest's 802.1Q tag naming B's VLAN does not get it into B
  const tagged = Buffer.concat([frame('ff:ff:ff:ff:ff:ff', M1, 'x').subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 20]), frame('ff:ff:ff:ff:ff:ff', M1, 'tagged-into-b').subarray(12)]);
  a1.send(tagged);
  a1.send(frame('ff:ff:ff:ff:ff:ff', M1, 'after-tagged'));
  await until('the frame after the tagged one arrives', () => a2.frames.some((f) => f.includes('after-tagged')));
  assert.ok(!a2.frames.some((f) => f.includes('tagged-into-b')));
  assert.equal(b1.frames.length + b2.frames.length, 0, 'no frame of A on B, on either host');
  assert.ok((sw1.stats().drops.tagged ?? 0) >= 1);
  for (const n of [a1, a2, b1, b2]) n.close();
  await until('ports detached', () => sw1.stats().subnets.every((s) => s.ports === 0) && sw2.stats().subnets.every((s) => s.ports === 0));
});

test('a tunnel whose peer restarts comes back (reconnect with backoff); frames meanwhile are dropped and counted', async () => {
  const a1 = new FakeNic(sw1.portPath(A.uuid));
  await a1.ready;
  await sw2.close();
  await until('tunnel to host 2 down', () => !up(sw1, H2));
  a1.send(frame('ff:ff:ff:ff:ff:ff', '02:aa:00:00:00:03', 'while-down'));
  await until('the drop is counted', () => (sw1.stats().drops['tunnel-down'] ?? 0) >= 1);
  sw2 = newSwitch('h2b');
  await sw2.configure(NET);
  await sw2.listen(H2, tls[H2]!);
  await until('tunnels up again', () => up(sw1, H2) && up(sw2, H1), 20_000);
  const a2 = new FakeNic(sw2.portPath(A.uuid));
  await a2.ready;
  await until('port attached', () => sw2.stats().subnets.find((s) => s.uuid === A.uuid)!.ports === 1);
  a1.send(frame('ff:ff:ff:ff:ff:ff', '02:aa:00:00:00:03', 'after-restart'));
  await until('frames flow again', () => a2.frames.some((f) => f.includes('after-restart')));
  a1.close();
  a2.close();
});

test('real guests: DHCP from IPAM on each host, ping across hosts within subnet A, nothing from subnet B', async () => {
  const kit = ensureGuestKit();
  const G1 = { mac: '52:54:00:10:00:11', ip: '10.10.0.11' };
  const G2 = { mac: '52:54:00:10:00:12', ip: '10.10.0.12' };
  const G3 = { mac: '52:54:00:20:00:13', ip: '10.20.0.13' };
  sw1.setLease(A.uuid, G1.mac, G1.ip);
  sw2.setLease(A.uuid, G2.mac, G2.ip);
  sw2.setLease(B.uuid, G3.mac, G3.ip);
  // an observer on B at host 1 and on A at host 1, to see what reaches each subnet
  const watchB = new FakeNic(sw1.portPath(B.uuid));
  const watchA = new FakeNic(sw1.portPath(A.uuid));
  await Promise.all([watchB.ready, watchA.ready]);
  const g1 = new TinyGuest('g1 (host 1, A)', kit, { mac: G1.mac, socketPath: sw1.portPath(A.uuid) });
  const g2 = new TinyGuest('g2 (host 2, A)', kit, { mac: G2.mac, socketPath: sw2.portPath(A.uuid) });
  const g3 = new TinyGuest('g3 (host 2, B)', kit, { mac: G3.mac, socketPath: sw2.portPath(B.uuid) });
  guests.push(g1, g2, g3);
  const t0 = Date.now();
  const leases = await Promise.all([g1, g2, g3].map((g) => g.expect(/GUEST: lease ip=(\S+) mask=(\d+) router=(\S*) dns=(.*?) serverid=(\S+) lease=(\d+)\r?\n/, 240_000)));
  const bootMs = Date.now() - t0;
  assert.deepEqual(leases.map((m) => m.slice(1, 7)), [
    [G1.ip, '24', '10.10.0.1', '10.10.0.53', '10.10.0.254', '3600'],
    [G2.ip, '24', '10.10.0.1', '10.10.0.53', '10.10.0.254', '3600'],
    [G3.ip, '24', '10.20.0.1', '', '10.20.0.254', '3600'],
  ]);
  await Promise.all([g1, g2, g3].map((g) => g.expect(/GUEST: ready/, 60_000)));
  assert.equal(sw1.stats().subnets.find((s) => s.uuid === A.uuid)!.leases.find((l) => l.mac === G1.mac)?.state, 'bound');

  const ping12 = await g1.run(`ping -c 3 -W 3 ${G2.ip}`);
  assert.equal(ping12.rc, 0, ping12.output);
  assert.match(ping12.output, /3 packets received/);
  const ping21 = await g2.run(`ping -c 2 -W 3 ${G1.ip}`);
  assert.equal(ping21.rc, 0, ping21.output);

  // B's guest cannot reach A's, even with an address of A's subnet on its NIC (L2 isolation, not routing)
  const addA = await g3.run('ip addr add 10.10.0.13/24 dev eth0');
  assert.equal(addA.rc, 0, addA.output);
  const ping31 = await g3.run(`ping -c 2 -W 2 ${G1.ip}`);
  assert.notEqual(ping31.rc, 0, ping31.output);
  const ping32 = await g3.run(`ping -c 2 -W 2 ${G2.ip}`);
  assert.notEqual(ping32.rc, 0, ping32.output);
  // nor can A's reach B's
  const ping13 = await g1.run('ping -c 2 -W 2 10.10.0.13');
  assert.notEqual(ping13.rc, 0, ping13.output);

  const macsOfA = new Set([G1.mac, G2.mac]);
  const onB = watchB.frames.map((f) => parseFrame(f)!).filter((f) => macsOfA.has(f.src) || macsOfA.has(f.dst));
  assert.deepEqual(onB, [], 'no frame of A seen on B');
  assert.ok(watchA.frames.some((f) => parseFrame(f)!.src === G2.mac), 'the observer on A sees A\'s traffic from host 2 (so the B check can fail)');
  const drops = sw1.stats().drops;
  console.log(`# three guests leased in ${bootMs} ms; host 1 drops ${JSON.stringify(drops)}; host 2 drops ${JSON.stringify(sw2.stats().drops)}`);
});
