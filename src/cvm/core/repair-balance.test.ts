import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planRebalance, type BalanceDisk } from './repair-balance.ts';
import type { EgroupRecord } from './repair.ts';
import type { Replica } from './placement.ts';

const r = (node: string, disk: string): Replica => ({ node, cvmIp: `ip-${node}`, disk });
const disk = (serial: string, node: string, capacityBytes = 100, mediaType = 'HDD'): BalanceDisk => ({ serial, node, cvmIp: `ip-${node}`, capacityBytes, mediaType });
const recs = (n: number, ...reps: Replica[]): EgroupRecord[] => Array.from({ length: n }, (_x, i) => ({ key: `/k/${i}`, vdisk: 'v', block: i, replicas: reps }));
const usage = (records: EgroupRecord[], moves: ReturnType<typeof planRebalance>): Map<string, number> => {
  const m = new Map<string, number>();
  const after = records.map((x) => {
    const mv = moves.find((y) => y.key === x.key);
    return mv ? x.replicas.map((z) => (z.disk === mv.from.disk ? mv.to : z)) : x.replicas;
  });
  for (const reps of after) for (const z of reps) m.set(z.disk, (m.get(z.disk) ?? 0) + 1);
  return m;
};

test('a node back empty: second replicas move onto it until the movable disks are even; first replicas stay', () => {
  const records = recs(60, r('A', 'a1'), r('B', 'b1'));
  const disks = [disk('a1', 'A'), disk('b1', 'B'), disk('c1', 'C')];
  const moves = planRebalance(records, disks, 'A', { unitBytes: 1, maxMoves: 1000 });
  assert.ok(moves.every((m) => m.from.disk === 'b1' && m.to.disk === 'c1'), 'from B to C only');
  assert.equal(new Set(moves.map((m) => m.key)).size, moves.length, 'one move per record');
  const u = usage(records, moves);
  assert.equal(u.get('a1'), 60, 'the writer keeps its replicas (locality)');
  assert.equal(u.get('b1'), 30);
  assert.equal(u.get('c1'), 30);
  assert.deepEqual(planRebalance(records, disks, 'B', { unitBytes: 1 }), [], 'B moves nothing: A is the first replica of every record');
});

test('within the band nothing moves; the cap on moves per plan holds', () => {
  const disks = [disk('a1', 'A'), disk('b1', 'B'), disk('c1', 'C')];
  const even = [...recs(10, r('A', 'a1'), r('B', 'b1')), ...recs(10, r('B', 'b1'), r('C', 'c1')).map((x) => ({ ...x, key: `${x.key}x` })), ...recs(10, r('C', 'c1'), r('A', 'a1')).map((x) => ({ ...x, key: `${x.key}y` }))];
  assert.deepEqual(planRebalance(even, disks, 'A', { unitBytes: 1 }), []);
  assert.equal(planRebalance(recs(60, r('A', 'a1'), r('B', 'b1')), disks, 'A', { unitBytes: 1, maxMoves: 5 }).length, 5);
});

test('usage is a fraction of capacity; among equally empty disks the SSD is chosen first', () => {
  const disks = [disk('a1', 'A', 100), disk('b1', 'B', 100), disk('c1', 'C', 100, 'HDD'), disk('c2', 'C', 100, 'SSD')];
  const moves = planRebalance(recs(40, r('A', 'a1'), r('B', 'b1')), disks, 'A', { unitBytes: 1, maxMoves: 1 });
  assert.equal(moves[0]?.to.disk, 'c2');
  // a disk twice as large takes twice as much
  const big = [disk('a1', 'A', 100), disk('b1', 'B', 100), disk('c1', 'C', 200)];
  const u = usage(recs(90, r('A', 'a1'), r('B', 'b1')), planRebalance(recs(90, r('A', 'a1'), r('B', 'b1')), big, 'A', { unitBytes: 1, maxMoves: 1000 }));
  assert.ok((u.get('c1') ?? 0) > 2 * ((u.get('b1') ?? 0) - 10), `c1 ${u.get('c1')} b1 ${u.get('b1')}`);
});

test('records with a replica on an unknown disk (a node down) are left to the repair loop', () => {
  const disks = [disk('a1', 'A'), disk('c1', 'C')];
  assert.deepEqual(planRebalance(recs(10, r('A', 'a1'), r('B', 'b1')), disks, 'A', { unitBytes: 1 }), []);
});
