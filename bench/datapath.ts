/**
 * bench/datapath: the storage fabric's data path as a VM uses it, measured in one run on the same
 * disk against nbdkit, in a 3-node lab cluster deployed by Foundation (bench/lab.ts).
 *
 * The path a VM uses: QEMU on host 0 opens a vdisk through the host's redirector (its Unix socket,
 * `vdiskSocket` in the host agent's status: plain NBD, this host's clients only), which forwards to
 * the local CVM, which writes the local replica and sends the others over the replication protocol
 * (TLS between CVMs). fio's nbd engine drives the same socket. The reference is nbdkit's file plugin
 * (in C) serving files on the same disk (`dir=` mode: one export per file), over TCP loopback.
 *
 *  1. I/O (fio nbd engine), each job on Converge RF1, RF2 and nbdkit:
 *     - first writes: every request lands on never-written space of a fresh vdisk (fresh sparse file
 *       for nbdkit): 1 MiB sequential qd4 over --size MiB, 4 KiB random qd16 (each page once, until
 *       done or --runtime);
 *     - overwrites (of the vdisks the first writes filled): 1 MiB sequential qd4, 4 KiB random qd16 and qd1;
 *     - reads: 1 MiB sequential qd4, 4 KiB random qd16 and qd1.
 *     Beside each figure, the CPU time of the serving processes per MiB moved (Converge: each CVM's
 *     genesis, where stargate runs, and its etcd; host 0's agent, where the redirector runs, found
 *     as the owner of its socket by `ss -xlp`; nbdkit: nbdkit), from /proc.
 *     1b. Where the CPU goes: RF1 sequential reads and 4 KiB random writes once more, with the CPU
 *     per MiB of each serving process apart (each CVM's stargate and etcd, host 0's redirector).
 *  2. Import: `qemu-img convert` of --import MiB of new (random) data into a fresh vdisk / file, timed.
 *  3. Goals (issue 12): RF1 sequential ≥ 0.8 of nbdkit, 4 KiB random ≥ 0.5 of nbdkit (RF1), RF2
 *     writes ≥ 0.6 of RF1: each marked met / not met with its figure; with --rebuild, rebuild
 *     bandwidth after a node loss ≥ 0.5 of a raw copy on the same disks: node 1 or 2 (whichever
 *     holds more of the RF2 vdisk's replicas) is powered off through its BMC (Redfish ForceOff) and
 *     the re-protection of the extent groups that had a replica there is timed from the replica map
 *     (from the first record change to the last extent group at RF; the time to the declaration is
 *     printed apart), against dd of as many MiB (fdatasync).
 *  4. With --tls: the cost of authentication (ADR 013), as before: Converge's NbdClient on the CVM's
 *     plain link socket vs stargate nbds://cvmIp:10809 with the operator's certificate.
 *
 * Overwrite and read figures are the best of --rounds interleaved runs (bestOf in fio.ts); first
 * writes and imports run once (they need fresh space). The machine context (cores, load) is printed
 * before and after: on a shared machine a single figure can move 1.5–4x between runs.
 *
 * Usage: node --import tsx bench/datapath.ts [--quick] [--size MiB] [--runtime s] [--rounds n] [--import MiB] [--tls] [--rebuild]
 *   defaults: 256 MiB, 3 s per job, 1 round, 512 MiB import: about 4–5 minutes here;
 *   --quick: 128 MiB, 2 s, 256 MiB import: about 2–3 minutes; --rebuild adds 1.5–3.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { cvmCall } from '../src/cvm/protocol/client.ts';
import { arg, bestOf, col, cpuDuring, cpuMs, fio, nbdLoad, run, type Job, type Sample } from './fio.ts';
import { benchVdisk, CVM, machineContext, SPARE_IP, startBenchLab, type BenchLab } from './lab.ts';

const QUICK = process.argv.includes('--quick');
const SIZE_MIB = arg('size', QUICK ? 128 : 256);
const RUNTIME = arg('runtime', QUICK ? 2 : 3);
const ROUNDS = arg('rounds', 1);
const IMPORT_MIB = arg('import', QUICK ? 256 : 512);
const NBDKIT_PORT = 18123;

type Target = 'rf1' | 'rf2' | 'ref';
interface Figure {
  mibs: number;
  iops: number;
  /** CPU time of the serving processes per MiB moved (ms): steadier than MiB/s on a loaded machine. */
  cpu?: number;
}
interface Row {
  group: 'first write' | 'overwrite' | 'read' | 'import';
  job: string;
  sequential: boolean;
  write: boolean;
  m: Record<Target, Figure>;
}

