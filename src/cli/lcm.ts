/**
 * @module
 * `converge lcm`: Life Cycle Manager (issue 14, ADR 018), through any CVM's API with the
 * deployment's operator certificate.
 *
 *   converge lcm inventory                       what runs on each node (versions; BMC, BIOS and drive firmware)
 *   converge lcm bundle upload PATH              a release bundle (or every bundle in a directory) into the cluster's repository
 *   converge lcm bundle list                     the repository
 *   converge lcm plan --to V | --bundle FILE     the ordered steps, or the refusals naming the pair (exit 1)
 *   converge lcm precheck --to V                 the pre-checks (exit 1 on a FAIL)
 *   converge lcm upgrade --to V [--wait]         the rolling upgrade (refused before any change when the plan or a pre-check says no)
 *   converge lcm status [--wait]                 where it is, node by node
 *   converge lcm pause | resume | abort
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { openBundle } from '../shared/bundle/archive.ts';
import { offerOf } from '../lcm/core/inventory.ts';
import { planText, planUpgrade } from '../lcm/core/plan.ts';
import { precheckText } from '../lcm/core/prechecks.ts';
import { diskFirmwareText, type NodeInventory, type PrecheckResult, type Refusal, type StoredBundle, type UpgradePlan, type UpgradeRecord } from '../lcm/protocol/lcm.ts';
import type { CallOptions } from '../shared/http-client.ts';
import { lcmCall } from '../lcm/protocol/client.ts';
import type { CvmStatus } from '../cvm/protocol/cluster.ts';
import { cvm, cvmTarget, operator, withDataDir } from './cluster.ts';
import { fail, printJson, table } from './output.ts';

type Opts = { cvmIp?: string; json?: boolean };

/** Calls LCM's API on the CVM at `ip` as the operator (GET without a body, POST with one). */
function lcm<T>(ip: string, path: string, body?: unknown, timeoutMs = 60_000, o: CallOptions = {}): Promise<T> {
  return lcmCall<T>(ip, path, { ...o, ...(body === undefined ? {} : { body }), timeoutMs, identity: operator() });
}

/** A command with the options every `lcm` command takes, whose failures print as text or JSON. */
function lcmCommand<O extends Opts>(parent: Command, name: string, description: string, run: (o: O, ip: string, args: string[]) => Promise<void>): Command {
  return withDataDir(parent.command(name))
    .description(description)
    .option('--cvm-ip <ip>', 'any CVM of the cluster (or CONVERGE_CVM_IP)')
    .option('--json', 'machine-readable output')
    .action(async (...a: unknown[]) => {
      const cmd = a.at(-1) as Command;
      const o = cmd.opts<O>();
      try {
        await run(o, cvmTarget(o), cmd.args);
      } catch (e) {
        fail(e, o.json === true);
      }
    });
}

const firmwareText = (f: NodeInventory['firmware']): string => `BMC ${f.bmc ?? '?'}, BIOS ${f.bios ?? '?'}`;

/** An upgrade's record for people: its state, each node's step, the newest events. */
export function upgradeText(r: UpgradeRecord, events = 8): string {
  const rows = r.nodes.map((n) => {
    const p = r.plan.nodes.find((x) => x.serial === n.serial);
    const step = p?.steps[n.step];
    const at = n.state === 'pending' ? '' : n.state === 'done' ? 'done' : `${n.step + 1}/${p?.steps.length ?? 0} ${step?.kind ?? ''}`;
    return [p?.hostname ?? n.serial, n.serial, n.state + (r.token === n.serial ? ' (token)' : ''), at];
  });
  const lines = [
    `upgrade to ${r.to}: ${r.state}${r.pauseRequested ? ' (pause asked)' : ''}, started ${r.startedAt}${r.finishedAt ? `, ended ${r.finishedAt}` : ''}`,
    table([['NODE', 'SERIAL', 'STATE', 'STEP'], ...rows]),
    ...(r.error ? [`error: ${r.error}`] : []),
    ...r.events.slice(-events).map((e) => `  ${e.at}  ${e.message}`),
  ];
  return `${lines.join('\n')}\n`;
}

