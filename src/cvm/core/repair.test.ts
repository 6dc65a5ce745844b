import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planRepairs, classify, anythingLost, type EgroupRecord, type PeerView } from './repair.ts';
import type { Replica } from './placement.ts';

const r = (node: string, disk: string): Replica => ({ node, cvmIp: `ip-${node}`, disk });
const rec = (block: number, ...replicas: Replica[]): EgroupRecord => ({ key: `/k/${block}`, vdisk: 'v', block, replicas });
const view = (failed: string[], down: [string, number][] = []): PeerView => ({ failedDisks: new Set(failed), downSince: new Map(down) });

test('a replica on a failed disk is lost; the first good replica\'s CVM restores it', () => {
  const recs = [rec(0, r('A', 'a1'), r('B', 'b1')), rec(1, r('B', 'b1'), r('A', 'a1')), rec(2, r('A', 'a2'), r('C', 'c1'))];
  const onA = planRepairs(recs, view(['b1']), 'A', 0, 60_000);
  assert.deepEqual(onA.mine.map((w) => w.block), [0, 1], 'A holds the only good replica of blocks 0 and 1');
  assert.deepEqual(onA.mine[1]!.lost, [r('B', 'b1')]);
  assert.deepEqual(onA.mine[1]!.good, [r('A', 'a1')]);
  const onB = planRepairs(recs, view(['b1']), 'B', 0, 60_000);
  assert.equal(onB.mine.length, 0, 'B restores nothing: its replica is the lost one');
  assert.equal(onB.others, 2);
});

test('exactly one CVM restores each extent group', () => {
  const recs = [rec(0, r('A', 'a1'), r('B', 'b1'), r('C', 'c1')), rec(1, r('C', 'c1'), r('B', 'b2'), r('A', 'a1'))];
  const v = view(['b1', 'b2']);
  const counts = ['A', 'B', 'C'].map((n) => planRepairs(recs, v, n, 0, 1000).mine.map((w) => w.block));
  assert.deepEqual(counts, [[0], [], [1]]);
});

test('a node down within the grace period is waited for; past it, its replicas are lost', () => {
  const recs = [rec(0, r('A', 'a1'), r('B', 'b1'))];
  const v = view([], [['B', 1000]]);
  const early = planRepairs(recs, v, 'A', 1000 + 59_999, 60_000);
  assert.equal(early.mine.length, 0);
  assert.equal(early.waiting, 1);
  assert.equal(anythingLost(v, 1000 + 59_999, 60_000), false);
  const late = planRepairs(recs, v, 'A', 1000 + 60_000, 60_000);
  assert.deepEqual(late.mine.map((w) => w.lost), [[r('B', 'b1')]]);
  assert.equal(anythingLost(v, 1000 + 60_000, 60_000), true);
});

test('an extent group with no good replica left is stranded, or waits while a node may return', () => {
  const recs = [rec(0, r('A', 'a1'), r('B', 'b1')), rec(1, r('A', 'a1'), r('C', 'c1'))];
  const p = planRepairs(recs, view(['a1', 'b1'], [['C', 0]]), 'B', 10, 60_000);
  assert.deepEqual(p.stranded.map((x) => x.block), [0]);
  assert.equal(p.waiting, 1, 'block 1 waits for C');
  assert.equal(p.mine.length, 0);
});

test('healthy replicas need nothing', () => {
  const c = classify(view([]), [r('A', 'a1'), r('B', 'b1')], 0, 1);
  assert.deepEqual(c, { good: [r('A', 'a1'), r('B', 'b1')], lost: [], unreachable: [] });
  assert.equal(planRepairs([rec(0, r('A', 'a1'))], view([]), 'A', 0, 1).mine.length, 0);
  assert.equal(anythingLost(view([]), 0, 1), false);
});

test('a record with fewer replicas than its RF (a write dropped one) is restored by its first good replica\'s CVM', () => {
  const short: EgroupRecord = { ...rec(0, r('A', 'a1')), rf: 2 };
  const full: EgroupRecord = { ...rec(1, r('A', 'a1'), r('B', 'b1')), rf: 2 };
  const p = planRepairs([short, full], view([]), 'A', 0, 60_000);
  assert.deepEqual(p.mine.map((w) => [w.block, w.lost.length, w.good.length]), [[0, 0, 1]]);
  assert.equal(planRepairs([short], view([]), 'B', 0, 60_000).others, 1);
  // a node declared down: lost at once (grace 0)
  const d = planRepairs([full], view([], [['B', 5]]), 'A', 5, 0);
  assert.deepEqual(d.mine.map((w) => w.lost), [[r('B', 'b1')]]);
});
