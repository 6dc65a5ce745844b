import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateHardware, THRESHOLDS } from './validation.ts';
import type { CheckResult, DiscoveredNode, NodeReport, ValidationOptions, ValidationReport, Verdict } from './types.ts';

const GiB = 1024 ** 3;

type ModelName = 'CVG-H1065' | 'CVG-F1120' | 'CVG-LAB-MINI';

/** The rack's built-in models (src/rack/core/models.ts), reduced to what discovery reports. */
const MODELS: Record<ModelName, {
  cpu: DiscoveredNode['inventory']['cpu'];
  memoryGiB: number;
  nics: { count: number; speedMbps: number }[];
  boot: { type: string; model: string; capacityGiB: number };
  hba: NonNullable<DiscoveredNode['inventory']['hba']>;
  disks: { count: number; mediaType: 'SSD' | 'HDD'; protocol: string; model: string; capacityGiB: number }[];
  firmware: { bios: string; bmc: string };
}> = {
  'CVG-H1065': {
    cpu: { model: 'Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz', sockets: 2, coresPerSocket: 16, threadsPerCore: 2 },
    memoryGiB: 256,
    nics: [{ count: 2, speedMbps: 25000 }, { count: 2, speedMbps: 1000 }],
    boot: { type: 'M.2', model: 'Micron 7450 M.2 240GB (lab 4 GiB)', capacityGiB: 4 },
    hba: { model: 'Broadcom SAS3808 HBA', vendorId: '0x1000', deviceId: '0x00e6', passthroughCapable: true },
    disks: [
      { count: 2, mediaType: 'SSD', protocol: 'SATA', model: 'Samsung PM893 1.92TB (lab)', capacityGiB: 4 },
      { count: 4, mediaType: 'HDD', protocol: 'SAS', model: 'Seagate Exos 8TB (lab)', capacityGiB: 8 },
    ],
    firmware: { bios: 'CVGB-2.4.1', bmc: '3.10.2' },
  },
  'CVG-F1120': {
    cpu: { model: 'AMD EPYC 7313P 16-Core Processor', sockets: 1, coresPerSocket: 16, threadsPerCore: 2 },
    memoryGiB: 512,
    nics: [{ count: 2, speedMbps: 100000 }, { count: 1, speedMbps: 1000 }],
    boot: { type: 'M.2', model: 'Kioxia XG6 M.2 480GB (lab 4 GiB)', capacityGiB: 4 },
    hba: { model: 'Broadcom 9500-16i Tri-Mode HBA', vendorId: '0x1000', deviceId: '0x00e6', passthroughCapable: true },
    disks: [{ count: 4, mediaType: 'SSD', protocol: 'NVMe', model: 'Intel D7-P5520 3.84TB (lab)', capacityGiB: 4 }],
    firmware: { bios: 'CVGF-1.8.0', bmc: '3.10.2' },
  },
  'CVG-LAB-MINI': {
    cpu: { model: 'Intel(R) Xeon(R) E-2224 CPU @ 3.40GHz', sockets: 1, coresPerSocket: 4, threadsPerCore: 1 },
    memoryGiB: 16,
    nics: [{ count: 1, speedMbps: 1000 }],
    boot: { type: 'SATADOM', model: 'Innodisk SATADOM 64GB (lab 2 GiB)', capacityGiB: 2 },
    hba: { model: 'Intel C246 AHCI', vendorId: '0x8086', deviceId: '0xa352', passthroughCapable: false },
    disks: [{ count: 1, mediaType: 'SSD', protocol: 'SATA', model: 'Crucial MX500 1TB (lab)', capacityGiB: 2 }],
    firmware: { bios: 'CVGM-1.0.3', bmc: '2.8.0' },
  },
};

