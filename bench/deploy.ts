/**
 * bench/deploy: `converge demo` from nothing to a validated cluster at pace 0, for 1, 3, 8 and 16
 * nodes — wall time per stage and the peak memory of everything the deployment started.
 *
 * Each size runs the real CLI (`converge demo --exit`, every step a `converge` command) in a fresh
 * data dir, then reads the Foundation session's event log for the stage boundaries:
 *
 *   1 Foundation  start → the first node's virtual media is inserted (bundle build, rack up,
 *                 Foundation, upload, plan, image_nodes checks; "setup" is the part before the
 *                 session's first event)
 *   2 Imaging     → the last node's installer is done (rebooting into the hypervisor)
 *   3 Bootstrap   → the cluster is created and its services are up (validation starts)
 *   4 Activation  → every validation check passed (Prism included)
 *
 * Memory: the summed RSS of every process of the deployment — the demo and its descendants, and
 * every process whose command line names the run's data dir (the rack daemon and what runs on the
 * nodes: hypervisors, CVMs, etcd, Prism) — sampled every 250 ms. References measured in the same run: a bare `node -e 0` start, and the goals
 * (3 nodes under 30 s, 16 nodes under 120 s) printed as ratios.
 *
 * Usage: node --import tsx bench/deploy.ts [sizes...]   (default 1 3 8 16)
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineContext } from './machine.ts';

const BIN = fileURLToPath(new URL('../bin/converge.js', import.meta.url));
const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const SIZES = sizes.length ? sizes : [1, 3, 8, 16];
const GOALS: Record<number, number> = { 3: 30, 16: 120 };

interface Event { time: string; serial: string | null; stage: string | null; percent: number | null; message: string; cluster?: string }

function pids(): number[] {
  return readdirSync('/proc').filter((f) => /^\d+$/.test(f)).map(Number);
}

/** The processes of one deployment: descendants of `root`, and any whose command line names `dir`. */
function deploymentPids(root: number, dir: string): number[] {
  const parent = new Map<number, number>();
  const named = new Set<number>();
  for (const p of pids()) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      parent.set(p, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir)) named.add(p);
    } catch {
      // gone
    }
  }
  const ours = (p: number): boolean => {
    for (let q = p, hops = 0; q > 1 && hops < 64; q = parent.get(q) ?? 0, hops++) if (q === root || named.has(q)) return true;
    return false;
  };
  return [...parent.keys()].filter(ours);
}

function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0; // gone
  }
}

const t = process.hrtime.bigint();
for (let i = 0; i < 5; i++) execFileSync(process.execPath, ['-e', '0']);
const nodeStartMs = Number(process.hrtime.bigint() - t) / 5e6;
console.log(machineContext());
console.log(`reference: bare node start ${nodeStartMs.toFixed(0)} ms (mean of 5)`);
console.log('nodes  setup s  1 Foundation s  2 Imaging s  3 Bootstrap s  4 Activation s  total s  x node-start  peak MiB  MiB/node  processes  vs goal');

for (const [k, n] of SIZES.entries()) {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-bench-deploy-'));
  let peak = 0;
  let peakProcs = 0;
  let demoPid = -1;
  const sampler = setInterval(() => {
    if (demoPid < 0) return;
    const mine = deploymentPids(demoPid, dir);
    const sum = mine.reduce((a, p) => a + rssMiB(p), 0);
    if (sum > peak) {
      peak = sum;
      peakProcs = mine.length;
    }
  }, 250);
  const t0 = Date.now();
  try {
    const args = [BIN, 'demo', '--nodes', String(n), '--pace', '0', '--exit', '--data-dir', dir, '--port', String(18090 + k), '--network', `127.${91 + 2 * k}`, '--bmc-network', `127.${92 + 2 * k}`];
    const out: string[] = [];
    const code = await new Promise<number | null>((res) => {
      const c = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      demoPid = c.pid ?? -1;
      c.stdout.on('data', (d: Buffer) => out.push(d.toString()));
      c.stderr.on('data', (d: Buffer) => out.push(d.toString()));
      c.once('exit', res);
    });
    const total = (Date.now() - t0) / 1000;
    if (code !== 0) {
      console.log(`${String(n).padStart(5)}  failed (exit ${code ?? 'signal'}):\n${out.join('').split('\n').slice(-25).join('\n')}`);
      continue;
    }
    const sessions = join(dir, 'foundation/sessions');
    const id = readdirSync(sessions)[0] ?? '';
    const events = readFileSync(join(sessions, id, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Event);
    const at = (e: Event | undefined): number => (e ? (Date.parse(e.time) - t0) / 1000 : NaN);
    const nodeEvents = events.filter((e) => e.serial !== null);
    const serials = [...new Set(nodeEvents.map((e) => e.serial))];
    const setup = at(events[0]);
    const s1 = at(nodeEvents.find((e) => e.stage === 'media'));
    const s2 = Math.max(...serials.map((s) => at(nodeEvents.find((e) => e.serial === s && (e.stage === 'rebooting' || e.stage === 'configuring' || e.stage === 'done')))));
    const clusterEvents = events.filter((e) => e.cluster !== undefined);
    const s3 = at(clusterEvents.find((e) => (e.percent ?? 0) >= 50));
    const s4 = at(clusterEvents.find((e) => e.percent === 100));
    const goal = GOALS[n] !== undefined ? `${(s4 / (GOALS[n] ?? 1)).toFixed(2)}x of ${GOALS[n] ?? 0} s` : '';
    const f = (x: number, w: number): string => x.toFixed(1).padStart(w);
    console.log(`${String(n).padStart(5)}  ${f(setup, 7)}  ${f(s1, 14)}  ${f(s2 - s1, 11)}  ${f(s3 - s2, 13)}  ${f(s4 - s3, 14)}  ${f(s4, 7)}  ${(s4 * 1000 / nodeStartMs).toFixed(0).padStart(12)}  ${peak.toFixed(0).padStart(8)}  ${(peak / n).toFixed(0).padStart(8)}  ${String(peakProcs).padStart(9)}  ${goal}`);
    if (total - s4 > 30) console.log(`       (the demo took ${total.toFixed(0)} s in all: ${(total - s4).toFixed(0)} s after validation to show the cluster and stop)`);
  } finally {
    clearInterval(sampler);
    rmSync(dir, { recursive: true, force: true });
  }
}
