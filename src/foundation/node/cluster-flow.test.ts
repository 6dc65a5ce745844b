import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { VirtualClock } from '../../shared/clock.ts';
import { awaitServices, checkPlacement } from './cluster-flow.ts';
import { evaluateServices, type CvmObservation } from '../core/cvm-services.ts';
import type { ReplicaMap, ServiceView } from '../../cvm/protocol/cluster.ts';

const sv = (name: string, state = 'up', restarts = 0): ServiceView => ({ name, state, pid: 7, restarts });
const seenWith = (prism: ServiceView): CvmObservation[] => [{
  cvmIp: '10.0.1.1', error: null,
  status: { serial: 'S1', cvmIp: '10.0.1.1', hostIp: '', hypervisorVersion: '1', nosVersion: '1', configured: true, clusterId: 'c-1', cluster: null, disks: [], services: [sv('genesis'), sv('etcd'), prism, sv('lcm'), { ...sv('stargate'), partOf: 'genesis' }] },
}];
const judge = (seen: CvmObservation[]): ReturnType<typeof evaluateServices> => evaluateServices('c-1', ['10.0.1.1'], seen);

/** Runs the wait on a virtual clock, stepping it 500 ms at a time; answers the result and the time it took. */
async function run(observe: () => Promise<CvmObservation[]>, waitMs: number): Promise<{ r: Awaited<ReturnType<typeof awaitServices>>; took: number; looks: number }> {
  const clock = new VirtualClock(1000);
  let looks = 0;
  let done = false;
  const p = awaitServices(async () => {
    looks++;
    return observe();
  }, judge, { clock, waitMs, signal: new AbortController().signal }).finally(() => {
    done = true;
  });
  while (!done) {
    await tick();
    if (!done) clock.advance(500);
  }
  return { r: await p, took: clock.now() - 1000, looks };
}

test('services that come up within the wait: a pass as soon as they are', async () => {
  let n = 0;
  const { r, took } = await run(() => Promise.resolve(seenWith(++n < 3 ? sv('prism', 'starting') : sv('prism'))), 60_000);
  assert.equal(r.verdict.ok, true);
  assert.equal(took, 1000, 'two looks later, not at the end of the wait');
});

test('a service that never comes up: after the bounded wait a FAIL naming the CVM, the service and its state (not a timeout)', async () => {
  const { r, took, looks } = await run(() => Promise.resolve(seenWith(sv('prism', 'restarting', 5))), 10_000);
  assert.equal(r.verdict.ok, false);
  assert.equal(r.verdict.evidence, 'CVM 10.0.1.1 (S1): prism restarting after 5 restart(s)');
  assert.equal(took, 10_000);
  assert.equal(looks, 21, 'a look every 500 ms, the last at the deadline');
});

test('the wait stops when Foundation does', async () => {
  const stop = new AbortController();
  const clock = new VirtualClock();
  const p = awaitServices(() => Promise.resolve(seenWith(sv('prism', 'starting'))), judge, { clock, waitMs: 60_000, signal: stop.signal });
  await tick();
  stop.abort(new Error('Foundation is stopping'));
  clock.advance(500);
  await assert.rejects(p, /Foundation is stopping/);
});

test('storage validation: the written extent groups are recorded with RF in-sync replicas on distinct nodes, none stale', () => {
  const at = (node: string): ReplicaMap['egroups'][number]['replicas'][number] => ({ node, cvmIp: `ip-${node}`, disk: `${node}-d` });
  const map = (...egroups: ReplicaMap['egroups']): ReplicaMap => ({ vdisk: 'v', uuid: 'u', replicationFactor: 2, egroupBytes: 128 << 20, egroups });
  const MiB = 1 << 20;
  assert.deepEqual(checkPlacement(map({ egroup: 0, replicas: [at('a'), at('b')], stale: [] }), 8 * MiB), { ok: true, detail: '1 of 1 extent group(s) recorded, 1 with RF2 in sync on distinct nodes and none stale' });
  assert.equal(checkPlacement(map(), 8 * MiB).ok, false, 'nothing recorded');
  assert.equal(checkPlacement(map({ egroup: 0, replicas: [at('a'), at('b')], stale: [] }), 200 * MiB).ok, false, 'the second extent group is missing');
  const stale = checkPlacement(map({ egroup: 0, replicas: [at('a'), at('b')], stale: [at('c')] }), 8 * MiB);
  assert.deepEqual(stale, { ok: false, detail: '1 of 1 extent group(s) recorded, 0 with RF2 in sync on distinct nodes and none stale; extent group 0 in sync on a, b, stale on c' });
  assert.match(checkPlacement(map({ egroup: 0, replicas: [at('a'), at('a')], stale: [] }), 8 * MiB).detail, /extent group 0 in sync on a, a$/);
  assert.equal(checkPlacement(map({ egroup: 0, replicas: [at('a')], stale: [] }), 8 * MiB).ok, false, 'one replica at RF2');
});