/** A discovered node of the given model, numbered like the rack numbers its nodes. */
function node(model: ModelName, index: number): DiscoveredNode {
  const m = MODELS[model];
  const serial = `CVG${String(24_000_000 + index * 7919).padStart(8, '0')}`;
  const mac = (port: number) => `02:43:56:${port.toString(16).padStart(2, '0')}:00:${index.toString(16).padStart(2, '0')}`;
  const nics: DiscoveredNode['inventory']['nics'] = [];
  let port = 1;
  for (const g of m.nics) for (let i = 0; i < g.count; i++, port++) nics.push({ id: `NIC${port}`, mac: mac(port), speedMbps: g.speedMbps, linkUp: true });
  const disks: DiscoveredNode['inventory']['disks'] = [];
  let slot = 0;
  for (const g of m.disks) {
    for (let i = 0; i < g.count; i++, slot++) {
      const prefix = g.mediaType === 'HDD' ? 'ZA' : g.protocol === 'NVMe' ? 'PHAX' : 'S4';
      disks.push({ serial: `${prefix}${serial.slice(-6)}${String(slot).padStart(2, '0')}`, model: g.model, mediaType: g.mediaType, protocol: g.protocol, capacityBytes: g.capacityGiB * GiB, health: 'OK', slot });
    }
  }
  return {
    serial,
    uuid: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`,
    model,
    vendor: 'Converge Labs',
    blockSerial: `BLK${String(index).padStart(3, '0')}`,
    position: 'A',
    bmc: { url: `https://127.10.0.${index}`, ip: `127.10.0.${index}`, mac: mac(0) },
    power: 'Off',
    inventory: {
      cpu: { ...m.cpu },
      memoryMiB: m.memoryGiB * 1024,
      nics,
      bootDevice: { serial: `BD${serial.slice(-8)}`, model: m.boot.model, type: m.boot.type, capacityBytes: m.boot.capacityGiB * GiB },
      disks,
      hba: { ...m.hba },
      firmware: { ...m.firmware },
    },
  };
}

function nodes(model: ModelName, count: number, first = 1): DiscoveredNode[] {
  return Array.from({ length: count }, (_, i) => node(model, first + i));
}

const opts = (over: Partial<ValidationOptions> = {}): ValidationOptions => ({
  profile: 'lab',
  redundancyFactor: 2,
  cvm: { vcpus: 8, ramGiB: 16 },
  minFirmware: {},
  overrides: [],
  ...over,
});

function nodeReport(r: ValidationReport, serial: string): NodeReport {
  const n = r.nodes.find((x) => x.serial === serial);
  assert.ok(n, `no report for ${serial}`);
  return n;
}

function checkOf(checks: readonly CheckResult[], id: string): CheckResult {
  const c = checks.find((x) => x.check === id);
  assert.ok(c, `no check ${id}`);
  return c;
}

/** The verdict of one node check of the only (or given) node. */
function verdictOf(n: DiscoveredNode, id: string, o: ValidationOptions = opts()): CheckResult {
  return checkOf(nodeReport(validateHardware([n], o), n.serial).checks, id);
}

const NODE_CHECKS = ['cpu.cores', 'memory.size', 'boot.device', 'boot.capacity', 'disk.ssd', 'disk.count', 'disk.health', 'hba.passthrough', 'nic.count', 'nic.link', 'nic.speed', 'firmware.bmc', 'firmware.bios'];

function tally(r: ValidationReport): Record<Verdict, number> {
  const t: Record<Verdict, number> = { PASS: 0, WARN: 0, FAIL: 0 };
  for (const c of [...r.nodes.flatMap((n) => n.checks), ...r.cluster]) t[c.verdict]++;
  return t;
}

