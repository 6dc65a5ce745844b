/**
 * bench/redirector: what the host's I/O redirector (src/hypervisor/redirector.ts) costs on the path
 * a VM uses. nbdkit (file plugin) on a Unix socket stands for the CVM, so only the redirector's hop
 * is measured: fio's nbd engine straight to nbdkit, then through a Redirector (in a process of its
 * own, as in the host agent) whose local link is that socket. Printed: MiB/s and IOPS of each, the
 * ratio redirector/direct, and the redirector's CPU ms per MiB moved.
 *
 * Usage: node --import tsx bench/redirector.ts [--size MiB] [--runtime s]   (defaults 256 MiB, 4 s per job)
 *   (the child mode `--serve <upstream socket> <socket>` runs the redirector alone)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir, loadavg, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redirector } from '../src/hypervisor/redirector.ts';
import { arg, col, cpuDuring, fio, JOBS, run, type Job } from './fio.ts';

if (process.argv[2] === '--serve') {
  const [upstream, path] = [process.argv[3] ?? '', process.argv[4] ?? ''];
  const r = new Redirector({ localCvmIp: () => 'local', cvms: () => ['local'], vdisks: () => Promise.resolve(['disk']), log: () => undefined, localLink: () => upstream });
  await r.listen(path);
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => void r.close().then(() => process.exit(0)));
} else {
  const SIZE = arg('size', 256);
  const RUNTIME = arg('runtime', 4);
  const dir = mkdtempSync(join(tmpdir(), 'cvg-bench-redir-'));
  const file = join(dir, 'disk.img');
  const up = join(dir, 'nbdkit.sock');
  const redir = join(dir, 'redir.sock');
  const procs: ChildProcess[] = [];
  const waitFor = async (p: string): Promise<void> => {
    for (let i = 0; i < 100 && !existsSync(p); i++) await new Promise((r) => setTimeout(r, 100));
  };
  try {
    await run('dd', ['if=/dev/urandom', `of=${file}`, 'bs=1M', `count=${SIZE}`, 'status=none']);
    const kit = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-U', up, '--threads', '16', 'file', file], { stdio: 'ignore' });
    procs.push(kit);
    await waitFor(up);
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve', up, redir], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(child);
    await new Promise<void>((res) => child.stdout?.once('data', () => res()));
    console.log(`# bench/redirector: ${SIZE} MiB, ${RUNTIME} s per job; ${cpus().length} cores, load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    console.log(`${'job'.padEnd(20)} ${'nbdkit MiB/s'.padStart(13)} ${'redir MiB/s'.padStart(12)} ${'ratio'.padStart(6)} ${'redir CPU ms/MiB'.padStart(17)}`);
    const jobs: Job[] = [...JOBS, { name: 'rand read 4k qd1', rw: 'randread', bs: '4k', depth: 1 }];
    // warm up both paths (page cache, the redirector's JIT) before measuring
    for (const uri of [up, redir]) await fio(JOBS[0] as Job, { uri: `nbd+unix:///disk?socket=${uri}` }, SIZE, 1);
    for (const job of jobs) {
      const direct = await fio(job, { uri: `nbd+unix:///disk?socket=${up}` }, SIZE, RUNTIME);
      const via = await cpuDuring([child.pid ?? 0], () => fio(job, { uri: `nbd+unix:///disk?socket=${redir}` }, SIZE, RUNTIME));
      const mib = via.value.mibs * RUNTIME;
      console.log(`${job.name.padEnd(20)} ${col(direct.mibs, 13)} ${col(via.value.mibs, 12)} ${col(via.value.mibs / direct.mibs, 6, 2)} ${col(via.cpu / Math.max(mib, 1), 17, 2)}`);
    }
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}
