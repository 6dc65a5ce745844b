/**
 * @module
 * `converge cluster create | status | destroy`: form a cluster from unconfigured CVMs, show each
 * CVM and its services (as the reference platform's `cluster status` does) with data resiliency
 * measured from the extent-group records, and return the CVMs to unconfigured.
 */
import type { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InputError, errorMessage, isConvergeError } from '../shared/errors.ts';
import { DeploymentPki, type Identity } from '../shared/identity.ts';
import { ApiError, type CallOptions } from '../shared/http-client.ts';
import { cvmCall } from '../cvm/protocol/client.ts';
import { defaultDataDir } from '../rack/node/layout.ts';
import { CVM_API_PORT, type CreatedCluster, type CvmStatus, type MemberState, type PoolView, type ResiliencyReport } from '../cvm/protocol/cluster.ts';
import { memberState } from '../cvm/core/resiliency.ts';
import { PRISM_PORT } from '../prism/protocol/prism.ts';
import { Agent, fetch as ufetch } from 'undici';
import { fail, printJson } from './output.ts';

/** Environment variable the CLI reads Prism's admin password from (keeps it off the command line). */
export const PASSWORD_ENV = 'CONVERGE_ADMIN_PASSWORD';

/** The data dir whose operator certificate the storage and cluster commands present (their --data-dir). */
let dataDir: string | undefined;

/** Adds --data-dir to a command that calls CVMs, and remembers it when the command runs. */
export function withDataDir(c: Command): Command {
  return c.option('--data-dir <dir>', 'the deployment whose operator certificate is presented (default ~/.converge)')
    .hook('preAction', (_c, action) => {
      dataDir = action.opts<{ dataDir?: string }>().dataDir;
    });
}

/** The operator identity read last, and from where: one identity keeps one connection pool (a task followed every 500 ms). */
let operatorRead: { dir: string; id: Identity } | undefined;

/** The operator's identity of the deployment (pki/operator.json in the data dir, made by Foundation). */
export function operator(): Identity {
  const dir = resolve(dataDir ?? process.env['CONVERGE_DATA_DIR'] ?? defaultDataDir());
  if (operatorRead?.dir === dir) return operatorRead.id;
  const id = DeploymentPki.operatorOf(dir);
  if (!id) throw new InputError('data-dir', `no operator certificate in ${dir}/pki: give the --data-dir of the Foundation that imaged these nodes`);
  operatorRead = { dir, id };
  return id;
}

/** Calls a CVM's API with the operator's certificate; errors come back typed, or say the CVM does not answer. */
export function cvm<T>(ip: string, path: string, body?: unknown, timeoutMs = 60_000, method?: string): Promise<T> {
  return cvmWith<T>(ip, path, { ...(method ? { method } : {}), body, timeoutMs });
}

/** Calls the CVM API at `ip` as the operator (any call options: a streamed upload, an abort signal). */
export async function cvmWith<T>(ip: string, path: string, o: CallOptions): Promise<T> {
  const identity = operator();
  try {
    return await cvmCall<T>(ip, path, { ...o, identity });
  } catch (e) {
    if (isConvergeError(e) || e instanceof ApiError) throw e;
    const cause = (e as { cause?: unknown }).cause;
    throw new Error(`CVM ${ip} does not answer on port ${CVM_API_PORT} (${errorMessage(cause ?? e)})`);
  }
}

/** The CVM the command talks to: --cvm-ip, or CONVERGE_CVM_IP. */
export function cvmTarget(o: { cvmIp?: string }): string {
  const ip = o.cvmIp ?? process.env['CONVERGE_CVM_IP'];
  if (!ip) throw new InputError('cvm-ip', 'give a CVM of the cluster with --cvm-ip (or CONVERGE_CVM_IP)');
  return ip;
}

const list = (v: string | undefined): string[] => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : []);