test('a healthy 3-node CVG-H1065 set passes every check (lab, RF2, CVM 8 vCPU / 16 GiB)', () => {
  const set = nodes('CVG-H1065', 3);
  const r = validateHardware(set, opts({ minFirmware: { bmc: '3.10.2', bios: 'CVGB-2.4.1' } }));
  assert.equal(r.profile, 'lab');
  assert.equal(r.verdict, 'PASS');
  assert.deepEqual(r.nodes.map((n) => n.serial), set.map((n) => n.serial));
  for (const n of r.nodes) {
    assert.deepEqual(n.checks.map((c) => c.check), NODE_CHECKS);
    assert.equal(n.verdict, 'PASS');
    assert.equal(n.excluded, false);
    assert.equal(n.overridden, false);
    for (const c of n.checks) {
      assert.equal(c.verdict, 'PASS', `${c.check}: ${c.measured} vs ${c.threshold}`);
      assert.equal(c.remedy, '');
      assert.ok(c.measured.length > 0 && c.threshold.length > 0);
    }
  }
  assert.deepEqual(r.cluster.map((c) => [c.check, c.verdict]), [['cluster.node_count', 'PASS'], ['cluster.mixed_models', 'PASS']]);
  assert.deepEqual(r.counts, { PASS: 3 * 13 + 2, WARN: 0, FAIL: 0 });
  const n0 = r.nodes[0]!;
  assert.match(checkOf(n0.checks, 'cpu.cores').measured, /32 cores/);
  assert.match(checkOf(n0.checks, 'memory.size').measured, /256 GiB/);
  assert.match(checkOf(n0.checks, 'memory.size').threshold, /20 GiB/);
  assert.match(checkOf(n0.checks, 'nic.speed').measured, /25000 Mbps/);
});

test('CVG-LAB-MINI fails cpu, memory and HBA, and is excluded; the rest of the set still passes', () => {
  const mini = node('CVG-LAB-MINI', 4);
  const r = validateHardware([...nodes('CVG-H1065', 3), mini], opts());
  const m = nodeReport(r, mini.serial);
  assert.equal(m.verdict, 'FAIL');
  assert.equal(m.excluded, true);
  assert.equal(m.overridden, false);
  const failed = m.checks.filter((c) => c.verdict === 'FAIL').map((c) => c.check);
  assert.deepEqual(failed, ['cpu.cores', 'memory.size', 'hba.passthrough']);
  assert.match(checkOf(m.checks, 'cpu.cores').measured, /^4 cores/);
  assert.match(checkOf(m.checks, 'memory.size').measured, /^16 GiB/);
  assert.match(checkOf(m.checks, 'hba.passthrough').measured, /Intel C246 AHCI.*not passthrough-capable/);
  // lab thresholds accept its small boot device, single SSD and single 1 GbE NIC
  for (const id of ['boot.capacity', 'disk.ssd', 'disk.count', 'nic.count', 'nic.speed']) assert.equal(checkOf(m.checks, id).verdict, 'PASS', id);
  for (const c of m.checks) assert.equal(c.remedy === '', c.verdict === 'PASS', `${c.check} remedy`);
  // excluded: neither the verdict, the node count nor the model mix counts it
  assert.equal(r.verdict, 'PASS');
  assert.match(checkOf(r.cluster, 'cluster.node_count').measured, /3 included nodes \(1 excluded\)/);
  assert.equal(checkOf(r.cluster, 'cluster.mixed_models').verdict, 'PASS');
});

