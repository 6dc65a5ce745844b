import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTcp } from 'node:net';
import { connect } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { createInternalApi, setAnchors } from './http-api.ts';
import { callInternal } from './http-client.ts';
import { DeploymentPki, memberIdentities, peerOfCert, type Identity, type MemberIdentities } from './identity.ts';
import { AuthError, ForbiddenError, InputError, UnavailableError } from './errors.ts';
import { createCa, issueCert } from './tls.ts';
import { z } from 'zod';
import { parseWith } from './schema.ts';

const dir = mkdtempSync(join(tmpdir(), 'cvg-httpapi-'));
let pki: DeploymentPki;
let node: Identity;
let member: MemberIdentities;
let app: FastifyInstance;
let port = 0;
const IP = '127.0.0.1';

before(async () => {
  pki = await DeploymentPki.open(dir);
  node = await pki.nodeIdentity('NODE1', [IP]);
  member = await memberIdentities(await createCa('test cluster'), { serial: 'NODE1', cvmIp: IP, hostIp: '127.0.0.2' });
  app = createInternalApi({ tls: { identity: node, anchors: { deployment: node.ca[0] } } });
  app.get('/who', (req) => req.peer);
  app.post('/operator-only', { config: { roles: ['operator'] } }, (req) => ({ got: parseWith(z.object({ n: z.number().int() }), req.body).n }));
  app.delete('/thing/:name', (req) => ({ deleted: (req.params as { name: string }).name }));
  // the first request of each method closes its connection unanswered (a server restarting under a pooled connection)
  const closed = new Set<string>();
  app.route({ method: ['GET', 'POST'], url: '/closes-once', handler: (req, reply) => {
    if (!closed.has(req.method)) {
      closed.add(req.method);
      req.raw.socket.destroy();
      return reply;
    }
    return { method: req.method };
  } });
  await app.listen({ port: 0, host: IP });
  port = (app.server.address() as { port: number }).port;
});
after(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the deployment PKI: a CA and an operator identity, kept 0600 and reused', async () => {
  assert.equal(statSync(join(dir, 'pki', 'ca.key')).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, 'pki', 'operator.json')).mode & 0o777, 0o600);
  const again = await DeploymentPki.open(dir);
  assert.equal(again.ca.cert, pki.ca.cert);
  assert.equal(again.operator.cert, pki.operator.cert);
});

test('a role is accepted only from the CA that may grant it', async () => {
  const anchors = { deployment: pki.ca.cert, cluster: member.ca };
  assert.deepEqual(peerOfCert(pki.operator.cert, anchors), { role: 'operator', name: 'operator' });
  assert.deepEqual(peerOfCert(node.cert, anchors), { role: 'node', name: 'NODE1' });
  assert.deepEqual(peerOfCert(member.cvm.cert, anchors), { role: 'cvm', name: 'NODE1' });
  assert.equal(peerOfCert(member.cvm.cert, { deployment: pki.ca.cert }), null, 'a cluster certificate where no cluster is trusted');
  // a member holds the cluster CA's key (it is in the store): an "operator" it mints is refused
  const clusterCa = await createCa('another cluster');
  const forged = await issueCert(clusterCa, { cn: 'operator', ou: 'operator', usage: 'client' });
  assert.equal(peerOfCert(forged.cert, { deployment: pki.ca.cert, cluster: clusterCa.cert }), null);
});

test('a connection closed unanswered: a GET is asked again once on a new connection, a POST is not (it may have been done)', async () => {
  assert.deepEqual(await callInternal(IP, port, '/closes-once', { identity: pki.operator }), { method: 'GET' });
  await assert.rejects(callInternal(IP, port, '/closes-once', { identity: pki.operator, body: {} }), (e: unknown) => e instanceof UnavailableError && /other side closed/.test(e.message));
  assert.deepEqual(await callInternal(IP, port, '/closes-once', { identity: pki.operator, body: {} }), { method: 'POST' });
});

test('the operator is admitted everywhere; a node is refused an operator route with 403', async () => {
  assert.deepEqual(await callInternal(IP, port, '/who', { identity: pki.operator }), { role: 'operator', name: 'operator' });
  assert.deepEqual(await callInternal(IP, port, '/operator-only', { identity: pki.operator, body: { n: 3 } }), { got: 3 });
  await assert.rejects(callInternal(IP, port, '/operator-only', { identity: node, body: { n: 3 } }), (e: unknown) => e instanceof ForbiddenError && /not open to node/.test(e.message));
});