const gib = (b: number): string => `${(b / 1024 ** 3).toFixed(1)} GiB`;
const pct = (a: number, b: number): string => `${b > 0 ? ((100 * a) / b).toFixed(1) : '0.0'} %`;

/** How `cluster status` names a member's state in this cluster. */
const MEMBER_LABEL: Record<MemberState, string> = {
  up: 'Up',
  down: 'Down',
  unconfigured: 'Unconfigured: no longer a member (its cluster configuration was destroyed)',
  'other-cluster': 'In another cluster: no longer a member of this one',
};

/**
 * The data resiliency lines, from the extent-group records (GET /storage/resiliency: in-sync and
 * stale replicas); the repair loops' counters only say whether a restore is under way.
 */
export function resiliencyLines(r: ResiliencyReport | Error | null, repair: readonly NonNullable<CvmStatus['repair']>[]): string[] {
  if (r === null) return [];
  if (r instanceof Error) return [`Data resiliency: unknown (${r.message})`];
  if (r.ok) return [`Data resiliency: OK (every extent group at its RF: ${r.atRf} of ${r.extentGroups})`];
  const restoring = repair.some((x) => x.pending > 0) ? '; the repair loops are restoring them' : '';
  const stale = r.restoring ? `, ${r.restoring} being restored (stale replicas)` : '';
  const out = [`Data resiliency: ${r.belowRf} extent group(s) below RF of ${r.extentGroups}${r.unavailable ? `, ${r.unavailable} with no usable replica` : ''}${stale}${restoring}`];
  const why = [
    ...r.members.filter((m) => m.state !== 'up').map((m) => `CVM ${m.cvmIp} (${m.node}) ${m.detail}`),
    ...(r.failedDisks.length ? [`failed disks: ${r.failedDisks.map((d) => `${d.node}/${d.serial}`).join(', ')}`] : []),
  ];
  for (const w of why) out.push(`    ${w}`);
  for (const e of r.examples.slice(0, 3)) out.push(`    e.g. vdisk ${e.vdisk} extent group ${e.egroup}: ${e.usable} of ${e.replicationFactor} usable in sync${e.stale ? `, ${e.stale} stale` : ''} (${e.missing.join('; ')})`);
  return out;
}

/** Where Prism answers and who leads, checked over HTTPS against the cluster's CA. */
async function prismLine(cvmIp: string, vip: string | null): Promise<string> {
  try {
    const { cert } = await cvm<{ cert: string }>(cvmIp, '/cluster/ca', undefined, 5000);
    const agent = new Agent({ connect: { ca: cert } });
    try {
      const r = await ufetch(`https://${vip ?? cvmIp}:${PRISM_PORT}/api/converge/v1/prism`, { dispatcher: agent, signal: AbortSignal.timeout(5000) });
      const j = (await r.json()) as { leader: string | null };
      return `Prism: https://${vip ?? j.leader ?? cvmIp}:${PRISM_PORT}/console/ (leader ${j.leader ?? 'not elected yet'})`;
    } finally {
      await agent.close();
    }
  } catch (e) {
    return `Prism: not answering on ${vip ?? cvmIp}:${PRISM_PORT} (${errorMessage(e)})`;
  }
}

