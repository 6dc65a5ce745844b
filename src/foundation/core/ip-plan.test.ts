import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  broadcastAddress, formatIpv4, inSubnet, isValidNetmask, makePlan, networkAddress, parseIpv4, planFromJson,
  planToJson, prefixLength, RESERVED_SUBNET, subnetOf,
} from './ip-plan.ts';
import type { Plan, PlanError, PlanInput, PlanNodeInput } from './types.ts';
import { InputError } from '../../shared/errors.ts';

const SERIALS = ['SN-A', 'SN-B', 'SN-C', 'SN-D'] as const;

/** 4-node lab plan: BMCs on 127.10.0.0/16, host and CVM on 127.20.0.0/16 (CVMs from 127.20.1.1). */
function labInput(nodes: PlanNodeInput[] = SERIALS.map((serial) => ({ serial }))): PlanInput {
  return {
    clusterName: 'lab-cluster',
    clusterVip: '127.20.0.100',
    dns: ['127.0.0.53'],
    ntp: ['127.0.0.123'],
    hostnamePrefix: 'lab',
    bmc: { netmask: '255.255.0.0', gateway: '127.10.255.254', start: '127.10.0.1' },
    host: { netmask: '255.255.0.0', gateway: '127.20.255.254', vlan: 0, start: '127.20.0.1' },
    cvm: { netmask: '255.255.0.0', gateway: '127.20.255.254', vlan: 0, start: '127.20.1.1' },
    nodes,
    lab: true,
  };
}

/** A production-style (non-lab) plan on 10.0.0.0/24 (BMC) and 10.1.0.0/16 (host, CVM). */
function prodInput(nodes: PlanNodeInput[] = SERIALS.map((serial) => ({ serial }))): PlanInput {
  return {
    clusterName: 'prod01',
    clusterVip: '10.1.0.10',
    dns: ['10.0.0.53', '10.0.0.54'],
    ntp: ['10.0.0.123', 'pool.ntp.org'],
    hostnamePrefix: 'ahv',
    bmc: { netmask: '255.255.255.0', gateway: '10.0.0.254', vlan: 10, start: '10.0.0.11' },
    host: { netmask: '255.255.0.0', gateway: '10.1.255.254', vlan: 20, start: '10.1.0.11' },
    cvm: { netmask: '255.255.0.0', gateway: '10.1.255.254', vlan: 20, start: '10.1.1.11' },
    nodes,
    lab: false,
  };
}

function ok(input: PlanInput, inUse?: ReadonlySet<string>): Plan {
  const r = makePlan(input, inUse);
  assert.deepEqual(r.errors, [], `unexpected errors: ${JSON.stringify(r.errors, null, 1)}`);
  assert.ok(r.plan);
  return r.plan;
}

function failed(input: PlanInput, inUse?: ReadonlySet<string>): PlanError[] {
  const r = makePlan(input, inUse);
  assert.equal(r.plan, null);
  assert.ok(r.errors.length > 0);
  return r.errors;
}

/** "node:field" of every error, sorted: to assert the exact set of errors. */
const keys = (errors: PlanError[]): string[] => errors.map((e) => `${e.node ?? ''}:${e.field}`).sort();

function has(errors: PlanError[], node: string | undefined, field: string, reason?: RegExp): void {
  const hit = errors.find((e) => e.node === node && e.field === field && (reason === undefined || reason.test(e.reason)));
  assert.ok(hit, `expected an error on ${node ?? '(no node)'} ${field}${reason ? ` matching ${reason}` : ''}; got ${JSON.stringify(errors, null, 1)}`);
}

const column = (plan: Plan, f: 'bmcIp' | 'hostIp' | 'cvmIp' | 'hostname'): string[] => plan.nodes.map((n) => n[f]);

// ---------------------------------------------------------------------------------------------
// IPv4 helpers
// ---------------------------------------------------------------------------------------------

