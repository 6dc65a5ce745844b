/**
 * @module
 * Hardware validation (Foundation's pre-flight): grades every discovered node against the rules
 * below and the set of nodes against the cluster's redundancy factor. Pure.
 *
 * Every rule gives a graded verdict (PASS / WARN / FAIL) with the measured value, the threshold and,
 * when not PASS, a remedy sentence. Every node always gets all 13 node checks, in this order:
 *
 * | check             | FAIL when                                        | WARN when                               | lab              | production        |
 * |-------------------|--------------------------------------------------|-----------------------------------------|------------------|-------------------|
 * | cpu.cores         | physical cores (sockets × cores) < minimum       | cores < CVM vCPUs + 4 (room for guests) | min 8            | min 16            |
 * | memory.size       | RAM < CVM RAM + host overhead ("need")           | RAM < 1.5 × need (little room for VMs)  | overhead 4 GiB   | overhead 8 GiB    |
 * | boot.device       | no boot device                                   | –                                       | –                | –                 |
 * | boot.capacity     | boot device < ½ minimum (or no boot device)      | ½ minimum ≤ boot device < minimum       | min 2 GiB        | min 64 GiB        |
 * | disk.ssd          | no SSD among the data disks                      | –                                       | ≥ 1 SSD          | ≥ 1 SSD           |
 * | disk.count        | data disks < minimum                             | –                                       | min 1            | min 2             |
 * | disk.health       | any disk with health Critical (serials, slots)   | any disk with health Warning            | –                | –                 |
 * | hba.passthrough   | no storage HBA, or HBA not passthrough-capable   | –                                       | –                | –                 |
 * | nic.count         | NICs < minimum                                   | –                                       | min 1            | min 2             |
 * | nic.link          | no NIC has link                                  | some NIC has its link down (named)      | –                | –                 |
 * | nic.speed         | fastest NIC with link < minimum (*)              | –                                       | min 1000 Mbps    | min 10000 Mbps    |
 * | firmware.bmc      | BMC firmware < opts.minFirmware.bmc (if given)   | –                                       | bundle minimum   | bundle minimum    |
 * | firmware.bios     | BIOS firmware < opts.minFirmware.bios (if given) | –                                       | bundle minimum   | bundle minimum    |
 *
 * (*) Speed is that of the fastest NIC with link up; when no NIC has link, that of the fastest NIC
 * (nic.link already FAILs then). A node without NICs measures 0 Mbps.
 *
 * Checks over the whole set (`ValidationReport.cluster`), over included nodes only:
 *
 * | check                | FAIL when                                         | WARN when                             |
 * |----------------------|---------------------------------------------------|---------------------------------------|
 * | cluster.node_count   | included nodes < RF minimum: RF1 1, RF2 3, RF3 5  | –                                     |
 * | cluster.mixed_models | –                                                 | included nodes of more than one model |
 *
 * Verdicts: a node's verdict is the worst of its checks. A FAIL node is excluded unless its serial
 * is in `opts.overrides`; then it stays included with `overridden: true` and its verdict stays FAIL
 * (an override of a node that did not FAIL changes nothing). The report's verdict is the worst of
 * the included nodes' verdicts and the cluster checks; excluded nodes do not make it FAIL, but the
 * node count they leave behind may. `counts` tallies every CheckResult of every node (excluded ones
 * too) and of the cluster checks.
 *
 * Firmware versions compare by their numeric parts (see {@link compareVersions}); a bundle minimum
 * applies to every node's firmware whatever its prefix.
 */
import { compareVersions } from '../../shared/versions.ts';
import type { CheckResult, DiscoveredNode, NodeReport, Profile, ValidationOptions, ValidationReport, Verdict } from './types.ts';

/** The thresholds of one profile (see the module's table). */
export interface Thresholds {
  /** FAIL below this many physical cores. */
  minCores: number;
  /** WARN below CVM vCPUs + this many cores (left for guest VMs). */
  guestCores: number;
  /** Host (hypervisor) memory added to the CVM's RAM: FAIL below the sum. */
  hostOverheadGiB: number;
  /** WARN below this factor times (CVM RAM + host overhead). */
  memoryHeadroomFactor: number;
  /** FAIL below half of this, WARN below this. */
  minBootGiB: number;
  minDataDisks: number;
  minNics: number;
  minNicSpeedMbps: number;
}

