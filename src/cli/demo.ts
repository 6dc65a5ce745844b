/**
 * @module
 * `converge demo`: the whole flow on one machine, exactly as a user would run it by hand — each
 * step is a `converge` command run as its own process: build a release bundle, bring up a lab
 * rack, start Foundation, upload the bundle, make the IP plan, image every node and create and
 * validate the cluster, show the cluster, then build the guest image, import it and boot a VM from
 * it (its console's boot line is the demo's last word). Ctrl-C (or --exit) stops what it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../shared/errors.ts';
import { BIN } from './rack.ts';
import { fail } from './output.ts';
import { PASSWORD_ENV } from './cluster.ts';
import { generatePassword } from '../shared/passwords.ts';
import { FoundationClient } from '../foundation/protocol/client.ts';

interface DemoOptions {
  nodes: string;
  pace: string;
  dataDir?: string;
  port: string;
  network: string;
  bmcNetwork: string;
  exit?: boolean;
  adminPassword?: string;
}

/** Runs one converge command, its output going to the terminal; resolves with its stdout if captured (quiet: not shown). */
function step(title: string, args: string[], capture = false, quiet = false): Promise<string> {
  if (!quiet) process.stdout.write(`${title.trim() ? `\n\u001b[1m▶ ${title}\u001b[0m\n` : ''}  $ converge ${args.join(' ')}\n`);
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', capture ? 'pipe' : 'inherit', quiet ? 'ignore' : 'inherit'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => (code === 0 ? res(out) : rej(new Error(`converge ${args[0] ?? ''} ${args[1] ?? ''} failed (exit ${code ?? 'signal'})`))));
  });
}

/**
 * Waits (up to 5 minutes: a guest under software emulation on a busy 2-core machine) for the demo
 * VM's console to print the guest's boot line, and returns it. It looks every 3 s: each look is a
 * `converge` process, whose second of CPU the guest would otherwise have.
 */
async function waitForBoot(cvmArgs: string[]): Promise<string> {
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    const text = await step('', ['vm', 'console', 'demo-vm', ...cvmArgs], true, true).catch(() => '');
    const line = /converge-guest: booted[^\r\n]*/.exec(text)?.[0];
    if (line) return line;
    await new Promise((r) => setTimeout(r, 3000));
  }
  throw new Error('the demo VM printed no boot line on its console within 5 minutes (converge vm console demo-vm shows what it did print)');
}

