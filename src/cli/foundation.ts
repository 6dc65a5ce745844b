/**
 * @module
 * `converge bundle ...` and `converge foundation ...`: build release bundles, run Foundation, and
 * drive it from the terminal (discover, validate, plan, image with live per-node progress,
 * progress, abort, retry).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../shared/errors.ts';
import { callApi } from './http.ts';
import { defaultDataDir } from '../rack/node/layout.ts';
import { planFromJson, planToJson, type PlanResult } from '../foundation/core/ip-plan.ts';
import { renderStages } from './deploy-view.ts';
import type { ValidationReport } from '../foundation/core/types.ts';
import { imageNodesBody, planInputFor } from '../foundation/protocol/deploy.ts';
import { generatePassword } from '../shared/passwords.ts';
import { PASSWORD_ENV } from './cluster.ts';
import type { startFoundation } from '../foundation/main.ts';
import type { buildBundle } from './bundle-build.ts';
import { fail, printJson, table } from './output.ts';
import type { DiscoverBlock, FoundationError, ProgressResponse, UploadReply } from '../foundation/protocol/api.ts';

const DEFAULT_URL = 'http://127.0.0.1:8000';

/** Foundation's API token (--token, or CONVERGE_FOUNDATION_TOKEN): needed when it listens off loopback. */
let token: string | undefined;

function api<T = unknown>(url: string, method: string, path: string, body?: unknown): Promise<T> {
  return callApi<T>(`${url}${path}`, {
    method, body, token: token ?? process.env['CONVERGE_FOUNDATION_TOKEN'],
    unreachable: `cannot reach Foundation at ${url}; start it with: converge foundation serve`,
    errorOf: (json) => {
      const e = (json as Partial<FoundationError> | undefined)?.error;
      const field = e?.details ? Object.keys(e.details)[0] : undefined;
      return { ...(field ? { field } : {}), ...(e ? { message: field ? e.details[field] ?? e.message : e.message } : {}) };
    },
  });
}

const bar = (pct: number, w = 20): string => '█'.repeat(Math.round((pct / 100) * w)).padEnd(w, '·');

function renderProgress(p: ProgressResponse): string {
  const rows = [['NODE', 'HOST', 'STAGE', '', '%', 'TIME', 'STATUS']];
  for (const n of p.nodes) rows.push([n.node_serial, n.hypervisor_ip, n.stage, bar(n.percent_complete), String(n.percent_complete), `${n.time_elapsed}s`, String(n.status).slice(0, 90)]);
  for (const c of p.clusters) rows.push([`cluster ${c.cluster_name}`, `${c.cluster_members.length} nodes`, c.stage ?? '', bar(c.percent_complete), String(c.percent_complete), `${c.time_elapsed}s`, String(c.status).slice(0, 90)]);
  return `${table(rows)}\nsession ${p.session_id}: ${p.aggregate_percent_complete}%${p.imaging_stopped ? ' — stopped' : ''}${p.abort_session ? ' (aborted)' : ''}`;
}

/** Polls progress until imaging stops, redrawing in place on a terminal. */
async function follow(url: string, sid: string, json: boolean, render: (p: ProgressResponse) => string = renderProgress): Promise<ProgressResponse> {
  let lines = 0;
  let last = '';
  for (;;) {
    const p = await api<ProgressResponse>(url, 'GET', `/foundation/progress?session_id=${sid}`);
    if (!json) {
      const out = render(p);
      if (process.stdout.isTTY) {
        if (lines > 0) process.stdout.write(`\x1b[${lines}A\x1b[J`);
        process.stdout.write(out + '\n');
        lines = out.split('\n').length;
      } else if (out !== last) {
        process.stdout.write(out + '\n\n');
      }
      last = out;
    }
    if (p.imaging_stopped) return p;
    await new Promise((r) => setTimeout(r, 500));
  }
}

function printValidation(r: ValidationReport): void {
  const rows = [['NODE', 'VERDICT', 'CHECK', 'MEASURED', 'THRESHOLD', 'REMEDY']];
  for (const n of r.nodes) {
    const bad = n.checks.filter((c) => c.verdict !== 'PASS');
    if (bad.length === 0) rows.push([n.serial, 'PASS', '', '', '', '']);
    for (const [i, c] of bad.entries()) rows.push([i === 0 ? n.serial : '', i === 0 ? `${n.verdict}${n.excluded ? ' (excluded)' : n.overridden ? ' (overridden)' : ''}` : '', `${c.verdict} ${c.check}`, c.measured, c.threshold, c.remedy]);
  }
  for (const c of r.cluster) rows.push(['(cluster)', c.verdict, c.check, c.measured, c.threshold, c.remedy]);
  process.stdout.write(`${table(rows)}\n\n${r.profile} profile: ${r.verdict} — PASS ${r.counts.PASS}, WARN ${r.counts.WARN}, FAIL ${r.counts.FAIL}\n`);
}