test('bad input is a 400 naming the field; an empty JSON body is no body; a large body is refused with 413', async () => {
  await assert.rejects(callInternal(IP, port, '/operator-only', { identity: pki.operator, body: { n: 'x' } }), (e: unknown) => e instanceof InputError && e.field === 'n');
  const del = await fetchRaw('DELETE', '/thing/a%20b', '', { 'content-type': 'application/json' });
  assert.equal(del.status, 200, del.text);
  assert.deepEqual(JSON.parse(del.text), { deleted: 'a b' });
  const bad = await fetchRaw('GET', '/thing/%E0%A4%A', '');
  assert.ok(bad.status === 400 || bad.status === 404, `malformed percent-encoding: ${bad.status}`);
  assert.match(bad.text, /"error":\{"code":"CVG_ERR_/);
  const big = await fetchRaw('POST', '/operator-only', JSON.stringify({ n: 1, pad: 'x'.repeat(2 << 20) }), { 'content-type': 'application/json' });
  assert.equal(big.status, 413);
  assert.equal(JSON.parse(big.text).error.code, 'CVG_ERR_INPUT');
});

test('no client certificate, or one of another CA: the handshake fails and nothing is served', async () => {
  const stranger = await issueCert(await createCa('stranger'), { cn: 'operator', ou: 'operator', usage: 'client' });
  for (const id of [undefined, { cert: stranger.cert, key: stranger.key }]) {
    const got = await new Promise<string>((resolve) => {
      const s = connect({ host: IP, port, ca: node.ca, ...(id ?? {}) }, () => s.write('GET /who HTTP/1.1\r\nHost: x\r\n\r\n'));
      let out = '';
      s.on('data', (c: Buffer) => (out += c.toString()));
      s.on('error', () => resolve(out || 'refused'));
      s.on('close', () => resolve(out || 'refused'));
    });
    assert.doesNotMatch(got, /operator|HTTP\/1\.1 200/, 'no answer to a stranger');
  }
  await assert.rejects(callInternal(IP, port, '/who', { identity: { cert: stranger.cert, key: stranger.key, ca: node.ca } }), (e: unknown) => e instanceof UnavailableError);
});

test('a cluster trusted later admits its members; forgotten again, refuses them', async () => {
  const asMember: Identity = { cert: member.cvm.cert, key: member.cvm.key, ca: node.ca };
  await assert.rejects(callInternal(IP, port, '/who', { identity: asMember }), (e: unknown) => e instanceof UnavailableError);
  setAnchors(app, { deployment: node.ca[0], cluster: member.ca });
  assert.deepEqual(await callInternal(IP, port, '/who', { identity: { ...asMember } }), { role: 'cvm', name: 'NODE1' });
  setAnchors(app, { deployment: node.ca[0] });
  await assert.rejects(callInternal(IP, port, '/who', { identity: { ...asMember } }), (e: unknown) => e instanceof UnavailableError || e instanceof AuthError);
});

test('bearer: no token or a wrong one is 401 with WWW-Authenticate, the handler not run; the right (current) token is served', async () => {
  let token = 'first-token';
  let runs = 0;
  const api = createInternalApi({ bearer: { token: () => token, peer: { role: 'operator', name: 'token' }, realm: 'test' }, bodyLimit: 1024 });
  api.get('/who', (req) => ((runs += 1), req.peer));
  api.post('/change', { config: { roles: ['operator'] } }, (req) => ((runs += 1), { got: req.body ?? null }));
  await api.listen({ port: 0, host: IP });
  const bport = (api.server.address() as { port: number }).port;
  try {
    for (const auth of [undefined, 'Bearer wrong', 'Bearer first-tokenx', 'Basic Zmlyc3QtdG9rZW4=', 'Bearerfirst-token']) {
      const res = await fetch(`http://${IP}:${bport}/who`, { headers: auth ? { Authorization: auth } : {} });
      assert.equal(res.status, 401, auth);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="test"');
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'CVG_ERR_AUTH');
    }
    assert.equal(runs, 0, 'no handler ran');
    const ok = await fetch(`http://${IP}:${bport}/who`, { headers: { Authorization: 'Bearer first-token' } });
    assert.deepEqual([ok.status, await ok.json()], [200, { role: 'operator', name: 'token' }]);
    const post = await fetch(`http://${IP}:${bport}/change`, { method: 'POST', headers: { Authorization: 'bearer first-token', 'Content-Type': 'application/json' }, body: '{"a":1}' });
    assert.deepEqual([post.status, await post.json()], [200, { got: { a: 1 } }]);
    // rotated: the getter is read on every request
    token = 'second-token';
    assert.equal((await fetch(`http://${IP}:${bport}/who`, { headers: { Authorization: 'Bearer first-token' } })).status, 401);
    assert.equal((await fetch(`http://${IP}:${bport}/who`, { headers: { Authorization: 'Bearer second-token' } })).status, 200);
    // a large body without the token: 401 from the headers, the body never read, the connection closed
    runs = 0;
    const raw = await new Promise<string>((resolve, reject) => {
      const s = connectTcp({ host: IP, port: bport }, () => s.write(`POST /change HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${50 << 20}\r\n\r\n{"a":`));
      let out = '';
      s.on('data', (c: Buffer) => (out += c.toString()));
      s.on('error', reject);
      s.on('close', () => resolve(out));
    });
    assert.match(raw, /^HTTP\/1\.1 401 /);
    assert.match(raw, /connection: close/i);
    assert.match(raw, /"code":"CVG_ERR_AUTH"/);
    assert.equal(runs, 0);
  } finally {
    await api.close();
  }
});

/** A request with the operator's certificate and a raw body. */
async function fetchRaw(method: string, path: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: IP, port, ca: node.ca, cert: pki.operator.cert, key: pki.operator.key }, () => {
      s.write(`${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`);
      s.write(body); // not end: TLS close_notify could close the connection before the answer (Connection: close ends it)
    });
    let out = '';
    s.on('data', (c: Buffer) => (out += c.toString()));
    s.on('error', reject);
    s.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(out)?.[1] ?? 0);
      resolve({ status, text: out.slice(out.indexOf('\r\n\r\n') + 4).replace(/^[0-9a-f]+\r\n|\r\n0\r\n\r\n$/g, '') });
    });
  });
}

