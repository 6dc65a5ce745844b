import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { registerWebUi, uiFile } from './web-ui.ts';

/** A built UI in <tmp>/dist, with a file beside it that must never be served. */
function built(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'cvg-ui-')), 'dist');
  mkdirSync(join(dir, 'assets'), { recursive: true });
  writeFileSync(join(dir, 'index.html'), '<!doctype html><div id="root"></div>');
  writeFileSync(join(dir, 'assets', 'index-abc.js'), 'console.log(1)');
  writeFileSync(join(dir, '..', 'secret.txt'), 'no');
  return dir;
}

test('the UI\'s files resolve inside its folder only', () => {
  const dir = built();
  try {
    assert.equal(uiFile(dir, '/'), join(dir, 'index.html'));
    assert.equal(uiFile(dir, '/assets/index-abc.js?v=1'), join(dir, 'assets', 'index-abc.js'));
    for (const p of ['/../secret.txt', '/assets/../../secret.txt', '/assets/%2e%2e/%2e%2e/secret.txt', '/assets/%E0%A4%A', '/assets', '/assets/nope.js']) assert.equal(uiFile(dir, p), null, p);
  } finally {
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
    const js = await app.inject({ url: '/assets/index-abc.js' });
    assert.equal(js.statusCode, 200);
    assert.match(js.headers['content-type'] as string, /^text\/javascript/);
    assert.match(js.headers['cache-control'] as string, /immutable/);
    assert.equal((await app.inject({ url: '/assets/..%2f..%2fsecret.txt' })).statusCode, 404);
    assert.equal((await app.inject({ url: '/assets/missing.js' })).statusCode, 404);
    rmSync(join(dir, 'index.html'));
    const missing = await app.inject({ url: '/' });
    assert.equal(missing.statusCode, 503);
    assert.match(missing.body, /npm run build:web/);
  } finally {
    await app.close();
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});
