/**
 * @module
 * A host's migration TLS credentials as QEMU's `tls-creds-x509` object reads them from a folder:
 * the cluster CA, and the host's cluster certificate (role host, both server and client use) as
 * both the server's (incoming) and the client's (outgoing). QEMU verifies the peer against the CA
 * on both sides (`verify-peer`), and the source checks the target's certificate names its address.
 * @see https://www.qemu.org/docs/master/system/tls.html
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface HostCredentials {
  /** The cluster CA's certificate (PEM). */
  ca: string;
  /** The host's certificate (PEM; the leaf first, its CA may follow) and key. */
  cert: string;
  key: string;
}

/** Writes (when changed) the five files QEMU expects into `dir` (0700; keys 0600) and returns `dir`. */
export function writeQemuTlsDir(dir: string, c: HostCredentials): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files: [string, string, number][] = [
    ['ca-cert.pem', c.ca, 0o644],
    ['server-cert.pem', c.cert, 0o644],
    ['server-key.pem', c.key, 0o600],
    ['client-cert.pem', c.cert, 0o644],
    ['client-key.pem', c.key, 0o600],
  ];
  for (const [name, body, mode] of files) {
    const path = join(dir, name);
    let old: string | undefined;
    try {
      old = readFileSync(path, 'utf8');
    } catch {
      // not written yet
    }
    if (old !== body) writeFileSync(path, body, { mode });
  }
  return dir;
}