/** Follows an upgrade, printing its new events, until it is no longer running; exit 1 unless it succeeded. */
async function follow(ip: string, json: boolean): Promise<void> {
  const printed = new Set<string>();
  // the CVM asked may be one the upgrade restarts: the other members answer meanwhile
  const st = await cvm<CvmStatus>(ip, '/status', undefined, 10_000).catch(() => null);
  const ips = [ip, ...(st?.cluster?.members ?? []).map((m) => m.cvmIp).filter((x) => x !== ip)];
  for (;;) {
    let r: UpgradeRecord | null = null;
    for (const at of ips) {
      r = await lcm<UpgradeRecord>(at, '/lcm/upgrade', undefined, 5000).catch(() => null);
      if (r) break;
    }
    if (!r) throw new Error(`no CVM of the cluster answers (${ips.join(', ')})`);
    for (const e of r.events) {
      const key = `${e.at} ${e.message}`;
      if (printed.has(key)) continue;
      printed.add(key);
      if (!json) process.stdout.write(`${e.at}  ${e.message}\n`);
    }
    if (r.state !== 'running') {
      if (json) printJson(r);
      else process.stdout.write(upgradeText(r, 0));
      if (r.state !== 'succeeded') process.exitCode = 1;
      return;
    }
    await new Promise((res) => setTimeout(res, 2000));
  }
}

/** The bundle files a path names: the file, or every converge-*.tar.gz in the directory (a Foundation-style bundle directory). */
function bundleFiles(path: string): string[] {
  const p = resolve(path);
  if (!statSync(p).isDirectory()) return [p];
  const files = readdirSync(p).filter((f) => /^converge-.*\.tar\.gz$/.test(f)).sort().map((f) => join(p, f));
  if (files.length === 0) throw new Error(`${p} holds no release bundle (converge-<version>.tar.gz)`);
  return files;
}