export const THRESHOLDS: Readonly<Record<Profile, Readonly<Thresholds>>> = Object.freeze({
  lab: Object.freeze({
    minCores: 8,
    guestCores: 4,
    hostOverheadGiB: 4,
    memoryHeadroomFactor: 1.5,
    minBootGiB: 2,
    minDataDisks: 1,
    minNics: 1,
    minNicSpeedMbps: 1000,
  }),
  production: Object.freeze({
    minCores: 16,
    guestCores: 4,
    hostOverheadGiB: 8,
    memoryHeadroomFactor: 1.5,
    minBootGiB: 64,
    minDataDisks: 2,
    minNics: 2,
    minNicSpeedMbps: 10000,
  }),
});

/** Nodes a cluster needs for each redundancy factor. */
export const MIN_NODES_FOR_RF: Readonly<Record<ValidationOptions['redundancyFactor'], number>> = Object.freeze({ 1: 1, 2: 3, 3: 5 });

const GiB = 1024 ** 3;
const RANK: Record<Verdict, number> = { PASS: 0, WARN: 1, FAIL: 2 };

function worst(verdicts: Iterable<Verdict>): Verdict {
  let w: Verdict = 'PASS';
  for (const v of verdicts) if (RANK[v] > RANK[w]) w = v;
  return w;
}

