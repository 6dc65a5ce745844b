/**
 * @module
 * `converge health run` and `converge health alerts`: the cluster's health checks (NCC's role) and
 * open alerts, read from Prism (docs/prism.md "Health checks and alerts") over HTTPS checked
 * against the cluster's CA, as `admin` with the password in CONVERGE_ADMIN_PASSWORD.
 */
import type { Command } from 'commander';
import { Agent, fetch as ufetch } from 'undici';
import { InputError, UnavailableError, errorMessage } from '../shared/errors.ts';
import { PRISM_PORT } from '../prism/protocol/prism.ts';
import { PASSWORD_ENV, cvm, cvmTarget, withDataDir } from './cluster.ts';
import { fail, printJson, table } from './output.ts';

/** GET a Prism path on the cluster's leader (found through the CVM given), as `user`. */
async function prismGet(cvmIp: string, user: string, path: string): Promise<{ text: string; json: () => unknown }> {
  const password = process.env[PASSWORD_ENV];
  if (!password) throw new InputError(PASSWORD_ENV, "set it to Prism's admin password (kept off the command line)");
  const { cert } = await cvm<{ cert: string }>(cvmIp, '/cluster/ca', undefined, 10_000);
  const agent = new Agent({ connect: { ca: cert } });
  try {
    const who = await ufetch(`https://${cvmIp}:${PRISM_PORT}/api/converge/v1/prism`, { dispatcher: agent, signal: AbortSignal.timeout(10_000) }).catch((e: unknown) => {
      throw new UnavailableError(`Prism does not answer on ${cvmIp}:${PRISM_PORT} (${errorMessage((e as { cause?: unknown }).cause ?? e)})`);
    });
    const { vip, leader } = (await who.json()) as { vip: string | null; leader: string | null };
    const host = vip ?? leader ?? cvmIp;
    const r = await ufetch(`https://${host}:${PRISM_PORT}${path}`, {
      dispatcher: agent, signal: AbortSignal.timeout(60_000), headers: { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
    });
    const text = await r.text();
    if (r.status === 401) throw new InputError(PASSWORD_ENV, `Prism refused ${user} with that password`);
    if (r.status !== 200) {
      let message = text.slice(0, 500);
      try {
        message = (JSON.parse(text) as { message_list?: { message?: string }[] }).message_list?.[0]?.message ?? message;
      } catch {
        // not JSON: the text as it is
      }
      throw new UnavailableError(`Prism answered ${r.status}: ${message}`);
    }
    return { text, json: () => JSON.parse(text) as unknown };
  } finally {
    await agent.close();
  }
}

interface AlertV2 { severity: string; check_id: string; message: string; created_time_stamp_in_usecs: number; acknowledged: boolean; affected_entities: { entity_name: string }[] }

export function registerHealth(program: Command): void {
  const h = program.command('health').description("the cluster's health checks and alerts (NCC's role), through Prism");

  withDataDir(h.command('run'))
    .description("runs every health check now and prints NCC's report: a line per check and entity, the counts, then each one not PASS with its cause and resolution (exit code 1 when one FAILs)")
    .option('--cvm-ip <ip>', 'any CVM of the cluster (or CONVERGE_CVM_IP)')
    .option('--user <name>', 'the Prism user', 'admin')
    .option('--json', 'machine-readable output: every result')
    .action(async (o: { cvmIp?: string; user: string; json?: boolean }) => {
      try {
        const ip = cvmTarget(o);
        if (o.json) {
          const { results } = (await prismGet(ip, o.user, '/api/converge/v1/health')).json() as { results: { status: string }[] };
          printJson(results);
          if (results.some((r) => r.status === 'FAIL')) process.exitCode = 1;
          return;
        }
        const { text } = await prismGet(ip, o.user, '/api/converge/v1/health?format=text');
        process.stdout.write(text);
        if (/\[ FAIL \]/.test(text)) process.exitCode = 1;
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  withDataDir(h.command('alerts'))
    .description('the open alerts (not resolved): severity, check, entity, what was seen, since when')
    .option('--cvm-ip <ip>', 'any CVM of the cluster (or CONVERGE_CVM_IP)')
    .option('--user <name>', 'the Prism user', 'admin')
    .option('--all', 'resolved ones too')
    .option('--json', 'machine-readable output (v2.0 alert objects)')
    .action(async (o: { cvmIp?: string; user: string; all?: boolean; json?: boolean }) => {
      try {
        const { entities } = (await prismGet(cvmTarget(o), o.user, `/api/nutanix/v2.0/alerts${o.all ? '' : '?resolved=false'}`)).json() as { entities: AlertV2[] };
        if (o.json) return printJson(entities);
        if (entities.length === 0) return void process.stdout.write('No open alerts.\n');
        const rows = entities.map((a) => [a.severity.replace(/^k/, '').toUpperCase(), a.check_id, a.affected_entities[0]?.entity_name ?? '', a.message, new Date(a.created_time_stamp_in_usecs / 1000).toISOString(), a.acknowledged ? 'acknowledged' : '']);
        process.stdout.write(`${table([['SEVERITY', 'CHECK', 'ENTITY', 'SEEN', 'SINCE', ''], ...rows])}\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });
}
