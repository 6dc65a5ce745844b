import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { registerWebUi } from './web-ui.ts';

/** A built UI in <tmp>/dist, with files beside and inside it that must never be served. */
function built(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'cvg-ui-')), 'dist');
  mkdirSync(join(dir, 'assets'), { recursive: true });
  writeFileSync(join(dir, 'index.html'), '<!doctype html><div id="root"></div>');
  writeFileSync(join(dir, 'assets', 'index-abc.js'), 'console.log(1)');
  writeFileSync(join(dir, 'assets', '.env'), 'SECRET=no');
  writeFileSync(join(dir, '..', 'secret.txt'), 'no');
  return dir;
}

test('the UI\'s files are served from inside its folder only', async () => {
  const dir = built();
  const app = Fastify();
  registerWebUi(app, dir);
  try {
    for (const p of ['/assets/../../secret.txt', '/assets/..%2f..%2fsecret.txt', '/assets/%2e%2e/%2e%2e/secret.txt', '/assets/%2e%2e%2f%2e%2e%2fsecret.txt', '/assets/....//..//secret.txt',
      '/assets/%E0%A4%A', '/assets/', '/assets/nope.js', '/assets/.env', '/assets/%2eenv', '/../secret.txt', '/secret.txt']) {
      const r = await app.inject({ url: p });
      assert.ok(r.statusCode >= 400 && r.statusCode < 500, `${p}: ${r.statusCode}`);
      assert.doesNotMatch(r.body, /^no$|SECRET/, p);
    }
    const q = await app.inject({ url: '/assets/index-abc.js?v=1' });
    assert.equal(q.statusCode, 200);
    assert.equal(q.body, 'console.log(1)');
  } finally {
    await app.close();
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});

test('Foundation serves the built UI at / (index never cached, hashed assets cached), and says how to build it when missing', async () => {
  const dir = built();
  const app = Fastify();
  registerWebUi(app, dir);
  try {
    const index = await app.inject({ url: '/' });
    assert.equal(index.statusCode, 200);
    assert.match(index.headers['content-type'] as string, /^text\/html/);
    assert.equal(index.headers['cache-control'], 'no-cache');
    assert.match(index.body, /id="root"/);
    assert.equal((await app.inject({ url: '/index.html' })).statusCode, 200);
    const js = await app.inject({ url: '/assets/index-abc.js' });
    assert.equal(js.statusCode, 200);
    assert.match(js.headers['content-type'] as string, /^(text|application)\/javascript/);
    assert.match(js.headers['cache-control'] as string, /immutable/);
    assert.equal((await app.inject({ url: '/assets/..%2f..%2fsecret.txt' })).statusCode, 404);
    const gone = await app.inject({ url: '/assets/missing.js' });
    assert.equal(gone.statusCode, 404);
    assert.equal(gone.headers['cache-control'], undefined, 'a missing asset is not cached for good');
    rmSync(join(dir, 'index.html'));
    const missing = await app.inject({ url: '/' });
    assert.equal(missing.statusCode, 503);
    assert.match(missing.body, /npm run build:web/);
    assert.equal((await app.inject({ url: '/assets/index-abc.js' })).statusCode, 503);
  } finally {
    await app.close();
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});

test('a UI folder that does not exist yet: 503, not a failure to start', async () => {
  const app = Fastify();
  registerWebUi(app, join(tmpdir(), 'cvg-no-such-ui-dir'));
  try {
    await app.ready();
    assert.equal((await app.inject({ url: '/' })).statusCode, 503);
  } finally {
    await app.close();
  }
});

test('a single-page app under a base path: its own paths answer index.html, a missing asset is still 404', async () => {
  const dir = built();
  const app = Fastify();
  registerWebUi(app, dir, { base: '/console/', spa: true, what: "Prism's console" });
  try {
    for (const p of ['/console/', '/console/vms/1234', '/console/alerts']) {
      const r = await app.inject({ url: p });
      assert.equal(r.statusCode, 200, p);
      assert.match(r.body, /id="root"/, p);
    }
    assert.equal((await app.inject({ url: '/console/assets/index-abc.js' })).body, 'console.log(1)');
    assert.equal((await app.inject({ url: '/console/assets/nope.js' })).statusCode, 404);
    assert.equal((await app.inject({ url: '/console/assets/..%2f..%2fsecret.txt' })).statusCode, 404);
    assert.equal((await app.inject({ url: '/' })).statusCode, 404, 'nothing outside the base');
    rmSync(join(dir, 'index.html'));
    const missing = await app.inject({ url: '/console/vms' });
    assert.equal(missing.statusCode, 503);
    assert.match(missing.body, /Prism's console is not built/);
  } finally {
    await app.close();
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});