test('parseIpv4 takes strict dotted quads only; formatIpv4 is its inverse', () => {
  assert.equal(parseIpv4('127.0.0.1'), 0x7f000001);
  assert.equal(parseIpv4('0.0.0.0'), 0);
  assert.equal(parseIpv4('255.255.255.255'), 0xffffffff);
  assert.equal(parseIpv4('10.1.2.3'), (10 * 256 ** 3) + (1 * 256 ** 2) + (2 * 256) + 3);
  for (const bad of ['01.0.0.1', '127.0.0.01', '1.2.3', '1.2.3.4.5', '256.0.0.0', '1.2.3.999', ' 1.2.3.4', '1.2.3.4 ', '1..3.4', '+1.2.3.4', '1.2.3.0x1', '1.2.3.-1', '', 'abc']) {
    assert.equal(parseIpv4(bad), null, bad);
  }
  for (const a of ['0.0.0.0', '127.20.1.1', '192.168.5.2', '255.255.255.255', '10.0.255.0']) {
    assert.equal(formatIpv4(parseIpv4(a) as number), a);
  }
  for (const bad of [-1, 2 ** 32, 1.5, Number.NaN]) {
    assert.throws(() => formatIpv4(bad), InputError);
  }
});

test('netmasks must be contiguous; network, broadcast and subnet helpers', () => {
  for (const m of ['255.255.255.0', '255.255.254.0', '255.0.0.0', '0.0.0.0', '255.255.255.255', '255.255.255.252']) assert.ok(isValidNetmask(m), m);
  for (const m of ['255.0.255.0', '255.255.255.1', '0.255.255.255', '255.255.253.0', '255.255.256.0', '255.255.0']) assert.ok(!isValidNetmask(m), m);
  assert.equal(prefixLength('255.255.254.0'), 23);
  assert.equal(prefixLength('0.0.0.0'), 0);
  assert.equal(prefixLength('255.255.255.255'), 32);
  assert.equal(prefixLength('255.0.255.0'), null);
  assert.equal(networkAddress('127.20.3.4', '255.255.0.0'), '127.20.0.0');
  assert.equal(broadcastAddress('127.20.3.4', '255.255.0.0'), '127.20.255.255');
  assert.equal(networkAddress('10.1.2.3', '255.255.255.252'), '10.1.2.0');
  assert.equal(broadcastAddress('10.1.2.1', '255.255.255.252'), '10.1.2.3');
  assert.equal(subnetOf('192.168.5.77', '255.255.255.0'), '192.168.5.0/24');
  assert.equal(subnetOf('10.1.2.3', '255.0.255.0'), null);
  assert.equal(networkAddress('10.1.2.300', '255.255.255.0'), null);
  assert.ok(inSubnet('127.255.255.255', '127.0.0.0/8'));
  assert.ok(inSubnet('127.0.0.0', '127.0.0.0/8'));
  assert.ok(!inSubnet('128.0.0.0', '127.0.0.0/8'));
  assert.ok(!inSubnet('126.255.255.255', '127.0.0.0/8'));
  assert.ok(inSubnet('192.168.5.2', RESERVED_SUBNET));
  assert.ok(!inSubnet('192.168.6.2', RESERVED_SUBNET));
  assert.ok(inSubnet('10.9.9.9', '10.0.0.0/8'));
  assert.ok(!inSubnet('10.9.9.9', '10.0.0.0/33'));
  assert.ok(!inSubnet('10.9.9.9', '10.0.0.0'));
  assert.ok(!inSubnet('10.9.9', '10.0.0.0/8'));
});

// ---------------------------------------------------------------------------------------------
// Assignment
// ---------------------------------------------------------------------------------------------

test('4-node lab plan: every address assigned in node order from each network start', () => {
  const plan = ok(labInput());
  assert.deepEqual(plan, {
    clusterName: 'lab-cluster',
    clusterVip: '127.20.0.100',
    dns: ['127.0.0.53'],
    ntp: ['127.0.0.123'],
    bmc: { netmask: '255.255.0.0', gateway: '127.10.255.254', start: '127.10.0.1' },
    host: { netmask: '255.255.0.0', gateway: '127.20.255.254', vlan: 0, start: '127.20.0.1' },
    cvm: { netmask: '255.255.0.0', gateway: '127.20.255.254', vlan: 0, start: '127.20.1.1' },
    lab: true,
    nodes: [
      { serial: 'SN-A', bmcIp: '127.10.0.1', hostIp: '127.20.0.1', cvmIp: '127.20.1.1', hostname: 'lab-1' },
      { serial: 'SN-B', bmcIp: '127.10.0.2', hostIp: '127.20.0.2', cvmIp: '127.20.1.2', hostname: 'lab-2' },
      { serial: 'SN-C', bmcIp: '127.10.0.3', hostIp: '127.20.0.3', cvmIp: '127.20.1.3', hostname: 'lab-3' },
      { serial: 'SN-D', bmcIp: '127.10.0.4', hostIp: '127.20.0.4', cvmIp: '127.20.1.4', hostname: 'lab-4' },
    ],
  });
});

