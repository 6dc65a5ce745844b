#!/usr/bin/env node
// Runs node's test runner over every *.test.ts below the given folders (or the given test files) (Node 20's --test does not
// search for .ts files itself). Extra flags after `--` go to node --test.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const dash = args.indexOf('--');
const roots = dash < 0 ? args : args.slice(0, dash);
const extra = dash < 0 ? [] : args.slice(dash + 1);
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.ts')) files.push(p);
  }
};
for (const r of roots.length ? roots : ['src', 'web', 'test']) {
  if (statSync(r).isDirectory()) walk(r);
  else files.push(r);
}
// the slowest files first (the VM tests boot guests under software emulation for minutes): two
// files run at a time, and a long one started last would run alone at the end
const SLOW = ['test/vm/', 'test/cvm/pool-full.test.ts', 'test/cvm/node-loss.test.ts', 'test/cli/demo.test.ts', 'test/cvm/cluster.test.ts', 'test/cvm/owners.test.ts'];
const rank = (f) => {
  const i = SLOW.findIndex((s) => f.includes(s));
  return i < 0 ? SLOW.length : i;
};
files.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...extra, ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
