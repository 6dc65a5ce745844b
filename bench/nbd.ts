/**
 * bench/nbd: Converge's NBD server against nbdkit (the reference NBD server, in C) on the same
 * file and disk, measured in one run, in two parts:
 *
 *  1. Plain NBD with fio's nbd engine: Converge, nbdkit, and fio directly on the file (the
 *     physical limit); sequential 1 MiB read/write and 4 KiB random read/write. Converge's figures
 *     as ratios to nbdkit and to the raw disk.
 *  2. The cost of TLS (ADR 013): each server plain and with `NBD_OPT_STARTTLS` required and a
 *     client certificate verified (Converge's NbdServer with stargate's options; nbdkit
 *     `--tls=require --tls-certificates=DIR --tls-verify-peer`), measured with the same client
 *     each time: Converge's NbdClient in a process of its own (the four jobs) and nbdcopy (libnbd,
 *     `nbd://` vs `nbds://…?tls-certificates=DIR`; a whole-disk copy each way). fio's nbd engine
 *     cannot present a certificate, so it is not in this part. Printed as TLS/plain ratios, of
 *     MiB/s and of the CPU time client and server spend per MiB (/proc; steadier than MiB/s on a
 *     loaded machine).
 *
 * This measures the NBD front end with a file backend (RF1, no replication); bench/datapath adds
 * the storage fabric at RF1 and RF2, bench/replication the cost of TLS between CVMs.
 *
 * Part 2 runs each measurement `--rounds` times, interleaved, and keeps the best of each (bestOf).
 *
 * Usage: node --import tsx bench/nbd.ts [--size MiB] [--runtime s] [--rounds n]   (defaults 256 MiB, 3 s per job, 2 rounds)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdServer } from '../src/shared/nbd/server.ts';
import { FileBackend } from '../src/shared/nbd/backend.ts';
import type { ExportProvider } from '../src/shared/nbd/connection.ts';
import { peerOfCert } from '../src/shared/identity.ts';
import { arg, bestOf, col, fio, JOBS, nbdcopy, nbdLoad, run, type Job, type Sample } from './fio.ts';
import { benchPki, clientCertDir, serverCertDir } from './pki.ts';
import { machineContext } from './machine.ts';

const SIZE_MIB = arg('size', 256);
const RUNTIME = arg('runtime', 3);
const ROUNDS = arg('rounds', 2);
/** The bench's own loopback address (nothing else runs on 127.72.x while it does). */
const IP = '127.72.30.1';
const PORT = { oursTls: 10809, ours: 10810, nbdkit: 10811, nbdkitTls: 10812 };
const dir = mkdtempSync(join(tmpdir(), 'cvg-bench-nbd-'));
const file = join(dir, 'disk.img');
const source = join(dir, 'source.img');

function startNbdkit(port: number, tlsDir?: string): ChildProcess {
  const tls = tlsDir ? ['--tls=require', `--tls-certificates=${tlsDir}`, '--tls-verify-peer'] : [];
  return spawn('nbdkit', ['--foreground', '--exit-with-parent', '-i', IP, '-p', String(port), '--exportname=disk', ...tls, 'file', file], { stdio: 'ignore' });
}

