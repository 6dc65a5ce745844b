/**
 * @module
 * What the data-path benchmarks share: their command-line options, the four fio jobs, one fio
 * run against an NBD URI (fio's nbd engine) or a file (libaio, direct I/O), the same job with
 * Converge's NbdClient (which, unlike fio's engine, can present a client certificate), and nbdcopy.
 */
import { execFile } from 'node:child_process';
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

/** MiB/s and IOPS of one job. */
export async function fio(job: Job, target: { uri?: string; file?: string }, sizeMiB: number, runtimeS: number): Promise<{ mibs: number; iops: number }> {
  const args = ['--name=b', `--rw=${job.rw}`, `--bs=${job.bs}`, `--iodepth=${job.depth}`, `--size=${sizeMiB}M`, `--runtime=${runtimeS}`, '--time_based', '--output-format=json', '--group_reporting'];
  if (target.uri) args.push('--ioengine=nbd', `--uri=${target.uri}`);
  else args.push('--ioengine=libaio', '--direct=1', `--filename=${target.file ?? ''}`);
  const { stdout } = await run('fio', args, { maxBuffer: 16 << 20 });
  const j = JSON.parse(stdout.slice(stdout.indexOf('{'))) as { jobs: { read: { bw_bytes: number; iops: number }; write: { bw_bytes: number; iops: number } }[] };
  const r = j.jobs[0];
  if (!r) throw new Error('fio gave no result');
  const side = job.rw.includes('read') ? r.read : r.write;
  return { mibs: side.bw_bytes / (1 << 20), iops: side.iops };
}

const LOAD = fileURLToPath(new URL('./nbd-load.ts', import.meta.url));

/** MiB/s and IOPS of one job with Converge's NbdClient (bench/nbd-load.ts, a process of its own): plain, or TLS with `certDir`. */
export async function nbdLoad(job: Job, target: { host?: string; port?: number; path?: string; export: string; certDir?: string }, sizeMiB: number, runtimeS: number): Promise<{ mibs: number; iops: number }> {
  const spec = { ...target, rw: job.rw, bs: job.bs, depth: job.depth, sizeMiB, runtimeS };
  const { stdout } = await run(process.execPath, ['--import', 'tsx', LOAD, JSON.stringify(spec)], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { mibs: number; iops: number };
}

/** MiB/s of one nbdcopy of `sizeMiB` from `src` to `dst` (libnbd URIs, files, `null:`), wall time. */
export async function nbdcopy(src: string, dst: string, sizeMiB: number): Promise<number> {
  const t0 = performance.now();
  await run('nbdcopy', [src, dst]);
  return sizeMiB / ((performance.now() - t0) / 1000);
}

/** A number right-aligned in `w` columns, with `d` decimals. */
export const col = (x: number, w: number, d = 1): string => x.toFixed(d).padStart(w);

/**
 * Runs every measurement `rounds` times, interleaved (a, b, c, a, b, c, …), and keeps the best of
 * each: on a loaded machine, background load only ever lowers a figure, and interleaving spreads it
 * over the figures a ratio compares.
 */
export async function bestOf<K extends string>(rounds: number, measure: Record<K, () => Promise<number>>): Promise<Record<K, number>> {
  const out = {} as Record<K, number>;
  for (let i = 0; i < rounds; i++) {
    for (const k of Object.keys(measure) as K[]) out[k] = Math.max(out[k] ?? 0, await measure[k]());
  }
  return out;
}
