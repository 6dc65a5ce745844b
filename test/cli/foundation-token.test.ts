/**
 * Foundation off loopback takes the API token it prints once at start; the CLI sends it with
 * --token (or CONVERGE_FOUNDATION_TOKEN), and without it is refused with a message saying so.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, cvg } from '../drivers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'cvg-ftok-'));
let serve: ChildProcess | undefined;
after(() => {
  serve?.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

test('off loopback the CLI needs the printed token: refused without it, served with --token or the environment', async () => {
  serve = spawn(process.execPath, [BIN, 'foundation', 'serve', '--data-dir', dir, '--host', '0.0.0.0', '--port', '18557', '--bmc-user', 'a', '--bmc-password', 'b'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const token = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no token printed: ${out}`)), 30_000);
    const read = (c: Buffer): void => {
      out += c.toString();
      const m = /Authorization: Bearer (\S+)/.exec(out);
      if (m?.[1] && out.includes('Ctrl-C')) {
        clearTimeout(t);
        resolve(m[1]);
      }
    };
    serve?.stdout?.on('data', read);
    serve?.stderr?.on('data', read);
  });
  const url = 'http://127.0.0.1:18557';
  const without = await cvg('foundation', 'discover', '--url', url, '--json');
  assert.equal(without.code, 1);
  assert.match(without.stdout, /send its API token/);
  const wrong = await cvg('foundation', 'discover', '--url', url, '--token', 'not-the-token', '--json');
  assert.equal(wrong.code, 1);
  const withToken = await cvg('foundation', 'discover', '--url', url, '--token', token, '--json');
  assert.equal(withToken.code, 0, withToken.stdout + withToken.stderr);
  assert.deepEqual(JSON.parse(withToken.stdout), []);
  process.env['CONVERGE_FOUNDATION_TOKEN'] = token;
  try {
    assert.equal((await cvg('foundation', 'discover', '--url', url)).code, 0);
  } finally {
    delete process.env['CONVERGE_FOUNDATION_TOKEN'];
  }
});