async function main(): Promise<void> {
  const prep = (f: string): ReturnType<typeof run> => run('fio', ['--name=prep', '--rw=write', '--bs=1M', `--size=${SIZE_MIB}M`, `--filename=${f}`, '--output-format=terse']);
  await prep(file);
  await prep(source);
  const pki = await benchPki([IP]);
  const serverDir = serverCertDir(join(dir, 'server-certs'), pki);
  const certDir = clientCertDir(join(dir, 'client-certs'), pki);
  const be = await FileBackend.open(file, SIZE_MIB << 20);
  // the file backend, its close() left to the bench (every connection opens the same one)
  const exports: ExportProvider = { list: () => ['disk'], open: () => Promise.resolve({ size: be.size, readOnly: false, pread: (o, l) => be.pread(o, l), pwrite: (o, d, f) => be.pwrite(o, d, f), pwritev: (o, d, f) => be.pwritev(o, d, f), flush: () => be.flush(), trim: (o, l, f) => be.trim(o, l, f), zero: (o, l, f) => be.zero(o, l, f), close: () => Promise.resolve() }) };
  const anchors = { deployment: pki.deploymentCa.cert, cluster: pki.clusterCa.cert };
  const plain = new NbdServer(exports);
  // as stargate on cvmIp:10809 (cvm.ts): FORCEDTLS, a client certificate, and the roles it may hold
  const tls = new NbdServer(exports, () => undefined, {
    tls: { cert: pki.cvm.cert, key: pki.cvm.key, ca: [anchors.deployment, anchors.cluster], require: true },
    authorize: (p) => ['operator', 'host', 'cvm'].includes(peerOfCert(p.certificate.toString(), anchors)?.role ?? 'node'),
  });
  await plain.listen(PORT.ours, IP);
  await tls.listen(PORT.oursTls, IP);
  const kits = [startNbdkit(PORT.nbdkit), startNbdkit(PORT.nbdkitTls, serverDir)];
  await new Promise((r) => setTimeout(r, 500));
  const uri = (port: number, secure: boolean): string => (secure ? `nbds://${IP}:${port}/disk?tls-certificates=${certDir}` : `nbd://${IP}:${port}/disk`);
  try {
    console.log(`bench/nbd: ${SIZE_MIB} MiB file on ${dir}, ${RUNTIME} s per job (part 2: best of ${ROUNDS}, interleaved), one run on this machine`);
    console.log(machineContext());
    console.log('\n1. plain NBD, fio nbd engine');
    console.log('job                  converge MiB/s  IOPS     nbdkit MiB/s  IOPS     raw-disk MiB/s  vs nbdkit  vs raw');
    const fioJob = (job: Job, target: { uri?: string; file?: string }): ReturnType<typeof fio> => fio(job, target, SIZE_MIB, RUNTIME);
    for (const job of JOBS) {
      const ours = await fioJob(job, { uri: uri(PORT.ours, false) });
      const ref = await fioJob(job, { uri: uri(PORT.nbdkit, false) });
      const raw = await fioJob(job, { file });
      console.log(`${job.name.padEnd(20)} ${col(ours.mibs, 14)}  ${col(ours.iops, 7, 0)}  ${col(ref.mibs, 12)}  ${col(ref.iops, 7, 0)}  ${col(raw.mibs, 14)}  ${col(ours.mibs / ref.mibs, 9, 2)}  ${col(ours.mibs / raw.mibs, 6, 2)}`);
    }
    console.log('\n2. the cost of TLS with client certificates (ADR 013): each server plain vs TLS required, the same client');
    console.log('   CPU: client and server, ms per MiB moved');
    console.log('client    job                  server    plain MiB/s  TLS MiB/s  TLS/plain   CPU plain  CPU TLS  TLS/plain');
    const rows = (client: string, job: string, r: Record<'ours' | 'oursTls' | 'kit' | 'kitTls', Sample>): void => {
      for (const [server, p, t] of [['converge', r.ours, r.oursTls], ['nbdkit', r.kit, r.kitTls]] as const) {
        const cpu = p.cpu !== undefined && t.cpu !== undefined ? `${col(p.cpu, 9, 2)}  ${col(t.cpu, 7, 2)}  ${col(t.cpu / p.cpu, 9, 2)}` : '';
        console.log(`${client.padEnd(9)} ${job.padEnd(20)} ${server.padEnd(8)}  ${col(p.mibs, 11)}  ${col(t.mibs, 9)}  ${col(t.mibs / p.mibs, 9, 2)}   ${cpu}`);
      }
    };
    const pids = (port: number): number[] => [port === PORT.ours || port === PORT.oursTls ? process.pid : port === PORT.nbdkit ? kits[0]?.pid ?? 0 : kits[1]?.pid ?? 0];
    for (const job of JOBS) {
      const load = (port: number, secure: boolean): Promise<Sample> => nbdLoad(job, { host: IP, port, export: 'disk', ...(secure ? { certDir } : {}) }, SIZE_MIB, RUNTIME, pids(port));
      rows('NbdClient', job.name, await bestOf(ROUNDS, { ours: () => load(PORT.ours, false), oursTls: () => load(PORT.oursTls, true), kit: () => load(PORT.nbdkit, false), kitTls: () => load(PORT.nbdkitTls, true) }));
    }
    const copyIn = (port: number, secure: boolean): Promise<Sample> => nbdcopy(uri(port, secure), 'null:', SIZE_MIB, pids(port));
    const copyOut = (port: number, secure: boolean): Promise<Sample> => nbdcopy(source, uri(port, secure), SIZE_MIB, pids(port));
    rows('nbdcopy', 'read whole disk', await bestOf(ROUNDS, { ours: () => copyIn(PORT.ours, false), oursTls: () => copyIn(PORT.oursTls, true), kit: () => copyIn(PORT.nbdkit, false), kitTls: () => copyIn(PORT.nbdkitTls, true) }));
    rows('nbdcopy', 'write whole disk', await bestOf(ROUNDS, { ours: () => copyOut(PORT.ours, false), oursTls: () => copyOut(PORT.oursTls, true), kit: () => copyOut(PORT.nbdkit, false), kitTls: () => copyOut(PORT.nbdkitTls, true) }));
  } finally {
    for (const k of kits) k.kill();
    await plain.close();
    await tls.close();
    await be.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