test('longBodyIdleMs: a longBody route takes a body for as long as it streams; a stalled one, or a slow request elsewhere, loses its connection', async () => {
  const api = createInternalApi({ bearer: { token: () => 't', peer: { role: 'operator', name: 'token' } }, requestTimeoutMs: 400, longBodyIdleMs: 300 });
  void api.register((sub, _o, done) => {
    sub.removeContentTypeParser('application/octet-stream');
    sub.addContentTypeParser('application/octet-stream', (_req, payload, next) => next(null, payload));
    sub.put('/upload', { config: { longBody: true } }, async (req) => {
      let bytes = 0;
      for await (const c of req.body as AsyncIterable<Buffer>) bytes += c.length;
      return { bytes };
    });
    done();
  });
  api.post('/small', (req) => ({ got: req.body ?? null }));
  await api.listen({ port: 0, host: IP });
  const p = (api.server.address() as { port: number }).port;
  /** Sends the head, then each piece after its delay; resolves with what came back when the connection closed. */
  const send = (head: string, pieces: [number, string][]): Promise<string> => new Promise((resolve, reject) => {
    const s = connectTcp({ host: IP, port: p }, () => {
      s.write(head);
      let at = 0;
      for (const [delay, data] of pieces) {
        at += delay;
        setTimeout(() => s.writable && s.write(data), at);
      }
    });
    let out = '';
    s.on('data', (c: Buffer) => {
      out += c.toString();
      if (/\r\n\r\n.*\}/s.test(out)) s.end();
    });
    s.on('error', reject);
    s.on('close', () => resolve(out));
  });
  try {
    const t0 = Date.now();
    const long = await send('PUT /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Type: application/octet-stream\r\nContent-Length: 10\r\n\r\n', Array.from({ length: 10 }, () => [120, 'x'] as [number, string]));
    assert.match(long, /^HTTP\/1\.1 200 /);
    assert.match(long, /"bytes":10/);
    assert.ok(Date.now() - t0 > 1000, 'the body took longer than the request timeout');
    const stalled = await send('PUT /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Type: application/octet-stream\r\nContent-Length: 10\r\n\r\n', [[50, 'xx'], [800, 'xxxxxxxx']]);
    assert.doesNotMatch(stalled, /"bytes"/, 'a body idle for longer than longBodyIdleMs is given up');
    const slow = await send('POST /small HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n', [[100, '{"a"'], [700, ':1}']]);
    assert.doesNotMatch(slow, /"got"/, 'another route keeps the request timeout');
    const quick = await send('POST /small HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n', [[50, '{"a":1}']]);
    assert.match(quick, /"got":\{"a":1\}/);
  } finally {
    await api.close();
  }
});