test('a production plan with VLANs and an NTP host name is accepted', () => {
  const plan = ok(prodInput());
  assert.deepEqual(column(plan, 'bmcIp'), ['10.0.0.11', '10.0.0.12', '10.0.0.13', '10.0.0.14']);
  assert.deepEqual(column(plan, 'hostIp'), ['10.1.0.11', '10.1.0.12', '10.1.0.13', '10.1.0.14']);
  assert.deepEqual(column(plan, 'cvmIp'), ['10.1.1.11', '10.1.1.12', '10.1.1.13', '10.1.1.14']);
  assert.deepEqual(column(plan, 'hostname'), ['ahv-1', 'ahv-2', 'ahv-3', 'ahv-4']);
  assert.equal(plan.host.vlan, 20);
});

test('explicit addresses and host names win, and assignment skips them', () => {
  const plan = ok(labInput([
    { serial: 'SN-A' },
    { serial: 'SN-B', hostIp: '127.20.0.1' },
    { serial: 'SN-C', cvmIp: '127.20.1.2', bmcIp: '127.10.0.3' },
    { serial: 'SN-D', hostname: 'db-1' },
  ]));
  assert.deepEqual(column(plan, 'bmcIp'), ['127.10.0.1', '127.10.0.2', '127.10.0.3', '127.10.0.4']);
  assert.deepEqual(column(plan, 'hostIp'), ['127.20.0.2', '127.20.0.1', '127.20.0.3', '127.20.0.4']);
  assert.deepEqual(column(plan, 'cvmIp'), ['127.20.1.1', '127.20.1.3', '127.20.1.2', '127.20.1.4']);
  assert.deepEqual(column(plan, 'hostname'), ['lab-1', 'lab-2', 'lab-3', 'db-1']);
  // An explicit address of an earlier node ahead of the cursor is skipped by later nodes too.
  const p2 = ok(labInput([{ serial: 'SN-A', hostIp: '127.20.0.3' }, { serial: 'SN-B' }, { serial: 'SN-C' }, { serial: 'SN-D' }]));
  assert.deepEqual(column(p2, 'hostIp'), ['127.20.0.3', '127.20.0.1', '127.20.0.2', '127.20.0.4']);
});

test('assignment skips the network address, the VIP and gateways, and crosses octet boundaries inside the subnet', () => {
  const input = labInput();
  input.host.start = '127.20.0.0';
  input.clusterVip = '127.20.0.2';
  input.bmc = { netmask: '255.255.0.0', gateway: '127.10.0.255', start: '127.10.0.254' };
  const plan = ok(input);
  assert.deepEqual(column(plan, 'hostIp'), ['127.20.0.1', '127.20.0.3', '127.20.0.4', '127.20.0.5']);
  // .0.255 is the gateway here; .1.0 is an ordinary address of a /16.
  assert.deepEqual(column(plan, 'bmcIp'), ['127.10.0.254', '127.10.1.0', '127.10.1.1', '127.10.1.2']);
  // CVMs are assigned after the hosts and skip the host addresses when the ranges meet.
  const overlap = labInput();
  overlap.cvm.start = '127.20.0.3';
  assert.deepEqual(column(ok(overlap), 'cvmIp'), ['127.20.0.5', '127.20.0.6', '127.20.0.7', '127.20.0.8']);
});