test('a Critical disk FAILs naming its serial and slot; a Warning disk WARNs', () => {
  const n = node('CVG-H1065', 1);
  const bad = n.inventory.disks[3]!;
  bad.health = 'Critical';
  const r = validateHardware([n, ...nodes('CVG-H1065', 3, 2)], opts());
  const rep = nodeReport(r, n.serial);
  const c = checkOf(rep.checks, 'disk.health');
  assert.equal(c.verdict, 'FAIL');
  assert.match(c.measured, new RegExp(`${bad.serial} \\(slot 3\\)`));
  assert.equal(c.remedy, `Replace disk ${bad.serial} in slot 3 or exclude it.`);
  assert.equal(rep.verdict, 'FAIL');
  assert.equal(rep.excluded, true);
  assert.equal(r.verdict, 'PASS', 'three healthy nodes remain for RF2');

  const two = node('CVG-H1065', 1);
  two.inventory.disks[0]!.health = 'Critical';
  two.inventory.disks[5]!.health = 'Critical';
  two.inventory.disks[2]!.health = 'Warning';
  const c2 = verdictOf(two, 'disk.health');
  assert.equal(c2.verdict, 'FAIL');
  for (const d of [two.inventory.disks[0]!, two.inventory.disks[5]!, two.inventory.disks[2]!]) assert.ok(c2.measured.includes(`${d.serial} (slot ${d.slot})`), c2.measured);
  assert.ok(c2.remedy.includes(`disk ${two.inventory.disks[0]!.serial} in slot 0 and disk ${two.inventory.disks[5]!.serial} in slot 5`), c2.remedy);

  const warn = node('CVG-H1065', 1);
  warn.inventory.disks[1]!.health = 'Warning';
  const c3 = verdictOf(warn, 'disk.health');
  assert.equal(c3.verdict, 'WARN');
  assert.ok(c3.measured.includes(warn.inventory.disks[1]!.serial));
  assert.ok(c3.remedy.includes(`slot 1`));
});

test('an override keeps a FAIL node included, still FAIL; an override of a passing node changes nothing', () => {
  const mini = node('CVG-LAB-MINI', 4);
  const healthy = nodes('CVG-H1065', 3);
  const r = validateHardware([...healthy, mini], opts({ overrides: [mini.serial, healthy[0]!.serial] }));
  const m = nodeReport(r, mini.serial);
  assert.equal(m.verdict, 'FAIL');
  assert.equal(m.excluded, false);
  assert.equal(m.overridden, true);
  assert.equal(r.verdict, 'FAIL', 'an included FAIL node fails the set');
  assert.match(checkOf(r.cluster, 'cluster.node_count').measured, /^4 included nodes$/);
  assert.equal(checkOf(r.cluster, 'cluster.mixed_models').verdict, 'WARN');
  const h = nodeReport(r, healthy[0]!.serial);
  assert.equal(h.overridden, false);
  assert.equal(h.excluded, false);
});

test('node count against the redundancy factor: RF1 needs 1, RF2 needs 3, RF3 needs 5', () => {
  const nc = (n: number, rf: 1 | 2 | 3) => checkOf(validateHardware(nodes('CVG-H1065', n), opts({ redundancyFactor: rf })).cluster, 'cluster.node_count');
  const two = nc(2, 2);
  assert.equal(two.verdict, 'FAIL');
  assert.match(two.measured, /^2 included nodes$/);
  assert.match(two.threshold, /3 nodes for RF2/);
  assert.match(two.remedy, /Add 1 more node /);
  assert.equal(validateHardware(nodes('CVG-H1065', 2), opts()).verdict, 'FAIL');
  assert.equal(nc(3, 2).verdict, 'PASS');
  const rf3 = nc(3, 3);
  assert.equal(rf3.verdict, 'FAIL');
  assert.match(rf3.remedy, /Add 2 more nodes/);
  assert.equal(nc(4, 3).verdict, 'FAIL');
  assert.equal(nc(5, 3).verdict, 'PASS');
  assert.equal(nc(1, 1).verdict, 'PASS');
  const none = validateHardware([], opts({ redundancyFactor: 1 }));
  assert.equal(checkOf(none.cluster, 'cluster.node_count').verdict, 'FAIL');
  assert.equal(none.verdict, 'FAIL');
  // excluded nodes do not count
  const set = nodes('CVG-H1065', 3);
  set[2]!.inventory.hba = null;
  const r = validateHardware(set, opts());
  assert.equal(checkOf(r.cluster, 'cluster.node_count').verdict, 'FAIL');
  assert.match(checkOf(r.cluster, 'cluster.node_count').measured, /2 included nodes \(1 excluded\)/);
  assert.equal(r.verdict, 'FAIL');
});

