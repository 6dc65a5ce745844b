import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { LightMyRequestResponse } from 'fastify';
import { WebSocket } from 'ws';
import { ADMIN, FakeVmService, basicAuth, testPrism } from './fakes.ts';
import type { CallOptions } from '../../cvm/protocol/client.ts';

/** A built console in a temporary folder. */
function built(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-console-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>Prism</title><div id="root"></div>');
  writeFileSync(join(dir, 'assets', 'app-1.js'), 'export {}');
  return dir;
}

test('the console\'s files need no credentials (its login page is one), and everything else still does', async () => {
  const dir = built();
  const { app } = await testPrism({ consoleDir: dir });
  try {
    for (const url of ['/console/', '/console/vms/1234', '/console/assets/app-1.js', '/favicon.ico']) {
      const r = await app.inject({ url });
      assert.equal(r.statusCode, 200, `${url}: ${r.body}`);
    }
    assert.equal((await app.inject({ url: '/console' })).headers.location, '/console/');
    // a path that starts like the console's but climbs out reaches no API route without credentials
    for (const url of ['/console/../api/converge/v1/cluster', '/console/%2e%2e/api/converge/v1/cluster', '/console/..%2fapi/converge/v1/cluster', '/console/assets/../../api/converge/v1/cluster']) {
      const r = await app.inject({ url });
      assert.doesNotMatch(r.body, /"members"/, url);
    }
    for (const url of ['/api/converge/v1/cluster', '/api/converge/v1/session', '/api/converge/v1/vms/x/console/stream']) {
      const r = await app.inject({ url });
      assert.equal(r.statusCode, 401, url);
      assert.match(String(r.headers['www-authenticate']), /^Basic/, 'a tool gets the Basic challenge');
      const quiet = await app.inject({ url, headers: { 'x-requested-with': 'XMLHttpRequest' } });
      assert.equal(quiet.statusCode, 401, url);
      assert.equal(quiet.headers['www-authenticate'], undefined, 'the console asks with X-Requested-With: no browser prompt');
    }
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the login page\'s login: a session cookie for the right password; a wrong one or a malformed body changes nothing', async () => {
  const { app } = await testPrism({ consoleDir: built() });
  const login = (payload: unknown): Promise<LightMyRequestResponse> => app.inject({ method: 'POST', url: '/api/converge/v1/login', headers: { 'content-type': 'application/json', 'x-requested-with': 'XMLHttpRequest' }, payload: JSON.stringify(payload) });
  try {
    for (const [bad, field] of [[{}, 'username'], [{ username: 'admin' }, 'password'], [{ username: 7, password: 'x' }, 'username'], [{ username: 'admin', password: 'x'.repeat(300) }, 'password']] as const) {
      const r = await login(bad);
      assert.equal(r.statusCode, 400, r.body);
      assert.match(r.body, new RegExp(field));
      assert.equal(r.headers['set-cookie'], undefined);
    }
    const wrong = await login({ username: ADMIN.user, password: 'nope' });
    assert.equal(wrong.statusCode, 401);
    assert.equal(wrong.headers['set-cookie'], undefined);
    assert.equal(wrong.headers['www-authenticate'], undefined);
    const ok = await login({ username: ADMIN.user, password: ADMIN.password });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual(ok.json(), { username: 'admin' });
    const cookie = String(ok.headers['set-cookie']).split(';')[0] ?? '';
    assert.match(String(ok.headers['set-cookie']), /HttpOnly; SameSite=Strict/);
    const who = await app.inject({ url: '/api/converge/v1/session', headers: { cookie } });
    assert.deepEqual(who.json(), { username: 'admin' });
    const cluster = await app.inject({ url: '/api/converge/v1/cluster', headers: { cookie } });
    assert.equal(cluster.statusCode, 200);
    const c = cluster.json<{ members: unknown[]; health: { state: string } }>();
    assert.equal(c.members.length, 3);
    assert.equal(c.health.state, 'OK');
    // wrong passwords are rate-limited on this path as on Basic
    let limited = false;
    for (let i = 0; i < 20 && !limited; i++) limited = (await login({ username: ADMIN.user, password: `wrong-${i}` })).statusCode === 429;
    assert.ok(limited, 'repeated wrong passwords are throttled');
  } finally {
    await app.close();
  }
});

test('a VM\'s serial console over a websocket: history then live output, typed input reaches the VM service; no cookie, another site\'s page or an unknown VM get nothing', async () => {
  const vms = new FakeVmService();
  let log = 'boot line 1\r\n';
  const typed: string[] = [];
  const cvm = <T>(path: string, o: CallOptions = {}): Promise<T> => {
    const m = /^\/vms\/([^/]+)\/console(\/input)?(?:\?offset=(\d+))?$/.exec(path);
    if (m && vms.vms.has(m[1] ?? '')) {
      if (m[2]) {
        typed.push(String((o.body as { data: string }).data));
        return Promise.resolve({} as T);
      }
      const from = Math.min(Number(m[3]), log.length);
      return Promise.resolve({ text: log.slice(from), next: log.length } as T);
    }
    return vms.call<T>(path, o);
  };
  const { app } = await testPrism({ consoleDir: built(), cvm });
  const { entityUuid: uuid } = await vms.call<{ entityUuid: string }>('/vms', { body: { name: 'v1', powerOn: true } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  const origin = `https://127.0.0.1:${port}`;
  const cookie = String((await app.inject({ url: '/api/converge/v1/session', headers: { authorization: basicAuth() } })).headers['set-cookie']).split(';')[0] ?? '';
  const open = (path: string, headers: Record<string, string>): Promise<{ ws: WebSocket; text: () => string } | { status: number }> => new Promise((resolve) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, { headers, rejectUnauthorized: false });
    let text = '';
    ws.on('message', (d: Buffer) => {
      text += d.toString('utf8');
    });
    ws.on('open', () => resolve({ ws, text: () => text }));
    ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0 }));
    ws.on('error', () => undefined);
  });
  const until = async (what: () => boolean, ms = 5000): Promise<void> => {
    for (const end = Date.now() + ms; !what(); await new Promise((r) => setTimeout(r, 50))) if (Date.now() > end) throw new Error('timed out');
  };
  try {
    assert.deepEqual(await open(`/api/converge/v1/vms/${uuid}/console/stream`, {}), { status: 401 });
    assert.deepEqual(await open(`/api/converge/v1/vms/${uuid}/console/stream`, { cookie, origin: 'https://evil.example' }), { status: 403 });
    const c = await open(`/api/converge/v1/vms/${uuid}/console/stream`, { cookie, origin });
    assert.ok('ws' in c);
    await until(() => c.text().includes('boot line 1'));
    log += 'written 42\r\n';
    await until(() => c.text().includes('written 42'));
    assert.equal(c.text(), 'boot line 1\r\nwritten 42\r\n', 'each byte once, in order');
    c.ws.send('ls\r');
    await until(() => typed.length > 0);
    assert.deepEqual(typed, ['ls\r']);
    c.ws.close();
    const gone = await open('/api/converge/v1/vms/00000000-0000-4000-8000-000000000000/console/stream', { cookie, origin });
    assert.ok('ws' in gone);
    const code = await new Promise<number>((r) => gone.ws.on('close', (n: number) => r(n)));
    assert.equal(code, 4404);
  } finally {
    await app.close();
  }
});