export function registerLcm(program: Command): void {
  const group = program.command('lcm').description('Life Cycle Manager: inventory, bundles, upgrade plans, pre-checks and rolling upgrades');

  lcmCommand(group, 'inventory', 'what runs on each node: hypervisor and storage OS versions; BMC, BIOS and drive firmware', async (o, ip) => {
    const inv = await lcm<NodeInventory[]>(ip, '/lcm/inventory', undefined, 30_000);
    if (o.json) return printJson(inv);
    process.stdout.write(`${table([['NODE', 'HOST', 'CVM', 'HYPERVISOR', 'STORAGE OS', 'FIRMWARE', 'DRIVE FIRMWARE'], ...inv.map((n) => [n.hostname, n.hostIp, n.cvmIp, n.hypervisor ?? 'not answering', n.nos ?? 'not answering', firmwareText(n.firmware), diskFirmwareText(n.firmware.disks)])])}\n`);
  });

  const bundle = group.command('bundle').description('the cluster\'s bundle repository');
  lcmCommand(bundle, 'upload', 'puts a release bundle (or every bundle in a directory) into the cluster\'s repository, verified', async (o, ip, args) => {
    const [path] = args;
    if (!path) throw new Error('give the bundle file or directory: converge lcm bundle upload PATH');
    const done: StoredBundle[] = [];
    for (const f of bundleFiles(path)) {
      done.push(await lcm<StoredBundle>(ip, '/lcm/bundles', undefined, 600_000, { method: 'PUT', stream: readFileSync(f) }));
      if (!o.json) process.stdout.write(`uploaded ${f}: bundle ${done.at(-1)?.offer.version ?? ''}\n`);
    }
    if (o.json) printJson(done);
  }).argument('<path>', 'a converge-<version>.tar.gz, or a directory of them');
  lcmCommand(bundle, 'list', 'the bundles in the cluster\'s repository', async (o, ip) => {
    const list = await lcm<StoredBundle[]>(ip, '/lcm/bundles', undefined, 10_000);
    if (o.json) return printJson(list);
    process.stdout.write(`${table([['VERSION', 'HYPERVISOR', 'STORAGE OS', 'UPGRADES FROM', 'SIZE', 'SHA256', 'COPIES'], ...list.map((b) => [b.offer.version, b.offer.hypervisor, b.offer.nos, b.offer.upgradeFrom?.join(',') ?? 'any older', `${(b.size / 2 ** 20).toFixed(1)} MiB`, `${b.offer.sha256.slice(0, 12)}…`, String(b.holders.length)])])}\n`);
  });

  lcmCommand<Opts & { to?: string; bundle?: string }>(group, 'plan', 'the ordered steps of an upgrade, one node at a time, or why the compatibility matrix refuses it (exit code 1)', async (o, ip) => {
    let out: { plan: UpgradePlan; refusals: Refusal[] };
    if (o.bundle) {
      // a bundle file not (yet) in the repository: weighed here against the cluster's inventory
      const [inv, b] = await Promise.all([lcm<NodeInventory[]>(ip, '/lcm/inventory', undefined, 30_000), openBundle(readFileSync(resolve(o.bundle)), o.bundle)]);
      out = planUpgrade(inv, offerOf(b.manifest, b.sha256));
    } else if (o.to) {
      out = await lcm<{ plan: UpgradePlan; refusals: Refusal[] }>(ip, `/lcm/plan?to=${encodeURIComponent(o.to)}`, undefined, 30_000);
    } else {
      throw new Error('give --to VERSION (a bundle in the repository) or --bundle FILE');
    }
    if (out.refusals.length > 0) process.exitCode = 1;
    if (o.json) return printJson(out);
    process.stdout.write(planText(out.plan, out.refusals));
  }).option('--to <version>', 'a bundle in the cluster\'s repository').option('--bundle <file>', 'a release bundle file (weighed without uploading it)');

  lcmCommand<Opts & { to: string }>(group, 'precheck', 'the pre-checks an upgrade runs before any change: nodes and services up, data resiliency, no host in maintenance, room for each host\'s VMs, the bundle\'s checksums (exit code 1 on a FAIL)', async (o, ip) => {
    const results = await lcm<PrecheckResult[]>(ip, `/lcm/precheck?to=${encodeURIComponent(o.to)}`, undefined, 120_000);
    const { text, ok } = precheckText(results);
    if (!ok) process.exitCode = 1;
    if (o.json) return printJson(results);
    process.stdout.write(text);
  }).requiredOption('--to <version>', 'a bundle in the cluster\'s repository');

  lcmCommand<Opts & { to: string; wait?: boolean; stepTimeout?: string }>(group, 'upgrade', 'upgrades every node to a bundle, one node at a time, VMs running (the plan and the pre-checks first: refused before any change)', async (o, ip) => {
    const stepTimeoutsS = o.stepTimeout === undefined ? undefined : Object.fromEntries(o.stepTimeout.split(',').map((kv) => {
      const [k, v] = kv.split('=');
      return [k ?? '', Number(v)];
    }));
    const r = await lcm<UpgradeRecord>(ip, '/lcm/upgrade', { to: o.to, ...(stepTimeoutsS ? { stepTimeoutsS } : {}) }, 180_000);
    if (o.wait) return follow(ip, o.json === true);
    if (o.json) return printJson(r);
    process.stdout.write(`${upgradeText(r)}follow it: converge lcm status --wait\n`);
  }).requiredOption('--to <version>', 'a bundle in the cluster\'s repository').option('--wait', 'follow it until it ends (exit 1 unless it succeeded)')
    .option('--step-timeout <step=seconds,…>', 'time limits other than the defaults, e.g. restart=600,resiliency=3600 (a step over its limit stops the upgrade)');

  lcmCommand<Opts & { wait?: boolean }>(group, 'status', 'the current (or last) upgrade, node by node', async (o, ip) => {
    if (o.wait) return follow(ip, o.json === true);
    const r = await lcm<UpgradeRecord>(ip, '/lcm/upgrade', undefined, 10_000);
    if (o.json) return printJson(r);
    process.stdout.write(upgradeText(r));
  }).option('--wait', 'follow it until it ends');

  for (const [name, what] of [['pause', 'pauses the upgrade before its next node'], ['resume', 'resumes a paused or failed upgrade (a failed step is tried again)'], ['abort', 'ends a paused or failed upgrade']] as const) {
    lcmCommand(group, name, what, async (o, ip) => {
      const r = await lcm<UpgradeRecord>(ip, `/lcm/upgrade/${name}`, {}, 30_000);
      if (o.json) return printJson(r);
      process.stdout.write(upgradeText(r, 3));
    });
  }
}