/** A number for people: whole numbers as is, others with one decimal. */
function num(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function check(id: string, verdict: Verdict, measured: string, threshold: string, remedy: string): CheckResult {
  return { check: id, verdict, measured, threshold, remedy: verdict === 'PASS' ? '' : remedy };
}

/** "A", "A and B", "A, B and C". */
function list(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1] ?? ''}`;
}

function cpuCheck(n: DiscoveredNode, t: Thresholds, opts: ValidationOptions): CheckResult {
  const { sockets, coresPerSocket } = n.inventory.cpu;
  const cores = sockets * coresPerSocket;
  const roomy = opts.cvm.vcpus + t.guestCores;
  const measured = `${plural(cores, 'core')} (${sockets} × ${coresPerSocket})`;
  const threshold = `≥ ${t.minCores} cores; ≥ ${roomy} to leave ${t.guestCores} beside the ${opts.cvm.vcpus}-vCPU CVM`;
  if (cores < t.minCores) {
    return check('cpu.cores', 'FAIL', measured, threshold, `Use a node with at least ${t.minCores} physical cores (${opts.profile} profile).`);
  }
  if (cores < roomy) {
    return check('cpu.cores', 'WARN', measured, threshold, `The ${opts.cvm.vcpus}-vCPU CVM leaves fewer than ${t.guestCores} cores for guest VMs: use a node with at least ${roomy} cores or a smaller CVM.`);
  }
  return check('cpu.cores', 'PASS', measured, threshold, '');
}

function memoryCheck(n: DiscoveredNode, t: Thresholds, opts: ValidationOptions): CheckResult {
  const haveGiB = n.inventory.memoryMiB / 1024;
  const needGiB = opts.cvm.ramGiB + t.hostOverheadGiB;
  const roomyGiB = needGiB * t.memoryHeadroomFactor;
  const measured = `${num(haveGiB)} GiB`;
  const threshold = `≥ ${num(needGiB)} GiB (CVM ${num(opts.cvm.ramGiB)} GiB + host ${num(t.hostOverheadGiB)} GiB); ≥ ${num(roomyGiB)} GiB to leave room for VMs`;
  if (haveGiB < needGiB) {
    return check('memory.size', 'FAIL', measured, threshold, `Add memory to at least ${num(needGiB)} GiB or choose a smaller CVM.`);
  }
  if (haveGiB < roomyGiB) {
    return check('memory.size', 'WARN', measured, threshold, `Little memory is left for guest VMs after the CVM and the host: add memory to at least ${num(roomyGiB)} GiB.`);
  }
  return check('memory.size', 'PASS', measured, threshold, '');
}

function bootChecks(n: DiscoveredNode, t: Thresholds, opts: ValidationOptions): CheckResult[] {
  const boot = n.inventory.bootDevice;
  const threshold = `≥ ${num(t.minBootGiB)} GiB (WARN from ${num(t.minBootGiB / 2)} GiB)`;
  if (!boot) {
    return [
      check('boot.device', 'FAIL', 'none', 'a boot device', 'Install a boot device (M.2 or SATADOM) for the hypervisor.'),
      check('boot.capacity', 'FAIL', 'no boot device', threshold, `Install a boot device of at least ${num(t.minBootGiB)} GiB.`),
    ];
  }
  const deviceCheck = check('boot.device', 'PASS', `${boot.type} ${boot.model} (${boot.serial})`, 'a boot device', '');
  const gib = boot.capacityBytes / GiB;
  const measured = `${num(gib)} GiB`;
  const remedy = `Replace boot device ${boot.serial} with one of at least ${num(t.minBootGiB)} GiB (${opts.profile} profile).`;
  const verdict: Verdict = gib >= t.minBootGiB ? 'PASS' : gib >= t.minBootGiB / 2 ? 'WARN' : 'FAIL';
  return [deviceCheck, check('boot.capacity', verdict, measured, threshold, remedy)];
}

function diskChecks(n: DiscoveredNode, t: Thresholds, opts: ValidationOptions): CheckResult[] {
  const disks = n.inventory.disks;
  const ssds = disks.filter((d) => d.mediaType === 'SSD').length;
  const out: CheckResult[] = [];
  out.push(check('disk.ssd', ssds >= 1 ? 'PASS' : 'FAIL', plural(ssds, 'SSD'), '≥ 1 SSD', 'Add an SSD: the CVM keeps its write log and metadata on SSD.'));
  out.push(
    check(
      'disk.count',
      disks.length >= t.minDataDisks ? 'PASS' : 'FAIL',
      plural(disks.length, 'data disk'),
      `≥ ${plural(t.minDataDisks, 'data disk')}`,
      `Add data disks: the ${opts.profile} profile needs at least ${plural(t.minDataDisks, 'data disk')}.`,
    ),
  );
  const critical = disks.filter((d) => d.health === 'Critical');
  const warning = disks.filter((d) => d.health === 'Warning');
  const name = (d: { serial: string; slot: number }): string => `${d.serial} (slot ${d.slot})`;
  const parts: string[] = [];
  if (critical.length > 0) parts.push(`Critical: ${critical.map(name).join(', ')}`);
  if (warning.length > 0) parts.push(`Warning: ${warning.map(name).join(', ')}`);
  const measured = parts.length > 0 ? parts.join('; ') : `all ${plural(disks.length, 'disk')} OK`;
  const threshold = 'every disk OK';
  if (critical.length > 0) {
    const which = list(critical.map((d) => `disk ${d.serial} in slot ${d.slot}`));
    out.push(check('disk.health', 'FAIL', measured, threshold, `Replace ${which} or exclude ${critical.length === 1 ? 'it' : 'them'}.`));
  } else if (warning.length > 0) {
    const which = list(warning.map((d) => `disk ${d.serial} in slot ${d.slot}`));
    out.push(check('disk.health', 'WARN', measured, threshold, `Plan to replace ${which}: ${warning.length === 1 ? 'it reports' : 'they report'} health Warning.`));
  } else {
    out.push(check('disk.health', 'PASS', measured, threshold, ''));
  }
  return out;
}

function hbaCheck(n: DiscoveredNode): CheckResult {
  const hba = n.inventory.hba;
  const threshold = 'a passthrough-capable storage HBA';
  if (!hba) return check('hba.passthrough', 'FAIL', 'no storage HBA', threshold, 'Install a storage HBA that supports PCI passthrough: the CVM owns the data disks through it.');
  const measured = `${hba.model} (${hba.vendorId}:${hba.deviceId}), ${hba.passthroughCapable ? 'passthrough-capable' : 'not passthrough-capable'}`;
  return check('hba.passthrough', hba.passthroughCapable ? 'PASS' : 'FAIL', measured, threshold, `Replace ${hba.model} with an HBA that supports PCI passthrough: the CVM owns the data disks through it.`);
}

function nicChecks(n: DiscoveredNode, t: Thresholds, opts: ValidationOptions): CheckResult[] {
  const nics = n.inventory.nics;
  const out: CheckResult[] = [];
  out.push(
    check('nic.count', nics.length >= t.minNics ? 'PASS' : 'FAIL', plural(nics.length, 'NIC'), `≥ ${plural(t.minNics, 'NIC')}`, `Add NICs: the ${opts.profile} profile needs at least ${plural(t.minNics, 'NIC')}.`),
  );
  const up = nics.filter((x) => x.linkUp);
  const down = nics.filter((x) => !x.linkUp);
  const linkMeasured = nics.length === 0 ? 'no NICs' : down.length === 0 ? `all ${plural(nics.length, 'NIC')} up` : `${up.length} of ${nics.length} up; down: ${down.map((x) => x.id).join(', ')}`;
  if (up.length === 0) {
    out.push(check('nic.link', 'FAIL', linkMeasured, 'link on at least one NIC; on all for PASS', 'No NIC has link: check the cables and the switch ports.'));
  } else if (down.length > 0) {
    out.push(check('nic.link', 'WARN', linkMeasured, 'link on at least one NIC; on all for PASS', `Check the cable and switch port of ${list(down.map((x) => x.id))}.`));
  } else {
    out.push(check('nic.link', 'PASS', linkMeasured, 'link on at least one NIC; on all for PASS', ''));
  }
  const pool = up.length > 0 ? up : nics;
  const fastest = pool.reduce<(typeof nics)[number] | undefined>((m, x) => (m === undefined || x.speedMbps > m.speedMbps ? x : m), undefined);
  const speed = fastest?.speedMbps ?? 0;
  const speedMeasured = fastest ? `${speed} Mbps (${fastest.id}${up.length > 0 ? '' : ', no link'})` : '0 Mbps (no NICs)';
  out.push(
    check(
      'nic.speed',
      speed >= t.minNicSpeedMbps ? 'PASS' : 'FAIL',
      speedMeasured,
      `≥ ${t.minNicSpeedMbps} Mbps on a NIC with link`,
      `Connect a NIC of at least ${t.minNicSpeedMbps} Mbps (${opts.profile} profile).`,
    ),
  );
  return out;
}

function firmwareCheck(id: 'firmware.bmc' | 'firmware.bios', label: string, have: string, min: string | undefined): CheckResult {
  if (min === undefined) return check(id, 'PASS', have, 'no minimum', '');
  const threshold = `≥ ${min}`;
  if (compareVersions(have, min) < 0) {
    return check(id, 'FAIL', have, threshold, `Update the ${label} firmware from ${have} to ${min} or later (the release bundle's minimum).`);
  }
  return check(id, 'PASS', have, threshold, '');
}

