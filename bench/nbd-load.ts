/**
 * bench/nbd-load: one fio-like job with Converge's NbdClient, in a process of its own (so the
 * client and the server under test do not share an event loop): one connection, `depth` requests
 * in flight, sequential or random blocks of `bs` bytes, for `runtime` seconds. Plain NBD, or NBD
 * over TLS with the client certificate folder `certDir` (client-cert.pem, client-key.pem,
 * ca-cert.pem) — the client fio's nbd engine cannot be (libnbd takes no certificate folder from it).
 *
 * Prints `{"mibs":…,"iops":…,"mib":…,"cpuMs":…}` (MiB moved, this process's CPU during the job). Usage (bench/fio.ts nbdLoad runs it):
 *   node --import tsx bench/nbd-load.ts '{"host":"127.72.30.1","port":10809,"export":"disk","certDir":"…","rw":"randread","bs":"4k","depth":16,"sizeMiB":256,"runtimeS":5}'
 */
import { randomBytes } from 'node:crypto';
import { NbdClient } from '../src/shared/nbd/client.ts';
import { NBD_CMD_READ, NBD_CMD_WRITE } from '../src/shared/nbd/constants.ts';
import { clientTlsOf } from './pki.ts';

export interface LoadSpec {
  host?: string;
  port?: number;
  /** A Unix socket instead of host:port. */
  path?: string;
  export: string;
  certDir?: string;
  rw: string;
  bs: string;
  depth: number;
  sizeMiB: number;
  runtimeS: number;
}

const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
const bs = Number.parseInt(spec.bs, 10) * (spec.bs.endsWith('M') ? 1 << 20 : spec.bs.endsWith('k') ? 1024 : 1);
const opts = spec.certDir ? { tls: clientTlsOf(spec.certDir) } : {};
const c = spec.path ? await NbdClient.connectPath(spec.path, spec.export, 10_000, opts) : await NbdClient.connect(spec.host ?? '', spec.port ?? 0, spec.export, 10_000, opts);
const blocks = Math.floor(Math.min(spec.sizeMiB * 2 ** 20, Number(c.size)) / bs);
const write = spec.rw.includes('write');
const random = spec.rw.startsWith('rand');
const payload = randomBytes(bs);
let next = 0;
let ops = 0;
const cpu0 = process.cpuUsage();
const start = performance.now();
const end = start + spec.runtimeS * 1000;
async function worker(): Promise<void> {
  while (performance.now() < end) {
    const block = random ? Math.floor(Math.random() * blocks) : next++ % blocks;
    await c.request(write ? NBD_CMD_WRITE : NBD_CMD_READ, BigInt(block * bs), bs, write ? payload : undefined);
    ops++;
  }
}
await Promise.all(Array.from({ length: spec.depth }, worker));
const s = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpu0);
c.close();
const mib = (ops * bs) / 2 ** 20;
console.log(JSON.stringify({ mibs: mib / s, iops: ops / s, mib, cpuMs: (cpu.user + cpu.system) / 1000 }));
