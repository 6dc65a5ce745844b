/**
 * Prism's connections over real sockets (loopback, TLS): a slow or silent client is cut off on
 * time, a body streamed past the limit is refused and its connection ended, and the virtual IP's
 * server holds the same limits. The limits are shortened here so each case takes well under a
 * second; the assertions give them several times their value, so a loaded machine does not fail
 * them, and stay far below the production limits, so a limit that does not apply does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tcpConnect, type AddressInfo } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { request as httpsRequest } from 'node:https';
import { once } from 'node:events';
import type { FastifyInstance } from 'fastify';
import { basicAuth, testPrism } from './fakes.ts';
import { CONNECTION_LIMITS, createVipServer, type ConnectionLimits } from './server.ts';

const LIMITS: ConnectionLimits = { tlsHandshakeMs: 300, headersMs: 300, requestMs: 600, handlerMs: 300, keepAliveMs: 300, idleSocketMs: 10_000, checkEveryMs: 100 };
/** Far below the production limits (10 s and more): a connection closed within this was closed by a limit. */
const CUT_OFF_WITHIN_MS = 2_500;

async function listening(limits = LIMITS): Promise<{ app: FastifyInstance; port: number }> {
  const { app } = await testPrism({ limits });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, port: (app.server.address() as AddressInfo).port };
}

/** Opens a TLS connection; resolves when it is up. */
async function tlsTo(port: number): Promise<TLSSocket> {
  const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  await once(s, 'secureConnect');
  return s;
}

/** What the server sends until it closes the connection, and after how long (from now). */
function untilClosed(s: TLSSocket | ReturnType<typeof tcpConnect>): Promise<{ text: string; ms: number }> {
  const t0 = performance.now();
  let text = '';
  s.on('data', (b: Buffer) => (text += b.toString('utf8')));
  s.on('error', () => undefined);
  return new Promise((resolve) => s.once('close', () => resolve({ text, ms: performance.now() - t0 })));
}

function assertPrism408(text: string): void {
  assert.match(text, /^HTTP\/1\.1 408 /);
  const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { state: string; code: number; message_list: { message: string; reason: string }[] };
  assert.equal(body.state, 'ERROR');
  assert.equal(body.code, 408);
  assert.equal(body.message_list[0]?.reason, 'CVG_ERR_TIMEOUT');
}

test('the production limits: headers in 10 s, a request in 30 s, an answer in 30 s, idle keep-alive 10 s, TLS handshake 10 s', async () => {
  assert.deepEqual(CONNECTION_LIMITS, { tlsHandshakeMs: 10_000, headersMs: 10_000, requestMs: 30_000, handlerMs: 30_000, keepAliveMs: 10_000, idleSocketMs: 60_000, checkEveryMs: 1_000 });
  const { app } = await testPrism();
  const s = app.server;
  // the request deadline is the app's, per route (boundRequestArrival), not Node's: an image upload outlasts it (image-upload.test.ts)
  assert.deepEqual([s.headersTimeout, s.requestTimeout, s.keepAliveTimeout, s.timeout], [10_000, 0, 10_000, 60_000]);
  await app.close();
});

test('slow-loris: a client that sends its headers a byte at a time is cut off after the header deadline with a 408 in Prism\'s shape', async () => {
  const { app, port } = await listening();
  const s = await tlsTo(port);
  const closed = untilClosed(s);
  s.write('GET /console/ HTTP/1.1\r\nHost: prism\r\n');
  const drip = setInterval(() => s.writable && s.write('X'), 50);
  const { text, ms } = await closed;
  clearInterval(drip);
  assert.ok(ms < CUT_OFF_WITHIN_MS, `cut off after ${ms.toFixed(0)} ms`);
  assertPrism408(text);
  await app.close();
});

test('a body sent too slowly is cut off with a 408 (the client\'s slowness, not Prism\'s); a silent new connection and a silent TLS handshake are closed too', async () => {
  const { app, port } = await listening();
  const slow = await tlsTo(port);
  const slowClosed = untilClosed(slow);
  slow.write(`POST /api/nutanix/v3/hosts/list HTTP/1.1\r\nHost: prism\r\nAuthorization: ${basicAuth()}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`);
  const drip = setInterval(() => slow.writable && slow.write(' '), 50);
  const silent = await tlsTo(port);
  const raw = tcpConnect({ host: '127.0.0.1', port });
  await once(raw, 'connect');
  const [a, b, c] = await Promise.all([slowClosed, untilClosed(silent), untilClosed(raw)]);
  clearInterval(drip);
  assert.ok(a.ms < CUT_OFF_WITHIN_MS, `the slow body went on for ${a.ms.toFixed(0)} ms`);
  assert.match(a.text, /^HTTP\/1\.1 408 /);
  assert.match(a.text, /"message":"request: was not received in time/);
  assert.ok(b.ms < CUT_OFF_WITHIN_MS, `a connection that sent nothing stayed ${b.ms.toFixed(0)} ms`);
  assert.ok(c.ms < CUT_OFF_WITHIN_MS, `a TCP connection that never began TLS stayed ${c.ms.toFixed(0)} ms`);
  await app.close();
});

test('an idle kept-alive connection is closed after the keep-alive deadline, once its pipelined requests are answered', async () => {
  const { app, port } = await listening();
  const s = await tlsTo(port);
  const closed = untilClosed(s);
  const get = `GET /api/converge/v1/prism HTTP/1.1\r\nHost: prism\r\n\r\n`;
  s.write(get + get + get);
  const { text, ms } = await closed;
  assert.equal(text.match(/HTTP\/1\.1 200 /g)?.length, 3, text);
  assert.ok(ms < CUT_OFF_WITHIN_MS, `an idle kept-alive connection stayed ${ms.toFixed(0)} ms`);
  await app.close();
});

/** Streams a body of up to `total` bytes (chunked, no length) until Prism answers; resolves with the answer and what was sent. */
function stream(port: number, headers: Record<string, string>, total: number): Promise<{ status: number; body: string; sent: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = false;
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const req = httpsRequest({ host: '127.0.0.1', port, method: 'POST', path: '/api/nutanix/v3/hosts/list', rejectUnauthorized: false, agent: false, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      answered = true;
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, sent, connection: res.headers.connection }));
    });
    req.on('error', (e) => (answered ? undefined : reject(e)));
    const pump = (): void => {
      while (!answered && sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      if (!answered) req.end();
    };
    req.write('{"filter": "');
    pump();
  });
}

