/**
 * @module
 * Certificates for the benchmarks that measure authenticated traffic, shaped as ADR 013's: a
 * deployment CA granting `operator`, a cluster CA granting `cvm` (the server's, and a member's
 * for replication), and folders of PEM files as libnbd (`nbds://…?tls-certificates=DIR`), nbdkit
 * (`--tls-certificates=DIR`) and QEMU read them.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa, issueCert, type Pem } from '../src/shared/tls.ts';
import type { NbdClientTls } from '../src/shared/nbd/starttls.ts';

export interface BenchPki {
  deploymentCa: Pem;
  clusterCa: Pem;
  /** A `cvm` certificate of the cluster CA for `ips` (server and client: replication uses it both ways). */
  cvm: Pem;
  /** An `operator` certificate of the deployment CA (client). */
  operator: Pem;
}

export async function benchPki(ips: readonly string[]): Promise<BenchPki> {
  const [deploymentCa, clusterCa] = await Promise.all([createCa('bench deployment'), createCa('bench cluster')]);
  const [cvm, operator] = await Promise.all([
    issueCert(clusterCa, { cn: 'bench-cvm', ou: 'cvm', ips, usage: 'both' }),
    issueCert(deploymentCa, { cn: 'operator', ou: 'operator', usage: 'client' }),
  ]);
  return { deploymentCa, clusterCa, cvm, operator };
}

function files(dir: string, entries: Record<string, string>): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const [name, body] of Object.entries(entries)) writeFileSync(join(dir, name), body, { mode: 0o600 });
  return dir;
}

/** A server's folder (nbdkit): its certificate and key, and the CAs its clients' certificates chain to. */
export function serverCertDir(dir: string, p: BenchPki): string {
  return files(dir, { 'ca-cert.pem': p.deploymentCa.cert + p.clusterCa.cert, 'server-cert.pem': p.cvm.cert, 'server-key.pem': p.cvm.key });
}

/** A client's folder (libnbd, and bench/nbd-load): the operator's certificate and the CA of the server's. */
export function clientCertDir(dir: string, p: BenchPki): string {
  return files(dir, { 'ca-cert.pem': p.clusterCa.cert, 'client-cert.pem': p.operator.cert, 'client-key.pem': p.operator.key });
}

/** What NbdClient takes, read from a client folder (the format `converge cluster certs` writes). */
export function clientTlsOf(dir: string): NbdClientTls {
  const f = (n: string): string => readFileSync(join(dir, n), 'utf8');
  return { cert: f('client-cert.pem'), key: f('client-key.pem'), ca: f('ca-cert.pem') };
}
