/**
 * `converge demo`, the README's main job, as a user runs it: a lab cluster deployed end to end,
 * then (with --exit) everything it started stopped and its temporary data dir removed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cvg, cvgWithin } from '../drivers/cli.ts';

test('converge demo --exit: rack, Foundation, imaging, cluster and validation, a VM booted on it, then everything stopped', async () => {
  const r = await cvgWithin(600_000, 'demo', '--exit', '--nodes', '3', '--port', '18057', '--network', '127.57', '--bmc-network', '127.54');
  assert.equal(r.code, 0, r.stderr + r.stdout.slice(-3000));
  for (const n of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) assert.match(r.stdout, new RegExp(`▶ ${n}/10 `));
  assert.match(r.stdout, /└─ cluster converge-lab \(3 nodes\)\n {4}✔ 1 Foundation\n {4}✔ 2 Imaging\n {4}✔ 3 Bootstrap\n {4}✔ 4 Activation\ncluster converge-lab: cluster converge-lab created and validated \(6 checks passed\)/);
  assert.match(r.stdout, /● [1234] (Foundation|Imaging|Bootstrap|Activation)/, 'the stages were shown while they ran');
  assert.match(r.stdout, /Cluster converge-lab \(\S+\), RF2, 3 nodes/);
  assert.match(r.stdout, /The lab cluster is deployed and validated/);
  assert.match(r.stdout, /VM: {9}demo-vm is running; its console says: converge-guest: booted \S+ in [\d.]+ s/, 'the demo ends with a VM that booted from its vdisk');
  assert.match(r.stdout, /open http:\/\/127\.0\.0\.1:18057\/ in a browser/, 'it points at the flow diagram');
  assert.match(r.stdout, /Prism: {6}https:\/\/127\.57\.2\.1:9440\/console\/ {3}user admin {3}password [A-Za-z0-9]{16}\n/, 'the Prism URL and a generated password');
  assert.match(r.stdout, /Prism: https:\/\/127\.57\.2\.1:9440\/console\/ \(leader 127\.57\.1\.\d\)/, 'cluster status found Prism on the VIP over TLS');
  const dir = /Converge demo: 3 nodes, data in (\S+)/.exec(r.stdout)?.[1] ?? '';
  assert.ok(dir.length > 0);
  // the CA file of this deployment, named in full so the printed curl command can be pasted as is
  const ca = /\n {2}CA: {9}(\S+) /.exec(r.stdout)?.[1] ?? '';
  assert.match(ca, /\/foundation\/sessions\/\d{14}-[0-9a-f]{4}\/converge-lab-ca\.pem$/);
  assert.ok(ca.startsWith(`${dir}/`));
  assert.ok(r.stdout.includes(`curl --cacert ${ca} -u admin:`));
  assert.ok(!existsSync(dir), 'its temporary data dir is removed');
  await assert.rejects(fetch('http://127.57.1.1:2100/status', { signal: AbortSignal.timeout(1000) }), 'the CVMs are gone');
  await assert.rejects(fetch('http://127.0.0.1:18057/foundation/version', { signal: AbortSignal.timeout(1000) }), 'Foundation is gone');
});

test('converge demo refuses bad options, naming them', async () => {
  const r = await cvg('demo', '--exit', '--nodes', 'many', '--port', '18057');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /nodes: a whole number from 1 to 32/);
});