test('production thresholds are stricter than lab', () => {
  for (const k of ['minCores', 'hostOverheadGiB', 'minBootGiB', 'minDataDisks', 'minNics', 'minNicSpeedMbps'] as const) {
    assert.ok(THRESHOLDS.production[k] > THRESHOLDS.lab[k], k);
  }
  const prod = opts({ profile: 'production' });
  // the 4 GiB lab boot device of a CVG-H1065: fine for lab, below half of 64 GiB for production
  const h = node('CVG-H1065', 1);
  assert.equal(verdictOf(h, 'boot.capacity').verdict, 'PASS');
  const boot = verdictOf(h, 'boot.capacity', prod);
  assert.equal(boot.verdict, 'FAIL');
  assert.match(boot.measured, /^4 GiB$/);
  assert.match(boot.threshold, /64 GiB/);
  assert.ok(boot.remedy.includes(h.inventory.bootDevice!.serial));
  const r = validateHardware(nodes('CVG-H1065', 3), prod);
  assert.equal(r.profile, 'production');
  assert.equal(r.verdict, 'FAIL');
  assert.ok(r.nodes.every((n) => n.excluded));
  // between half the minimum and the minimum: WARN
  h.inventory.bootDevice!.capacityBytes = 40 * GiB;
  assert.equal(verdictOf(h, 'boot.capacity', prod).verdict, 'WARN');
  h.inventory.bootDevice!.capacityBytes = 32 * GiB;
  assert.equal(verdictOf(h, 'boot.capacity', prod).verdict, 'WARN');
  h.inventory.bootDevice!.capacityBytes = 31 * GiB;
  assert.equal(verdictOf(h, 'boot.capacity', prod).verdict, 'FAIL');
  h.inventory.bootDevice!.capacityBytes = 64 * GiB;
  assert.equal(verdictOf(h, 'boot.capacity', prod).verdict, 'PASS');
  // lab: 1 GiB is half of 2 GiB (WARN), below that FAILs
  h.inventory.bootDevice!.capacityBytes = 1 * GiB;
  assert.equal(verdictOf(h, 'boot.capacity').verdict, 'WARN');
  h.inventory.bootDevice!.capacityBytes = 0.5 * GiB;
  assert.equal(verdictOf(h, 'boot.capacity').verdict, 'FAIL');

  // 12 cores: enough for lab (8, and 8 vCPU + 4), not for production (16)
  const twelve = node('CVG-H1065', 1);
  twelve.inventory.cpu = { ...twelve.inventory.cpu, sockets: 1, coresPerSocket: 12 };
  assert.equal(verdictOf(twelve, 'cpu.cores').verdict, 'PASS');
  assert.equal(verdictOf(twelve, 'cpu.cores', prod).verdict, 'FAIL');

  // 22 GiB with a 16 GiB CVM: lab needs 20 (WARN below 30), production needs 24
  const mem = node('CVG-H1065', 1);
  mem.inventory.memoryMiB = 22 * 1024;
  assert.equal(verdictOf(mem, 'memory.size').verdict, 'WARN');
  assert.equal(verdictOf(mem, 'memory.size', prod).verdict, 'FAIL');
  assert.match(verdictOf(mem, 'memory.size', prod).threshold, /24 GiB/);

  // the MINI's single disk and single 1 GbE NIC: lab PASS, production FAIL
  const mini = node('CVG-LAB-MINI', 1);
  for (const id of ['disk.count', 'nic.count', 'nic.speed']) {
    assert.equal(verdictOf(mini, id).verdict, 'PASS', `lab ${id}`);
    assert.equal(verdictOf(mini, id, prod).verdict, 'FAIL', `production ${id}`);
  }
});

