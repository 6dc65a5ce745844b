/**
 * bench/metadata: how much the configuration store (etcd) holds per TiB written (issue 12's goal:
 * ≤ 10,000 keys per TiB; one key per written 1 MiB today, about 1 M per TiB), in three parts, run
 * in this order (the lab last: it takes longest):
 *
 *  1. A metadata-only simulation of the v2 layout (src/cvm/core/engine/metadata-size.ts): --tib TiB
 *     written across --nodes nodes × --disks disks at RF2, placed by placement.ts, one EgroupRecord
 *     (JSON) per written 128 MiB extent group, an owner key per vdisk, a liveness key per node;
 *     sequential (256 GiB vdisks, filled) and sparse (4 KiB random writes over 64 TiB vdisks).
 *     Printed against etcd's 2 GiB default quota and 8 GiB recommended maximum.
 *  2. A scaled sample: --sample records of the same simulation put into a real etcd started here
 *     (Debian's etcd-server, plain, on 127.123.20.250:18122), its database size per key measured and
 *     extrapolated to part 1's record count.
 *  3. On a real 3-node lab cluster (bench/lab.ts), through host 0's redirector with fio's nbd
 *     engine: --size MiB written sequentially to an RF2 vdisk, then --sparse 4 KiB writes at
 *     random offsets of a --sparse-vdisk GiB RF1 vdisk (each touches a block of its own). The keys
 *     and bytes (key + value) under /converge/ are counted before and after each (etcd getAll with a
 *     CVM's member certificate), with etcd's own database size, and printed per TiB written.
 *
 * Usage: node --import tsx bench/metadata.ts [--quick] [--size MiB] [--sparse n] [--sparse-vdisk GiB]
 *          [--tib n] [--nodes n] [--disks n] [--disk-tib n] [--sample n] [--no-lab] [--no-etcd]
 *   defaults: 1024 MiB, 4096 writes over 256 GiB, 100 TiB on 32 × 4 disks of 4 TiB, 50,000 records: about 4 minutes here;
 *   --quick: 256 MiB, 1024 writes, 20,000 records: about 2 (etcd's file grows by whole pages: samples under ~20,000 records mislead).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { cvmCall } from '../src/cvm/protocol/client.ts';
import type { PoolView } from '../src/cvm/protocol/cluster.ts';
import {
  ETCD_DEFAULT_QUOTA_BYTES, ETCD_RECOMMENDED_MAX_BYTES, GIB, KEYS_PER_TIB_GOAL, simulateMetadata, TIB, type ClusterShape, type MetadataSize, type Workload,
} from '../src/cvm/core/engine/metadata-size.ts';
import { arg, run } from './fio.ts';
import { benchVdisk, CVM, machineContext, SPARE_IP, startBenchLab } from './lab.ts';

const QUICK = process.argv.includes('--quick');
const SIZE_MIB = arg('size', QUICK ? 256 : 1024);
const SPARSE = arg('sparse', QUICK ? 1024 : 4096);
const SPARSE_GIB = arg('sparse-vdisk', 256);
const TIBS = arg('tib', 100);
const NODES = arg('nodes', 32);
const DISKS = arg('disks', 4);
const DISK_TIB = arg('disk-tib', 4);
const SAMPLE = arg('sample', QUICK ? 20_000 : 50_000);

const fmt = (x: number, d = 0): string => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const mib = (b: number): string => `${fmt(b / 2 ** 20, 1)} MiB`;

interface StoreCount {
  keys: number;
  bytes: number;
  dbSize: number;
  dbInUse: number;
}

async function countStore(etcd: Etcd3): Promise<StoreCount> {
  const all = await etcd.getAll().prefix('/converge/').strings();
  let bytes = 0;
  for (const [k, v] of Object.entries(all)) bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
  const s = await etcd.maintenance.status();
  return { keys: Object.keys(all).length, bytes, dbSize: Number(s.dbSize), dbInUse: Number(s.dbSizeInUse) };
}

function perTib(label: string, written: number, a: StoreCount, b: StoreCount): void {
  const tib = written / TIB;
  const keys = b.keys - a.keys;
  const bytes = b.bytes - a.bytes;
  console.log(`${label.padEnd(34)} ${mib(written).padStart(11)}  ${fmt(keys).padStart(7)}  ${mib(bytes).padStart(10)}  ${fmt(keys / tib).padStart(13)}  ${(fmt(bytes / tib / GIB, 2) + ' GiB').padStart(13)}  ${fmt(keys / tib / KEYS_PER_TIB_GOAL, 1).padStart(8)}x`);
}

async function lab(): Promise<void> {
  console.log('\n3. today\'s fabric, 3-node lab cluster, writes through host 0\'s redirector (fio nbd engine)');
  const l = await startBenchLab('meta');
  const etcd = l.t.store(l.cvms);
  try {
    const pool = await cvmCall<PoolView>(CVM(0), '/storage/pool');
    console.log(`   pool: ${mib(pool.usage.capacityBytes)} on ${pool.usage.disks.length} disks, ${mib(pool.usage.freeBytes)} free`);
    const c0 = await countStore(etcd);
    console.log(`   before: ${fmt(c0.keys)} keys, ${fmt(c0.bytes)} bytes under /converge/; etcd db ${mib(c0.dbSize)} (${mib(c0.dbInUse)} in use)`);
    console.log('pattern                            written       keys      bytes   keys per TiB  bytes per TiB  vs goal');
    const seq = await benchVdisk(l, 'm-seq', SIZE_MIB, 'default-container');
    await run('fio', ['--name=seq', '--ioengine=nbd', `--uri=${seq}`, '--rw=write', '--bs=1M', '--iodepth=4', `--size=${SIZE_MIB}M`, '--output-format=terse']);
    const c1 = await countStore(etcd);
    perTib('sequential 1 MiB, RF2', SIZE_MIB * 2 ** 20, c0, c1);
    // sparse writes allocate a 1 MiB block each: keep them within half the free space
    const free = (await cvmCall<PoolView>(CVM(0), '/storage/pool')).usage.freeBytes;
    const n = Math.min(SPARSE, Math.floor(free / 2 / 2 ** 20));
    if (n < SPARSE) console.log(`   (sparse writes capped at ${n}: each allocates a 1 MiB block and the pool has ${mib(free)} free)`);
    const sparse = await benchVdisk(l, 'm-sparse', SPARSE_GIB * 1024, 'rf1');
    await run('fio', ['--name=sparse', '--ioengine=nbd', `--uri=${sparse}`, '--rw=randwrite', '--bs=4k', '--iodepth=16', `--size=${SPARSE_GIB}G`, `--io_size=${n * 4}k`, '--output-format=terse']);
    const c2 = await countStore(etcd);
    perTib(`sparse 4 KiB over ${SPARSE_GIB} GiB, RF1`, n * 4096, c1, c2);
    console.log(`   etcd db after: ${mib(c2.dbSize)} (${mib(c2.dbInUse)} in use); grew ${mib(c2.dbSize - c0.dbSize)} for ${fmt(c2.keys - c0.keys)} keys`);
    const sample = Object.entries(await etcd.getAll().prefix('/converge/v2/egroups/').limit(1).strings())[0];
    if (sample) console.log(`   one record today: ${sample[0]} = ${sample[1]} (${Buffer.byteLength(sample[0]) + Buffer.byteLength(sample[1])} bytes)`);
  } finally {
    etcd.close();
    await l.stop();
  }
}

function line(label: string, m: MetadataSize): void {
  const quota = (b: number): string => `${fmt((100 * m.bytes) / b, 2)} %`;
  console.log(`${label.padEnd(30)} ${fmt(m.keys).padStart(11)}  ${mib(m.bytes).padStart(13)}  ${fmt(m.bytes / m.egroupKeys, 0).padStart(7)}  ${fmt(m.keysPerTiB).padStart(13)}  ${(m.keysPerTiB <= KEYS_PER_TIB_GOAL ? 'met' : 'not met').padStart(8)}  ${quota(ETCD_DEFAULT_QUOTA_BYTES).padStart(8)}  ${quota(ETCD_RECOMMENDED_MAX_BYTES).padStart(8)}  ${String(m.replicasPerDisk.min).padStart(6)}–${m.replicasPerDisk.max}`);
}

function simulation(shape: ClusterShape): MetadataSize {
  console.log(`\n1. v2 layout, metadata only: ${TIBS} TiB written, ${shape.nodes} nodes × ${shape.disksPerNode} disks of ${DISK_TIB} TiB, RF${shape.rf}, placement.ts`);
  console.log('   (bytes: keys and JSON values as stored, without etcd\'s per-key overhead: see part 2)');
  console.log('workload                              keys     key+value  B/record   keys per TiB  ≤10k/TiB  of 2 GiB  of 8 GiB  replicas/disk');
  const t0 = performance.now();
  const seq = simulateMetadata(shape, { writtenBytes: TIBS * TIB, vdiskBytes: 256 * GIB, pattern: 'sequential' });
  line('sequential, 256 GiB vdisks', seq);
  const sparseW: Workload = { writtenBytes: TIBS * TIB, vdiskBytes: 64 * TIB, pattern: 'random', ioBytes: 4096 };
  line('4 KiB random over 64 TiB vdisks', simulateMetadata(shape, sparseW));
  const small: Workload = { writtenBytes: 1 * TIB, vdiskBytes: 64 * TIB, pattern: 'random', ioBytes: 4096 };
  line('  the first 1 TiB of those', simulateMetadata(shape, small));
  console.log(`   (simulated in ${fmt((performance.now() - t0) / 1000, 1)} s)`);
  return seq;
}

async function etcdSample(shape: ClusterShape, full: MetadataSize): Promise<void> {
  console.log(`\n2. a real etcd (Debian etcd-server, one member, ${SPARE_IP}:18122): ${fmt(SAMPLE)} records of part 1's sequential workload`);
  const dir = mkdtempSync(join(tmpdir(), 'cvg-bench-etcd-'));
  let proc: ChildProcess | undefined;
  const etcd = new Etcd3({ hosts: `http://${SPARE_IP}:18122` });
  try {
    proc = spawn('etcd', ['--name', 'sample', '--data-dir', join(dir, 'etcd'), '--listen-client-urls', `http://${SPARE_IP}:18122`, '--advertise-client-urls', `http://${SPARE_IP}:18122`,
      '--listen-peer-urls', `http://${SPARE_IP}:18123`, '--initial-advertise-peer-urls', `http://${SPARE_IP}:18123`, '--initial-cluster', `sample=http://${SPARE_IP}:18123`, '--log-level', 'error'], { stdio: 'ignore' });
    const end = Date.now() + 20_000;
    for (;;) {
      const ok = await etcd.get('x').string().then(() => true, () => false);
      if (ok) break;
      if (Date.now() > end) throw new Error('etcd did not start in 20 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const before = await etcd.maintenance.status();
    // the same cluster and record shapes, a workload scaled to SAMPLE extent groups
    const records: [string, string][] = [];
    simulateMetadata(shape, { writtenBytes: SAMPLE * 128 * 2 ** 20, vdiskBytes: 256 * GIB, pattern: 'sequential' }, undefined, (k, v) => void records.push([k, v]));
    const t0 = performance.now();
    for (let i = 0; i < records.length; i += 1024) {
      // 8 transactions of 128 puts in flight (etcd's default --max-txn-ops is 128)
      await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(async (j) => {
        const batch = records.slice(i + j * 128, i + (j + 1) * 128);
        if (batch.length === 0) return;
        await etcd.kv.txn({ compare: [], success: batch.map(([k, v]) => ({ request_put: { key: Buffer.from(k), value: Buffer.from(v) } })), failure: [] });
      }));
    }
    const secs = (performance.now() - t0) / 1000;
    const after = await etcd.maintenance.status();
    const grown = Number(after.dbSize) - Number(before.dbSize);
    const inUse = Number(after.dbSizeInUse) - Number(before.dbSizeInUse);
    const kv = records.reduce((a, [k, v]) => a + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
    const perKey = grown / records.length;
    console.log(`   ${fmt(records.length)} keys (${mib(kv)} key+value) put in ${fmt(secs, 1)} s (${fmt(records.length / secs)} keys/s); db grew ${mib(grown)} (${mib(inUse)} in use): ${fmt(perKey)} bytes per key, ${fmt(perKey / (kv / records.length), 2)}x key+value`);
    const est = perKey * full.keys;
    console.log(`   extrapolated to part 1's ${fmt(full.keys)} keys (${TIBS} TiB sequential): ${fmt(est / GIB, 2)} GiB: ${fmt((100 * est) / ETCD_DEFAULT_QUOTA_BYTES, 0)} % of the 2 GiB default quota, ${fmt((100 * est) / ETCD_RECOMMENDED_MAX_BYTES, 0)} % of the 8 GiB recommended maximum`);
    console.log(`   the replaced v1 layout (one key per 1 MiB) for the same ${TIBS} TiB: ${fmt(TIBS * 2 ** 20)} keys, ~${fmt((perKey * TIBS * 2 ** 20) / GIB, 1)} GiB at the same bytes per key`);
    if (records.length < 20_000) console.log('   (a small sample: etcd\'s file grows by whole pages, so bytes per key are coarse below ~20,000 records)');
  } finally {
    etcd.close();
    proc?.kill();
    if (proc && proc.exitCode === null) await new Promise((r) => proc?.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(`bench/metadata${QUICK ? ' --quick' : ''}`);
  console.log(machineContext());
  const shape: ClusterShape = { nodes: NODES, disksPerNode: DISKS, diskBytes: DISK_TIB * TIB, rf: 2 };
  const full = simulation(shape);
  if (!process.argv.includes('--no-etcd')) await etcdSample(shape, full);
  if (!process.argv.includes('--no-lab')) await lab();
  console.log(`\n${machineContext()}`);
}

await main();
