/**
 * @module
 * The compatibility matrix and the plan of a rolling upgrade (pure, ADR 018): which nodes move to
 * the target bundle, in which order, with which steps; or the refusals that forbid it, each naming
 * what is refused and the pair of versions.
 */
import { compareVersions } from '../../shared/versions.ts';
import type { BundleOffer, NodeInventory, NodePlan, PlanStep, Refusal, UpgradePlan } from '../protocol/lcm.ts';

export interface PlanOptions {
  /** Firmware images at hand (their versions): a node below the bundle's minimum is updated to them. */
  firmware?: { bmc?: string; bios?: string };
  /** Serials in the order to upgrade (the CVM driving the upgrade last); absent: by serial. */
  order?: readonly string[];
  /** The CVM protocol each node's CVM speaks (absent: 1). */
  protocols?: Readonly<Record<string, number>>;
}

const atTarget = (n: NodeInventory, t: BundleOffer): boolean => n.hypervisor === t.hypervisor && n.nos === t.nos;

/** The plan to `target`, or why it is refused (a non-empty `refusals` means no plan may run). */
export function planUpgrade(nodes: readonly NodeInventory[], target: BundleOffer, o: PlanOptions = {}): { plan: UpgradePlan; refusals: Refusal[] } {
  const refusals: Refusal[] = [];
  const refuse = (field: string, reason: string): void => {
    refusals.push({ field, reason });
  };
  if (!(target.compatibility[target.nos] ?? []).includes(target.hypervisor)) {
    refuse('compatibility', `bundle ${target.version}: storage OS ${target.nos} does not support its own hypervisor ${target.hypervisor}`);
  }
  const order = o.order ?? [...nodes].map((n) => n.serial).sort();
  const bySerial = new Map(nodes.map((n) => [n.serial, n]));
  const planned: NodePlan[] = [];
  const current: string[] = [];
  for (const serial of [...order, ...nodes.map((n) => n.serial).filter((s) => !order.includes(s)).sort()]) {
    const n = bySerial.get(serial);
    if (!n) continue;
    if (n.hypervisor === null || n.nos === null) {
      refuse(`node.${serial}`, `${n.hostname} does not answer (hypervisor ${n.hypervisor ?? 'unknown'}, storage OS ${n.nos ?? 'unknown'}): its versions are not known`);
      continue;
    }
    if (atTarget(n, target) && firmwareOk(n, target)) {
      current.push(serial);
      continue;
    }
    const from = n.bundle ?? n.nos;
    if (compareVersions(from, target.version) > 0) refuse('bundle', `${n.hostname} runs ${from}, newer than ${target.version}: LCM does not downgrade`);
    else if (target.upgradeFrom && !target.upgradeFrom.includes(from) && !atTarget(n, target)) {
      refuse('bundle', `${target.version} does not upgrade from ${from} (${n.hostname}); it upgrades from ${target.upgradeFrom.join(', ')}`);
    }
    // while the upgrade runs, the target's CVMs run beside this node's, and this node's hypervisor beside the target's storage OS only until it is upgraded
    const protocol = o.protocols?.[serial] ?? 1;
    if (target.cvmProtocol && protocol < target.cvmProtocol.compatibleFrom) {
      refuse('cvmProtocol', `storage OS ${target.nos} (CVM protocol ${target.cvmProtocol.version}, beside ${target.cvmProtocol.compatibleFrom} or later) cannot run beside storage OS ${n.nos} on ${n.hostname} (protocol ${protocol})`);
    }
    const steps: PlanStep[] = [
      { kind: 'enter-maintenance', detail: `${n.hostname} enters maintenance: its VMs move to other hosts, live` },
      { kind: 'stop-cvm', detail: `its CVM hands over its vdisks and stops (VM I/O goes on through the other CVMs)` },
    ];
    for (const part of ['bmc', 'bios'] as const) {
      const min = target.minFirmware[part];
      const have = n.firmware[part];
      if (min === undefined || (have !== null && compareVersions(have, min) >= 0)) continue;
      const image = o.firmware?.[part];
      if (have === null) refuse(`firmware.${part}`, `${n.hostname}: its ${part.toUpperCase()} firmware version was not read (its BMC did not answer); ${target.version} needs ${min} or later`);
      else if (image === undefined || compareVersions(image, min) < 0) refuse(`firmware.${part}`, `${n.hostname} has ${part.toUpperCase()} firmware ${have}; ${target.version} needs ${min} or later and no such firmware image is in the cluster's repository`);
      else steps.push({ kind: part === 'bmc' ? 'firmware-bmc' : 'firmware-bios', detail: `${part.toUpperCase()} firmware ${have} → ${image} through its BMC (Redfish SimpleUpdate)` });
    }
    if (!atTarget(n, target)) {
      steps.push(
        { kind: 'install', detail: `hypervisor ${n.hypervisor} → ${target.hypervisor} and storage OS ${n.nos} → ${target.nos} written to its boot disk (its CVM's data kept)` },
        { kind: 'restart', detail: 'the node restarts into them' },
        { kind: 'rejoin', detail: `its CVM rejoins the cluster at ${target.nos}` },
        { kind: 'resiliency', detail: 'every extent group back at its replication factor' },
      );
    } else steps.push({ kind: 'restart', detail: 'the node restarts into its new firmware' }, { kind: 'rejoin', detail: 'its CVM rejoins the cluster' }, { kind: 'resiliency', detail: 'every extent group back at its replication factor' });
    steps.push({ kind: 'exit-maintenance', detail: `${n.hostname} leaves maintenance: its VMs come back` });
    planned.push({ serial, hostname: n.hostname, from: { hypervisor: n.hypervisor, nos: n.nos, bundle: n.bundle }, steps });
  }
  return { plan: { to: target.version, nodes: planned, current }, refusals };
}

function firmwareOk(n: NodeInventory, t: BundleOffer): boolean {
  return (['bmc', 'bios'] as const).every((p) => {
    const min = t.minFirmware[p];
    const have = n.firmware[p];
    return min === undefined || (have !== null && compareVersions(have, min) >= 0);
  });
}

/** The plan as `converge lcm plan` prints it. */
export function planText(p: UpgradePlan, refusals: readonly Refusal[]): string {
  const lines: string[] = [];
  if (refusals.length > 0) {
    lines.push(`REFUSED: the upgrade to ${p.to} is not allowed:`);
    for (const r of refusals) lines.push(`  ${r.field}: ${r.reason}`);
    return `${lines.join('\n')}\n`;
  }
  if (p.nodes.length === 0) return `Every node already runs ${p.to}: nothing to do.\n`;
  lines.push(`Upgrade to ${p.to}: ${p.nodes.length} node(s), one at a time${p.current.length ? ` (${p.current.length} already at ${p.to})` : ''}`);
  p.nodes.forEach((n, i) => {
    lines.push(`${i + 1}. ${n.hostname} (${n.serial}): hypervisor ${n.from.hypervisor ?? '?'}, storage OS ${n.from.nos ?? '?'}`);
    n.steps.forEach((s, j) => lines.push(`   ${i + 1}.${j + 1} ${s.kind.padEnd(17)} ${s.detail}`));
  });
  return `${lines.join('\n')}\n`;
}
