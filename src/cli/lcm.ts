/**
 * @module
 * `converge lcm`: what an upgrade to a release bundle would do, before anything changes (issue 14,
 * ADR 018). Reads the cluster through the CVMs' API with the deployment's operator certificate.
 *
 *   converge lcm inventory --cvm-ip IP                 what runs on each node
 *   converge lcm plan --bundle FILE --cvm-ip IP        the ordered steps, or the refusals naming the pair (exit 1)
 *   converge lcm precheck --bundle FILE --cvm-ip IP    the pre-checks (exit 1 on a FAIL)
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { errorMessage } from '../shared/errors.ts';
import { openBundle } from '../shared/bundle/archive.ts';
import type { CvmStatus, PoolView, ResiliencyReport } from '../cvm/protocol/cluster.ts';
import type { Vm, VmHost } from '../cvm/protocol/vms.ts';
import { inventoryOf, offerOf, precheckInputOf, type MemberRef } from '../lcm/core/inventory.ts';
import { planText, planUpgrade } from '../lcm/core/plan.ts';
import { precheckText, prechecks } from '../lcm/core/prechecks.ts';
import type { BundleOffer } from '../lcm/protocol/lcm.ts';
import { cvm, cvmTarget, withDataDir } from './cluster.ts';
import { fail, printJson, table } from './output.ts';

/** The cluster's members and each CVM's status (null: it did not answer). */
async function cluster(ip: string): Promise<{ members: MemberRef[]; status: (cvmIp: string) => CvmStatus | null }> {
  const first = await cvm<CvmStatus>(ip, '/status', undefined, 10_000);
  if (!first.cluster) throw new Error(`the CVM at ${ip} is in no cluster`);
  const members = first.cluster.members.map((m) => ({ serial: m.serial, cvmIp: m.cvmIp, hostIp: m.hostIp }));
  const statuses = new Map(await Promise.all(members.map(async (m) => [m.cvmIp, m.cvmIp === ip ? first : await cvm<CvmStatus>(m.cvmIp, '/status', undefined, 5000).catch(() => null)] as const)));
  return { members, status: (c) => statuses.get(c) ?? null };
}

/** A bundle file, verified: its offer, or why it cannot be used. */
async function bundleOf(file: string): Promise<{ offer: BundleOffer | null; problems: string[] }> {
  try {
    const b = await openBundle(readFileSync(resolve(file)), file);
    return { offer: offerOf(b.manifest, b.sha256), problems: [] };
  } catch (e) {
    return { offer: null, problems: [errorMessage(e)] };
  }
}

type Opts = { cvmIp?: string; bundle?: string; json?: boolean };

export function registerLcm(program: Command): void {
  const lcm = program.command('lcm').description('Life Cycle Manager: inventory, upgrade plans and pre-checks against a release bundle');

  withDataDir(lcm.command('inventory'))
    .description('what runs on each node: hypervisor and storage OS versions')
    .option('--cvm-ip <ip>', 'any CVM of the cluster (or CONVERGE_CVM_IP)')
    .option('--json', 'machine-readable output')
    .action(async (o: Opts) => {
      try {
        const c = await cluster(cvmTarget(o));
        const inv = inventoryOf(c.members, c.status);
        if (o.json) return printJson(inv);
        process.stdout.write(`${table([['NODE', 'HOST', 'CVM', 'HYPERVISOR', 'STORAGE OS'], ...inv.map((n) => [n.serial, n.hostIp, n.cvmIp, n.hypervisor ?? 'not answering', n.nos ?? 'not answering'])])}\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  withDataDir(lcm.command('plan'))
    .description('the ordered steps of an upgrade to a release bundle, one node at a time, or why the compatibility matrix refuses it (exit code 1)')
    .requiredOption('--bundle <file>', 'the release bundle (converge-<version>.tar.gz)')
    .option('--cvm-ip <ip>', 'any CVM of the cluster (or CONVERGE_CVM_IP)')
    .option('--json', 'machine-readable output: { plan, refusals }')
    .action(async (o: Opts & { bundle: string }) => {
      try {
        const [c, b] = await Promise.all([cluster(cvmTarget(o)), bundleOf(o.bundle)]);
        if (!b.offer) throw new Error(b.problems.join('; '));
        const { plan, refusals } = planUpgrade(inventoryOf(c.members, c.status), b.offer);
        if (refusals.length > 0) process.exitCode = 1;
        if (o.json) return printJson({ plan, refusals });
        process.stdout.write(planText(plan, refusals));
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  withDataDir(lcm.command('precheck'))
    .description('the pre-checks an upgrade runs before any change: nodes and services up, data resiliency, no host in maintenance, room for each host\'s VMs, the bundle\'s checksums (exit code 1 on a FAIL)')
    .requiredOption('--bundle <file>', 'the release bundle (converge-<version>.tar.gz)')
    .option('--cvm-ip <ip>', 'any CVM of the cluster (or CONVERGE_CVM_IP)')
    .option('--json', 'machine-readable output: every result')
    .action(async (o: Opts & { bundle: string }) => {
      try {
        const ip = cvmTarget(o);
        const [c, b] = await Promise.all([cluster(ip), bundleOf(o.bundle)]);
        const [hosts, vms, resiliency, pool] = await Promise.all([
          cvm<VmHost[]>(ip, '/hosts', undefined, 10_000).catch(() => null),
          cvm<Vm[]>(ip, '/vms', undefined, 10_000).catch(() => [] as Vm[]),
          cvm<ResiliencyReport>(ip, '/storage/resiliency', undefined, 60_000).catch(() => null),
          cvm<PoolView>(ip, '/storage/pool', undefined, 10_000).catch(() => null),
        ]);
        const results = prechecks(precheckInputOf({ members: c.members, status: c.status, hosts, vms, resiliency, pool, bundleProblems: b.problems, token: { holder: null, upgradeRunning: false } }));
        const { text, ok } = precheckText(results);
        if (!ok) process.exitCode = 1;
        if (o.json) return printJson(results);
        process.stdout.write(text);
      } catch (e) {
        fail(e, o.json === true);
      }
    });
}
