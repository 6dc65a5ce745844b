#!/usr/bin/env node
// Builds the web UIs with Vite, each when its dist/ is missing or older than anything it is built
// from: Foundation's (web/ → web/dist, served at `/` by `converge foundation serve`; ADR 011) and
// Prism's console (web/prism/ → web/prism/dist, served at /console/ by every Prism and shipped in
// the release bundle; ADR 017). scripts/setup.sh runs it, so scripts/demo.sh and scripts/test.sh
// have current builds; `--force` always builds.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const UIS = [
  {
    what: 'the Foundation web UI', config: 'web/vite.config.ts', out: 'web/dist/index.html',
    // the app, its config, the protocol modules it imports, the lockfile (web/prism is the other UI's)
    inputs: ['web/src', 'web/index.html', 'web/vite.config.ts', 'web/tsconfig.json', 'src/foundation/protocol', 'src/foundation/core', 'package-lock.json'],
  },
  {
    what: "Prism's console", config: 'web/prism/vite.config.ts', out: 'web/prism/dist/index.html',
    inputs: ['web/prism/src', 'web/prism/index.html', 'web/prism/vite.config.ts', 'web/tsconfig.json', 'src/prism/protocol', 'src/cvm/protocol', 'package-lock.json'],
  },
];

function newest(p) {
  const st = statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let m = 0;
  for (const name of readdirSync(p)) m = Math.max(m, newest(join(p, name)));
  return m;
}

const force = process.argv.includes('--force');
for (const ui of UIS) {
  const out = join(root, ui.out);
  const built = existsSync(out) ? statSync(out).mtimeMs : 0;
  const source = Math.max(...ui.inputs.map((i) => join(root, i)).filter((p) => existsSync(p)).map(newest));
  if (!force && built >= source) continue;
  const started = Date.now();
  process.stdout.write(`Building ${ui.what} (vite build ${dirname(ui.config)}/ → ${dirname(ui.out)})\n`);
  const { build } = await import('vite');
  try {
    await build({ configFile: join(root, ui.config), logLevel: 'warn' });
  } catch (e) {
    process.stderr.write(`error: ${ui.what} did not build: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
  process.stdout.write(`  built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}
