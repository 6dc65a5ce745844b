import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resiliency, type EgroupInput } from './resiliency.ts';
import { placeEgroup } from './place.ts';
import type { SpaceDisk } from './ports.ts';

const loc = (node: string) => ({ node, cvmIp: `ip-${node}`, disk: `${node}-d` });
const input = (replicas: string[], stale: string[], digests: Record<string, string | null>, down: string[] = []): EgroupInput => ({
  vdisk: 'vd', egroup: 0, record: { replicas: replicas.map(loc), stale: stale.map(loc) },
  states: [...replicas, ...stale].map((n) => ({ loc: loc(n), reachable: !down.includes(n), digest: digests[n] ?? null })),
});

test('resiliency is OK only with RF identical in-sync replicas on distinct reachable nodes and nothing stale', () => {
  assert.equal(resiliency([input(['a', 'b'], [], { a: 'x', b: 'x' })], 2).ok, true);
  const cases: [EgroupInput, string, RegExp][] = [
    [input(['a', 'b'], [], { a: 'x', b: 'y' }), 'degraded', /differ/],
    [input(['a'], [], { a: 'x' }), 'degraded', /RF 2/],
    [input(['a', 'b'], ['c'], { a: 'x', b: 'x', c: 'old' }), 'degraded', /stale/],
    [input(['a', 'b'], [], { a: 'x', b: 'x' }, ['b']), 'degraded', /RF 2/],
    [input(['a', 'b'], [], { a: 'x', b: 'x' }, ['a', 'b']), 'unavailable', /no in-sync/],
    [input(['a', 'b'], [], { a: 'x' }), 'degraded', /unknown/],
  ];
  for (const [i, status, reason] of cases) {
    const r = resiliency([i], 2);
    assert.equal(r.ok, false);
    assert.equal(r.egroups[0]!.status, status);
    assert.match(r.egroups[0]!.reason, reason);
  }
});

test('placement: local first, SSDs preferred on every node, distinct nodes, exclusions honoured', () => {
  const disks: SpaceDisk[] = ['a', 'b', 'c'].flatMap((n) => [
    { serial: `${n}-hdd`, node: n, cvmIp: n, freeBytes: 900, ok: true, media: 'hdd' as const },
    { serial: `${n}-ssd`, node: n, cvmIp: n, freeBytes: 100, ok: n !== 'c', media: 'ssd' as const },
  ]);
  assert.deepEqual(placeEgroup(disks, 'b', 2, 10).map((l) => l.disk), ['b-ssd', 'a-ssd']);
  assert.deepEqual(placeEgroup(disks, 'b', 2, 10, ['a']).map((l) => l.disk), ['b-ssd', 'c-hdd']);
  assert.deepEqual(placeEgroup(disks, 'b', 2, 200).map((l) => l.disk), ['b-hdd', 'a-hdd']);
  assert.throws(() => placeEgroup(disks, 'a', 4, 10), /cannot place 4/);
});