test('firmware below the bundle minimum FAILs naming both versions; no minimum, no FAIL', () => {
  const mini = node('CVG-LAB-MINI', 1);
  const h = node('CVG-H1065', 2);
  const o = opts({ minFirmware: { bmc: '3.10.2' } });
  const bmc = verdictOf(mini, 'firmware.bmc', o);
  assert.equal(bmc.verdict, 'FAIL');
  assert.equal(bmc.measured, '2.8.0');
  assert.match(bmc.threshold, /3\.10\.2/);
  assert.ok(bmc.remedy.includes('2.8.0') && bmc.remedy.includes('3.10.2'), bmc.remedy);
  assert.equal(verdictOf(h, 'firmware.bmc', o).verdict, 'PASS');
  assert.equal(verdictOf(h, 'firmware.bios', o).verdict, 'PASS');
  assert.equal(verdictOf(h, 'firmware.bmc', opts({ minFirmware: { bmc: '3.9.9' } })).verdict, 'PASS', '3.10.2 is newer than 3.9.9');
  assert.equal(verdictOf(h, 'firmware.bmc', opts({ minFirmware: { bmc: '3.10.3' } })).verdict, 'FAIL');

  const bios = verdictOf(h, 'firmware.bios', opts({ minFirmware: { bios: 'CVGB-2.5.0' } }));
  assert.equal(bios.verdict, 'FAIL');
  assert.ok(bios.remedy.includes('CVGB-2.4.1') && bios.remedy.includes('CVGB-2.5.0'), bios.remedy);
  assert.equal(verdictOf(h, 'firmware.bios', opts({ minFirmware: { bios: '2.4.1' } })).verdict, 'PASS');

  // a firmware FAIL alone excludes a node
  const r = validateHardware([h], opts({ minFirmware: { bios: '2.5' }, redundancyFactor: 1 }));
  assert.equal(r.nodes[0]!.excluded, true);
  assert.equal(verdictOf(mini, 'firmware.bmc').verdict, 'PASS');
});


test('mixed models WARN listing them', () => {
  const r = validateHardware([...nodes('CVG-H1065', 3), node('CVG-F1120', 4)], opts());
  const c = checkOf(r.cluster, 'cluster.mixed_models');
  assert.equal(c.verdict, 'WARN');
  assert.ok(c.measured.includes('CVG-H1065') && c.measured.includes('CVG-F1120'), c.measured);
  assert.ok(c.remedy.length > 0);
  assert.ok(r.nodes.every((n) => n.verdict === 'PASS'));
  assert.equal(r.verdict, 'WARN');
  assert.equal(r.counts.WARN, 1);
});

test('counts add up to every check of every node (excluded ones too) and of the cluster', () => {
  const bad = node('CVG-H1065', 2);
  bad.inventory.disks[0]!.health = 'Warning';
  bad.inventory.nics[0]!.linkUp = false;
  const set = [node('CVG-H1065', 1), bad, node('CVG-F1120', 3), node('CVG-LAB-MINI', 4)];
  const r = validateHardware(set, opts({ minFirmware: { bmc: '3.0' } }));
  const total = set.length * 13 + r.cluster.length;
  assert.equal(r.counts.PASS + r.counts.WARN + r.counts.FAIL, total);
  assert.deepEqual(r.counts, tally(r));
  // MINI: cpu, memory, hba, firmware.bmc FAIL; bad: disk.health and nic.link WARN; mixed models WARN
  assert.deepEqual(r.counts, { PASS: total - 7, WARN: 3, FAIL: 4 });
  assert.equal(r.verdict, 'WARN');
});

