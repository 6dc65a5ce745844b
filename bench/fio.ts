/**
 * @module
 * What the data-path benchmarks share: their command-line options, the four fio jobs, one fio
 * run against an NBD URI (fio's nbd engine) or a file (libaio, direct I/O), the same job with
 * Converge's NbdClient (which, unlike fio's engine, can present a client certificate), and nbdcopy.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const run = promisify(execFile);

export function arg(name: string, d: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
}

export interface Job {
  name: string;
  rw: string;
  bs: string;
  depth: number;
}

export const JOBS: Job[] = [
  { name: 'seq read 1M', rw: 'read', bs: '1M', depth: 4 },
  { name: 'seq write 1M', rw: 'write', bs: '1M', depth: 4 },
  { name: 'rand read 4k qd16', rw: 'randread', bs: '4k', depth: 16 },
  { name: 'rand write 4k qd16', rw: 'randwrite', bs: '4k', depth: 16 },
];

/**
 * MiB/s and IOPS of one job. Time-based by default (the job runs `runtimeS`, wrapping around);
 * with `once`, each block of the `sizeMiB` is written at most once and the job ends when done or
 * at `runtimeS` (first writes: every request lands on never-written space). `mib`: MiB moved.
 */
export async function fio(job: Job, target: { uri?: string; file?: string }, sizeMiB: number, runtimeS: number, once = false): Promise<{ mibs: number; iops: number; mib: number }> {
  const args = ['--name=b', `--rw=${job.rw}`, `--bs=${job.bs}`, `--iodepth=${job.depth}`, `--size=${sizeMiB}M`, `--runtime=${runtimeS}`, ...(once ? [] : ['--time_based']), '--output-format=json', '--group_reporting'];
  if (target.uri) args.push('--ioengine=nbd', `--uri=${target.uri}`);
  else args.push('--ioengine=libaio', '--direct=1', `--filename=${target.file ?? ''}`);
  const { stdout } = await run('fio', args, { maxBuffer: 16 << 20 });
  const j = JSON.parse(stdout.slice(stdout.indexOf('{'))) as { jobs: { read: { bw_bytes: number; iops: number; io_bytes: number }; write: { bw_bytes: number; iops: number; io_bytes: number } }[] };
  const r = j.jobs[0];
  if (!r) throw new Error('fio gave no result');
  const side = job.rw.includes('read') ? r.read : r.write;
  return { mibs: side.bw_bytes / (1 << 20), iops: side.iops, mib: side.io_bytes / (1 << 20) };
}

const LOAD = fileURLToPath(new URL('./nbd-load.ts', import.meta.url));
const TICK_MS = 1000 / (Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100);

/** CPU time (user + system, ms) a process has used so far: this one's, or another's by pid (/proc). */
export function cpuMs(pid = process.pid): number {
  if (pid === process.pid) {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state): utime is field 14, stime 15
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
}

/** A measurement: MiB/s, and where measured, the CPU time of client and server(s) per MiB moved (ms). */
export interface Sample {
  mibs: number;
  cpu?: number;
}

/** The CPU the processes `pids` use while `f` runs (ms). */
export async function cpuDuring<T>(pids: readonly number[], f: () => Promise<T>): Promise<{ value: T; cpu: number }> {
  const before = pids.map((p) => cpuMs(p));
  const value = await f();
  return { value, cpu: pids.reduce((sum, p, i) => sum + cpuMs(p) - (before[i] ?? 0), 0) };
}

/**
 * One job with Converge's NbdClient (bench/nbd-load.ts, a process of its own): plain, or TLS with
 * `certDir`. The CPU per MiB counts the client's (measured inside it, during the job only) and the
 * servers' `serverPids` over the client's whole life (a server idles while the client starts).
 */
export async function nbdLoad(job: Job, target: { host?: string; port?: number; path?: string; export: string; certDir?: string }, sizeMiB: number, runtimeS: number, serverPids: readonly number[] = []): Promise<Sample> {
  const spec = { ...target, rw: job.rw, bs: job.bs, depth: job.depth, sizeMiB, runtimeS };
  const { value, cpu } = await cpuDuring(serverPids, () => run(process.execPath, ['--import', 'tsx', LOAD, JSON.stringify(spec)], { maxBuffer: 1 << 20 }));
  const r = JSON.parse(value.stdout.trim().split('\n').pop() ?? '{}') as { mibs: number; mib: number; cpuMs: number };
  return { mibs: r.mibs, cpu: (r.cpuMs + cpu) / r.mib };
}

/** One nbdcopy of `sizeMiB` from `src` to `dst` (libnbd URIs, files, `null:`): MiB/s by wall time, CPU of nbdcopy and `serverPids`. */
export async function nbdcopy(src: string, dst: string, sizeMiB: number, serverPids: readonly number[] = []): Promise<Sample> {
  const t0 = performance.now();
  // bash's `times`: the second line is its children's user and system time (nbdcopy's)
  const { value, cpu } = await cpuDuring(serverPids, () => run('bash', ['-c', 'nbdcopy "$1" "$2" && times', 'nbdcopy', src, dst]));
  const mibs = sizeMiB / ((performance.now() - t0) / 1000);
  const secs = [...(value.stdout.trim().split('\n').pop() ?? '').matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return { mibs, cpu: (secs.reduce((a, b) => a + b, 0) * 1000 + cpu) / sizeMiB };
}

/** A number right-aligned in `w` columns, with `d` decimals. */
export const col = (x: number, w: number, d = 1): string => x.toFixed(d).padStart(w);

/**
 * Runs every measurement `rounds` times, interleaved (a, b, c, a, b, c, …), and keeps the best of
 * each (the highest MiB/s, the lowest CPU per MiB): on a loaded machine, background load only
 * ever makes a figure worse, and interleaving spreads it over the figures a ratio compares.
 */
export async function bestOf<K extends string>(rounds: number, measure: Record<K, () => Promise<Sample>>): Promise<Record<K, Sample>> {
  const out = {} as Record<K, Sample>;
  for (let i = 0; i < rounds; i++) {
    for (const k of Object.keys(measure) as K[]) {
      const s = await measure[k]();
      const prev = out[k];
      const cpu = prev?.cpu === undefined ? s.cpu : s.cpu === undefined ? prev.cpu : Math.min(prev.cpu, s.cpu);
      out[k] = { mibs: Math.max(prev?.mibs ?? 0, s.mibs), ...(cpu === undefined ? {} : { cpu }) };
    }
  }
  return out;
}
