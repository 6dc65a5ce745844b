/**
 * bench/datapath: the storage fabric's data path, measured in one run on the same disk:
 *   - Converge at RF1 and RF2 (a 3-node lab cluster deployed by Foundation; fio's nbd engine
 *     against the writer's CVM),
 *   - nbdkit's file plugin (the reference NBD server, in C) on a file of the same size,
 *   - fio directly on that file (the physical limit),
 * for sequential 1 MiB read/write and 4 KiB random read/write at queue depth 16. Converge's
 * figures are printed as ratios to nbdkit and to the raw file.
 *
 * Usage: node --import tsx bench/datapath.ts [--size MiB] [--runtime s]
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { TestFoundation } from '../test/drivers/foundation-driver.ts';
import { arg, fio, JOBS, run, type Job } from './fio.ts';

const SIZE_MIB = arg('size', 256);
const RUNTIME = arg('runtime', 6);
const mibs = async (job: Job, target: { uri?: string; file?: string }): Promise<number> => (await fio(job, target, SIZE_MIB, RUNTIME)).mibs;

async function cvm(ip: string, path: string, body: unknown): Promise<void> {
  const r = await fetch(`http://${ip}:2100${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${path}: ${await r.text()}`);
}

async function main(): Promise<void> {
  const t = await TestFoundation.start('127.71', 18071, 3);
  let nbdkit: ReturnType<typeof spawn> | undefined;
  try {
    await t.upload();
    const r = await t.call('POST', '/foundation/image_nodes', t.imageBody('127.72', [0, 1, 2]));
    const p = await t.waitStopped(r.json.session_id as string);
    if (p.aggregate_percent_complete !== 100) throw new Error('imaging failed');
    await cvm('127.72.1.1', '/cluster/create', { name: 'bench', cvmIps: ['127.72.1.1', '127.72.1.2', '127.72.1.3'], redundancyFactor: 2 });
    await cvm('127.72.1.1', '/storage/containers', { name: 'rf1', replicationFactor: 1 });
    await cvm('127.72.1.1', '/storage/vdisks', { name: 'b-rf1', size: `${SIZE_MIB}M`, container: 'rf1' });
    await cvm('127.72.1.1', '/storage/vdisks', { name: 'b-rf2', size: `${SIZE_MIB}M`, container: 'default-container' });
    const file = join(t.dir, 'reference.img');
    await run('fio', ['--name=prep', '--rw=write', '--bs=1M', `--size=${SIZE_MIB}M`, `--filename=${file}`, '--output-format=terse']);
    nbdkit = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', '10888', 'file', file], { stdio: 'ignore' });
    await new Promise((res) => setTimeout(res, 500));
    // fill both vdisks so reads read data
    for (const v of ['b-rf1', 'b-rf2']) await run('nbdcopy', [file, `nbd://127.72.1.1:10809/${v}`]);
    console.log(`bench/datapath: ${SIZE_MIB} MiB, ${RUNTIME} s per job, 3-node lab cluster, fio nbd engine, one run on this machine`);
    console.log('job                  RF1 MiB/s  RF2 MiB/s  nbdkit MiB/s  raw MiB/s  RF1/nbdkit  RF2/nbdkit  RF2/RF1  RF1/raw');
    for (const job of JOBS) {
      const rf1 = await mibs(job, { uri: 'nbd://127.72.1.1:10809/b-rf1' });
      const rf2 = await mibs(job, { uri: 'nbd://127.72.1.1:10809/b-rf2' });
      const ref = await mibs(job, { uri: 'nbd://127.0.0.1:10888/' });
      const raw = await mibs(job, { file });
      console.log(`${job.name.padEnd(20)} ${rf1.toFixed(1).padStart(9)}  ${rf2.toFixed(1).padStart(9)}  ${ref.toFixed(1).padStart(12)}  ${raw.toFixed(1).padStart(9)}  ${(rf1 / ref).toFixed(2).padStart(10)}  ${(rf2 / ref).toFixed(2).padStart(10)}  ${(rf2 / rf1).toFixed(2).padStart(7)}  ${(rf1 / raw).toFixed(2).padStart(7)}`);
    }
  } finally {
    nbdkit?.kill();
    await t.stop();
  }
}

await main();
