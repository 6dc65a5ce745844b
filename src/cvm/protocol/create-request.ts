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
  return { name, cvmIps: ips as string[], vip: vip, redundancyFactor: rf, dns: list('dns'), ntp: list('ntp'), adminPassword: pw };
}

