/**
 * @module
 * What the data-path benchmarks share: their command-line options, the four fio jobs, and one fio
 * run against an NBD URI (fio's nbd engine) or a file (libaio, direct I/O).
 */
import { execFile } from 'node:child_process';
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