const FIRST: Job[] = [
  { name: 'seq write 1M qd4', rw: 'write', bs: '1M', depth: 4 },
  { name: 'rand write 4k qd16', rw: 'randwrite', bs: '4k', depth: 16 },
];
const OVER: Job[] = [
  { name: 'seq write 1M qd4', rw: 'write', bs: '1M', depth: 4 },
  { name: 'rand write 4k qd16', rw: 'randwrite', bs: '4k', depth: 16 },
  { name: 'rand write 4k qd1', rw: 'randwrite', bs: '4k', depth: 1 },
];
const READ: Job[] = [
  { name: 'seq read 1M qd4', rw: 'read', bs: '1M', depth: 4 },
  { name: 'rand read 4k qd16', rw: 'randread', bs: '4k', depth: 16 },
  { name: 'rand read 4k qd1', rw: 'randread', bs: '4k', depth: 1 },
];

/** IOPS as 12.3k, or whole below 1,000. */
const kiops = (iops: number): string => (iops >= 1000 ? `${(iops / 1000).toFixed(1)}k` : iops.toFixed(0));
const iopsCol = (f: Figure, job: string): string => (job.includes('4k') ? kiops(f.iops) : '').padStart(7);

function printRow(r: Row): void {
  const { rf1, rf2, ref } = r.m;
  const cpu = (f: Figure): string => (f.cpu === undefined ? '' : f.cpu.toFixed(1)).padStart(6);
  console.log(`${r.group.padEnd(12)} ${r.job.padEnd(19)} ${col(rf1.mibs, 8)} ${iopsCol(rf1, r.job)}  ${col(rf2.mibs, 8)} ${iopsCol(rf2, r.job)}  ${col(ref.mibs, 8)} ${iopsCol(ref, r.job)}  ${col(rf1.mibs / ref.mibs, 10, 2)}  ${col(rf2.mibs / ref.mibs, 10, 2)}  ${col(rf2.mibs / rf1.mibs, 7, 2)}   ${cpu(rf1)} ${cpu(rf2)} ${cpu(ref)}`);
}

/** The targets of one phase: Converge vdisks (through the redirector) and nbdkit exports (files in its dir). */
async function fresh(lab: BenchLab, dir: string, name: string, sizeMiB: number): Promise<Record<Target, string>> {
  writeFileSync(join(dir, name), '');
  truncateSync(join(dir, name), sizeMiB * 2 ** 20);
  return {
    rf1: await benchVdisk(lab, `${name}-rf1`, sizeMiB, 'rf1'),
    rf2: await benchVdisk(lab, `${name}-rf2`, sizeMiB, 'default-container'),
    ref: `nbd://${SPARE_IP}:${NBDKIT_PORT}/${name}`,
  };
}

/** The processes that serve I/O: Converge's (every CVM's genesis, where stargate runs, and etcd; host 0's agent, where the redirector runs) and nbdkit. */
async function servingPids(lab: BenchLab, nbdkitPid: number): Promise<{ converge: number[]; ref: number[]; labelled: [string, number][] }> {
  const cvm = await Promise.all(lab.cvms.map(async (ip, i) => (await cvmCall<{ services: { name: string; pid: number | null }[] }>(ip, '/status')).services
    .filter((x) => x.name === 'stargate' || x.name === 'etcd').map((x): [string, number] => [`CVM ${i + 1} ${x.name === 'etcd' ? 'etcd' : 'stargate'}`, x.pid ?? 0])));
  // the redirector's socket's owner (ss -xlp), the host agent
  const { stdout } = await run('ss', ['-xlpn']).catch(() => ({ stdout: '' }));
  const line = stdout.split('\n').find((l) => l.includes(lab.vdiskSocket));
  const agent = Number(/pid=(\d+)/.exec(line ?? '')?.[1] ?? 0);
  const labelled = [...cvm.flat(), ['host 1 redirector', agent] as [string, number]].filter(([, p]) => p > 0);
  return { converge: [...new Set(labelled.map(([, p]) => p))], ref: [nbdkitPid], labelled };
}