interface ImageOptions { url: string; json?: boolean; plan: string; bundle?: string; cvmVcpus: string; cvmRam: string; follow: boolean; createCluster?: boolean; redundancyFactor?: string; adminPassword?: string }

/** Images a plan's nodes (and, asked, creates and validates their cluster), following the session. */
async function imagePlan(o: ImageOptions, render: (p: ProgressResponse) => string): Promise<void> {
  try {
    const pr = planFromJson(readFileSync(o.plan, 'utf8'));
    if (!pr.plan) throw new InputError(`plan.${pr.errors[0]?.field ?? ''}`, `${pr.errors[0]?.node ? `node ${pr.errors[0].node}: ` : ''}${pr.errors[0]?.reason ?? 'invalid plan'}`);
    const bundles = await api<string[]>(o.url, 'GET', '/foundation/enumerate_nos_packages');
    const bundleName = o.bundle ?? bundles[bundles.length - 1];
    if (!bundleName) throw new InputError('bundle', 'the repository is empty: build one (converge bundle build --version 1.0.0) and upload it (converge foundation upload FILE)');
    const blocks = await api<DiscoverBlock[]>(o.url, 'GET', '/foundation/discover_nodes');
    const current = new Map<string, string>(blocks.flatMap((b) => b.nodes).map((n) => [n.node_serial, n.ipmi_ip]));
    const rf = o.createCluster ? Number(o.redundancyFactor ?? (pr.plan.nodes.length >= 3 ? 2 : 1)) : null;
    if (rf !== null && rf !== 1 && rf !== 2 && rf !== 3) throw new InputError('redundancy-factor', 'must be 1, 2 or 3', ['1', '2', '3'], o.redundancyFactor);
    // Prism's admin password: given (--admin-password or CONVERGE_ADMIN_PASSWORD) or generated here, shown once at the end
    const given = o.adminPassword ?? process.env[PASSWORD_ENV];
    const password = rf === null ? undefined : given ?? generatePassword();
    const { session_id: sid } = await api<{ session_id: string }>(o.url, 'POST', '/foundation/image_nodes', imageNodesBody(pr.plan, { bundle: bundleName, vcpus: Number(o.cvmVcpus), ramGiB: Number(o.cvmRam), current, cluster: rf, ...(password ? { adminPassword: password } : {}) }));
    if (!o.follow) return o.json ? printJson({ session_id: sid }) : void process.stdout.write(`session ${sid}\n`);
    const p = await follow(o.url, sid, o.json === true, render);
    const prism = p.clusters.find((c) => c.prism)?.prism;
    if (o.json) printJson(p);
    else if (prism && password) {
      process.stdout.write(`\nPrism: ${prism.url}/console/\n  user admin, password ${given ? '(the one you gave)' : `${password}   (generated; shown only this once)`}\n  CA certificate: ${prism.ca_file}\n`);
    }
    if (!(p.imaging_stopped && p.aggregate_percent_complete === 100)) process.exitCode = 1;
  } catch (e) {
    fail(e, o.json === true);
  }
}

/** The options of every command that deploys a plan (foundation image, deploy). */
function planOptions(c: Command): Command {
  return c
    .requiredOption('--plan <file>', 'a plan from converge foundation plan')
    .option('--bundle <name>', 'bundle in the repository (default: the newest)')
    .option('--cvm-vcpus <n>', 'CVM vCPUs', '8')
    .option('--cvm-ram <gib>', 'CVM RAM in GiB', '16')
    .option('--redundancy-factor <n>', 'RF of the cluster created (default: 2 with 3 or more nodes, else 1)')
    .option('--admin-password <p>', `Prism's initial admin password (or ${PASSWORD_ENV}; default: generated and shown once)`);
}

/** `converge deploy --plan FILE`: the whole flow, shown as the four stages per node and for the cluster. */
function registerDeploy(program: Command, client: (c: Command) => Command): void {
  planOptions(client(program.command('deploy')))
    .description('deploy a plan end to end (image, create and validate the cluster), shown as the four stages per node')
    .action((o: ImageOptions) => imagePlan({ ...o, follow: true, createCluster: true }, renderStages));
}