function nodeChecks(n: DiscoveredNode, opts: ValidationOptions): CheckResult[] {
  const t = THRESHOLDS[opts.profile];
  return [
    cpuCheck(n, t, opts),
    memoryCheck(n, t, opts),
    ...bootChecks(n, t, opts),
    ...diskChecks(n, t, opts),
    hbaCheck(n),
    ...nicChecks(n, t, opts),
    firmwareCheck('firmware.bmc', 'BMC', n.inventory.firmware.bmc, opts.minFirmware.bmc),
    firmwareCheck('firmware.bios', 'BIOS', n.inventory.firmware.bios, opts.minFirmware.bios),
  ];
}

function clusterChecks(included: readonly DiscoveredNode[], excludedCount: number, opts: ValidationOptions): CheckResult[] {
  const need = MIN_NODES_FOR_RF[opts.redundancyFactor];
  const have = included.length;
  const countMeasured = `${plural(have, 'included node')}${excludedCount > 0 ? ` (${excludedCount} excluded)` : ''}`;
  const missing = need - have;
  const countCheck = check(
    'cluster.node_count',
    missing > 0 ? 'FAIL' : 'PASS',
    countMeasured,
    `≥ ${plural(need, 'node')} for RF${opts.redundancyFactor}`,
    `Add ${missing} more ${missing === 1 ? 'node' : 'nodes'} (RF${opts.redundancyFactor} needs at least ${need}), fix the excluded ones, or choose a lower redundancy factor.`,
  );
  const models = [...new Set(included.map((n) => n.model))].sort();
  const modelCheck = check(
    'cluster.mixed_models',
    models.length > 1 ? 'WARN' : 'PASS',
    models.length === 0 ? 'no nodes' : `${plural(models.length, 'model')}: ${models.join(', ')}`,
    'one model',
    `Nodes of different models (${models.join(', ')}) give uneven performance and capacity; prefer one model per cluster.`,
  );
  return [countCheck, modelCheck];
}

/** Grades every node and the set (see the module's tables). Does not change its inputs. */
export function validateHardware(nodes: readonly DiscoveredNode[], opts: ValidationOptions): ValidationReport {
  const overrides = new Set(opts.overrides);
  const reports: NodeReport[] = nodes.map((n) => {
    const checks = nodeChecks(n, opts);
    const verdict = worst(checks.map((c) => c.verdict));
    const overridden = verdict === 'FAIL' && overrides.has(n.serial);
    return { serial: n.serial, verdict, checks, excluded: verdict === 'FAIL' && !overridden, overridden };
  });
  const included = nodes.filter((_, i) => reports[i]?.excluded === false);
  const cluster = clusterChecks(included, nodes.length - included.length, opts);
  const counts: Record<Verdict, number> = { PASS: 0, WARN: 0, FAIL: 0 };
  for (const c of [...reports.flatMap((r) => r.checks), ...cluster]) counts[c.verdict]++;
  const verdict = worst([...reports.filter((r) => !r.excluded).map((r) => r.verdict), ...cluster.map((c) => c.verdict)]);
  return { profile: opts.profile, verdict, nodes: reports, cluster, counts };
}
