/**
 * bench/nbd: Converge's NBD server against nbdkit (the reference NBD server, in C) on the same
 * file and disk, and fio directly on the file (the physical limit), measured in one run:
 * sequential 1 MiB read/write and 4 KiB random read/write at queue depth 16, with fio's nbd
 * engine. Prints Converge's figures as ratios to nbdkit and to the raw disk.
 *
 * This measures the NBD front end with a file backend (RF1, no replication); bench/datapath
 * (issue 4) adds the storage fabric at RF1 and RF2.
 *
 * Usage: node --import tsx bench/nbd.ts [--size MiB] [--runtime s]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdServer } from '../src/shared/nbd/server.ts';
import { FileBackend } from '../src/shared/nbd/backend.ts';
import { arg, fio, JOBS, run, type Job } from './fio.ts';

const SIZE_MIB = arg('size', 512);
const RUNTIME = arg('runtime', 8);
const dir = mkdtempSync(join(tmpdir(), 'cvg-bench-nbd-'));
const file = join(dir, 'disk.img');
const fioJob = (job: Job, target: { uri?: string; file?: string }): ReturnType<typeof fio> => fio(job, target, SIZE_MIB, RUNTIME);

async function main(): Promise<void> {
  await run('fio', ['--name=prep', '--rw=write', '--bs=1M', `--size=${SIZE_MIB}M`, `--filename=${file}`, '--output-format=terse']);
  const be = await FileBackend.open(file, SIZE_MIB << 20);
  const server = new NbdServer({ list: () => ['disk'], open: () => Promise.resolve({ size: be.size, readOnly: false, pread: (o, l) => be.pread(o, l), pwrite: (o, d, f) => be.pwrite(o, d, f), flush: () => be.flush(), trim: (o, l, f) => be.trim(o, l, f), zero: (o, l, f) => be.zero(o, l, f), close: () => Promise.resolve() }) });
  const { port } = await server.listen(0, '127.0.0.1');
  const nbdkitPort = port + 1;
  const nbdkit = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(nbdkitPort), '--exportname=disk', 'file', file], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  console.log(`bench/nbd: ${SIZE_MIB} MiB file on ${dir}, ${RUNTIME} s per job, fio nbd engine`);
  console.log('job                  converge MiB/s  IOPS     nbdkit MiB/s  IOPS     raw-disk MiB/s  vs nbdkit  vs raw');
  try {
    for (const job of JOBS) {
      const ours = await fioJob(job, { uri: `nbd://127.0.0.1:${port}/disk` });
      const ref = await fioJob(job, { uri: `nbd://127.0.0.1:${nbdkitPort}/disk` });
      const raw = await fioJob(job, { file });
      console.log(`${job.name.padEnd(20)} ${ours.mibs.toFixed(1).padStart(14)}  ${ours.iops.toFixed(0).padStart(7)}  ${ref.mibs.toFixed(1).padStart(12)}  ${ref.iops.toFixed(0).padStart(7)}  ${raw.mibs.toFixed(1).padStart(14)}  ${(ours.mibs / ref.mibs).toFixed(2).padStart(9)}  ${(ours.mibs / raw.mibs).toFixed(2).padStart(6)}`);
    }
  } finally {
    nbdkit.kill();
    await server.close();
    await be.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
