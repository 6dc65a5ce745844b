/**
 * @module
 * The cluster create request (POST /cluster/create, and Foundation's clusters[] entries): its shape
 * and its rules, checked once where it enters. Sizes follow the reference platform: a single node
 * (RF1), three or more for RF2, five or more for RF3; at most 32 nodes.
 */
import { InputError } from '../../shared/errors.ts';

export interface CreateRequest {
  name: string;
  cvmIps: string[];
  vip: string | null;
  redundancyFactor: 1 | 2 | 3;
  dns: string[];
  ntp: string[];
  /** Prism's initial admin password; null: the cluster generates one and answers it once. */
  adminPassword: string | null;
  /** Each member's BMC, for fencing (HA, docs/ha.md): kept in the cluster's store, never answered by any API. */
  bmcs: BmcEntry[];
}

/** A member's BMC: `address` an https URL or a bare IPv4 address (https on 443); `ca` the PEM its certificate chains to (null: the system's CAs). */
export interface BmcEntry {
  cvmIp: string;
  address: string;
  user: string;
  password: string;
  ca: string | null;
}

export const MIN_NODES: Record<1 | 2 | 3, number> = { 1: 1, 2: 3, 3: 5 };
export const MAX_NODES = 32;

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Parses and checks a create request; every error names its field. */
export function parseCreateRequest(body: unknown): CreateRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new InputError('body', 'must be a JSON object');
  const b = body as Record<string, unknown>;
  const name = b['name'];
  if (typeof name !== 'string' || !/^[A-Za-z][A-Za-z0-9_-]{0,62}$/.test(name)) throw new InputError('name', 'a cluster name: a letter, then letters, digits, - or _; at most 63', undefined, name);
  const ips = b['cvmIps'];
  if (!Array.isArray(ips) || ips.length === 0) throw new InputError('cvmIps', 'list the CVM addresses of the members');
  for (const [i, ip] of ips.entries()) if (typeof ip !== 'string' || !IPV4.test(ip)) throw new InputError(`cvmIps[${i}]`, 'must be a dotted IPv4 address', undefined, ip);
  const dup = ips.find((ip, i) => ips.indexOf(ip) !== i) as string | undefined;
  if (dup) throw new InputError('cvmIps', `${dup} is listed twice`, undefined, dup);
  if (ips.length > MAX_NODES) throw new InputError('cvmIps', `a cluster holds at most ${MAX_NODES} nodes`, undefined, ips.length);
  const rf = b['redundancyFactor'] ?? (ips.length >= 3 ? 2 : 1);
  if (rf !== 1 && rf !== 2 && rf !== 3) throw new InputError('redundancyFactor', 'must be 1, 2 or 3', ['1', '2', '3'], rf);
  if (ips.length < MIN_NODES[rf]) throw new InputError('redundancyFactor', `RF${rf} needs at least ${MIN_NODES[rf]} nodes; ${ips.length} given`, undefined, rf);
  const vip = b['vip'] ?? null;
  if (vip !== null && (typeof vip !== 'string' || !IPV4.test(vip))) throw new InputError('vip', 'must be a dotted IPv4 address', undefined, vip);
  if (typeof vip === 'string' && ips.includes(vip)) throw new InputError('vip', 'must not be a CVM address', undefined, vip);
  const list = (f: string): string[] => {
    const v = b[f] ?? [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new InputError(f, 'must be a list of addresses', undefined, v);
    return v as string[];
  };
  const pw = b['adminPassword'] ?? null;
  if (pw !== null && (typeof pw !== 'string' || pw.length < 8 || pw.length > 128)) throw new InputError('adminPassword', 'must be 8 to 128 characters');
  return { name, cvmIps: ips as string[], vip: vip, redundancyFactor: rf, dns: list('dns'), ntp: list('ntp'), adminPassword: pw, bmcs: parseBmcs(b['bmcs'] ?? [], ips as string[]) };
}

/** The optional bmcs[]: one per member at most; the password's value never appears in an error. */
function parseBmcs(v: unknown, cvmIps: readonly string[]): BmcEntry[] {
  if (!Array.isArray(v)) throw new InputError('bmcs', 'must be a list of { cvmIp, address, user, password, ca }');
  const seen = new Set<string>();
  return v.map((e: unknown, i): BmcEntry => {
    const f = `bmcs[${i}]`;
    if (e === null || typeof e !== 'object' || Array.isArray(e)) throw new InputError(f, 'must be an object { cvmIp, address, user, password, ca }');
    const o = e as Record<string, unknown>;
    const cvmIp = o['cvmIp'];
    if (typeof cvmIp !== 'string' || !IPV4.test(cvmIp)) throw new InputError(`${f}.cvmIp`, 'must be a dotted IPv4 address', undefined, cvmIp);
    if (!cvmIps.includes(cvmIp)) throw new InputError(`${f}.cvmIp`, 'must be one of cvmIps', undefined, cvmIp);
    if (seen.has(cvmIp)) throw new InputError(`${f}.cvmIp`, `${cvmIp} has a BMC listed already`, undefined, cvmIp);
    seen.add(cvmIp);
    const address = o['address'];
    if (typeof address !== 'string' || !isBmcAddress(address)) throw new InputError(`${f}.address`, 'must be an https URL or an IPv4 address', undefined, address);
    const user = o['user'];
    if (typeof user !== 'string' || user.length < 1 || user.length > 64 || /[\s:]/.test(user)) throw new InputError(`${f}.user`, 'a BMC user name: 1 to 64 characters, no spaces or colons');
    const password = o['password'];
    if (typeof password !== 'string' || password.length < 1 || password.length > 256) throw new InputError(`${f}.password`, 'must be 1 to 256 characters');
    const ca = o['ca'] ?? null;
    if (ca !== null && (typeof ca !== 'string' || ca.length > 65_536 || !ca.includes('-----BEGIN CERTIFICATE-----'))) throw new InputError(`${f}.ca`, 'must be a PEM certificate (at most 64 KiB) or null');
    return { cvmIp, address, user, password, ca };
  });
}

function isBmcAddress(a: string): boolean {
  if (IPV4.test(a)) return true;
  if (a.length > 256) return false;
  try {
    const u = new URL(a);
    return u.protocol === 'https:' && u.hostname !== '' && u.username === '' && u.password === '';
  } catch {
    return false;
  }
}