/** 1b: one fio job on `uri`, the CPU of each serving process per MiB moved: where the time of the data path goes. */
async function cpuByProcess(job: Job, uri: string, labelled: readonly [string, number][]): Promise<void> {
  const before = labelled.map(([, p]) => cpuMs(p));
  const r = await fio(job, { uri }, SIZE_MIB, RUNTIME);
  const parts = labelled.map(([l, p], i) => [l, (cpuMs(p) - (before[i] ?? 0)) / Math.max(r.mib, 1e-9)] as const).filter(([, ms]) => ms >= 0.005);
  console.log(`   ${job.name.padEnd(20)} ${col(r.mibs, 7)} MiB/s   ${parts.map(([l, ms]) => `${l} ${ms.toFixed(2)}`).join(', ')}`);
}

async function timedImport(src: string, uri: string): Promise<Figure> {
  const t0 = performance.now();
  await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, uri]);
  const s = (performance.now() - t0) / 1000;
  return { mibs: IMPORT_MIB / s, iops: s };
}

interface Rebuild {
  /** The node powered off (1 or 2). */
  node: number;
  /** MiB whose replica was on the lost node. */
  mib: number;
  /** Power-off to the first record change (detection), and first change to the last extent group at RF. */
  firstS: number;
  spanS: number;
  mibs: number;
  /** dd of the same MiB between two files on the same disk, with fdatasync. */
  rawMibs: number;
}

/**
 * Powers node 1 or 2 off through its BMC (Redfish ForceOff), whichever holds more of the vdisk's
 * replicas, and times the re-protection of vdisk
 * `name`'s extent groups that had a replica there, from the CVMs' replica map (storage engine v2:
 * one record per 128 MiB extent group, in-sync and stale replicas); the bandwidth is the MiB those
 * extent groups hold (the vdisk is fully written) over the time from the first record change (the
 * node declared down, its replicas made stale) to the last extent group back at RF; compared with dd
 * of as many bytes on the same disk.
 */
