import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diskUsage, movableShare, planBalance, type BalanceDisk, type BalanceRecord, type EgroupMove } from './balance.ts';
import { EGROUP_BYTES, type ReplicaLocation } from './layout.ts';
import type { Media } from './ports.ts';

const loc = (node: string, disk: string): ReplicaLocation => ({ node, cvmIp: `ip-${node}`, disk });
/** Capacity in extent groups. */
const disk = (serial: string, node: string, egroups = 100, media: Media = 'hdd'): BalanceDisk => ({ serial, node, cvmIp: `ip-${node}`, capacityBytes: egroups * EGROUP_BYTES, media });
const recs = (vdisk: string, n: number, ...replicas: ReplicaLocation[]): BalanceRecord[] => Array.from({ length: n }, (_x, i) => ({ vdisk, egroup: i, record: { replicas, stale: [] } }));
const all = (): boolean => true;

function after(records: BalanceRecord[], moves: EgroupMove[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of records) {
    const mv = moves.find((x) => x.vdisk === r.vdisk && x.egroup === r.egroup);
    for (const l of r.record.replicas) {
      const d = mv && l.disk === mv.from.disk ? mv.to.disk : l.disk;
      m.set(d, (m.get(d) ?? 0) + 1);
    }
  }
  return m;
}

test('a node back empty: second replicas move onto it until the disks are even; first replicas stay', () => {
  const records = recs('v', 60, loc('A', 'a1'), loc('B', 'b1'));
  const disks = [disk('a1', 'A'), disk('b1', 'B'), disk('c1', 'C')];
  const moves = planBalance(records, disks, { movable: all, maxMoves: 1000 });
  assert.ok(moves.length > 0);
  assert.ok(moves.every((m) => m.from.disk === 'b1' && m.to.disk === 'c1'), 'from B to C only');
  assert.equal(new Set(moves.map((m) => m.egroup)).size, moves.length, 'one move per record');
  const u = after(records, moves);
  assert.equal(u.get('a1'), 60, 'the writer keeps its replicas (locality)');
  assert.equal(u.get('b1'), 30);
  assert.equal(u.get('c1'), 30);
});

test('only the vdisks this CVM may move are planned', () => {
  const records = [...recs('mine', 30, loc('A', 'a1'), loc('B', 'b1')), ...recs('theirs', 30, loc('A', 'a1'), loc('B', 'b1'))];
  const disks = [disk('a1', 'A'), disk('b1', 'B'), disk('c1', 'C')];
  const moves = planBalance(records, disks, { movable: (v) => v === 'mine', maxMoves: 1000 });
  assert.ok(moves.length > 0 && moves.every((m) => m.vdisk === 'mine'));
  assert.deepEqual(planBalance(records, disks, { movable: () => false }), []);
});

test('within the band nothing moves; the cap on moves per plan holds', () => {
  const disks = [disk('a1', 'A'), disk('b1', 'B'), disk('c1', 'C')];
  const even = [...recs('x', 10, loc('A', 'a1'), loc('B', 'b1')), ...recs('y', 10, loc('B', 'b1'), loc('C', 'c1')), ...recs('z', 10, loc('C', 'c1'), loc('A', 'a1'))];
  assert.deepEqual(planBalance(even, disks, { movable: all }), []);
  assert.equal(planBalance(recs('v', 60, loc('A', 'a1'), loc('B', 'b1')), disks, { movable: all, maxMoves: 5 }).length, 5);
});

test('usage is a fraction of capacity; among equally empty disks the SSD is chosen first; a node holding a replica is never a target', () => {
  const disks = [disk('a1', 'A'), disk('b1', 'B'), disk('c1', 'C', 100, 'hdd'), disk('c2', 'C', 100, 'ssd'), disk('a2', 'A')];
  const moves = planBalance(recs('v', 40, loc('A', 'a1'), loc('B', 'b1')), disks, { movable: all, maxMoves: 1 });
  assert.equal(moves[0]?.to.disk, 'c2');
  const many = planBalance(recs('v', 40, loc('A', 'a1'), loc('B', 'b1')), disks, { movable: all, maxMoves: 1000 });
  assert.ok(many.every((m) => m.to.node !== 'A'), 'A holds the first replica of every record');
  const big = [disk('a1', 'A', 100), disk('b1', 'B', 100), disk('c1', 'C', 200)];
  const records = recs('v', 90, loc('A', 'a1'), loc('B', 'b1'));
  const u = after(records, planBalance(records, big, { movable: all, maxMoves: 1000 }));
  assert.ok((u.get('c1') ?? 0) > (u.get('b1') ?? 0), `c1 ${u.get('c1')} b1 ${u.get('b1')}`);
});

test('records with a stale replica or a replica on an unknown disk (a node down) are left to the repair loop', () => {
  const disks = [disk('a1', 'A'), disk('c1', 'C'), disk('d1', 'D')];
  assert.deepEqual(planBalance(recs('v', 10, loc('A', 'a1'), loc('B', 'b1')), disks, { movable: all }), []);
  const stale: BalanceRecord[] = recs('v', 10, loc('A', 'a1'), loc('C', 'c1')).map((r) => ({ ...r, record: { ...r.record, stale: [loc('D', 'd1')] } }));
  assert.deepEqual(planBalance(stale, [...disks, disk('e1', 'E')], { movable: all }), []);
  assert.equal(diskUsage(stale, disks).get('d1'), 10 / 100, 'stale replicas count where they are');
});

test('two CVMs planning at once against the same usage fill a returned node once between them, not once each', () => {
  const records = [...recs('x', 30, loc('A', 'a1'), loc('B', 'b1')), ...recs('y', 30, loc('B', 'b1'), loc('A', 'a1'))];
  const disks = [disk('a1', 'A'), disk('b1', 'B'), disk('c1', 'C')];
  const planOf = (mine: string): EgroupMove[] => {
    const movable = (v: string): boolean => v === mine;
    return planBalance(records, disks, { movable, maxMoves: 1000, share: movableShare(records, movable) });
  };
  assert.equal(movableShare(records, (v) => v === 'x'), 0.5);
  const both = [...planOf('x'), ...planOf('y')];
  const u = after(records, both);
  // 120 replicas over 3 disks of 100: the mean is 40; alone, each CVM would have moved about 30
  assert.ok((u.get('c1') ?? 0) >= 36 && (u.get('c1') ?? 0) <= 42, `c1 holds ${u.get('c1')}`);
  assert.ok(planBalance(records, disks, { movable: (v) => v === 'x', maxMoves: 1000 }).length >= 28, 'alone (share 1) one CVM fills it by itself');
});
