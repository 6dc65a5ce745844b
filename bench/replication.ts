/**
 * bench/replication: the cost of TLS between CVMs (ADR 013) on the replication protocol
 * (cvmIp:2009), measured in one run. A "CVM" in a process of its own serves extent groups from
 * a disk volume in a temp dir (LocalEgroups, with its CRC32 per 4 KiB page) through the real
 * ReplicationServer, on two listeners:
 *
 *   - TLS with member `cvm` certificates of a cluster CA, as in production (ReplicationServer.listen);
 *   - plain TCP, for the "before" figure: the same server's connection handler, handed the sockets
 *     of a plain listener. Production has no plain listener; the bench reaches the private handler
 *     through a cast, so the framing, the request handling and the disk work are the same code.
 *
 * Three clients drive it from this process (as a second CVM would):
 *   - a bench client of the same framing (core/replication-codec.ts, 4 pipelined connections, the
 *     production client's layout), over plain TCP and over TLS: their ratio is the cost of TLS;
 *   - the production ReplicationClient (TLS only), to show the bench client is a fair stand-in.
 *
 * Jobs as the data-path benches': 1 MiB sequential read/write at depth 4, 4 KiB random read/write
 * at depth 16 (writes without sync, as the write path's replica writes before a FLUSH), over an
 * address space of --size MiB that is written once before measuring. Each figure is the best of
 * --rounds interleaved runs (bestOf in fio.ts). Besides MiB/s, the CPU time client and server spend
 * per MiB moved (this process and the serving one, /proc): steadier than MiB/s on a loaded machine.
 *
 * Usage: node --import tsx bench/replication.ts [--size MiB] [--runtime s] [--rounds n]   (defaults 256, 3, 2)
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import * as R from '../src/cvm/core/replication-codec.ts';
import { LocalEgroups, crcsFor, type EgroupRef } from '../src/cvm/node/egroups.ts';
import { ReplicationClient, ReplicationServer, type MemberTls } from '../src/cvm/node/replication.ts';
import { formatDisk } from '../src/shared/disk-volume.ts';
import { ByteReader } from '../src/shared/nbd/reader.ts';
import { arg, bestOf, col, cpuMs, JOBS, type Job, type Sample } from './fio.ts';
import { benchPki } from './pki.ts';
import { machineContext } from './machine.ts';

const SIZE_MIB = arg('size', 256);
const RUNTIME = arg('runtime', 3);
const ROUNDS = arg('rounds', 2);
/** The bench's own loopback address (nothing else runs on 127.72.x while it does). */
const IP = '127.72.31.1';
const PORT = { tls: 2009, plain: 2010 };
const DISK = 'bench-d1';
const VDISK = '0be4c400-0000-4000-8000-000000000001';
const MiB = 1 << 20;

/** The "CVM": serves one disk volume's extent groups on IP, TLS and plain; prints "ready". */
async function serve(dir: string): Promise<void> {
  const member = JSON.parse(readFileSync(join(dir, 'member.json'), 'utf8')) as MemberTls;
  formatDisk(join(dir, 'd1'), { serial: DISK, model: 'bench', mediaType: 'SSD', capacityBytes: 4 * SIZE_MIB * MiB });
  const local = new LocalEgroups([{ serial: DISK, path: join(dir, 'd1') }], 'bench/replication');
  const server = new ReplicationServer(local, (m) => console.error(m));
  await server.listen(IP, member, PORT.tls);
  const handler = (server as unknown as { serve(s: Socket): void }).serve.bind(server);
  const plain = createServer((s) => handler(s));
  await new Promise<void>((res) => plain.listen(PORT.plain, IP, res));
  console.log('ready');
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0)); // the bench is done (or gone)
}

interface Client {
  write(r: EgroupRef, offset: number, data: Uint8Array): Promise<unknown>;
  read(r: EgroupRef, offset: number, length: number): Promise<unknown>;
  close(): void;
}

/** One pipelined connection of the bench client: requests and replies framed by the codec. */
class Conn {
  private pending = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>();
  private nextId = 1;

  constructor(private readonly sock: Socket) {
    sock.setNoDelay(true);
    const reader = new ByteReader(() => sock.pause(), () => sock.resume(), 16 << 20);
    sock.on('data', (c: Buffer) => reader.push(c));
    sock.on('close', () => reader.end());
    sock.on('error', (e) => this.fail(e));
    void (async () => {
      try {
        for (;;) {
          const h = R.decodeReply(await reader.read(R.REPLY_HEADER));
          const body = h.length > 0 ? await reader.read(h.length) : Buffer.alloc(0);
          const p = this.pending.get(h.id);
          this.pending.delete(h.id);
          if (h.status === R.ST_OK) p?.resolve(body);
          else p?.reject(new Error(`status ${h.status}: ${body.toString('utf8')}`));
        }
      } catch (e) {
        this.fail(e instanceof Error ? e : new Error(String(e)));
      }
    })();
  }

  get load(): number {
    return this.pending.size;
  }

