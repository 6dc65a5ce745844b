import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError, NotFoundError } from '../../../shared/errors.ts';
import type { HostSubnet } from '../../protocol/vms.ts';
import { DHCP, messageType, parseDhcp } from '../core/dhcp.ts';
import { macBytes, parseFrame } from '../core/ethernet.ts';
import { encodeStreamFrame, LengthPrefixedReader } from '../core/framing.ts';
import { VirtualSwitch } from './virtual-switch.ts';

const dir = mkdtempSync(join(tmpdir(), 'cvg-vsw-unit-'));
const open: { close(): Promise<void> }[] = [];
after(async () => {
  await Promise.all(open.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

const A: HostSubnet = { uuid: 'subnet-a', name: 'A', vlanId: 10, cidr: '10.10.0.0/24', gateway: '10.10.0.1', dns: [] };

function sw(o: { queueBytes?: number } = {}): VirtualSwitch {
  const s = new VirtualSwitch({ socketDir: mkdtempSync(join(dir, 's')), ...o });
  open.push(s);
  return s;
}

async function nic(path: string): Promise<{ sock: Socket; frames: Buffer[]; closed: Promise<void> }> {
  const sock = connect(path);
  const frames: Buffer[] = [];
  const r = new LengthPrefixedReader(65_536);
  sock.on('data', (c: Buffer) => frames.push(...r.push(c)));
  const closed = new Promise<void>((res) => sock.once('close', () => res()));
  await new Promise<void>((res, rej) => sock.once('connect', () => res()).once('error', rej));
  return { sock, frames, closed };
}

async function until(ok: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5000;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('configure validates everything first and changes nothing on bad input', async () => {
  const s = sw();
  await s.configure({ subnets: [A], peers: [] });
  const bad: [HostSubnet, string][] = [
    [{ ...A, uuid: '../etc' }, 'subnets[0].uuid'],
    [{ ...A, vlanId: 4095 }, 'subnets[0].vlanId'],
    [{ ...A, cidr: '10.10.0.1/24' }, 'subnets[0].cidr'],
    [{ ...A, cidr: '10.10.0.0/31' }, 'subnets[0].cidr'],
    [{ ...A, gateway: 'gw' }, 'subnets[0].gateway'],
    [{ ...A, dns: ['8.8.8.8', 'x'] }, 'subnets[0].dns[1]'],
  ];
  for (const [subnet, field] of bad) {
    await assert.rejects(s.configure({ subnets: [subnet], peers: [] }), (e: unknown) => e instanceof InputError && e.field === field);
  }
  await assert.rejects(s.configure({ subnets: [A, A], peers: [] }), /given twice/);
  await assert.rejects(s.configure({ subnets: [], peers: ['host-2'] }), (e: unknown) => e instanceof InputError && e.field === 'peers[0]');
  assert.ok(existsSync(s.portPath(A.uuid)), 'the subnet is still there');
  assert.throws(() => s.portPath('nope'), NotFoundError);
  assert.throws(() => s.setLease(A.uuid, 'not-a-mac', '10.10.0.5'), (e: unknown) => e instanceof InputError && e.field === 'mac');
  assert.throws(() => s.setLease(A.uuid, '52:54:00:00:00:01', '10.10.0'), (e: unknown) => e instanceof InputError && e.field === 'ip');
});

test('a socket path longer than a Unix socket takes is refused, naming socketDir', async () => {
  const s = new VirtualSwitch({ socketDir: join(dir, 'x'.repeat(90)) });
  await assert.rejects(s.configure({ subnets: [A], peers: [] }), (e: unknown) => e instanceof InputError && e.field === 'socketDir');
});

test('a lease set before its subnet exists is answered once it does, through the socket framing', async () => {
  const s = sw();
  s.setLease(A.uuid, '52:54:00:12:34:56', '10.10.0.42');
  await s.configure({ subnets: [A], peers: [] });
  const n = await nic(s.portPath(A.uuid));
  // the DISCOVER recorded from a real udhcpc, whose MAC is 52:54:00:12:34:56
  const discover = Buffer.from(readFileSync(new URL('../core/fixtures/udhcpc-discover.hex', import.meta.url), 'utf8').trim(), 'hex');
  n.sock.write(encodeStreamFrame(discover));
  await until(() => n.frames.length > 0, 'an OFFER');
  const f = parseFrame(n.frames[0]!)!;
  const offer = parseDhcp(f.ipv4!.udp!.payload);
  assert.equal(messageType(offer), DHCP.OFFER);
  assert.equal(offer.yiaddr, '10.10.0.42');
  n.sock.destroy();
});

test('removing a subnet closes its ports and its socket; a changed subnet keeps them', async () => {
  const s = sw();
  await s.configure({ subnets: [A], peers: [] });
  const path = s.portPath(A.uuid);
  const n = await nic(path);
  await until(() => s.stats().subnets[0]!.ports === 1, 'the port');
  await s.configure({ subnets: [{ ...A, gateway: '10.10.0.2', dns: ['10.10.0.3'] }], peers: [] });
  assert.equal(s.stats().subnets[0]!.ports, 1);
  assert.equal(s.stats().subnets[0]!.dhcpServer?.ip, '10.10.0.254');
  await s.configure({ subnets: [], peers: [] });
  await n.closed;
  assert.equal(existsSync(path), false);
  assert.deepEqual(s.stats().subnets, []);
});

test('bounded queues: frames to a port that does not read are dropped and counted, not buffered without end', async () => {
  const s = sw({ queueBytes: 64 * 1024 });
  await s.configure({ subnets: [A], peers: [] });
  const sender = await nic(s.portPath(A.uuid));
  const stuck = await nic(s.portPath(A.uuid));
  stuck.sock.pause();
  const f = Buffer.alloc(1500);
  macBytes('ff:ff:ff:ff:ff:ff').copy(f, 0);
  macBytes('52:54:00:00:00:09').copy(f, 6);
  f.writeUInt16BE(0x88b5, 12);
  const burst = Buffer.concat(Array.from({ length: 4000 }, () => encodeStreamFrame(f))); // 6 MB
  sender.sock.write(burst);
  await until(() => s.stats().forwarded >= 4000, 'the burst switched');
  const drops = s.stats().drops['queue-full'] ?? 0;
  assert.ok(drops > 1000, `dropped ${drops}`);
  sender.sock.destroy();
  stuck.sock.destroy();
});
