/**
 * bench/datapath: the storage fabric's data path, measured in one run on the same disk, in a
 * 3-node lab cluster deployed by Foundation (this process is Foundation, so it holds the
 * operator's certificate, ADR 013):
 *
 *  1. What a VM sees, with fio's nbd engine: Converge at RF1 and RF2 through the writer host's
 *     redirector (its Unix socket, `vdiskSocket` in the host agent's status: plain NBD, this host's
 *     clients only), nbdkit's file plugin (the reference NBD server, in C) on a file of the same
 *     size, and fio directly on that file (the physical limit). Converge's figures are printed as
 *     ratios to nbdkit and to the raw file; RF2/RF1 carries the replication to a second CVM, which
 *     is TLS with member certificates. RF1 is also measured on the local CVM's own plain NBD
 *     socket on the host link (what the redirector forwards to), which is the cost of the redirector.
 *  2. The cost of reaching a vdisk with authentication: the same vdisks with the same client
 *     (Converge's NbdClient, bench/nbd-load.ts, a process of its own), on the CVM's plain NBD
 *     socket of the host↔CVM link (Unix socket, what the redirector uses) and on stargate
 *     `nbds://cvmIp:10809` with the operator's certificate (TLS over TCP), in MiB/s and in the CPU
 *     time the client and the CVMs spend per MiB. The ratio includes Unix socket vs TCP loopback;
 *     bench/nbd isolates TLS alone on one transport.
 *
 * fio's nbd engine cannot present a client certificate (libnbd refuses `tls-certificates` in a
 * URI unless the program allows it), which is why part 1 goes through the redirector.
 * Jobs: sequential 1 MiB read/write at depth 4, 4 KiB random read/write at depth 16; each figure
 * the best of --rounds interleaved runs (bestOf in fio.ts).
 *
 * Addresses: the rack's BMCs on 127.71.0.x, hosts on 127.72.20.x, CVMs on 127.72.21.x.
 *
 * Usage: node --import tsx bench/datapath.ts [--size MiB] [--runtime s] [--rounds n]   (defaults 256, 3, 1: about 3 minutes here; --rounds 2 steadies the figures on a loaded machine, about 5.5)
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { TestFoundation } from '../test/drivers/foundation-driver.ts';
import { cvmCall } from '../src/cvm/protocol/client.ts';
import { hostCall } from '../src/hypervisor/protocol/client.ts';
import { arg, bestOf, col, fio, JOBS, nbdLoad, run, type Job, type Sample } from './fio.ts';

const SIZE_MIB = arg('size', 256);
const RUNTIME = arg('runtime', 3);
const ROUNDS = arg('rounds', 1);
const HOST = (i: number): string => `127.72.20.${i + 1}`;
const CVM = (i: number): string => `127.72.21.${i + 1}`;
const sample = async (job: Job, target: { uri?: string; file?: string }): Promise<Sample> => ({ mibs: (await fio(job, target, SIZE_MIB, RUNTIME)).mibs });

async function main(): Promise<void> {
  const t = await TestFoundation.start('127.71', 18071, 3);
  let nbdkit: ReturnType<typeof spawn> | undefined;
  try {
    await t.upload();
    const body = t.imageBody('127.72', [0, 1, 2]) as { blocks: { nodes: { hypervisor_ip: string; cvm_ip: string }[] }[] };
    body.blocks.flatMap((b) => b.nodes).forEach((n, i) => Object.assign(n, { hypervisor_ip: HOST(i), cvm_ip: CVM(i) }));
    const r = await t.call('POST', '/foundation/image_nodes', body);
    if (r.status !== 200) throw new Error(`image_nodes: ${r.text}`);
    const p = await t.waitStopped(r.json.session_id as string);
    if (p.aggregate_percent_complete !== 100) throw new Error('imaging failed');
    const cvms = [0, 1, 2].map(CVM);
    await cvmCall(CVM(0), '/cluster/create', { body: { name: 'bench', cvmIps: cvms, redundancyFactor: 2 }, timeoutMs: 120_000 });
    await cvmCall(CVM(0), '/storage/containers', { body: { name: 'rf1', replicationFactor: 1 } });
    await cvmCall(CVM(0), '/storage/vdisks', { body: { name: 'b-rf1', size: `${SIZE_MIB}M`, container: 'rf1' } });
    await cvmCall(CVM(0), '/storage/vdisks', { body: { name: 'b-rf2', size: `${SIZE_MIB}M`, container: 'default-container' } });
    // the writer host's redirector (plain NBD, this host's processes only), and beside it the host↔CVM link's NBD socket
    const { vdiskSocket } = await hostCall<{ vdiskSocket: string }>(HOST(0), '/status');
    const linkSocket = join(dirname(vdiskSocket), 'cvm-nbd.sock');
    const certDir = t.nbdCertDir();
    const redirected = (v: string): string => `nbd+unix:///${v}?socket=${vdiskSocket}`;
    const file = join(t.dir, 'reference.img');
    await run('fio', ['--name=prep', '--rw=write', '--bs=1M', `--size=${SIZE_MIB}M`, `--filename=${file}`, '--output-format=terse']);
    nbdkit = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-i', '127.72.20.250', '-p', '10888', 'file', file], { stdio: 'ignore' });
    await new Promise((res) => setTimeout(res, 500));
    // fill both vdisks so reads read data
    for (const v of ['b-rf1', 'b-rf2']) await run('nbdcopy', [file, redirected(v)]);
    console.log(`bench/datapath: ${SIZE_MIB} MiB, ${RUNTIME} s per job, 3-node lab cluster, one run on this machine`);
    console.log(`\n1. through the redirector (fio nbd engine, nbd+unix${ROUNDS > 1 ? `, best of ${ROUNDS} interleaved` : ''}); "RF1 link": the local CVM's socket on the host link, no redirector`);
    console.log('job                  RF1 MiB/s  RF2 MiB/s  RF1 link MiB/s  nbdkit MiB/s  raw MiB/s  RF1/nbdkit  RF2/nbdkit  RF2/RF1  RF1/RF1 link  RF1/raw');
    for (const job of JOBS) {
      const m = await bestOf(ROUNDS, {
        rf1: () => sample(job, { uri: redirected('b-rf1') }),
        rf2: () => sample(job, { uri: redirected('b-rf2') }),
        link: () => sample(job, { uri: `nbd+unix:///b-rf1?socket=${linkSocket}` }),
        ref: () => sample(job, { uri: 'nbd://127.72.20.250:10888/' }),
        raw: () => sample(job, { file }),
      });
      const [rf1, rf2, link, ref, raw] = [m.rf1.mibs, m.rf2.mibs, m.link.mibs, m.ref.mibs, m.raw.mibs];
      console.log(`${job.name.padEnd(20)} ${col(rf1, 9)}  ${col(rf2, 9)}  ${col(link, 14)}  ${col(ref, 12)}  ${col(raw, 9)}  ${col(rf1 / ref, 10, 2)}  ${col(rf2 / ref, 10, 2)}  ${col(rf2 / rf1, 7, 2)}  ${col(rf1 / link, 12, 2)}  ${col(rf1 / raw, 7, 2)}`);
    }
    // the CVMs' processes (stargate runs in the CVM's), for the CPU they spend per MiB
    const pids = await Promise.all(cvms.map(async (ip) => (await cvmCall<{ services: { name: string; pid: number }[] }>(ip, '/status')).services.find((x) => x.name === 'stargate')?.pid ?? 0));
    console.log(`\n2. authenticated access (NbdClient${ROUNDS > 1 ? `, best of ${ROUNDS} interleaved` : ''}): the CVM's plain socket on the host link vs stargate nbds://${CVM(0)}:10809 with the operator's certificate`);
    console.log('   CPU: the client and the three CVMs, ms per MiB moved');
    console.log('job                  RF  link MiB/s  TLS MiB/s  TLS/link   CPU link  CPU TLS  TLS/link');
    for (const job of JOBS) {
      const load = (vdisk: string, tls: boolean): Promise<Sample> => nbdLoad(job, tls ? { host: CVM(0), port: 10809, export: vdisk, certDir } : { path: linkSocket, export: vdisk }, SIZE_MIB, RUNTIME, pids);
      const m = await bestOf(ROUNDS, { rf1: () => load('b-rf1', false), rf1Tls: () => load('b-rf1', true), rf2: () => load('b-rf2', false), rf2Tls: () => load('b-rf2', true) });
      for (const [rf, l, t] of [[1, m.rf1, m.rf1Tls], [2, m.rf2, m.rf2Tls]] as const) {
        console.log(`${job.name.padEnd(20)} ${rf}   ${col(l.mibs, 9)}  ${col(t.mibs, 9)}  ${col(t.mibs / l.mibs, 8, 2)}   ${col(l.cpu ?? 0, 8, 2)}  ${col(t.cpu ?? 0, 7, 2)}  ${col((t.cpu ?? 0) / (l.cpu ?? 1), 8, 2)}`);
      }
    }
  } finally {
    nbdkit?.kill();
    await t.stop();
  }
}

await main();
