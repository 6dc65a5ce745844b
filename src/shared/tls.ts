/**
 * @module
 * A small certificate authority for lab deployments: one CA per rack (or cluster), and server
 * certificates whose subjectAltName is the address the server binds, so clients verify against
 * the CA with no "insecure" switch. Keys are ECDSA P-256; files are PEM, written 0600.
 */
import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
// Node's WebCrypto is the provider (typed as unknown first: under the browser's lib, as the web UI
// type-checks what it imports, the DOM's Crypto type differs from Node's)
const provider: unknown = webcrypto;
x509.cryptoProvider.set(x509.CryptoProvider.DEFAULT, provider as Parameters<typeof x509.cryptoProvider.set>[1]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

export interface Pem {
  cert: string;
  key: string;
}

function pemOf(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function derOf(pem: string): ArrayBuffer {
  const b = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
}

async function exportKey(k: CryptoKey): Promise<string> {
  return pemOf('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', k));
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(12))).toString('hex').replace(/^[89a-f]/, '1');
}

function write(path: string, body: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, body, { mode: 0o600 });
}

/** Loads the CA at certPath/keyPath, creating it first if it does not exist. */
export async function ensureCa(certPath: string, keyPath: string, name: string): Promise<Pem> {
  if (existsSync(certPath) && existsSync(keyPath)) return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
  const pem = await createCa(name);
  write(certPath, pem.cert);
  write(keyPath, pem.key);
  return pem;
}

/** A new CA, in memory (a cluster's CA lives in its configuration store). */
export async function createCa(name: string): Promise<Pem> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']));
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}, O=Converge`,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 3650 * DAY),
    keys: keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await exportKey(keys.privateKey) };
}

/** What a certificate is for: a server's identity, a client's, or both (mutual TLS between peers). */
export type CertUsage = 'server' | 'client' | 'both';

export interface CertRequest {
  /** The subject's common name (a serial, a role name). */
  cn: string;
  /** The subject's organisational unit: the role an identity certificate grants (identity.ts). */
  ou?: string;
  ips?: readonly string[];
  dnsNames?: readonly string[];
  usage?: CertUsage;
  days?: number;
}

/** Issues a certificate from `ca`, in memory: the leaf followed by the CA's certificate, and its key. */
export async function issueCert(ca: Pem, r: CertRequest): Promise<Pem> {
  const caCert = new x509.X509Certificate(ca.cert);
  const caKey = await webcrypto.subtle.importKey('pkcs8', derOf(ca.key), ALG, false, ['sign']);
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']));
  const now = Date.now();
  const usage = r.usage ?? 'server';
  const eku = [
    ...(usage === 'client' ? [] : [x509.ExtendedKeyUsage.serverAuth]),
    ...(usage === 'server' ? [] : [x509.ExtendedKeyUsage.clientAuth]),
  ];
  const ips = r.ips ?? [];
  const dnsNames = r.dnsNames ?? [];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${r.cn}${r.ou ? `, OU=${r.ou}` : ''}, O=Converge`,
    issuer: caCert.subject,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + (r.days ?? 825) * DAY),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey as never,
    signingKey: caKey as never,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension(eku, false),
      ...(ips.length + dnsNames.length > 0 ? [new x509.SubjectAlternativeNameExtension([
        ...ips.map((value) => ({ type: 'ip' as const, value })),
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
      ])] : []),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  });
  return { cert: cert.toString('pem') + '\n' + ca.cert, key: await exportKey(keys.privateKey) };
}

/** Whether the first certificate of `chainPem` was issued (and signed) by the CA `caPem`. */
export function issuedBy(chainPem: string, caPem: string): boolean {
  try {
    const leaf = new X509Certificate(chainPem);
    const ca = new X509Certificate(caPem);
    return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
  } catch {
    return false;
  }
}

/**
 * Loads a server certificate for `ips` from its files, issuing it from the CA when it does not
 * exist yet or was issued by another CA (a cluster destroyed and created again has a new one).
 */
export async function ensureServerCert(ca: Pem, certPath: string, keyPath: string, ips: readonly string[], dnsNames: readonly string[] = []): Promise<Pem> {
  if (existsSync(certPath) && existsSync(keyPath)) {
    const pem = { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
    if (issuedBy(pem.cert, ca.cert)) return pem;
  }
  const pem = await issueCert(ca, { cn: ips[0] ?? dnsNames[0] ?? 'converge', ips, dnsNames, usage: 'server' });
  write(certPath, pem.cert);
  write(keyPath, pem.key);
  return pem;
}

/**
 * Issues (in memory) a certificate for a peer that both serves and connects under mutual TLS (an
 * NBD server and client, e.g. a CVM or a hypervisor's redirector): extended key usage serverAuth
 * and clientAuth, subjectAltName = `ips` and `dnsNames`. The PEM cert carries the CA after the leaf.
 */
export function issuePeerCert(ca: Pem, san: { ips: readonly string[]; dnsNames?: readonly string[]; commonName?: string }): Promise<Pem> {
  const dnsNames = san.dnsNames ?? [];
  return issueCert(ca, { cn: san.commonName ?? san.ips[0] ?? dnsNames[0] ?? 'converge', ips: san.ips, dnsNames, usage: 'both' });
}
