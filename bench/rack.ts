/**
 * bench/rack: `converge rack up` wall time and the rack daemon's memory for 4, 16 and 64 nodes.
 *
 * Each size runs the real CLI (a background daemon, as a user starts it) in a fresh data dir,
 * measures the time until the command returns (every BMC answers over HTTPS), then one Redfish
 * GET per BMC, and the daemon's RSS. The reference measured in the same run is a bare
 * `node -e 0` start on this machine, so figures can be compared across machines; the issue's
 * goals (64 nodes: under 20 s, under 400 MB) are printed as ratios too.
 *
 * Usage: node --import tsx bench/rack.ts [sizes...]   (default 4 16 64)
 */
import { execFileSync, execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Agent, fetch as ufetch } from 'undici';
import { machineContext } from './machine.ts';

const BIN = fileURLToPath(new URL('../bin/converge.js', import.meta.url));
const run = promisify(execFile);
const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const SIZES = sizes.length ? sizes : [4, 16, 64];

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const t = process.hrtime.bigint();
for (let i = 0; i < 5; i++) execFileSync(process.execPath, ['-e', '0']);
const nodeStartMs = Number(process.hrtime.bigint() - t) / 5e6;

console.log(machineContext());
console.log(`reference: bare node start ${nodeStartMs.toFixed(0)} ms (mean of 5)`);
console.log('nodes  rack-up s  x node-start  per-node ms  GET-all ms  daemon RSS MiB  MiB/node  vs goal (64: 20 s, 400 MB)');
for (const [k, n] of SIZES.entries()) {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-bench-rack-'));
  const net = `127.${60 + k}`;
  try {
    const t0 = process.hrtime.bigint();
    const { stdout } = await run(process.execPath, [BIN, 'rack', 'up', '--nodes', String(n), '--data-dir', dir, '--bmc-network', net, '--pace', '0', '--json'], { maxBuffer: 64 << 20 });
    const upMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const s = JSON.parse(stdout) as { pid: number; bmcPassword: string; nodes: { bmc: { url: string } }[] };
    const agent = new Agent({ connect: { ca: readFileSync(join(dir, 'rack/ca/ca.crt'), 'utf8') } });
    const auth = `Basic ${Buffer.from(`admin:${s.bmcPassword}`).toString('base64')}`;
    const t1 = process.hrtime.bigint();
    await Promise.all(s.nodes.map(async (node) => {
      const r = await ufetch(`${node.bmc.url}/redfish/v1/Systems/1`, { headers: { Authorization: auth }, dispatcher: agent });
      if (r.status !== 200) throw new Error(`GET ${node.bmc.url}: ${r.status}`);
      await r.arrayBuffer();
    }));
    const getMs = Number(process.hrtime.bigint() - t1) / 1e6;
    await agent.close();
    const rss = rssMiB(s.pid);
    const goal = n === 64 ? `  time ${(upMs / 20_000).toFixed(2)}x, memory ${(rss / 400).toFixed(2)}x of goal` : '';
    console.log(`${String(n).padStart(5)}  ${(upMs / 1000).toFixed(2).padStart(9)}  ${(upMs / nodeStartMs).toFixed(1).padStart(12)}  ${(upMs / n).toFixed(0).padStart(11)}  ${getMs.toFixed(0).padStart(10)}  ${rss.toFixed(0).padStart(14)}  ${(rss / n).toFixed(1).padStart(8)}${goal}`);
    await run(process.execPath, [BIN, 'rack', 'down', '--data-dir', dir]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