test('a 600 MB body streamed without a length is refused with a 413 in Prism\'s shape after the first MiB, its connection ended; without credentials, a 401', async () => {
  const { app, port } = await listening({ ...LIMITS, requestMs: 30_000, handlerMs: 30_000, headersMs: 10_000 });
  const big = await stream(port, { authorization: basicAuth() }, 600 * 1024 * 1024);
  assert.equal(big.status, 413, big.body);
  assert.match((JSON.parse(big.body) as { message_list: { message: string }[] }).message_list[0]?.message ?? '', /^body: is larger than 1048576 bytes/);
  assert.equal(big.connection, 'close');
  assert.ok(big.sent < 64 * 1024 * 1024, `${big.sent} bytes went out before the answer`);
  const anon = await stream(port, {}, 600 * 1024 * 1024);
  assert.equal(anon.status, 401, anon.body);
  assert.equal(anon.connection, 'close', 'an unread body is not drained to keep the connection');
  assert.ok(anon.sent < 64 * 1024 * 1024, `${anon.sent} bytes went out before the answer`);
  // the process goes on
  const who = await new Promise<number>((resolve, reject) => {
    httpsRequest({ host: '127.0.0.1', port, path: '/api/converge/v1/prism', rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject).end();
  });
  assert.equal(who, 200);
  await app.close();
});

test('Prism that takes too long answers 503 in Prism\'s shape at the handler deadline instead of holding the request', async () => {
  const { app } = await testPrism({ limits: LIMITS, source: { get: () => new Promise(() => undefined), invalidate: () => undefined } });
  const t0 = performance.now();
  const r = await app.inject({ method: 'GET', url: '/api/nutanix/v2.0/storage_pools', headers: { authorization: basicAuth() } });
  assert.equal(r.statusCode, 503, r.body);
  assert.match(r.json<{ message: string }>().message, /did not answer in time/);
  assert.ok(performance.now() - t0 < CUT_OFF_WITHIN_MS);
  await app.close();
});

test('the virtual IP\'s server holds the same limits: slow-loris is cut off there too', async () => {
  const { app, tls } = await testPrism({ limits: LIMITS });
  await app.ready();
  const vip = createVipServer(app, tls, LIMITS);
  vip.listen(0, '127.0.0.1');
  await once(vip, 'listening');
  const s = await tlsTo((vip.address() as AddressInfo).port);
  const closed = untilClosed(s);
  s.write('GET /console/ HTTP/1.1\r\nHost: prism\r\n');
  const drip = setInterval(() => s.writable && s.write('X'), 50);
  const { text, ms } = await closed;
  clearInterval(drip);
  assert.ok(ms < CUT_OFF_WITHIN_MS, `cut off after ${ms.toFixed(0)} ms`);
  assertPrism408(text);
  const d = createVipServer(app, tls);
  assert.deepEqual([d.headersTimeout, d.requestTimeout, d.keepAliveTimeout, d.timeout], [10_000, 0, 10_000, 60_000]);
  vip.close();
  await app.close();
});

test('what cannot be read as a request at all is answered in Prism\'s shape before the connection ends: headers over 16 KiB (431), not HTTP (400)', async () => {
  const { app, port } = await listening();
  const answers: string[] = [];
  for (const sent of [`GET / HTTP/1.1\r\nHost: prism\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`, 'HELLO PRISM\r\n\r\n']) {
    const s = await tlsTo(port);
    const closed = untilClosed(s);
    s.write(sent);
    answers.push((await closed).text);
  }
  const [big, garbage] = answers as [string, string];
  assert.match(big, /^HTTP\/1\.1 431 /);
  assert.match(big, /"code":431,"kind":"prism","state":"ERROR"/);
  assert.match(garbage, /^HTTP\/1\.1 400 /);
  assert.match(garbage, /"message":"request: not valid HTTP"/);
  await app.close();
});