test('CPU and memory WARN when the CVM leaves little room for guests', () => {
  const f = node('CVG-F1120', 1); // 16 cores
  const cpu = verdictOf(f, 'cpu.cores', opts({ cvm: { vcpus: 14, ramGiB: 16 } }));
  assert.equal(cpu.verdict, 'WARN');
  assert.match(cpu.threshold, /18/);
  assert.ok(cpu.remedy.length > 0);
  assert.equal(verdictOf(f, 'cpu.cores', opts({ cvm: { vcpus: 12, ramGiB: 16 } })).verdict, 'PASS');
  const h = node('CVG-H1065', 1);
  h.inventory.memoryMiB = 24 * 1024;
  assert.equal(verdictOf(h, 'memory.size').verdict, 'WARN');
  h.inventory.memoryMiB = 30 * 1024;
  assert.equal(verdictOf(h, 'memory.size').verdict, 'PASS');
  h.inventory.memoryMiB = 20 * 1024 - 1;
  assert.equal(verdictOf(h, 'memory.size').verdict, 'FAIL');
  // a larger CVM raises the bar
  assert.equal(verdictOf(node('CVG-H1065', 1), 'memory.size', opts({ cvm: { vcpus: 8, ramGiB: 253 } })).verdict, 'FAIL');
  assert.equal(verdictOf(node('CVG-H1065', 1), 'memory.size', opts({ cvm: { vcpus: 8, ramGiB: 252 } })).verdict, 'WARN');
});

test('missing boot device, SSD or HBA FAIL', () => {
  const noBoot = node('CVG-H1065', 1);
  noBoot.inventory.bootDevice = null;
  assert.equal(verdictOf(noBoot, 'boot.device').verdict, 'FAIL');
  assert.equal(verdictOf(noBoot, 'boot.capacity').verdict, 'FAIL');
  const hdds = node('CVG-H1065', 1);
  hdds.inventory.disks = hdds.inventory.disks.filter((d) => d.mediaType === 'HDD');
  assert.equal(verdictOf(hdds, 'disk.ssd').verdict, 'FAIL');
  assert.equal(verdictOf(hdds, 'disk.count').verdict, 'PASS');
  const noDisks = node('CVG-H1065', 1);
  noDisks.inventory.disks = [];
  assert.equal(verdictOf(noDisks, 'disk.count').verdict, 'FAIL');
  assert.equal(verdictOf(noDisks, 'disk.health').verdict, 'PASS');
  const noHba = node('CVG-H1065', 1);
  noHba.inventory.hba = null;
  const c = verdictOf(noHba, 'hba.passthrough');
  assert.equal(c.verdict, 'FAIL');
  assert.match(c.remedy, /passthrough/);
});

test('NIC link down WARNs naming the NIC, no link FAILs; speed counts NICs with link', () => {
  const h = node('CVG-H1065', 1);
  h.inventory.nics[1]!.linkUp = false;
  const one = verdictOf(h, 'nic.link');
  assert.equal(one.verdict, 'WARN');
  assert.match(one.measured, /NIC2/);
  assert.doesNotMatch(one.measured, /NIC1/);
  assert.match(one.remedy, /NIC2/);
  // both 25 GbE ports down: the fastest NIC with link is 1 GbE, too slow for production
  h.inventory.nics[0]!.linkUp = false;
  assert.equal(verdictOf(h, 'nic.speed', opts({ profile: 'production' })).verdict, 'FAIL');
  assert.equal(verdictOf(h, 'nic.speed').verdict, 'PASS');
  for (const n of h.inventory.nics) n.linkUp = false;
  const none = verdictOf(h, 'nic.link');
  assert.equal(none.verdict, 'FAIL');
  assert.ok(none.remedy.length > 0);
  const noNics = node('CVG-H1065', 1);
  noNics.inventory.nics = [];
  for (const id of ['nic.count', 'nic.link', 'nic.speed']) assert.equal(verdictOf(noNics, id).verdict, 'FAIL', id);
});

test('validation does not change its inputs and is deterministic', () => {
  const set = [...nodes('CVG-H1065', 3), node('CVG-LAB-MINI', 4)];
  const o = opts({ overrides: [set[3]!.serial], minFirmware: { bmc: '3.10.2' } });
  const before = structuredClone(set);
  const a = validateHardware(set, o);
  assert.deepEqual(set, before);
  assert.deepEqual(validateHardware(set, o), a);
});