test('assignment skips the reserved 192.168.5.0/24 inside a wider subnet', () => {
  const input = prodInput();
  input.clusterVip = '192.168.4.250';
  input.host = { netmask: '255.255.0.0', gateway: '192.168.255.254', start: '192.168.4.254' };
  input.cvm = { netmask: '255.255.0.0', gateway: '192.168.255.254', start: '192.168.10.1' };
  const plan = ok(input);
  assert.deepEqual(column(plan, 'hostIp'), ['192.168.4.254', '192.168.4.255', '192.168.6.0', '192.168.6.1']);
});

test('addresses in use are skipped when assigned and refused when explicit; gateways may answer', () => {
  const inUse = new Set(['127.20.0.2', '127.10.0.1', '127.20.1.3', 'not-an-address', '127.20.255.254']);
  const plan = ok(labInput(), inUse);
  assert.deepEqual(column(plan, 'bmcIp'), ['127.10.0.2', '127.10.0.3', '127.10.0.4', '127.10.0.5']);
  assert.deepEqual(column(plan, 'hostIp'), ['127.20.0.1', '127.20.0.3', '127.20.0.4', '127.20.0.5']);
  assert.deepEqual(column(plan, 'cvmIp'), ['127.20.1.1', '127.20.1.2', '127.20.1.4', '127.20.1.5']);

  const input = labInput([{ serial: 'SN-A', hostIp: '127.20.0.2' }, { serial: 'SN-B' }]);
  input.clusterVip = '127.20.0.100';
  const errors = failed(input, new Set(['127.20.0.2', '127.20.0.100']));
  assert.deepEqual(keys(errors), [':clusterVip', 'SN-A:hostIp']);
  has(errors, 'SN-A', 'hostIp', /in use/);
  has(errors, undefined, 'clusterVip', /in use/);
});

test('subnet exhaustion is reported on each node that gets no address', () => {
  const input = labInput();
  delete input.clusterVip;
  input.host = { netmask: '255.255.255.248', gateway: '127.20.0.6', start: '127.20.0.1' };
  input.cvm = { netmask: '255.255.255.248', gateway: '127.20.0.6', start: '127.20.0.1' };
  const errors = failed(input);
  // Hosts take .1-.4, the first CVM .5; .6 is the gateway and .7 the broadcast address.
  assert.deepEqual(keys(errors), ['SN-B:cvmIp', 'SN-C:cvmIp', 'SN-D:cvmIp']);
  has(errors, 'SN-B', 'cvmIp', /no free address left in the CVM subnet 127\.20\.0\.0\/29/);
  // The last addresses before the gateway and broadcast address run out too.
  const tail = labInput([{ serial: 'SN-A' }, { serial: 'SN-B' }]);
  tail.cvm.start = '127.20.255.253';
  assert.deepEqual(keys(failed(tail)), ['SN-B:cvmIp']);
});

test('a node without an explicit address needs the network start', () => {
  const input = labInput([{ serial: 'SN-A' }, { serial: 'SN-B', hostIp: '127.20.0.9' }, { serial: 'SN-C' }]);
  delete input.host.start;
  const errors = failed(input);
  assert.deepEqual(keys(errors), ['SN-A:hostIp', 'SN-C:hostIp']);
  has(errors, 'SN-A', 'hostIp', /host\.start is not set/);
  // With every host address explicit, no start is needed.
  const all = labInput([{ serial: 'SN-A', hostIp: '127.20.0.8' }, { serial: 'SN-B', hostIp: '127.20.0.9' }]);
  delete all.host.start;
  assert.deepEqual(column(ok(all), 'hostIp'), ['127.20.0.8', '127.20.0.9']);
});

// ---------------------------------------------------------------------------------------------
// Validation rules
// ---------------------------------------------------------------------------------------------