export function registerCluster(program: Command): void {
  const c = program.command('cluster').description('form and inspect clusters of CVMs');

  withDataDir(c.command('create'))
    .description('form a cluster from unconfigured CVMs (the configuration store starts on 1, 3 or 5 of them)')
    .requiredOption('--cvm-ips <a,b,c>', 'CVM addresses of the members')
    .option('--name <name>', 'cluster name', 'converge')
    .option('--vip <ip>', 'cluster virtual IP (Prism)')
    .option('--redundancy-factor <n>', 'replication factor: 2 (3+ nodes) or 3 (5+ nodes); 1 for a single node')
    .option('--dns <a,b>', 'DNS servers')
    .option('--ntp <a,b>', 'NTP servers')
    .option('--admin-password <p>', `Prism's initial admin password (or ${PASSWORD_ENV}; default: generated and shown once)`)
    .option('--json', 'machine-readable output')
    .action(async (o: { cvmIps: string; name: string; vip?: string; redundancyFactor?: string; dns?: string; ntp?: string; adminPassword?: string; json?: boolean }) => {
      try {
        const ips = list(o.cvmIps);
        const first = ips[0];
        if (!first) throw new InputError('cvm-ips', 'list at least one CVM address');
        const body: Record<string, unknown> = { name: o.name, cvmIps: ips, dns: list(o.dns), ntp: list(o.ntp) };
        if (o.vip) body['vip'] = o.vip;
        if (o.redundancyFactor !== undefined) body['redundancyFactor'] = Number(o.redundancyFactor);
        const password = o.adminPassword ?? process.env[PASSWORD_ENV];
        if (password) body['adminPassword'] = password;
        const info = await cvm<CreatedCluster>(first, '/cluster/create', body);
        if (o.json) return printJson(info);
        process.stdout.write(`Cluster ${info.name} (${info.clusterId}) created: ${info.members.length} nodes, RF${info.redundancyFactor}, configuration store on ${info.store.join(', ')}\n`);
        process.stdout.write(`Prism: https://${info.vip ?? first}:${PRISM_PORT}/console/  user admin${info.initialAdminPassword ? `, password ${info.initialAdminPassword}  (generated; shown only this once)` : ' with the password you gave'}\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  withDataDir(c.command('status'))
    .description("each CVM of the cluster: up, down or no longer a member, and its services' states and pids; the pool and data resiliency measured from the records")
    .requiredOption('--cvm-ip <ip>', 'any CVM of the cluster')
    .option('--json', 'machine-readable output')
    .action(async (o: { cvmIp: string; json?: boolean }) => {
      try {
        const first = await cvm<CvmStatus>(o.cvmIp, '/status', undefined, 10_000);
        const members = first.cluster?.members ?? [{ serial: first.serial, cvmIp: first.cvmIp, hostIp: first.hostIp }];
        const clusterId = first.cluster?.clusterId ?? null;
        const all = await Promise.all(members.map(async (m) => {
          const status = await cvm<CvmStatus>(m.cvmIp, '/status', undefined, 5000).catch(() => null);
          return { member: m, status, state: clusterId ? memberState(clusterId, status) : status ? 'unconfigured' as const : 'down' as const };
        }));
        const resiliency = first.cluster ? await cvm<ResiliencyReport>(o.cvmIp, '/storage/resiliency', undefined, 30_000).catch((e: unknown) => new Error(errorMessage(e))) : null;
        if (o.json) return printJson({ cluster: first.cluster, resiliency: resiliency instanceof Error ? { error: resiliency.message } : resiliency, cvms: all.map((a) => ({ ...a.member, up: a.state === 'up', state: a.state, status: a.status })) });
        const out: string[] = [];
        if (!first.cluster) out.push(`CVM ${first.cvmIp} (${first.serial}) is unconfigured: it belongs to no cluster.`);
        else {
          out.push(`Cluster ${first.cluster.name} (${first.cluster.clusterId}), RF${first.cluster.redundancyFactor}, ${members.length} nodes`);
          const p = await cvm<PoolView>(o.cvmIp, '/storage/pool', undefined, 10_000).catch(() => null);
          if (p) {
            const u = p.usage;
            out.push(`Storage pool ${p.pool.name}: ${gib(p.pool.capacityBytes)} on ${p.pool.disks.length} disks, ${gib(u.usedBytes)} used (${pct(u.usedBytes, u.capacityBytes)}), ${gib(u.freeBytes)} free; ${p.containers} container(s), ${p.vdisks} vdisk(s), ${gib(p.provisionedBytes)} provisioned`);
            for (const n of u.nodes) out.push(`    node ${n.node.padEnd(14)} ${gib(n.usedBytes).padStart(10)} of ${gib(n.capacityBytes).padStart(8)} used on ${n.disks} disks${n.failedDisks ? `, ${n.failedDisks} failed` : ''}`);
          }
          out.push(...resiliencyLines(resiliency, all.map((a) => a.status?.repair).filter((x) => x !== undefined)));
          out.push(await prismLine(o.cvmIp, first.cluster.vip));
        }
        for (const a of all) {
          out.push('', `    CVM: ${a.member.cvmIp} (${a.member.serial}) ${MEMBER_LABEL[a.state]}${a.state === 'other-cluster' && a.status?.cluster ? ` (${a.status.cluster.name}, ${a.status.cluster.clusterId})` : ''}`);
          for (const s of a.status?.services ?? []) {
            const where = s.partOf ? ` in ${s.partOf}: ${s.detail ?? ''}` : s.detail && s.state !== 'up' ? ` ${s.detail}` : '';
            out.push(`        ${s.name.padEnd(20)} ${s.state.toUpperCase().padEnd(10)} [${s.pid ?? '-'}]${s.restarts ? ` restarts ${s.restarts}` : ''}${where}`);
          }
        }
        process.stdout.write(out.join('\n') + '\n');
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  withDataDir(c.command('certs'))
    .description("write the operator's client certificate and the cluster's CA into a folder, as libnbd (nbds://…?tls-certificates=DIR) and QEMU (tls-creds-x509,dir=DIR) read it")
    .requiredOption('--cvm-ip <ip>', 'any CVM of the cluster')
    .requiredOption('--out <dir>', 'the folder to write (created, mode 0700)')
    .option('--json', 'machine-readable output')
    .action(async (o: { cvmIp: string; out: string; json?: boolean }) => {
      try {
        const { cert } = await cvm<{ cert: string }>(o.cvmIp, '/cluster/ca', undefined, 10_000);
        const id = operator();
        const dir = resolve(o.out);
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        // both CAs: the cluster's (the CVMs' certificates) and the deployment's (QEMU checks its own certificate against it too)
        const files = { 'ca-cert.pem': [cert, ...id.ca].join(''), 'client-cert.pem': id.cert, 'client-key.pem': id.key };
        for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, name), body, { mode: 0o600 });
        if (o.json) return printJson({ dir, files: Object.keys(files) });
        process.stdout.write(`wrote ${Object.keys(files).join(', ')} to ${dir}\n  nbdinfo 'nbds://${o.cvmIp}:10809/<vdisk>?tls-certificates=${dir}'\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  withDataDir(c.command('destroy'))
    .description('return every CVM of the cluster to unconfigured (the cluster configuration is lost)')
    .requiredOption('--cvm-ip <ip>', 'any CVM of the cluster')
    .option('--yes', 'really destroy')
    .option('--json', 'machine-readable output')
    .action(async (o: { cvmIp: string; yes?: boolean; json?: boolean }) => {
      try {
        const st = await cvm<CvmStatus>(o.cvmIp, '/status', undefined, 10_000);
        if (!st.cluster) throw new InputError('cvm-ip', `CVM ${o.cvmIp} belongs to no cluster`);
        if (!o.yes) throw new InputError('yes', `this destroys cluster ${st.cluster.name}; add --yes`);
        const results = await Promise.all(st.cluster.members.map(async (m) => ({ cvmIp: m.cvmIp, ok: await cvm(m.cvmIp, '/cluster/destroy', { clusterId: st.cluster?.clusterId }).then(() => true, () => false) })));
        if (o.json) return printJson({ cluster: st.cluster.name, members: results });
        process.stdout.write(`Cluster ${st.cluster.name} destroyed: ${results.map((r) => `${r.cvmIp} ${r.ok ? 'unconfigured' : 'did not answer'}`).join(', ')}\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });
}