  private fail(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  call(req: Omit<R.ReplicationRequest, 'id'>, payload: readonly Uint8Array[] = []): Promise<Buffer> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.sock.cork();
      this.sock.write(R.encodeRequest({ ...req, id }));
      for (const p of payload) if (p.byteLength > 0) this.sock.write(p);
      process.nextTick(() => this.sock.uncork());
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

/** The bench client: `n` connections from `dial`, each request on the least loaded. */
function codecClient(dial: () => Socket, n = 4): Client {
  const conns = Array.from({ length: n }, () => new Conn(dial()));
  const pick = (): Conn => conns.reduce((a, b) => (b.load < a.load ? b : a));
  const req = (op: number, r: EgroupRef, offset: number, length: number): Omit<R.ReplicationRequest, 'id'> => ({ op, disk: r.disk, vdisk: r.vdisk, block: r.block, offset, length });
  return {
    // protocol version 1: the page checksums (computed once per buffer, as the production client does), then the data
    write: (r, offset, data) => pick().call(req(R.OP_WRITE, r, offset, data.byteLength), [R.encodeCrcs(crcsFor(data, offset)), data]),
    read: (r, offset, length) => pick().call(req(R.OP_READ, r, offset, length)),
    close: () => conns.forEach((c) => c.close()),
  };
}

/** One job for `runtimeS` seconds: MiB/s, and the CPU of this process (the client) and the serving process `server` per MiB. */
async function load(c: Client, job: Job, runtimeS: number, server: number): Promise<Sample> {
  const bs = job.bs === '1M' ? MiB : 4096;
  const slots = (SIZE_MIB * MiB) / bs;
  const write = job.rw.includes('write');
  const payload = randomBytes(bs);
  let next = 0;
  let ops = 0;
  const cpu0 = cpuMs() + cpuMs(server);
  const start = performance.now();
  const end = start + runtimeS * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const pos = (job.rw.startsWith('rand') ? Math.floor(Math.random() * slots) : next++ % slots) * bs;
      const ref = { disk: DISK, vdisk: VDISK, block: Math.floor(pos / MiB) };
      await (write ? c.write(ref, pos % MiB, payload) : c.read(ref, pos % MiB, bs));
      ops++;
    }
  };
  await Promise.all(Array.from({ length: job.depth }, worker));
  const mib = (ops * bs) / MiB;
  return { mibs: mib / ((performance.now() - start) / 1000), cpu: (cpuMs() + cpuMs(server) - cpu0) / mib };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-bench-repl-'));
  const pki = await benchPki([IP]);
  const member: MemberTls = { identity: pki.cvm, clusterCa: pki.clusterCa.cert };
  writeFileSync(join(dir, 'member.json'), JSON.stringify(member), { mode: 0o600 });
  const cvm = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve', dir, ...process.argv.slice(2)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const clients: Client[] = [];
  try {
    const lines = createInterface({ input: cvm.stdout });
    await new Promise<void>((res, rej) => {
      lines.on('line', (l) => l === 'ready' && res());
      cvm.once('exit', (code) => rej(new Error(`the serving process exited (${code})`)));
    });
    const prod = new ReplicationClient(() => member, 4, PORT.tls);
    const production: Client = { write: (r, o, d) => prod.write(IP, r, o, d, false), read: (r, o, l) => prod.read(IP, r, o, l), close: () => prod.close() };
    const plain = codecClient(() => tcpConnect({ host: IP, port: PORT.plain }));
    const tls = codecClient(() => tlsConnect({ host: IP, port: PORT.tls, cert: pki.cvm.cert, key: pki.cvm.key, ca: [pki.clusterCa.cert], minVersion: 'TLSv1.2' }));
    clients.push(production, plain, tls);
    // every extent group written once, so reads read data (and its checksums)
    const t0 = performance.now();
    for (let b = 0; b < SIZE_MIB; b += 8) await Promise.all(Array.from({ length: Math.min(8, SIZE_MIB - b) }, (_, i) => plain.write({ disk: DISK, vdisk: VDISK, block: b + i }, 0, randomBytes(MiB))));
    console.log(`bench/replication: ${SIZE_MIB} MiB of extent groups on ${dir} (written in ${((performance.now() - t0) / 1000).toFixed(1)} s), ${RUNTIME} s per job, best of ${ROUNDS} interleaved, one run on this machine`);
    console.log(machineContext());
    console.log('CPU: client and serving process, ms per MiB moved');
    console.log('job                  plain MiB/s  TLS MiB/s  TLS/plain   CPU plain  CPU TLS  TLS/plain   production client TLS MiB/s  production/bench TLS');
    const server = cvm.pid ?? 0;
    for (const job of JOBS) {
      const r = await bestOf(ROUNDS, { plain: () => load(plain, job, RUNTIME, server), tls: () => load(tls, job, RUNTIME, server), production: () => load(production, job, RUNTIME, server) });
      console.log(`${job.name.padEnd(20)} ${col(r.plain.mibs, 11)}  ${col(r.tls.mibs, 9)}  ${col(r.tls.mibs / r.plain.mibs, 9, 2)}   ${col(r.plain.cpu ?? 0, 9, 2)}  ${col(r.tls.cpu ?? 0, 7, 2)}  ${col((r.tls.cpu ?? 0) / (r.plain.cpu ?? 1), 9, 2)}   ${col(r.production.mibs, 27)}  ${col(r.production.mibs / r.tls.mibs, 20, 2)}`);
    }
  } finally {
    for (const c of clients) c.close();
    cvm.stdin.end();
    await new Promise((res) => (cvm.exitCode === null ? cvm.once('exit', res) : res(undefined)));
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--serve') await serve(process.argv[3] ?? '');
else await main();
