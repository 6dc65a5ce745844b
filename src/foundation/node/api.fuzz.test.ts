/**
 * A property-based fuzz of Foundation's HTTP edge (fast-check over the app factory and inject()):
 * every JSON endpoint (and the upload, and the other routes with random queries and path
 * segments), with bodies that are valid ones mutated at random places,
 * random JSON, random text and bytes, under random content types and methods, with and without
 * the API token. Whatever comes in, Foundation answers below 500, every error in its envelope, and
 * goes on answering. The endpoints come from the OpenAPI document, which must list every route.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { SystemClock } from '../../shared/clock.ts';
import { Foundation } from './foundation.ts';
import { createFoundationApi } from './api.ts';
import { OPENAPI } from './openapi.ts';
import { DeploymentPki } from '../../shared/identity.ts';

/** The deployment's PKI of these tests (Foundation issues node identities from it). */
let pki: DeploymentPki;
before(async () => {
  pki = await DeploymentPki.open(mkdtempSync(join(tmpdir(), 'cvg-fpki-')));
});

const dirs: string[] = [];
const apps: FastifyInstance[] = [];
/** What the apps logged as unexpected (500) errors: nothing, ever. */
const internal: string[] = [];
after(async () => {
  for (const a of apps) await a.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function app(apiToken: string | null): FastifyInstance {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-fuzz-'));
  dirs.push(dir);
  const f = new Foundation({
    dataDir: dir, clock: new SystemClock(), url: 'http://127.0.0.1:1', log: () => undefined, profile: 'lab', bmcPort: 1,
    creds: { user: 'admin', password: 'x' }, racks: [], ssdpPort: 0, pki,
  });
  const a = createFoundationApi(f, { apiToken, maxBundleBytes: 64 * 1024, log: (m) => internal.push(m) });
  apps.push(a);
  return a;
}

/** A valid body of each endpoint that takes one, to mutate. */
const SEEDS: Record<string, unknown> = {
  '/foundation/node_network_details': { nodes: [{ ipv6_address: 'fe80::1' }] },
  '/foundation/ipmi_config': { ipmi_netmask: '255.255.0.0', ipmi_gateway: '127.49.255.254', blocks: [{ nodes: [{ ipmi_mac: '02:00:00:00:00:01', ipmi_ip: '127.49.0.1', ipmi_configure_now: true }] }] },
  '/foundation/image_nodes': {
    nos_package: 'converge-1.0.0.tar.gz', hypervisor_iso: {}, cvm_netmask: '255.255.0.0', cvm_gateway: '127.49.255.254', hypervisor_netmask: '255.255.0.0',
    hypervisor_gateway: '127.49.255.254', hypervisor_nameserver: '127.0.0.53', ipmi_user: 'admin', ipmi_password: 'x',
    blocks: [{ block_id: 'B1', nodes: [{ node_position: 'A', hypervisor: 'kvm', image_now: true, ipmi_ip: '127.49.0.1', hypervisor_ip: '127.49.1.1', cvm_ip: '127.49.2.1', cvm_gb_ram: 16, cvm_num_vcpus: 8 }] }],
    clusters: [{ cluster_name: 'c', cluster_members: ['127.49.2.1'], cluster_init_now: true, redundancy_factor: 1, cvm_dns_servers: '127.0.0.53' }],
  },
  '/foundation/plan_check': {
    clusterName: 'c', dns: ['127.0.0.53'], ntp: [], hostnamePrefix: 'n', lab: true,
    bmc: { netmask: '255.255.0.0', gateway: '127.49.255.254' },
    host: { netmask: '255.255.0.0', gateway: '127.49.255.254', start: '127.49.1.1' },
    cvm: { netmask: '255.255.0.0', gateway: '127.49.255.254', start: '127.49.2.1', vlan: 0 },
    nodes: [{ serial: 'A', bmcIp: '127.49.0.1' }, { serial: 'B', bmcIp: '127.49.0.2', hostname: 'b' }],
  },
  '/foundation/abort_session': { session_id: 'S1' },
  '/foundation/retry_node': { session_id: 'S1', serial: 'CVG1' },
  '/foundation/installer/{session}/{serial}/report': { serial: 'CVG1', percent: 5, message: 'hello', status: 'running' },
  '/foundation/cvm_announce': { serial: 'CVG1', cvmIp: '127.49.2.1', hostIp: '127.49.1.1', hypervisorVersion: '1.0.0', nosVersion: '1.0.0', configured: false, clusterId: null },
  '/foundation/upload': null,
};

const ROUTES = Object.entries(OPENAPI.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => ({ path, method: m.toUpperCase() })));
const JSON_ROUTES = ROUTES.filter((r) => r.method === 'POST');

test('the OpenAPI document lists every route, and every JSON endpoint has a seed body here', async () => {
  const a = app(null);
  await a.ready();
  const tree = a.printRoutes({ commonPrefix: false });
  const registered = [...tree.matchAll(/── \/?(foundation\/\S+) \(([A-Z, ]+)\)/g)].flatMap((m) => (m[2] ?? '').split(', ').filter((x) => x !== 'HEAD').map((x) => `${x} /${m[1] ?? ''}`));
  const documented = ROUTES.filter((r) => r.path.startsWith('/foundation/')).map((r) => `${r.method} ${r.path.replace(/\{(\w+)\}/g, ':$1')}`);
  assert.deepEqual([...new Set(documented)].sort(), [...new Set(registered)].sort());
  assert.deepEqual(JSON_ROUTES.map((r) => r.path).sort(), Object.keys(SEEDS).sort());
});

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every path into a JSON value (the root is []). */
function pathsOf(v: Json, at: (string | number)[] = []): (string | number)[][] {
  const here = [at];
  if (Array.isArray(v)) return [...here, ...v.flatMap((x, i) => pathsOf(x, [...at, i]))];
  if (v !== null && typeof v === 'object') return [...here, ...Object.entries(v).flatMap(([k, x]) => pathsOf(x, [...at, k]))];
  return here;
}

const DELETE = Symbol('delete');

/** The value with the thing at `path` replaced (or deleted). */
function mutate(v: Json, path: (string | number)[], to: Json | typeof DELETE): Json | undefined {
  if (path.length === 0) return to === DELETE ? undefined : to;
  const [head, ...rest] = path;
  if (Array.isArray(v) && typeof head === 'number') {
    const out = [...v];
    const inner = mutate(out[head] ?? null, rest, to);
    if (inner === undefined) out.splice(head, 1);
    else out[head] = inner;
    return out;
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && typeof head === 'string') {
    const out: { [k: string]: Json } = { ...v };
    const inner = mutate(out[head] ?? null, rest, to);
    if (inner === undefined) delete out[head];
    else out[head] = inner;
    return out;
  }
  return v;
}

const weird: fc.Arbitrary<Json | typeof DELETE> = fc.oneof(
  fc.constant(DELETE), fc.constant(null), fc.boolean(), fc.integer(), fc.double(), fc.constantFrom(-1, 0, 1e308, 2 ** 53, 101, 65),
  fc.string(), fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom('', ' ', '127.0.0.1', '0.0.0.0', '255.255.255.255', 'a'.repeat(300), '../x', '__proto__', 'running', 'kvm'),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }) as fc.Arbitrary<Json>,
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }) as fc.Arbitrary<Json>,
);