export function registerFoundation(program: Command): void {
  const bundle = program.command('bundle').description('release bundles: hypervisor + CVM software + installer + manifest');
  bundle.command('build')
    .description('build a release bundle from this checkout')
    .requiredOption('--version <v>', 'bundle version, e.g. 1.0.0')
    .option('--out <dir>', 'where to write it', 'dist/bundles')
    .option('--hypervisor-version <v>', 'hypervisor version (default: the bundle version)')
    .option('--nos-version <v>', 'storage OS version (default: the bundle version)')
    .option('--min-bmc <v>', 'minimum BMC firmware')
    .option('--min-bios <v>', 'minimum BIOS firmware')
    .option('--upgrade-from <versions>', 'bundle versions a cluster may upgrade from to this one, comma-separated (default: any older one)')
    .option('--cvm-protocol <n[/oldest]>', 'the CVM protocol it speaks and the oldest it works beside during an upgrade (default 1/1)')
    .option('--firmware-bmc <v>', 'ship a BMC firmware image of this version (LCM flashes it where the BMC is below --min-bmc)')
    .option('--firmware-bios <v>', 'ship a BIOS firmware image of this version (LCM flashes it where the BIOS is below --min-bios)')
    .option('--json', 'machine-readable output')
    .action(async (o: { version: string; out: string; hypervisorVersion?: string; nosVersion?: string; minBmc?: string; minBios?: string; upgradeFrom?: string; cvmProtocol?: string; firmwareBmc?: string; firmwareBios?: string; json?: boolean }) => {
      try {
        const b: Parameters<typeof buildBundle>[0] = { version: o.version, out: resolve(o.out) };
        if (o.hypervisorVersion) b.hypervisorVersion = o.hypervisorVersion;
        if (o.nosVersion) b.nosVersion = o.nosVersion;
        if (o.minBmc) b.minBmc = o.minBmc;
        if (o.minBios) b.minBios = o.minBios;
        if (o.firmwareBmc) b.firmwareBmc = o.firmwareBmc;
        if (o.firmwareBios) b.firmwareBios = o.firmwareBios;
        if (o.upgradeFrom) b.upgradeFrom = o.upgradeFrom.split(',').map((x) => x.trim()).filter((x) => x !== '');
        if (o.cvmProtocol) {
          const m = /^(\d+)(?:\/(\d+))?$/.exec(o.cvmProtocol);
          if (!m) throw new InputError('cvm-protocol', 'must be N or N/OLDEST, e.g. 2/1');
          b.cvmProtocol = { version: Number(m[1]), compatibleFrom: Number(m[2] ?? m[1]) };
        }
        const r = await (await import('./bundle-build.ts')).buildBundle(b);
        if (o.json) printJson({ file: r.file, sha256: r.sha256, bytes: r.bytes, manifest: r.manifest });
        else process.stdout.write(`${r.file}\n  ${(r.bytes / 1024).toFixed(0)} KiB, sha256 ${r.sha256}\n  hypervisor ${r.manifest.components.hypervisor.version}, storage OS ${r.manifest.components.cvm.version}\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  const fd = program.command('foundation').description('deploy nodes: discovery, validation, IP plan, imaging');
  fd.command('serve')
    .description('run Foundation (foreground) on 127.0.0.1:8000')
    .option('--data-dir <dir>', 'state and bundle repository (default ~/.converge); a rack there lends its BMC credentials and CA')
    .option('--bundles <dir>', 'add the bundles in this folder to the repository')
    .option('--host <ip>', 'listen address', '127.0.0.1')
    .option('--port <n>', 'listen port', '8000')
    .option('--bmc-user <u>').option('--bmc-password <p>').option('--bmc-ca <file>', 'CA that signed the BMCs\' certificates')
    .option('--profile <p>', 'validation thresholds: lab or production', 'lab')
    .action(async (o: { dataDir?: string; bundles?: string; host: string; port: string; bmcUser?: string; bmcPassword?: string; bmcCa?: string; profile: string }) => {
      try {
        if (o.profile !== 'lab' && o.profile !== 'production') throw new InputError('profile', 'must be lab or production', ['lab', 'production'], o.profile);
        const opts: Parameters<typeof startFoundation>[0] = { dataDir: resolve(o.dataDir ?? defaultDataDir()), host: o.host, port: Number(o.port), profile: o.profile };
        if (o.bundles) opts.bundles = resolve(o.bundles);
        if (o.bmcUser) opts.bmcUser = o.bmcUser;
        if (o.bmcPassword) opts.bmcPassword = o.bmcPassword;
        if (o.bmcCa) opts.bmcCa = resolve(o.bmcCa);
        // loaded here: every other command starts faster without Foundation's server
        const f = await (await import('../foundation/main.ts')).startFoundation(opts);
        process.stdout.write(`Foundation ${f.url}/foundation/ (API description: ${f.url}/foundation/openapi.json); web UI ${f.url}/; Ctrl-C stops it\n`);
        const stop = (): void => void f.close().then(() => process.exit(0));
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      } catch (e) {
        fail(e, false);
      }
    });

  const client = (c: Command): Command => c.option('--url <url>', 'Foundation', DEFAULT_URL).option('--json', 'machine-readable output')
    .option('--token <token>', "Foundation's API token, printed once at its start when it listens off loopback (or CONVERGE_FOUNDATION_TOKEN)")
    .hook('preAction', (_c, action) => {
      token = action.opts<{ token?: string }>().token;
    });

  client(fd.command('discover'))
    .description('find nodes (rack lists, SSDP, and --range) and read their inventory')
    .option('--range <a-b...>', 'BMC address ranges to probe, e.g. 127.10.0.1-127.10.0.32')
    .action(async (o: { url: string; json?: boolean; range?: string[] }) => {
      try {
        const blocks = await api<DiscoverBlock[]>(o.url, 'GET', `/foundation/discover_nodes${o.range ? `?range=${encodeURIComponent(o.range.join(','))}` : ''}`);
        if (o.json) return printJson(blocks);
        const rows = [['BLOCK/POS', 'SERIAL', 'MODEL', 'BMC', 'BMC MAC', 'SOFTWARE']];
        for (const b of blocks) for (const n of b.nodes) rows.push([`${b.block_id}/${n.node_position}`, n.node_serial, n.model, n.ipmi_ip, n.ipmi_mac, n.nos_version ? `converge ${n.nos_version}${n.configured ? ' (in a cluster)' : ' (unconfigured)'}` : '-']);
        process.stdout.write(`${table(rows)}\n${rows.length - 1} node(s)\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  client(fd.command('validate'))
    .description('grade the discovered hardware: PASS / WARN / FAIL per check, with remedies')
    .option('--profile <p>', 'lab or production')
    .option('--rf <n>', 'redundancy factor the cluster will use', '2')
    .option('--override <serial...>', 'keep these FAIL nodes')
    .action(async (o: { url: string; json?: boolean; profile?: string; rf: string; override?: string[] }) => {
      try {
        const qs = new URLSearchParams({ redundancy_factor: o.rf, ...(o.profile ? { profile: o.profile } : {}), ...(o.override ? { overrides: o.override.join(',') } : {}) });
        const r = await api<ValidationReport>(o.url, 'GET', `/foundation/validation?${qs.toString()}`);
        if (o.json) printJson(r);
        else printValidation(r);
        // exit 3: some node (or the set) FAILs, even when FAIL nodes are excluded from the deployment
        if (r.verdict === 'FAIL' || r.nodes.some((n) => n.verdict === 'FAIL')) process.exitCode = 3;
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  client(fd.command('plan'))
    .description('assign BMC, host and CVM addresses to the discovered nodes and write the plan (or --check one)')
    .option('--out <file>', 'where to write the plan', 'plan.json')
    .option('--check <file>', 'check an existing plan file instead')
    .option('--cluster-name <n>', 'cluster name', 'converge-lab')
    .option('--vip <ip>', 'cluster virtual IP (Prism)')
    .option('--dns <ip...>', 'DNS servers', ['127.0.0.53'])
    .option('--ntp <server...>', 'NTP servers', ['127.0.0.123'])
    .option('--hostname-prefix <p>', 'host names: <prefix>-1, -2, ...', 'node')
    .option('--bmc-start <ip>', 'first BMC address (default: keep each BMC where it is)')
    .option('--bmc-netmask <m>', '', '255.255.0.0').option('--bmc-gateway <ip>', 'BMC gateway')
    .option('--host-start <ip>', 'first host address', '127.20.0.1')
    .option('--cvm-start <ip>', 'first CVM address', '127.20.1.1')
    .option('--netmask <m>', 'host and CVM netmask', '255.255.0.0')
    .option('--gateway <ip>', 'host and CVM gateway', '127.20.255.254')
    .option('--production', 'not a lab: addresses need not be loopback')
    .action(async (o: { url: string; json?: boolean; out: string; check?: string; clusterName: string; vip?: string; dns: string[]; ntp: string[]; hostnamePrefix: string; bmcStart?: string; bmcNetmask: string; bmcGateway?: string; hostStart: string; cvmStart: string; netmask: string; gateway: string; production?: boolean }) => {
      try {
        let result;
        if (o.check) {
          result = planFromJson(readFileSync(o.check, 'utf8'));
        } else {
          const blocks = await api<DiscoverBlock[]>(o.url, 'GET', '/foundation/discover_nodes');
          const nodes = blocks.flatMap((b) => b.nodes);
          if (nodes.length === 0) throw new InputError('nodes', 'discovery found no nodes; is the rack up?');
          const input = planInputFor(nodes, {
            clusterName: o.clusterName, dns: o.dns, ntp: o.ntp, hostnamePrefix: o.hostnamePrefix, bmcNetmask: o.bmcNetmask,
            hostStart: o.hostStart, cvmStart: o.cvmStart, netmask: o.netmask, gateway: o.gateway, lab: !o.production,
            ...(o.bmcStart ? { bmcStart: o.bmcStart } : {}), ...(o.bmcGateway ? { bmcGateway: o.bmcGateway } : {}), ...(o.vip ? { vip: o.vip } : {}),
          });
          // Foundation checks the plan, including addresses already answering on the network
          result = await api<PlanResult>(o.url, 'POST', '/foundation/plan_check', input);
        }
        if (result.errors.length > 0 || !result.plan) {
          if (o.json) printJson({ errors: result.errors });
          else for (const e of result.errors) process.stderr.write(`error: ${e.node ? `node ${e.node}: ` : ''}${e.field}: ${e.reason}\n`);
          process.exit(2);
        }
        if (!o.check) writeFileSync(o.out, planToJson(result.plan));
        if (o.json) return printJson(result.plan);
        const rows = [['NODE', 'HOSTNAME', 'BMC', 'HOST', 'CVM']];
        for (const n of result.plan.nodes) rows.push([n.serial, n.hostname, n.bmcIp, n.hostIp, n.cvmIp]);
        process.stdout.write(`${table(rows)}\n${o.check ? `${o.check}: the plan is valid` : `plan written to ${o.out}`}\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  client(fd.command('upload'))
    .description('add a release bundle to Foundation\'s repository (verified first)')
    .argument('<file>')
    .action(async (file: string, o: { url: string; json?: boolean }) => {
      try {
        const name = file.split('/').pop() ?? file;
        const r = await api<UploadReply>(o.url, 'POST', `/foundation/upload?installer_type=nos&filename=${encodeURIComponent(name)}`, readFileSync(file));
        if (o.json) printJson(r);
        else process.stdout.write(`uploaded ${r.name} (bundle ${r.version}, md5 ${r.md5sum})\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  planOptions(client(fd.command('image')))
    .description('image the nodes of a plan with a bundle, showing each node\'s progress live')
    .option('--create-cluster', 'then create the cluster of the plan\'s nodes and validate it (stages 3 and 4)')
    .option('--no-follow', 'return once the session has started')
    .action((o: ImageOptions) => imagePlan(o, renderProgress));
  registerDeploy(program, client);

  client(fd.command('progress'))
    .description('show a session\'s progress (--follow until it stops)')
    .requiredOption('--session <id>')
    .option('--follow', 'keep showing until imaging stops')
    .action(async (o: { url: string; json?: boolean; session: string; follow?: boolean }) => {
      try {
        const p = o.follow ? await follow(o.url, o.session, o.json === true) : await api<ProgressResponse>(o.url, 'GET', `/foundation/progress?session_id=${encodeURIComponent(o.session)}`);
        if (o.json) printJson(p);
        else if (!o.follow) process.stdout.write(renderProgress(p) + '\n');
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  client(fd.command('abort'))
    .description('abort a session: pending nodes never start')
    .requiredOption('--session <id>')
    .action(async (o: { url: string; json?: boolean; session: string }) => {
      try {
        const r = await api(o.url, 'POST', `/foundation/abort_session?session_id=${encodeURIComponent(o.session)}`);
        if (o.json) printJson(r);
        else process.stdout.write(`session ${o.session}: abort requested\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  client(fd.command('retry'))
    .description('retry one failed node of a session')
    .requiredOption('--session <id>')
    .requiredOption('--node <serial>')
    .option('--follow', 'show progress until the session stops')
    .action(async (o: { url: string; json?: boolean; session: string; node: string; follow?: boolean }) => {
      try {
        await api(o.url, 'POST', `/foundation/retry_node?session_id=${encodeURIComponent(o.session)}&serial=${encodeURIComponent(o.node)}`);
        if (o.follow) {
          const p = await follow(o.url, o.session, o.json === true);
          if (o.json) printJson(p);
        } else process.stdout.write(`node ${o.node}: retrying\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });
}