test('malformed addresses are refused on the node and field that hold them, all at once', () => {
  const input = labInput([
    { serial: 'SN-A', hostIp: '127.20.0.256' },
    { serial: 'SN-B', bmcIp: '127.010.0.5' },
    { serial: 'SN-C', cvmIp: '127.20.1' },
    { serial: 'SN-D', hostIp: 'abc' },
  ]);
  input.clusterVip = '127.20.0.1.5';
  input.dns = ['127.0.0.-1'];
  const errors = failed(input);
  assert.deepEqual(keys(errors), [':clusterVip', ':dns[0]', 'SN-A:hostIp', 'SN-B:bmcIp', 'SN-C:cvmIp', 'SN-D:hostIp']);
  for (const e of errors) assert.match(e.reason, /is not an IPv4 address \(dotted quad/);
});

test('netmasks must be valid and leave room for addresses', () => {
  const input = labInput();
  input.bmc.netmask = '255.0.255.0';
  input.host.netmask = '255.255.255.254';
  input.cvm.netmask = '255.255.256.0';
  const errors = failed(input);
  assert.deepEqual(keys(errors), [':bmc.netmask', ':cvm.netmask', ':host.netmask']);
  has(errors, undefined, 'bmc.netmask', /contiguous/);
  has(errors, undefined, 'host.netmask', /\/31/);
  has(errors, undefined, 'cvm.netmask', /not a netmask/);
});

test('a gateway may not be its subnet\'s network or broadcast address, and must be an address', () => {
  const input = labInput();
  input.bmc.gateway = '127.10.0.256';
  input.host.gateway = '127.20.0.0';
  input.cvm.gateway = '127.20.255.255';
  const errors = failed(input);
  assert.deepEqual(keys(errors), [':bmc.gateway', ':cvm.gateway', ':host.gateway']);
  has(errors, undefined, 'host.gateway', /network address of 127\.20\.0\.0\/16/);
  has(errors, undefined, 'cvm.gateway', /broadcast address/);
});

test('a start must be an address inside the subnet of its gateway', () => {
  const input = labInput();
  input.cvm.start = '127.30.0.1';
  input.bmc.start = '127.10.0';
  const errors = failed(input);
  assert.deepEqual(keys(errors), [':bmc.start', ':cvm.start']);
  has(errors, undefined, 'cvm.start', /not in the CVM subnet 127\.20\.0\.0\/16/);
});

test('node addresses must lie inside their subnet and not be a network, broadcast or gateway address', () => {
  const errors = failed(labInput([
    { serial: 'SN-A', hostIp: '127.21.0.5' },
    { serial: 'SN-B', hostIp: '127.20.0.0' },
    { serial: 'SN-C', hostIp: '127.20.255.255' },
    { serial: 'SN-D', bmcIp: '127.20.255.254' },
  ]));
  assert.deepEqual(keys(errors), ['SN-A:cvmIp', 'SN-A:hostIp', 'SN-B:hostIp', 'SN-C:hostIp', 'SN-D:bmcIp', 'SN-D:bmcIp']);
  has(errors, 'SN-A', 'hostIp', /not in the host subnet 127\.20\.0\.0\/16/);
  has(errors, 'SN-A', 'cvmIp', /same subnet|not on the subnet/);
  has(errors, 'SN-B', 'hostIp', /network address/);
  has(errors, 'SN-C', 'hostIp', /broadcast address/);
  has(errors, 'SN-D', 'bmcIp', /not in the BMC subnet/);
  has(errors, 'SN-D', 'bmcIp', /gateway of the host and CVM networks/);
  // The BMC's own gateway too.
  has(failed(labInput([{ serial: 'SN-A', bmcIp: '127.10.255.254' }])), 'SN-A', 'bmcIp', /gateway of the BMC network/);
});

test('addresses are unique across all nodes and the VIP; the later holder is reported', () => {
  const input = labInput([
    { serial: 'SN-A', cvmIp: '127.20.0.50' },
    { serial: 'SN-B', hostIp: '127.20.0.50' },
    { serial: 'SN-C', bmcIp: '127.10.0.7', cvmIp: '127.20.1.9' },
    { serial: 'SN-D', bmcIp: '127.10.0.7' },
  ]);
  input.clusterVip = '127.20.1.9';
  const errors = failed(input);
  assert.deepEqual(keys(errors), [':clusterVip', 'SN-B:hostIp', 'SN-D:bmcIp']);
  has(errors, 'SN-B', 'hostIp', /already the CVM address of node SN-A/);
  has(errors, 'SN-D', 'bmcIp', /already the BMC address of node SN-C/);
  has(errors, undefined, 'clusterVip', /already the CVM address of node SN-C/);
});

test('host and CVM of each node must share a subnet', () => {
  const input = labInput();
  input.cvm = { netmask: '255.255.0.0', gateway: '127.30.255.254', start: '127.30.0.1' };
  const errors = failed(input);
  assert.deepEqual(keys(errors), ['SN-A:cvmIp', 'SN-B:cvmIp', 'SN-C:cvmIp', 'SN-D:cvmIp']);
  has(errors, 'SN-C', 'cvmIp', /127\.30\.0\.3.*127\.20\.0\.3/);
  // A narrower CVM netmask is a different subnet as well, even with the same network address.
  const narrow = labInput([{ serial: 'SN-A' }]);
  narrow.cvm = { netmask: '255.255.255.0', gateway: '127.20.0.254', start: '127.20.0.50' };
  assert.deepEqual(keys(failed(narrow)), ['SN-A:cvmIp']);
  has(failed(narrow), 'SN-A', 'cvmIp', /127\.20\.0\.0\/24.*127\.20\.0\.0\/16/);
});

test('192.168.5.0/24 is reserved for the internal host-CVM link', () => {
  const input = prodInput([{ serial: 'SN-A', hostIp: '192.168.5.2' }, { serial: 'SN-B' }]);
  input.clusterVip = '192.168.5.1';
  input.dns = ['192.168.5.53'];
  input.host = { netmask: '255.255.0.0', gateway: '192.168.255.254', start: '192.168.4.254' };
  input.cvm = { netmask: '255.255.0.0', gateway: '192.168.5.254', start: '192.168.10.1' };
  const errors = failed(input);
  assert.deepEqual(keys(errors), [':clusterVip', ':cvm.gateway', ':dns[0]', 'SN-A:hostIp']);
  for (const e of errors) assert.match(e.reason, /192\.168\.5\.0\/24, reserved/);
});

test('the VIP must be on the host subnet and not a gateway', () => {
  const off = labInput();
  off.clusterVip = '127.10.0.100';
  assert.deepEqual(keys(failed(off)), [':clusterVip']);
  has(failed(off), undefined, 'clusterVip', /not in the host subnet/);
  const gw = labInput();
  gw.clusterVip = '127.20.255.254';
  assert.deepEqual(keys(failed(gw)), [':clusterVip']);
  has(failed(gw), undefined, 'clusterVip', /gateway of the host and CVM networks/);
  // The VIP is optional.
  const none = labInput();
  delete none.clusterVip;
  assert.equal(ok(none).clusterVip, null);
});

test('lab mode: every address, gateway, start, VIP, DNS and NTP server must be loopback', () => {
  const input = labInput([{ serial: 'SN-A', cvmIp: '10.1.1.5' }, { serial: 'SN-B' }]);
  input.bmc = { netmask: '255.255.255.0', gateway: '10.0.0.254', start: '10.0.0.1' };
  input.clusterVip = '10.20.0.10';
  input.dns = ['8.8.8.8'];
  input.ntp = ['10.0.0.123', 'pool.ntp.org', '127.0.0.123'];
  const errors = failed(input);
  for (const [node, field] of [[undefined, 'bmc.gateway'], [undefined, 'bmc.start'], [undefined, 'clusterVip'], [undefined, 'dns[0]'], [undefined, 'ntp[0]'], [undefined, 'ntp[1]'], ['SN-A', 'cvmIp']] as const) {
    has(errors, node, field, /lab mode/);
  }
  assert.ok(!errors.some((e) => e.field === 'ntp[2]'));
  // The same kind of addresses are fine outside lab mode.
  ok(prodInput());
});

test('VLAN ids are integers from 0 to 4094', () => {
  const input = labInput();
  input.host.vlan = 4095;
  input.bmc.vlan = -1;
  input.cvm.vlan = 1.5;
  const errors = failed(input);
  assert.deepEqual(keys(errors), [':bmc.vlan', ':cvm.vlan', ':host.vlan']);
  const edge = labInput();
  edge.bmc.vlan = 4094;
  edge.host.vlan = 0;
  ok(edge);
});

test('cluster names: 1-63 letters, digits, - or _, starting with a letter', () => {
  for (const bad of ['', '1abc', 'a b', 'x'.repeat(64), 'café', '-lab', 'lab.cluster']) {
    const input = labInput();
    input.clusterName = bad;
    assert.deepEqual(keys(failed(input)), [':clusterName'], bad);
  }
  for (const good of ['a', `A${'x'.repeat(62)}`, 'my_cluster-01']) {
    const input = labInput();
    input.clusterName = good;
    ok(input);
  }
});

test('DNS entries are IPv4 addresses; NTP entries are addresses or host names', () => {
  const input = prodInput();
  input.dns = ['10.0.0.53', '10.0.0', 'dns.example.com'];
  input.ntp = ['999.1.1.1', 'bad_host!', 'time.example.com', '-bad.example', 'ntp1'];
  const errors = failed(input);
  assert.deepEqual(keys(errors), [':dns[1]', ':dns[2]', ':ntp[0]', ':ntp[1]', ':ntp[3]']);
});

test('at least one node; serials must be present and unique', () => {
  assert.deepEqual(keys(failed(labInput([]))), [':nodes']);
  const errors = failed(labInput([{ serial: 'SN-A' }, { serial: 'SN-B' }, { serial: 'SN-A' }, { serial: '' }]));
  assert.deepEqual(keys(errors), [':nodes[3].serial', 'SN-A:serial']);
  has(errors, 'SN-A', 'serial', /duplicate/);
});

test('host names are DNS labels, unique regardless of case; the prefix must make valid names', () => {
  const errors = failed(labInput([
    { serial: 'SN-A', hostname: 'lab-2' },
    { serial: 'SN-B' },
    { serial: 'SN-C', hostname: 'Bad_Name' },
    { serial: 'SN-D', hostname: 'LAB-2' },
  ]));
  assert.deepEqual(keys(errors), ['SN-B:hostname', 'SN-C:hostname', 'SN-D:hostname']);
  has(errors, 'SN-B', 'hostname', /already the host name of node SN-A/);
  has(errors, 'SN-C', 'hostname', /not a valid host name/);
  for (const bad of ['-lab', '', 'x'.repeat(62), 'a.b']) {
    const input = labInput();
    input.hostnamePrefix = bad;
    assert.deepEqual(keys(failed(input)), [':hostnamePrefix'], bad);
  }
  // No prefix is needed when every host name is explicit.
  const named = labInput([{ serial: 'SN-A', hostname: 'a' }, { serial: 'SN-B', hostname: `b${'1'.repeat(62)}` }]);
  named.hostnamePrefix = '';
  assert.deepEqual(column(ok(named), 'hostname'), ['a', `b${'1'.repeat(62)}`]);
});

test('every error is reported: one bad field does not hide the others', () => {
  const input = labInput([{ serial: 'SN-A', hostIp: 'bad' }, { serial: 'SN-B', hostname: '-b' }, { serial: 'SN-A' }, { serial: 'SN-D' }]);
  input.clusterName = '9x';
  input.bmc.netmask = '255.0.255.0';
  input.host.vlan = 5000;
  input.clusterVip = '127.10.0.5';
  input.dns = ['x'];
  input.ntp = ['127.0.0.123', 'ntp.example'];
  const errors = failed(input);
  assert.deepEqual(keys(errors), [':bmc.netmask', ':clusterName', ':clusterVip', ':dns[0]', ':host.vlan', ':ntp[1]', 'SN-A:hostIp', 'SN-A:serial', 'SN-B:hostname']);
  for (const e of errors) assert.ok(e.reason.length > 10, `reason of ${e.field} is a sentence`);
});

test('makePlan does not modify its input', () => {
  const input = labInput([{ serial: 'SN-A' }, { serial: 'SN-B', hostIp: '127.20.0.1' }]);
  const copy = structuredClone(input);
  const plan = ok(input, new Set(['127.20.0.2']));
  assert.deepEqual(input, copy);
  plan.dns.push('127.0.0.54');
  plan.host.netmask = 'x';
  assert.deepEqual(input, copy);
});

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

test('JSON round trip gives the same plan, with a fixed key order', () => {
  const plan = ok(labInput([{ serial: 'SN-A' }, { serial: 'SN-B', hostname: 'db-1' }, { serial: 'SN-C' }]));
  const text = planToJson(plan);
  assert.ok(text.endsWith('}\n'));
  assert.deepEqual(Object.keys(JSON.parse(text) as object), ['clusterName', 'clusterVip', 'dns', 'ntp', 'lab', 'bmc', 'host', 'cvm', 'nodes']);
  const back = planFromJson(text);
  assert.deepEqual(back.errors, []);
  assert.deepEqual(back.plan, plan);
  assert.equal(planToJson(back.plan), text);
  // Without a VIP, VLANs or starts.
  const bare = labInput([{ serial: 'SN-A', bmcIp: '127.10.0.9', hostIp: '127.20.0.9', cvmIp: '127.20.0.10' }]);
  delete bare.clusterVip;
  bare.bmc = { netmask: '255.255.0.0', gateway: '127.10.255.254' };
  bare.host = { netmask: '255.255.0.0', gateway: '127.20.255.254' };
  bare.cvm = { netmask: '255.255.0.0', gateway: '127.20.255.254' };
  const p2 = ok(bare);
  assert.equal(p2.clusterVip, null);
  assert.deepEqual(planFromJson(planToJson(p2)), { plan: p2, errors: [] });
});

test('JSON import: malformed text and wrong shapes name the field', () => {
  for (const text of ['{ not json', '', '[]', '42', 'null']) {
    const r = planFromJson(text);
    assert.equal(r.plan, null);
    assert.deepEqual(keys(r.errors), [':json'], text);
  }
  const raw = JSON.parse(planToJson(ok(labInput()))) as Record<string, unknown>;
  (raw.host as Record<string, unknown>).netmask = 255;
  (raw.bmc as Record<string, unknown>).vlan = '10';
  delete ((raw.nodes as Record<string, unknown>[])[1] as Record<string, unknown>).hostIp;
  (raw.nodes as unknown[])[2] = 'SN-C';
  raw.dns = '127.0.0.53';
  raw.ntp = ['127.0.0.123', 5];
  raw.clusterVip = 5;
  raw.lab = 'yes';
  delete raw.clusterName;
  const r = planFromJson(JSON.stringify(raw));
  assert.equal(r.plan, null);
  assert.deepEqual(keys(r.errors), [':bmc.vlan', ':clusterName', ':clusterVip', ':dns', ':host.netmask', ':lab', ':nodes[1].hostIp', ':nodes[2]', ':ntp[1]']);
  has(r.errors, undefined, 'clusterName', /must be a string, not missing/);
  has(r.errors, undefined, 'nodes[2]', /must be an object, not a string/);
  const noNodes = JSON.parse(planToJson(ok(labInput()))) as Record<string, unknown>;
  noNodes.nodes = {};
  assert.deepEqual(keys(planFromJson(JSON.stringify(noNodes)).errors), [':nodes']);
});

test('JSON import validates the plan again, every address being explicit', () => {
  const raw = JSON.parse(planToJson(ok(labInput()))) as { nodes: Record<string, string>[]; clusterVip: string | null; lab: boolean };
  (raw.nodes[1] as Record<string, string>).hostIp = '127.20.0.1';
  (raw.nodes[2] as Record<string, string>).cvmIp = '10.1.1.1';
  (raw.nodes[3] as Record<string, string>).hostname = 'lab_4';
  raw.clusterVip = '127.20.0.4';
  const r = planFromJson(JSON.stringify(raw));
  assert.equal(r.plan, null);
  assert.deepEqual(keys(r.errors), [':clusterVip', 'SN-B:hostIp', 'SN-C:cvmIp', 'SN-C:cvmIp', 'SN-C:cvmIp', 'SN-D:hostname']);
  has(r.errors, 'SN-B', 'hostIp', /already the host address of node SN-A/);
  has(r.errors, 'SN-C', 'cvmIp', /lab mode/);
  has(r.errors, undefined, 'clusterVip', /already the host address of node SN-D/);
  // A start inside an explicit plan is kept but not used: moving it changes no address.
  const moved = JSON.parse(planToJson(ok(labInput()))) as { host: { start: string } };
  moved.host.start = '127.20.9.1';
  const m = planFromJson(JSON.stringify(moved));
  assert.deepEqual(column(m.plan!, 'hostIp'), ['127.20.0.1', '127.20.0.2', '127.20.0.3', '127.20.0.4']);
});
