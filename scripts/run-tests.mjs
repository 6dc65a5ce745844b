#!/usr/bin/env node
// Runs every *.test.ts below the given folders (or the given test files), each file in its own
// process (Node 20's --test does not search for .ts files itself), two files at a time (the files
// that measure throughput alone, first).
// Each file's output is printed whole when it ends (not interleaved with the other's), then its
// counts and wall time; at the end the slowest files and one closing line: `N passed, N failed`.
// Extra flags after `--` go to node --test.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

const args = process.argv.slice(2);
const dash = args.indexOf('--');
const roots = dash < 0 ? args : args.slice(0, dash);
const extra = dash < 0 ? [] : args.slice(dash + 1);
const CONCURRENCY = Number(process.env.CONVERGE_TEST_CONCURRENCY ?? 2);
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
const SLOW = ['test/lcm/', 'test/vm/', 'test/cvm/pool-full.test.ts', 'test/cvm/cluster.test.ts', 'test/cvm/owners.test.ts'];
const rank = (f) => {
  const i = SLOW.findIndex((s) => f.includes(s));
  return i < 0 ? SLOW.length : i;
};
files.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));

const count = (out, what) => Number(new RegExp(`^# ${what} (\\d+)$`, 'm').exec(out)?.[1] ?? 0);
const results = [];
const started = Date.now();

function runFile(file) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    // the file runs its tests in this one process (no --test: that would start another process for it)
    const child = spawn(process.execPath, ['--import', 'tsx', '--test-reporter=tap', ...extra, file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks = [];
    child.stdout.on('data', (c) => chunks.push(c));
    child.stderr.on('data', (c) => chunks.push(c));
    child.on('close', (code, signal) => {
      const out = Buffer.concat(chunks).toString('utf8');
      const r = { file, code: code ?? 1, seconds: (Date.now() - t0) / 1000, pass: count(out, 'pass'), fail: count(out, 'fail') + count(out, 'cancelled') };
      // a file that exits non-zero with no failing test counted (a crash, a hook that threw) counts as one failure
      if (r.code !== 0 && r.fail === 0) r.fail = 1;
      process.stdout.write(out.endsWith('\n') ? out : `${out}\n`);
      process.stdout.write(`# file ${file}: ${r.pass} passed, ${r.fail} failed in ${r.seconds.toFixed(1)} s${signal ? ` (killed by ${signal})` : ''}\n`);
      results.push(r);
      resolve();
    });
  });
}

// files that measure throughput against a baseline (issue 12's node-loss goal: ≥ 50 % of the rate
// before) run alone first: beside a file booting TCG guests the machine's own speed moved under them.
// So does the demo, whose guest must boot within 5 minutes: beside the VM tests' three TCG guests it
// did not (it boots in about 40 s alone)
const SOLO = ['test/cvm/node-loss.test.ts', 'test/cli/demo.test.ts'];
const solo = (f) => SOLO.some((s) => f.includes(s));
for (const f of files.filter(solo)) await runFile(f);

// two lanes over one queue, the slowest files first (a third lane for the unit files was tried: on
// two cores it slowed every file and the whole run by 110 s)
const queue = files.filter((f) => !solo(f));
await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queue.length) }, async () => {
  for (let f = queue.shift(); f !== undefined; f = queue.shift()) await runFile(f);
}));

const pass = results.reduce((n, r) => n + r.pass, 0);
const fail = results.reduce((n, r) => n + r.fail, 0);
console.log(`\n# the slowest files (wall time, ${CONCURRENCY} at a time):`);
for (const r of [...results].sort((a, b) => b.seconds - a.seconds).slice(0, 15)) console.log(`#   ${r.seconds.toFixed(1).padStart(6)} s  ${r.file}`);
const failed = results.filter((r) => r.fail > 0);
if (failed.length) console.log(`# files with failures: ${failed.map((r) => r.file).join(', ')}`);
console.log(`# ${results.length} files in ${((Date.now() - started) / 1000).toFixed(0)} s`);
console.log(`${pass} passed, ${fail} failed`);
process.exit(fail > 0 ? 1 : 0);