/** A body: a seed mutated at up to three places, or JSON, text or bytes from nowhere. */
function bodyFor(seed: unknown): fc.Arbitrary<string | Buffer | undefined> {
  const s = (seed ?? {}) as Json;
  const mutated = fc.array(fc.tuple(fc.nat(), weird), { minLength: 1, maxLength: 3 }).map((ms) => {
    let v: Json | undefined = s;
    for (const [n, to] of ms) {
      if (v === undefined) break;
      const paths = pathsOf(v);
      v = mutate(v, paths[n % paths.length] ?? [], to);
    }
    return v === undefined ? '' : JSON.stringify(v);
  });
  const text = JSON.stringify(s);
  return fc.oneof(
    { weight: 5, arbitrary: mutated },
    { weight: 1, arbitrary: fc.constant(text) },
    { weight: 1, arbitrary: fc.nat({ max: text.length }).map((n) => text.slice(0, n)) },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
    { weight: 1, arbitrary: fc.constantFrom(undefined, '', '   ', 'null', '[]', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}', '{"a":1,"a":2}', '1e999', '"x"') },
  );
}

const contentType = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  { weight: 1, arbitrary: fc.constantFrom('application/json; charset=utf-8', 'APPLICATION/JSON', 'application/octet-stream', 'text/plain', 'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x', 'application/xml', 'application/json; charset=latin1', '', ';;', 'application/vnd.api+json', '*/*') },
  { weight: 1, arbitrary: fc.constant(undefined) },
);
const method = (own: string): fc.Arbitrary<string> => fc.oneof({ weight: 8, arbitrary: fc.constant(own) }, { weight: 2, arbitrary: fc.constantFrom('GET', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD', 'POST') });
const segment = fc.oneof(fc.constantFrom('S1', 'CVG1', 'x.tar.gz', '..', '%2e%2e', '%00', 'a'.repeat(300)), fc.string({ minLength: 1, maxLength: 20 }).map(encodeURIComponent));
const query = fc.dictionary(fc.constantFrom('session_id', 'serial', 'installer_type', 'filename', 'after', 'range', 'token'), fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('nos', 'kvm', 'x.tar.gz', 'S1')), { maxKeys: 3 })
  .map((q) => new URLSearchParams(q).toString());
const authorization = fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('Bearer the-token', 'Bearer wrong', 'Basic eDp5', 'Bearer ', 'Bearer the-token extra') });