async function rebuild(lab: BenchLab, name: string, src: string): Promise<Rebuild> {
  interface Map2 { egroupBytes: number; egroups: { egroup: number; replicas: { cvmIp: string }[]; stale: unknown[] }[] }
  const map = (): Promise<Map2> => cvmCall<Map2>(CVM(0), `/storage/vdisks/${name}/replicas`, { timeoutMs: 30_000 });
  const m0 = await map();
  // the node to lose: node 1 or 2 (host 0 runs the I/O), whichever holds more of the vdisk's replicas
  const on = (ip: string): number => m0.egroups.filter((e) => e.replicas.some((r) => r.cvmIp === ip)).length;
  const node = on(CVM(1)) > on(CVM(2)) ? 1 : 2;
  const lost = CVM(node);
  if (on(lost) === 0) throw new Error(`no extent group of ${name} has a replica on node 1 or 2`);
  const hit = new Set(m0.egroups.filter((e) => e.replicas.some((r) => r.cvmIp === lost)).map((e) => e.egroup));
  const vdiskBytes = (await cvmCall<{ sizeBytes: number; name: string }[]>(CVM(0), '/storage/vdisks')).find((v) => v.name === name)?.sizeBytes ?? 0;
  const mibOf = (eg: number): number => Math.max(0, Math.min(m0.egroupBytes, vdiskBytes - eg * m0.egroupBytes)) / (1 << 20);
  const n = [...hit].reduce((a, eg) => a + mibOf(eg), 0);
  const state = async (): Promise<{ changed: boolean; left: number }> => {
    const m = await map();
    let changed = false;
    let left = 0;
    for (const e of m.egroups) {
      if (!hit.has(e.egroup)) continue;
      const onLost = e.replicas.some((r) => r.cvmIp === lost);
      if (!onLost || e.stale.length) changed = true;
      if (onLost || e.stale.length || e.replicas.length < 2) left++;
    }
    return { changed, left };
  };
  const raw = join(lab.t.tr.dataDir, 'raw-copy.img');
  const r0 = performance.now();
  await run('dd', [`if=${src}`, `of=${raw}`, 'bs=1M', `count=${Math.ceil(n)}`, 'conv=fdatasync'], { maxBuffer: 1 << 20 });
  const rawMibs = n / ((performance.now() - r0) / 1000);
  rmSync(raw, { force: true });
  const off = await lab.t.tr.redfish(node).post('/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', { ResetType: 'ForceOff' });
  if (off.status >= 300) throw new Error(`ForceOff: ${off.status} ${off.text}`);
  const t0 = performance.now();
  let first = 0;
  for (;;) {
    const s = await state().catch(() => ({ changed: false, left: hit.size }));
    const now = performance.now();
    if (s.changed && first === 0) first = now;
    if (s.left === 0 && first > 0) {
      const spanS = (now - first) / 1000;
      return { node, mib: n, firstS: (first - t0) / 1000, spanS, mibs: n / Math.max(spanS, 0.001), rawMibs };
    }
    if (now - t0 > 600_000) throw new Error(`re-protection not done in 600 s: ${s.left} of ${hit.size} extent groups still exposed`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

function goals(rows: Row[], rb: Rebuild | undefined): void {
  console.log('\n3. goals (issue 12)');
  console.log('   figure: the throughput ratio; by CPU: the inverse ratio of CPU per MiB (what the figure would be if both sides were bound by the same CPU)');
  console.log('goal                               job                              figure  by CPU  needed  status   (absolute)');
  const byCpu = (num: Figure, den: Figure): number | undefined => (num.cpu && den.cpu ? den.cpu / num.cpu : undefined);
  const line = (goal: string, r: Row, x: number, need: number, abs: string, c?: number): void =>
    console.log(`${goal.padEnd(34)} ${`${r.group} ${r.job}`.padEnd(31)} ${col(x, 7, 2)}  ${c === undefined ? '     —' : col(c, 6, 2)}  ${col(need, 6, 2)}  ${(x >= need ? 'met' : 'not met').padEnd(7)}  ${abs}`);
  const mib = (f: Figure): string => `${f.mibs.toFixed(0)} MiB/s`;
  const io = (f: Figure, r: Row): string => (r.job.includes('4k') ? `${kiops(f.iops)} IOPS` : mib(f));
  let met = 0;
  let all = 0;
  const count = (x: number, need: number): void => {
    all++;
    if (x >= need) met++;
  };
  for (const r of rows.filter((x) => x.sequential && x.group !== 'import')) {
    const x = r.m.rf1.mibs / r.m.ref.mibs;
    line('RF1 sequential ≥ 0.8 of nbdkit', r, x, 0.8, `RF1 ${mib(r.m.rf1)} vs nbdkit ${mib(r.m.ref)}`, byCpu(r.m.rf1, r.m.ref));
    count(x, 0.8);
  }
  for (const r of rows.filter((x) => x.job.includes('4k'))) {
    const x = r.m.rf1.mibs / r.m.ref.mibs;
    line('RF1 4 KiB random ≥ 0.5 of nbdkit', r, x, 0.5, `RF1 ${io(r.m.rf1, r)} vs nbdkit ${io(r.m.ref, r)}`, byCpu(r.m.rf1, r.m.ref));
    count(x, 0.5);
  }
  for (const r of rows.filter((x) => x.write)) {
    const x = r.m.rf2.mibs / r.m.rf1.mibs;
    line('RF2 writes ≥ 0.6 of RF1', r, x, 0.6, r.group === 'import' ? `RF2 ${r.m.rf2.iops.toFixed(1)} s vs RF1 ${r.m.rf1.iops.toFixed(1)} s` : `RF2 ${io(r.m.rf2, r)} vs RF1 ${io(r.m.rf1, r)}`, byCpu(r.m.rf2, r.m.rf1));
    count(x, 0.6);
  }
  if (rb) {
    const x = rb.mibs / rb.rawMibs;
    console.log(`${'rebuild after a node loss ≥ 0.5 of raw'.padEnd(34)} ${`${rb.mib} MiB, node ${rb.node} powered off`.padEnd(31)} ${col(x, 7, 2)}       —  ${col(0.5, 6, 2)}  ${(x >= 0.5 ? 'met' : 'not met').padEnd(7)}  ${rb.mibs.toFixed(1)} MiB/s vs dd ${rb.rawMibs.toFixed(0)} MiB/s`);
    count(x, 0.5);
  } else {
    console.log(`${'rebuild after a node loss ≥ 0.5 of raw'.padEnd(34)} ${'(run with --rebuild)'.padEnd(31)}       —       —    0.50  not measured`);
  }
  console.log(`met ${met} of ${all} measured`);
  const load = loadavg()[0] ?? 0;
  if (load > 2 * cpus().length) console.log(`(load average ${load.toFixed(1)} on ${cpus().length} cores during the run: other work shared the CPU; single figures can be off by 2–10x, rerun before trusting a ratio)`);
}

async function tlsPart(lab: BenchLab, vdisks: { rf1: string; rf2: string }): Promise<void> {
  const jobs: Job[] = [READ[0], OVER[0], READ[1], OVER[1]].filter((j): j is Job => j !== undefined);
  const pids = await Promise.all(lab.cvms.map(async (ip) => (await cvmCall<{ services: { name: string; pid: number }[] }>(ip, '/status')).services.find((x) => x.name === 'stargate')?.pid ?? 0));
  const certDir = lab.t.nbdCertDir();
  console.log(`\n4. authenticated access (NbdClient${ROUNDS > 1 ? `, best of ${ROUNDS} interleaved` : ''}): the CVM's plain socket on the host link vs stargate nbds://${CVM(0)}:10809 with the operator's certificate`);
  console.log('   CPU: the client and the three CVMs, ms per MiB moved');
  console.log('job                  RF  link MiB/s  TLS MiB/s  TLS/link   CPU link  CPU TLS  TLS/link');
  for (const job of jobs) {
    const load = (vdisk: string, tls: boolean): Promise<Sample> => nbdLoad(job, tls ? { host: CVM(0), port: 10809, export: vdisk, certDir } : { path: lab.linkSocket, export: vdisk }, SIZE_MIB, RUNTIME, pids);
    const m = await bestOf(ROUNDS, { rf1: () => load(vdisks.rf1, false), rf1Tls: () => load(vdisks.rf1, true), rf2: () => load(vdisks.rf2, false), rf2Tls: () => load(vdisks.rf2, true) });
    for (const [rf, l, t] of [[1, m.rf1, m.rf1Tls], [2, m.rf2, m.rf2Tls]] as const) {
      console.log(`${job.name.padEnd(20)} ${rf}   ${col(l.mibs, 9)}  ${col(t.mibs, 9)}  ${col(t.mibs / l.mibs, 8, 2)}   ${col(l.cpu ?? 0, 8, 2)}  ${col(t.cpu ?? 0, 7, 2)}  ${col((t.cpu ?? 0) / (l.cpu ?? 1), 8, 2)}`);
    }
  }
}

async function main(): Promise<void> {
  const t0 = performance.now();
  console.log(`bench/datapath${QUICK ? ' --quick' : ''}: ${SIZE_MIB} MiB per vdisk, ${RUNTIME} s per job, import ${IMPORT_MIB} MiB, 3-node lab cluster`);
  console.log(machineContext());
  const lab = await startBenchLab('bench');
  let nbdkit: ChildProcess | undefined;
  try {
    const dir = join(lab.t.dir, 'nbdkit');
    mkdirSync(dir);
    nbdkit = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-i', SPARE_IP, '-p', String(NBDKIT_PORT), 'file', `dir=${dir}`], { stdio: 'ignore' });
    const src = join(lab.t.dir, 'import.img');
    await run('bash', ['-c', 'head -c "$1" /dev/urandom > "$2"', 'gen', String(IMPORT_MIB * 2 ** 20), src]);
    const rows: Row[] = [];
    console.log(`\n1. I/O through host 0's redirector (fio nbd engine, nbd+unix) vs nbdkit file plugin (nbd://, same disk)${ROUNDS > 1 ? `; overwrites and reads best of ${ROUNDS} interleaved` : ''}`);
    console.log('   CPU: ms per MiB moved of the serving processes (Converge: the three CVMs with their etcd, and host 0\'s agent with the redirector; nbdkit: nbdkit)');
    console.log('phase        job                 RF1 MiB/s   IOPS  RF2 MiB/s   IOPS  nbdk MiB/s  IOPS  RF1/nbdkit  RF2/nbdkit  RF2/RF1   CPU RF1    RF2   nbdk');
    const pids = await servingPids(lab, nbdkit.pid ?? 0);
    const run1 = async (job: Job, targets: Record<Target, string>, once: boolean): Promise<Record<Target, Figure>> => {
      const one = async (t: Target): Promise<Figure> => {
        const { value, cpu } = await cpuDuring(t === 'ref' ? pids.ref : pids.converge, () => fio(job, { uri: targets[t] }, SIZE_MIB, once && job.bs === '1M' ? 600 : RUNTIME, once));
        return { mibs: value.mibs, iops: value.iops, cpu: cpu / Math.max(value.mib, 1e-9) };
      };
      if (once) return { rf1: await one('rf1'), rf2: await one('rf2'), ref: await one('ref') };
      // bestOf keeps the best MiB/s and CPU per MiB; IOPS follow MiB/s (same block size)
      const m = await bestOf(ROUNDS, { rf1: () => one('rf1'), rf2: () => one('rf2'), ref: () => one('ref') });
      const bs = job.bs === '1M' ? 2 ** 20 : 4096;
      const f = (s: Sample): Figure => ({ mibs: s.mibs, iops: (s.mibs * 2 ** 20) / bs, ...(s.cpu === undefined ? {} : { cpu: s.cpu }) });
      return { rf1: f(m.rf1), rf2: f(m.rf2), ref: f(m.ref) };
    };
    // first writes: the sequential job fills the vdisks the overwrites and reads use
    const seq = await fresh(lab, dir, 'seq', SIZE_MIB);
    for (const job of FIRST) {
      const targets = job.bs === '1M' ? seq : await fresh(lab, dir, 'rand', SIZE_MIB);
      const r: Row = { group: 'first write', job: job.name, sequential: job.bs === '1M', write: true, m: await run1(job, targets, true) };
      rows.push(r);
      printRow(r);
    }
    for (const [group, jobs] of [['overwrite', OVER], ['read', READ]] as const) {
      for (const job of jobs) {
        const r: Row = { group, job: job.name, sequential: job.bs === '1M', write: group === 'overwrite', m: await run1(job, seq, false) };
        rows.push(r);
        printRow(r);
      }
    }
    console.log('\n1b. where the CPU goes: ms of CPU per MiB moved, by process (RF1 vdisk, owned by CVM 1, the redirector\'s local CVM)');
    for (const job of [READ[0], OVER[1]]) if (job) await cpuByProcess(job, seq.rf1, pids.labelled);
    console.log(`\n2. import: qemu-img convert of ${IMPORT_MIB} MiB of new (random) data into a fresh vdisk / file, wall time`);
    const imp = await fresh(lab, dir, 'imp', IMPORT_MIB);
    const m = { rf1: await timedImport(src, imp.rf1), rf2: await timedImport(src, imp.rf2), ref: await timedImport(src, imp.ref) };
    console.log(`   nbdkit ${m.ref.iops.toFixed(1)} s (${m.ref.mibs.toFixed(0)} MiB/s), RF1 ${m.rf1.iops.toFixed(1)} s (${m.rf1.mibs.toFixed(0)} MiB/s), RF2 ${m.rf2.iops.toFixed(1)} s (${m.rf2.mibs.toFixed(0)} MiB/s); RF1/nbdkit ${(m.rf1.mibs / m.ref.mibs).toFixed(2)}, RF2/nbdkit ${(m.rf2.mibs / m.ref.mibs).toFixed(2)}, RF2/RF1 ${(m.rf2.mibs / m.rf1.mibs).toFixed(2)}`);
    rows.push({ group: 'import', job: `qemu-img ${IMPORT_MIB} MiB`, sequential: true, write: true, m });
    if (process.argv.includes('--tls')) await tlsPart(lab, { rf1: 'seq-rf1', rf2: 'seq-rf2' });
    let rb: Rebuild | undefined;
    if (process.argv.includes('--rebuild')) {
      // last: it takes a node away. The RF2 vdisk of the sequential first write, SIZE_MIB MiB.
      rb = await rebuild(lab, 'seq-rf2', src);
      console.log(`\n2b. rebuild: node ${rb.node} powered off (Redfish ForceOff); ${rb.mib} MiB of seq-rf2 had a replica there. Its replicas made stale after ${rb.firstS.toFixed(1)} s (detection), re-protected in ${rb.spanS.toFixed(1)} s: ${rb.mibs.toFixed(1)} MiB/s; dd of as many bytes on the same disk ${rb.rawMibs.toFixed(0)} MiB/s`);
    }
    goals(rows, rb);
    console.log(`\n${machineContext()}; bench took ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  } finally {
    nbdkit?.kill();
    await lab.stop();
  }
}

await main();
