/**
 * `converge bundle build` and `converge foundation ...` as a user runs them: a rack in the
 * background, Foundation serving from the same data dir, then build, upload, discover, validate,
 * plan and image from the CLI; a CVG-LAB-MINI node fails validation with exit code 3.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cvg, BIN } from '../drivers/cli.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostCall } from '../../src/hypervisor/protocol/client.ts';
import { DeploymentPki } from '../../src/shared/identity.ts';

const dir = mkdtempSync(join(tmpdir(), 'cvg-fcli-'));
const URL_ = 'http://127.0.0.1:18051';
let serve: ChildProcess;


before(async () => {
  const up = await cvg('rack', 'up', '--nodes', '4', '--data-dir', dir, '--bmc-network', '127.51', '--pace', '0');
  assert.equal(up.code, 0, up.stderr);
  serve = spawn(process.execPath, [BIN, 'foundation', 'serve', '--data-dir', dir, '--port', '18051'], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    serve.stdout?.on('data', (d: Buffer) => d.toString().includes('Foundation http') && resolve());
    serve.once('exit', (c) => reject(new Error(`foundation serve exited ${c}`)));
  });
});
after(async () => {
  serve.kill('SIGTERM');
  await cvg('rack', 'down', '--data-dir', dir);
  rmSync(dir, { recursive: true, force: true });
});

test('build, upload, discover, validate, plan, image and create the cluster from the CLI', async () => {
  const b = await cvg('bundle', 'build', '--version', '2.0.0', '--out', join(dir, 'dist'), '--json');
  assert.equal(b.code, 0, b.stderr);
  const built = JSON.parse(b.stdout);
  assert.equal(built.manifest.components.hypervisor.version, '2.0.0');
  const u = await cvg('foundation', 'upload', built.file, '--url', URL_);
  assert.equal(u.code, 0, u.stderr);
  assert.match(u.stdout, /uploaded converge-2\.0\.0\.tar\.gz \(bundle 2\.0\.0/);
  const d = await cvg('foundation', 'discover', '--url', URL_, '--json');
  assert.equal(JSON.parse(d.stdout).flatMap((x: any) => x.nodes).length, 4);
  const v = await cvg('foundation', 'validate', '--url', URL_, '--json');
  assert.equal(v.code, 0, v.stderr);
  assert.equal(JSON.parse(v.stdout).verdict, 'PASS');
  const planFile = join(dir, 'plan.json');
  const p = await cvg('foundation', 'plan', '--url', URL_, '--out', planFile, '--host-start', '127.52.0.1', '--cvm-start', '127.52.1.1', '--gateway', '127.52.255.254');
  assert.equal(p.code, 0, p.stderr);
  assert.equal(JSON.parse(readFileSync(planFile, 'utf8')).nodes[3].cvmIp, '127.52.1.4');
  const bad = await cvg('foundation', 'plan', '--url', URL_, '--out', join(dir, 'bad.json'), '--host-start', '10.0.0.1', '--gateway', '10.0.255.254', '--cvm-start', '10.0.1.1');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /127\.0\.0\.0\/8|loopback|lab/i);
  const img = await cvg('foundation', 'image', '--plan', planFile, '--url', URL_, '--create-cluster', '--json');
  assert.equal(img.code, 0, img.stderr + img.stdout.slice(-2000));
  const last = JSON.parse(img.stdout.slice(img.stdout.lastIndexOf('\n{') + 1));
  assert.equal(last.imaging_stopped, true);
  assert.equal(last.aggregate_percent_complete, 100);
  assert.equal(last.clusters.length, 1);
  assert.equal(last.clusters[0].percent_complete, 100, last.clusters[0].status);
  assert.deepEqual(last.clusters[0].cluster_members, ['127.52.1.1', '127.52.1.2', '127.52.1.3', '127.52.1.4']);
  assert.ok(last.clusters[0].checks.every((k: any) => k.ok));
  // the host agent answers the deployment's operator (its certificate in the data dir), over TLS
  const hv = await hostCall<any>('127.52.0.2', '/status', { identity: DeploymentPki.operatorOf(dir)! });
  assert.equal(hv.hypervisorVersion, '2.0.0');
  const pr = await cvg('foundation', 'progress', '--session', last.session_id, '--url', URL_);
  assert.match(pr.stdout, /100% — stopped/);
  assert.match(pr.stdout, /cluster \S+\s+4 nodes\s+done\s+█+\s+100\s+\d+s\s+cluster \S+ created and validated \(6 checks passed\)/);
  const cs = await cvg('cluster', 'status', '--cvm-ip', '127.52.1.1', '--data-dir', dir);
  assert.match(cs.stdout, /RF2, 4 nodes/);
});

test('an undersized node fails validation: exit code 3 and the failing checks listed', async () => {
  const add = await cvg('rack', 'add', '--nodes', '1', '--model', 'CVG-LAB-MINI', '--data-dir', dir, '--json');
  assert.equal(add.code, 0, add.stderr);
  const serial = JSON.parse(add.stdout).nodes[0].serial;
  const v = await cvg('foundation', 'validate', '--url', URL_);
  assert.equal(v.code, 3);
  assert.match(v.stdout, new RegExp(`${serial}\\s+FAIL \\(excluded\\)`));
  assert.match(v.stdout, /FAIL hba\.passthrough/);
  assert.match(v.stdout, /FAIL cpu\.cores/);
});