function assertEnvelope(status: number, body: string, what: string): void {
  let e: any;
  try {
    e = JSON.parse(body);
  } catch {
    assert.fail(`${what}: ${status} is not JSON: ${body.slice(0, 200)}`);
  }
  assert.equal(typeof e?.error?.message, 'string', what);
  assert.match(e.error.code, /^CVG_ERR_[A-Z_]+$/, what);
  assert.ok(e.error.details && typeof e.error.details === 'object' && Object.values(e.error.details).every((x) => typeof x === 'string'), what);
  assert.ok(e.error.session_id === null || typeof e.error.session_id === 'string', what);
}

test('fuzz: whatever reaches an endpoint, Foundation answers below 500, every error in its envelope', async () => {
  const apps = { open: app(null), token: app('the-token') };
  // mostly the JSON endpoints; the others with random queries and path segments
  const route = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...JSON_ROUTES) }, { weight: 1, arbitrary: fc.constantFrom(...ROUTES) });
  const request = route.chain((r) => fc.record({
    route: fc.constant(r),
    method: method(r.method),
    params: fc.array(segment, { minLength: 3, maxLength: 3 }),
    query,
    body: bodyFor(SEEDS[r.path] ?? {}),
    type: r.path === '/foundation/upload' ? fc.oneof(fc.constant('application/octet-stream'), contentType) : contentType,
    authorization,
    guarded: fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  }));
  await fc.assert(
    fc.asyncProperty(request, async (x) => {
      let i = 0;
      const path = x.route.path.replace(/\{\w+\}/g, () => x.params[i++] ?? 'x');
      const headers: Record<string, string> = {};
      if (x.type !== undefined) headers['content-type'] = x.type;
      if (x.authorization !== undefined) headers['authorization'] = x.authorization;
      const r = await (x.guarded ? apps.token : apps.open).inject({
        method: x.method as 'POST', url: `${path}${x.query ? `?${x.query}` : ''}`, headers,
        ...(x.body === undefined || x.method === 'GET' || x.method === 'HEAD' ? {} : { payload: x.body }),
      });
      const what = `${x.method} ${path} (${x.type ?? 'no type'}): ${r.statusCode}`;
      assert.ok(r.statusCode < 500, `${what} ${r.body.slice(0, 300)}`);
      if (r.statusCode >= 400 && x.method !== 'HEAD') assertEnvelope(r.statusCode, r.body, what);
    }),
    { numRuns: 1500, interruptAfterTimeLimit: 60_000, markInterruptAsFailure: false, seed: Number(process.env['FUZZ_SEED'] ?? Date.now() % 2 ** 31) },
  );
  assert.deepEqual(internal, [], 'no internal error was logged');
  // and both still answer
  assert.equal((await apps.open.inject({ url: '/foundation/version' })).statusCode, 200);
  assert.equal((await apps.token.inject({ url: '/foundation/version', headers: { authorization: 'Bearer the-token' } })).statusCode, 200);
});