export function registerDemo(program: Command): void {
  program.command('demo')
    .description('deploy a lab cluster end to end on this machine: rack, Foundation, imaging, cluster, validation, and a VM running on it')
    .option('--nodes <n>', 'nodes in the lab rack', '3')
    .option('--pace <f>', 'hardware pace (0 = as fast as possible, 1 = like real hardware)', '0')
    .option('--data-dir <dir>', 'where the lab lives (default: a new temporary directory, removed at the end)')
    .option('--port <port>', 'Foundation\'s port', '8000')
    .option('--network <a.b>', 'loopback /16 for host and CVM addresses', '127.20')
    .option('--bmc-network <a.b>', 'loopback /16 for the BMCs', '127.10')
    .option('--exit', 'stop everything once the cluster is validated (instead of waiting for Ctrl-C)')
    .option('--admin-password <p>', `Prism's admin password (or ${PASSWORD_ENV}; default: generated and shown at the end)`)
    .action(async (o: DemoOptions) => {
      const own = o.dataDir === undefined;
      const dir = resolve(o.dataDir ?? mkdtempSync(join(tmpdir(), 'converge-demo-')));
      const url = `http://127.0.0.1:${o.port}`;
      let serve: ChildProcess | undefined;
      let stopping: Promise<void> | undefined;
      const stop = (): Promise<void> => (stopping ??= (async () => {
        process.stdout.write('\nStopping the demo: Foundation, then the rack…\n');
        serve?.kill('SIGTERM');
        await step('rack down', ['rack', 'down', '--data-dir', dir]).catch(() => undefined);
        if (own) {
          rmSync(dir, { recursive: true, force: true });
          process.stdout.write(`Removed the demo's temporary data dir ${dir}.\n`);
        }
      })());
      try {
        if (!/^127\.\d{1,3}$/.test(o.network)) throw new InputError('network', 'a loopback /16 such as 127.20');
        const nodes = Number(o.nodes);
        if (!Number.isInteger(nodes) || nodes < 1 || nodes > 32) throw new InputError('nodes', 'a whole number from 1 to 32');
        process.on('SIGINT', () => void stop().then(() => process.exit(130)));
        process.on('SIGTERM', () => void stop().then(() => process.exit(143)));
        process.stdout.write(`Converge demo: ${nodes} nodes, data in ${dir}\n`);
        const built = JSON.parse(await step('1/10 build the release bundle (hypervisor + CVM + installer)', ['bundle', 'build', '--version', '1.0.0', '--out', join(dir, 'dist'), '--json'], true)) as { file: string };
        await step('2/10 bring up the lab rack (bare-metal nodes with Redfish BMCs)', ['rack', 'up', '--nodes', String(nodes), '--pace', o.pace, '--data-dir', dir, '--bmc-network', o.bmcNetwork]);
        process.stdout.write(`\n\u001b[1m▶ 3/10 start Foundation\u001b[0m\n  $ converge foundation serve --data-dir ${dir} --port ${o.port}\n`);
        serve = spawn(process.execPath, [BIN, 'foundation', 'serve', '--data-dir', dir, '--port', o.port], { stdio: ['ignore', 'pipe', 'pipe'] });
        const child = serve;
        await new Promise<void>((res, rej) => {
          child.stdout?.on('data', (d: Buffer) => d.toString().includes('Foundation http') && res());
          child.stderr?.on('data', (d: Buffer) => d.toString().includes('EADDRINUSE') && rej(new InputError('port', `port ${o.port} is taken; give another with --port`)));
          child.once('exit', (c) => rej(new Error(`foundation serve exited (${c ?? 'signal'})`)));
        });
        process.stdout.write(`  Foundation API at ${url}/foundation/ (OpenAPI at ${url}/foundation/openapi.json)\n  \u001b[1mWatch the deployment's flow diagram: open ${url}/ in a browser\u001b[0m\n`);
        await step('4/10 upload the bundle', ['foundation', 'upload', built.file, '--url', url]);
        const plan = join(dir, 'plan.json');
        await step('5/10 plan the addresses (BMC, host, CVM per node)', ['foundation', 'plan', '--url', url, '--out', plan, '--host-start', `${o.network}.0.1`, '--cvm-start', `${o.network}.1.1`, '--gateway', `${o.network}.255.254`, '--vip', `${o.network}.2.1`]);
        // the password travels in the environment, not on a command line other users can read
        const password = o.adminPassword ?? process.env[PASSWORD_ENV] ?? generatePassword();
        process.env[PASSWORD_ENV] = password;
        await step('6/10 deploy: image every node, create the cluster and validate it', ['deploy', '--plan', plan, '--url', url]);
        await step('7/10 the cluster', ['cluster', 'status', '--cvm-ip', `${o.network}.1.1`, '--data-dir', dir]);
        const cvmArgs = ['--cvm-ip', `${o.network}.1.1`, '--data-dir', dir];
        const guest = join(dir, 'converge-guest.img');
        await step('8/10 build a guest image from Debian packages (kernel, busybox, syslinux)', ['image', 'build-guest', '--out', guest]);
        await step('9/10 import it, and make a subnet with IPAM', ['image', 'create', '--name', 'converge-guest', '--file', guest, ...cvmArgs]);
        await step('   ', ['subnet', 'create', '--name', 'vm-network', '--vlan', '0', '--cidr', '10.0.0.0/24', '--gateway', '10.0.0.1', ...cvmArgs]);
        await step('10/10 create a VM from the image and power it on (QEMU on a host, its disks vdisks at RF2)', ['vm', 'create', '--name', 'demo-vm', '--image', 'converge-guest', '--disk', '64M', '--nic', 'vm-network', '--power-on', ...cvmArgs]);
        const bootLine = await waitForBoot(cvmArgs);
        process.stdout.write(`  console: ${bootLine}\n`);
        // the CA file Foundation wrote for this deployment's cluster (its newest session)
        const foundation = new FoundationClient(url);
        const ca = await (async () => {
          const newest = (await foundation.sessions()).sort((a, b) => b.created.localeCompare(a.created))[0];
          return newest ? (await foundation.progress(newest.session_id)).clusters[0]?.prism?.ca_file : undefined;
        })().catch(() => undefined);
        const found = ca ?? join(dir, 'foundation', 'sessions', '<session>', 'converge-lab-ca.pem');
        // quoted for the shell when the data dir has characters it would read
        const caFile = /^[\w./-]+$/.test(found) ? found : `'${found.replaceAll("'", "'\\''")}'`;
        process.stdout.write(`
\u001b[1mThe lab cluster is deployed and validated.\u001b[0m
  Prism:      https://${o.network}.2.1:9440/console/   user admin   password ${password}
  CA:         ${caFile}   (Prism's certificate chains to it)
  Foundation: ${url}/   (the flow diagram of this deployment)
  VM:         demo-vm is running; its console says: ${bootLine}
Try:
  npx converge vm list ${cvmArgs.join(' ')}
  npx converge vm console demo-vm --follow ${cvmArgs.join(' ')}      # the guest's write-and-verify loop, live
  npx converge vm migrate demo-vm ${cvmArgs.join(' ')}               # live migration to another host
  curl --cacert ${caFile} -u admin:${password} -X POST -H 'Content-Type: application/json' -d '{}' https://${o.network}.2.1:9440/api/nutanix/v3/hosts/list
  npx converge vdisk create --name vm1 --size 10G --cvm-ip ${o.network}.1.1 --data-dir ${dir}
  npx converge cluster certs --cvm-ip ${o.network}.1.1 --out ${dir}/certs --data-dir ${dir}   # NBD over TLS needs a client certificate
  nbdcopy SOME.img 'nbds://${o.network}.1.1:10809/vm1?tls-certificates=${dir}/certs'
  npx converge container list --cvm-ip ${o.network}.1.2 --data-dir ${dir}
  npx converge rack status --data-dir ${dir}                         # the nodes and their disks
  npx converge rack fault 2 --disk-failed <serial> --data-dir ${dir}   # fail a disk; cluster status shows the repair
  npx converge cluster status --cvm-ip ${o.network}.1.1 --data-dir ${dir}
`);
        if (o.exit) await stop();
        else {
          process.stdout.write('\nEverything keeps running; Ctrl-C stops it.\n');
          await new Promise(() => undefined);
        }
      } catch (e) {
        await stop();
        fail(e, false);
      }
    });
}
