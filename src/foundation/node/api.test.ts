/**
 * Foundation's HTTP edge, through the app factory and inject(): every JSON route parses its body
 * with a schema, so malformed input is a 4xx in Foundation's envelope naming the field, never a 500.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { SystemClock } from '../../shared/clock.ts';
import { Foundation } from './foundation.ts';
import { createFoundationApi } from './api.ts';
import { isLoopback } from './api-auth.ts';
import { DeploymentPki } from '../../shared/identity.ts';

/** The deployment's PKI of these tests (Foundation issues node identities from it). */
let pki: DeploymentPki;
before(async () => {
  pki = await DeploymentPki.open(mkdtempSync(join(tmpdir(), 'cvg-fpki-')));
});

const dirs: string[] = [];
const apps: FastifyInstance[] = [];
after(async () => {
  for (const a of apps) await a.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Foundation with no rack and no SSDP (discovery finds nothing, at once). */
function foundation(): Foundation {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-fapi-'));
  dirs.push(dir);
  return new Foundation({
    dataDir: dir, clock: new SystemClock(), url: 'http://127.0.0.1:1', log: () => undefined, profile: 'lab', bmcPort: 8443,
    creds: { user: 'admin', password: 'x' }, racks: [], ssdpPort: 0, pki,
  });
}

function app(o: Parameters<typeof createFoundationApi>[1] = {}, f = foundation()): FastifyInstance {
  const a = createFoundationApi(f, o);
  apps.push(a);
  return a;
}

/** Sends raw HTTP to a listening app: the head, then `chunks` of the body; the status line and body of the answer. */
function raw(port: number, head: string, chunks: Iterable<Buffer>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let answer = '';
    sock.on('data', (d) => {
      answer += d.toString();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      const m = /^HTTP\/1\.1 (\d+)/.exec(answer);
      if (!m) reject(new Error(`no HTTP answer: ${answer.slice(0, 200)}`));
      else resolve({ status: Number(m[1]), body: answer.slice(answer.indexOf('\r\n\r\n') + 4) });
    });
    sock.write(head);
    const it = chunks[Symbol.iterator]();
    const pump = (): void => {
      for (;;) {
        const n = it.next();
        if (n.done) {
          sock.end();
          return;
        }
        if (sock.destroyed) return;
        if (!sock.write(n.value)) {
          sock.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

type Reply = { status: number; json: any };
async function post(a: FastifyInstance, url: string, body: string | undefined, type = 'application/json'): Promise<Reply> {
  const r = await a.inject({ method: 'POST', url, ...(body === undefined ? {} : { payload: body }), headers: { 'content-type': type } });
  let json: unknown;
  try {
    json = r.json();
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, json };
}

function assertInputError(r: Reply, field: string, what: string): void {
  assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.json)}`);
  assert.equal(r.json.error.code, 'CVG_ERR_INPUT', what);
  assert.ok(field in r.json.error.details, `${what}: names ${field}: ${JSON.stringify(r.json.error.details)}`);
  assert.equal(typeof r.json.error.message, 'string');
  assert.ok('session_id' in r.json.error);
}

test('node_network_details: a wrong shape is a 400 naming the field', async () => {
  const a = app();
  assertInputError(await post(a, '/foundation/node_network_details', '{"nodes":5}'), 'nodes', 'nodes a number');
  assertInputError(await post(a, '/foundation/node_network_details', '{"nodes":[null]}'), 'nodes[0]', 'a null node');
  assertInputError(await post(a, '/foundation/node_network_details', '{"nodes":[{"ipv6_address":7}]}'), 'nodes[0].ipv6_address', 'a number address');
  assertInputError(await post(a, '/foundation/node_network_details', '[]'), 'body', 'an array');
  const none = await post(a, '/foundation/node_network_details', '{}');
  assert.equal(none.status, 200);
  assert.deepEqual(none.json, { nodes: [] });
});

test('plan_check: missing fields, nulls and numbers where strings belong are 400s naming the field', async () => {
  const a = app();
  assertInputError(await post(a, '/foundation/plan_check', '{}'), 'clusterName', 'empty object');
  assertInputError(await post(a, '/foundation/plan_check', '{"nodes":[]}'), 'clusterName', 'nodes only');
  assertInputError(await post(a, '/foundation/plan_check', '{"nodes":"abc"}'), 'clusterName', 'nodes a string');
  assertInputError(await post(a, '/foundation/plan_check', 'null'), 'body', 'null');
  assertInputError(await post(a, '/foundation/plan_check', undefined), 'body', 'no body');
  const good = {
    clusterName: 'c', dns: [], ntp: [], hostnamePrefix: 'n', lab: true,
    bmc: { netmask: '255.255.0.0', gateway: '127.49.255.254' },
    host: { netmask: '255.255.0.0', gateway: '127.49.255.254', start: '127.49.0.1' },
    cvm: { netmask: '255.255.0.0', gateway: '127.49.255.254', start: '127.49.1.1' },
    nodes: [{ serial: 'A', bmcIp: '127.49.2.1' }],
  };
  assertInputError(await post(a, '/foundation/plan_check', JSON.stringify({ ...good, nodes: 'abc' })), 'nodes', 'nodes a string');
  assertInputError(await post(a, '/foundation/plan_check', JSON.stringify({ ...good, nodes: [null] })), 'nodes[0]', 'a null node');
  assertInputError(await post(a, '/foundation/plan_check', JSON.stringify({ ...good, nodes: [{ serial: 5 }] })), 'nodes[0].serial', 'a number serial');
  assertInputError(await post(a, '/foundation/plan_check', JSON.stringify({ ...good, clusterName: null })), 'clusterName', 'a null name');
  assertInputError(await post(a, '/foundation/plan_check', JSON.stringify({ ...good, host: { ...good.host, gateway: 1 } })), 'host.gateway', 'a number gateway');
  assertInputError(await post(a, '/foundation/plan_check', JSON.stringify({ ...good, dns: [null] })), 'dns[0]', 'a null DNS server');
  // the plan's own rules stay the plan's errors, in a 200 answer
  const empty = await post(a, '/foundation/plan_check', JSON.stringify({ ...good, nodes: [] }));
  assert.equal(empty.status, 200);
  assert.equal(empty.json.plan, null);
  assert.equal(empty.json.errors[0].field, 'nodes');
});

test('image_nodes, ipmi_config, cvm_announce and installer reports: malformed bodies are 400s naming the field', async () => {
  const a = app();
  assertInputError(await post(a, '/foundation/cvm_announce', 'null'), 'body', 'null announcement');
  assertInputError(await post(a, '/foundation/cvm_announce', '{"serial":5}'), 'serial', 'number serial');
  assertInputError(await post(a, '/foundation/image_nodes', '{"blocks":[{"nodes":[null]}]}'), 'cvm_netmask', 'image_nodes without netmasks');
  assertInputError(await post(a, '/foundation/image_nodes', 'null'), 'body', 'image_nodes null');
  assertInputError(await post(a, '/foundation/ipmi_config', '{"ipmi_netmask":"255.0.0.0","ipmi_gateway":"10.0.0.1","blocks":[{"nodes":[5]}]}'), 'blocks[0].nodes[0]', 'ipmi_config number node');
  assertInputError(await post(a, '/foundation/installer/s/n/report', '{"percent":"x"}'), 'serial', 'report without serial');
});

test('a POST with Content-Type: application/json and no body is no body: accepted where none is needed', async () => {
  const a = app();
  const abort = await post(a, '/foundation/abort_session?session_id=nope', undefined);
  assert.equal(abort.status, 404, JSON.stringify(abort.json));
  assert.equal(abort.json.error.code, 'CVG_ERR_NOT_FOUND');
  assert.equal(abort.json.error.session_id, 'nope');
  const blank = await post(a, '/foundation/abort_session?session_id=nope', '  \n');
  assert.equal(blank.status, 404);
  const del = await a.inject({ method: 'DELETE', url: '/foundation/sessions', headers: { 'content-type': 'application/json' } });
  assert.equal(del.statusCode, 404);
  assert.equal(del.json().error.code, 'CVG_ERR_NOT_FOUND');
  const inBody = await post(a, '/foundation/abort_session', '{"session_id":"nope"}');
  assert.equal(inBody.status, 404, 'the session may be named in the body');
  assertInputError(await post(a, '/foundation/abort_session', undefined), 'session_id', 'no session at all');
});

test('Fastify\'s own refusals are in Foundation\'s envelope: bad JSON, a wrong content type, an unknown endpoint', async () => {
  const a = app();
  assertInputError(await post(a, '/foundation/plan_check', '{"clusterName":'), 'body', 'truncated JSON');
  assertInputError(await post(a, '/foundation/plan_check', '{"__proto__":{"x":1}}'), 'body', 'prototype poisoning');
  const xml = await post(a, '/foundation/plan_check', '<plan/>', 'application/xml');
  assert.equal(xml.status, 415);
  assert.ok('Content-Type' in xml.json.error.details);
  assertInputError(await post(a, '/foundation/plan_check', 'hello', 'text/plain'), 'body', 'text');
  const missing = await a.inject({ method: 'GET', url: '/foundation/nope?token=secret' });
  assert.equal(missing.statusCode, 404);
  assert.equal(missing.json().error.code, 'CVG_ERR_NOT_FOUND');
  assert.doesNotMatch(missing.body, /secret/, 'the query is not echoed');
});

test('body limits: a JSON body past its endpoint\'s limit is a 413 in the envelope, read no further, and Foundation lives on', async () => {
  const a = app();
  const big = await post(a, '/foundation/plan_check', JSON.stringify({ clusterName: 'x'.repeat(2 * 1024 * 1024) }));
  assert.equal(big.status, 413);
  assert.equal(big.json.error.code, 'CVG_ERR_INPUT');
  assert.match(big.json.error.details.body, /1048576 bytes/);
  await a.listen({ host: '127.0.0.1', port: 0 });
  const port = (a.server.address() as { port: number }).port;
  // a declared 600 MB body is refused on its Content-Length, before any of it is read
  const declared = await raw(port, 'POST /foundation/image_nodes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 629145600\r\nConnection: close\r\n\r\n', [Buffer.from('{"blocks":[')]);
  assert.equal(declared.status, 413);
  assert.equal(JSON.parse(declared.body).error.code, 'CVG_ERR_INPUT');
  // a chunked body is counted as it comes: 20 MiB of one JSON string stops at the limit
  const chunk = Buffer.from(`${(1024 * 1024).toString(16)}\r\n${'a'.repeat(1024 * 1024)}\r\n`);
  const chunked = await raw(port, 'POST /foundation/plan_check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n', [Buffer.from('7\r\n{"a":"a\r\n'), ...Array.from({ length: 20 }, () => chunk)]);
  assert.equal(chunked.status, 413);
  const alive = await fetch(`http://127.0.0.1:${port}/foundation/version`);
  assert.equal(alive.status, 200);
});

test('upload: the bundle is streamed to a file; too large, not a bundle, or the wrong type is refused and leaves nothing behind', async () => {
  const f = foundation();
  const a = app({ maxBundleBytes: 4096 }, f);
  const leftovers = (): string[] => readdirSync(f.bundles.dir);
  const url = '/foundation/upload?installer_type=nos&filename=x.tar.gz';
  const declared = await a.inject({ method: 'POST', url, headers: { 'content-type': 'application/octet-stream', 'content-length': '5000' }, payload: Buffer.alloc(5000) });
  assert.equal(declared.statusCode, 413);
  assert.equal(declared.json().error.code, 'CVG_ERR_INPUT');
  const streamed = await a.inject({ method: 'POST', url, headers: { 'content-type': 'application/octet-stream' }, payload: Readable.from([Buffer.alloc(3000), Buffer.alloc(3000)]) });
  assert.equal(streamed.statusCode, 413, streamed.body);
  const junk = await a.inject({ method: 'POST', url, headers: { 'content-type': 'application/octet-stream' }, payload: Buffer.from('not a bundle') });
  assert.equal(junk.statusCode, 400);
  assert.match(junk.json().error.message, /tar\.gz/);
  const asJson = await post(a, url, '{}');
  assertInputError(asJson, 'Content-Type', 'a JSON upload');
  assertInputError(await post(a, '/foundation/upload?installer_type=kvm&filename=x.iso', 'xx', 'application/octet-stream'), 'installer_type', 'kvm');
  assertInputError(await post(a, '/foundation/upload?installer_type=nos&filename=../x', 'xx', 'application/octet-stream'), 'filename', 'a path');
  assert.deepEqual(leftovers(), [], 'no bundle and no half-written upload');
  // other endpoints take no octet-stream at all
  const other = await post(a, '/foundation/plan_check', 'xx', 'application/octet-stream');
  assert.equal(other.status, 415);
});

const announcement = (serial: string, extra: Record<string, unknown> = {}): string => JSON.stringify({
  serial, cvmIp: '127.49.1.1', hostIp: '127.49.0.1', hypervisorVersion: '1.0.0', nosVersion: '1.0.0', configured: false, clusterId: null, ...extra,
});

test('cvm_announce: only a node Foundation imaged, with its own credential, is heard; anything else changes nothing', async () => {
  const f = foundation();
  const a = app({}, f);
  const announce = (body: string, token?: string): Promise<Reply> => a.inject({
    method: 'POST', url: '/foundation/cvm_announce', payload: body,
    headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
  }).then((r) => ({ status: r.statusCode, json: r.json() }));
  const none = await announce(announcement('CVG1'));
  assert.equal(none.status, 401);
  assert.equal(none.json.error.code, 'CVG_ERR_AUTH');
  assert.equal((await announce(announcement('CVG1'), 'guessed')).status, 401);
  assert.ok(!existsSync(f.layout.announced), 'nothing was stored');
  // two imaged nodes: each is given its credential through its media
  const tokenOf = (serial: string): string => f.credentials.nodeTokenForMedia('S1', serial, f.credentials.issue('S1', serial));
  const t1 = tokenOf('CVG1');
  const t2 = tokenOf('CVG2');
  const other = await announce(announcement('CVG1'), t2);
  assert.equal(other.status, 403, 'another node\'s credential');
  assert.equal(other.json.error.code, 'CVG_ERR_FORBIDDEN');
  // bounded fields: no 100 KiB versions, no invented serials, no extra fields kept
  assert.equal((await announce(announcement('CVG1', { nosVersion: 'x'.repeat(100_000) }), t1)).status, 413);
  assertInputError(await announce(announcement('CVG1', { nosVersion: 'converge 6.6.6' }), t1), 'nosVersion', 'a version with a space');
  assertInputError(await announce(announcement('../CVG1'), t1), 'serial', 'a path for a serial');
  assertInputError(await announce(announcement('CVG1', { cvmIp: 'localhost' }), t1), 'cvmIp', 'not an address');
  assert.ok(!existsSync(f.layout.announced), 'still nothing stored');
  const ok = await announce(announcement('CVG1', { junk: 'x'.repeat(1000) }), t1);
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  const kept = JSON.parse(readFileSync(f.layout.announced, 'utf8'));
  assert.deepEqual(Object.keys(kept), ['CVG1']);
  assert.equal(kept.CVG1.junk, undefined);
  assert.ok(statSync(f.layout.announced).size < 1024);
  // the credential store holds digests only, readable by Foundation's user alone
  const stored = readFileSync(f.layout.credentials, 'utf8');
  assert.ok(!stored.includes(t1) && !stored.includes(t2));
  assert.equal(statSync(f.layout.credentials).mode & 0o777, 0o600);
});

test('a node\'s media: its configuration and bundle for the holder of the media URL only; reports need the node\'s credential', async () => {
  const f = foundation();
  const a = app({}, f);
  const media = f.credentials.issue('S1', 'CVG1');
  for (const url of ['/foundation/media/S1/CVG1/config.json', '/foundation/media/S1/CVG1/wrong/config.json', '/foundation/media/S1/CVG1/wrong/bundle.tar.gz', '/foundation/media/S1/CVG1/wrong/installer.tar', `/foundation/media/S1/CVG2/${media}/config.json`]) {
    const r = await a.inject({ url });
    assert.ok(r.statusCode === 401 || r.statusCode === 404, `${url}: ${r.statusCode}`);
    assert.doesNotMatch(r.body, /foundationToken/);
  }
  const right = await a.inject({ url: `/foundation/media/S1/CVG1/${media}/config.json` });
  assert.equal(right.statusCode, 404, 'the right media token reaches the session lookup (no session S1 here)');
  assert.equal(right.json().error.code, 'CVG_ERR_NOT_FOUND');
  const report = JSON.stringify({ serial: 'CVG1', percent: 5, message: 'hello', status: 'running' });
  const anon = await a.inject({ method: 'POST', url: '/foundation/installer/S1/CVG1/report', payload: report, headers: { 'content-type': 'application/json' } });
  assert.equal(anon.statusCode, 401);
  const token = f.credentials.nodeTokenForMedia('S1', 'CVG1', media);
  const signed = await a.inject({ method: 'POST', url: '/foundation/installer/S1/CVG1/report', payload: report, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
  assert.equal(signed.statusCode, 404, 'authenticated: on to the session (none here)');
  const elsewhere = await a.inject({ method: 'POST', url: '/foundation/installer/S1/CVG2/report', payload: report, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
  assert.equal(elsewhere.statusCode, 403, 'CVG1\'s credential does not speak for CVG2');
});

test('beyond loopback the public API takes its token (Bearer, or the cookie /login sets); node callbacks take their own credentials', async () => {
  const a = app({ apiToken: 'the-token' });
  const none = await a.inject({ url: '/foundation/sessions' });
  assert.equal(none.statusCode, 401);
  assert.equal(none.json().error.code, 'CVG_ERR_AUTH');
  assert.match(none.headers['www-authenticate'] as string, /^Bearer/);
  assert.equal((await a.inject({ url: '/foundation/sessions', headers: { authorization: 'Bearer wrong' } })).statusCode, 401);
  assert.equal((await a.inject({ url: '/foundation/sessions', headers: { authorization: 'Bearer the-token' } })).statusCode, 200);
  assert.equal((await a.inject({ method: 'POST', url: '/foundation/plan_check', payload: '{}', headers: { 'content-type': 'application/json' } })).statusCode, 401, 'before the body is looked at');
  assert.equal((await a.inject({ url: '/foundation/nope' })).statusCode, 401, 'unknown endpoints too');
  // the web UI: the printed login URL sets the cookie and sends the browser on
  assert.equal((await a.inject({ url: '/login?token=wrong' })).statusCode, 401);
  const login = await a.inject({ url: '/login?token=the-token' });
  assert.equal(login.statusCode, 303);
  assert.equal(login.headers.location, '/');
  const cookie = String(login.headers['set-cookie']);
  assert.match(cookie, /^converge_foundation=the-token; HttpOnly; SameSite=Strict; Path=\//);
  const withCookie = await a.inject({ url: '/foundation/sessions', headers: { cookie: `a=b; ${cookie.split(';')[0] ?? ''}` } });
  assert.equal(withCookie.statusCode, 200);
  const foreign = await a.inject({ method: 'POST', url: '/foundation/abort_session?session_id=x', headers: { cookie: cookie.split(';')[0] ?? '', origin: 'http://evil.example' } });
  assert.equal(foreign.statusCode, 403, 'another site may not ride the cookie');
  const own = await a.inject({ method: 'POST', url: '/foundation/abort_session?session_id=x', headers: { cookie: cookie.split(';')[0] ?? '', origin: 'http://localhost:80', host: 'localhost:80' } });
  assert.equal(own.statusCode, 404, 'Foundation\'s own page: on to the session lookup');
  // what nodes call is not under the API token
  const announce = await a.inject({ method: 'POST', url: '/foundation/cvm_announce', payload: announcement('CVG1'), headers: { 'content-type': 'application/json' } });
  assert.equal(announce.statusCode, 401);
  assert.match(announce.json().error.message, /node CVG1/, 'refused for want of the node\'s credential, not the API token');
  assert.equal((await a.inject({ url: '/foundation/media/S/N/T/config.json' })).statusCode, 401);
  // on loopback (no token) all is open and /login just sends the browser to /
  const open = app();
  assert.equal((await open.inject({ url: '/foundation/sessions' })).statusCode, 200);
  assert.equal((await open.inject({ url: '/login' })).statusCode, 303);
});

test('which listen addresses are loopback', () => {
  for (const h of ['127.0.0.1', '127.41.0.9', '::1', 'localhost']) assert.equal(isLoopback(h), true, h);
  for (const h of ['0.0.0.0', '::', '10.0.0.5', '192.168.1.2', '127.0.0.1.example.com']) assert.equal(isLoopback(h), false, h);
});
