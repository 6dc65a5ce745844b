/**
 * @module
 * Who is calling: the platform's identities and the trust between them (ADR 013).
 *
 * Two certificate authorities, each granting its own roles (a certificate's role is its subject's
 * OU, accepted only from the CA that may grant it):
 * ```
 *  deployment CA (Foundation's, <data-dir>/pki)  operator  the CLI, Foundation, the demo
 *                                                node      a node imaged by this deployment (host + CVM addresses)
 *  cluster CA (made at cluster create)           cvm       a member's CVM: etcd, replication, stargate, Prism
 *                                                host      a member's hypervisor: the redirector's NBD client
 * ```
 * The cluster CA's key lives in the cluster's configuration store, which only `cvm` certificates
 * can read; a member could mint any certificate from it, so `operator` and `node` are refused from
 * it. Destroy forgets the cluster's certificates; create issues new ones.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { ensureCa, issueCert, issuedBy, type Pem } from './tls.ts';

export type Role = 'operator' | 'node' | 'cvm' | 'host';
export const DEPLOYMENT_ROLES: readonly Role[] = ['operator', 'node'];
export const CLUSTER_ROLES: readonly Role[] = ['cvm', 'host'];

/** A certificate and key to present, and the CA certificates whose holders this side trusts. */
export interface Identity {
  cert: string;
  key: string;
  /** Trust anchors (PEM): the peers' certificates must chain to one of these. */
  ca: string[];
}

/** The CAs a server accepts clients from, each with the roles it may grant. */
export interface Anchors {
  deployment?: string | undefined;
  cluster?: string | undefined;
}

export interface Peer {
  role: Role;
  /** The certificate's common name (a node's serial, "operator"). */
  name: string;
}

function isRole(x: string): x is Role {
  return x === 'operator' || x === 'node' || x === 'cvm' || x === 'host';
}

/** The role and name a verified client certificate grants, or null (no certificate, or a role its CA may not grant). */
export function peerOfCert(pem: string, anchors: Anchors): Peer | null {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    return null;
  }
  const field = (k: string): string => cert.subject.split('\n').find((l) => l.startsWith(`${k}=`))?.slice(k.length + 1) ?? '';
  const ou = field('OU');
  if (!isRole(ou)) return null;
  const from = anchors.deployment && issuedBy(pem, anchors.deployment) ? DEPLOYMENT_ROLES : anchors.cluster && issuedBy(pem, anchors.cluster) ? CLUSTER_ROLES : [];
  return from.includes(ou) ? { role: ou, name: field('CN') } : null;
}

/** The peer of a TLS connection whose certificate the handshake verified, or null. */
export function peerOf(sock: TLSSocket, anchors: Anchors): Peer | null {
  if (!sock.authorized) return null;
  const raw = sock.getPeerCertificate().raw as Buffer | undefined;
  if (!raw) return null;
  return peerOfCert(new X509Certificate(raw).toString(), anchors);
}

/** The CA list a server or client verifies its peers against. */
export function anchorList(a: Anchors): string[] {
  return [a.deployment, a.cluster].filter((x): x is string => typeof x === 'string');
}

/** TLS options of a server that requires a verified client certificate from `anchors`. */
export function serverTls(id: Pick<Identity, 'cert' | 'key'>, anchors: Anchors): { cert: string; key: string; ca: string[]; requestCert: true; rejectUnauthorized: true; minVersion: 'TLSv1.2' } {
  return { cert: id.cert, key: id.key, ca: anchorList(anchors), requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' };
}

// ---- files --------------------------------------------------------------------------------

function writeSecret(path: string, body: string): void {
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
  writeFileSync(path, body, { mode: 0o600 });
}

/** Reads an identity written by writeIdentity, or undefined when the file is missing. */
export function readIdentity(path: string): Identity | undefined {
  if (!existsSync(path)) return undefined;
  return JSON.parse(readFileSync(path, 'utf8')) as Identity;
}

/** Writes an identity (certificate, key, trust anchors) as one JSON file, mode 0600. */
export function writeIdentity(path: string, id: Identity): void {
  writeSecret(path, JSON.stringify(id, null, 2) + '\n');
}

/**
 * The deployment's PKI in a data dir (`<data-dir>/pki/`): its CA (made on first use) and the
 * operator's identity, which the CLI and Foundation present to nodes and CVMs.
 * ```
 *   pki/ca.crt  pki/ca.key    the deployment CA (key 0600)
 *   pki/operator.json         the operator's certificate, key and the CA (0600)
 * ```
 */
export class DeploymentPki {
  private constructor(readonly dir: string, readonly ca: Pem, readonly operator: Identity) {}

  static async open(dataDir: string): Promise<DeploymentPki> {
    const dir = join(dataDir, 'pki');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const ca = await ensureCa(join(dir, 'ca.crt'), join(dir, 'ca.key'), `Converge deployment CA (${dataDir})`);
    const opPath = join(dir, 'operator.json');
    let operator = readIdentity(opPath);
    if (!operator || !issuedBy(operator.cert, ca.cert)) {
      const pem = await issueCert(ca, { cn: 'operator', ou: 'operator', usage: 'client' });
      operator = { cert: pem.cert, key: pem.key, ca: [ca.cert] };
      writeIdentity(opPath, operator);
    }
    return new DeploymentPki(dir, ca, operator);
  }

  /** The operator's identity of a data dir whose PKI exists, or undefined (read only; for the CLI). */
  static operatorOf(dataDir: string): Identity | undefined {
    return readIdentity(join(dataDir, 'pki', 'operator.json'));
  }

  /** A node's identity: one certificate for its host and CVM addresses, trusting this deployment. */
  async nodeIdentity(serial: string, ips: readonly string[]): Promise<Identity> {
    const pem = await issueCert(this.ca, { cn: serial, ou: 'node', ips, usage: 'both' });
    return { cert: pem.cert, key: pem.key, ca: [this.ca.cert] };
  }
}

/** A cluster member's identities, issued by the cluster CA at cluster create. */
export interface MemberIdentities {
  ca: string;
  cvm: Pick<Identity, 'cert' | 'key'>;
  host: Pick<Identity, 'cert' | 'key'>;
}

/**
 * The addresses a member's certificate names. etcd checks a peer's certificate against the
 * connection's source address; on loopback (the lab: every address is 127.x) that source is
 * 127.0.0.1, so a lab member's certificate names it too. On a real network it names its own only.
 */
function memberIps(ip: string): string[] {
  return ip.startsWith('127.') && ip !== '127.0.0.1' ? [ip, '127.0.0.1'] : [ip];
}

export async function memberIdentities(clusterCa: Pem, m: { serial: string; cvmIp: string; hostIp: string }): Promise<MemberIdentities> {
  const cvm = await issueCert(clusterCa, { cn: m.serial, ou: 'cvm', ips: memberIps(m.cvmIp), usage: 'both' });
  const host = await issueCert(clusterCa, { cn: m.serial, ou: 'host', ips: [m.hostIp], usage: 'both' });
  return { ca: clusterCa.cert, cvm, host };
}
