#!/usr/bin/env node
// Builds Foundation's web UI (web/ → web/dist, served at `/` by `converge foundation serve`) with
// Vite, when web/dist is missing or older than anything it is built from (ADR 011). scripts/setup.sh
// runs it, so scripts/demo.sh and scripts/test.sh have a current build; `--force` always builds.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'web', 'dist', 'index.html');
// what the bundle is made of: the app, its config, the protocol modules it imports, the lockfile
const inputs = ['web/src', 'web/index.html', 'web/vite.config.ts', 'web/tsconfig.json', 'src/foundation/protocol', 'src/foundation/core', 'package-lock.json'];

function newest(p) {
  const st = statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let m = 0;
  for (const name of readdirSync(p)) m = Math.max(m, newest(join(p, name)));
  return m;
}

const force = process.argv.includes('--force');
const built = existsSync(out) ? statSync(out).mtimeMs : 0;
const source = Math.max(...inputs.map((i) => join(root, i)).filter((p) => existsSync(p)).map(newest));
if (!force && built >= source) process.exit(0);

const started = Date.now();
process.stdout.write('Building the Foundation web UI (vite build web/ → web/dist)\n');
const { build } = await import('vite');
try {
  await build({ configFile: join(root, 'web', 'vite.config.ts'), logLevel: 'warn' });
} catch (e) {
  process.stderr.write(`error: the web UI did not build: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
process.stdout.write(`  built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
