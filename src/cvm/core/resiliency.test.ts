import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memberHealthOf, memberState, resiliencyOf, type StoredEgroup } from './resiliency.ts';
import type { Container, Vdisk } from './storage.ts';
import type { MemberHealth } from '../protocol/cluster.ts';

const ID = 'c-1';
const c = (name: string, rf: 1 | 2 | 3): Container => ({ name, replicationFactor: rf, createdAt: '' });
const v = (name: string, container: string, uuid: string): Vdisk => ({ name, container, uuid, sizeBytes: 1 << 30, createdAt: '' });
const up = (node: string, disks: Record<string, boolean>): MemberHealth => ({ node, cvmIp: `10.0.0.${node}`, state: 'up', detail: '', disks: Object.entries(disks).map(([serial, ok]) => ({ serial, ok })) });
const loc = (r: string): { node: string; cvmIp: string; disk: string } => ({ node: r.split('/')[0] ?? '', cvmIp: '', disk: r.split('/')[1] ?? '' });
/** An extent group's record: in-sync replicas as `node/disk`, stale ones as `~node/disk`. */
const rec = (vdisk: string, egroup: number, ...reps: string[]): StoredEgroup => ({
  vdisk, egroup, record: { replicas: reps.filter((r) => !r.startsWith('~')).map(loc), stale: reps.filter((r) => r.startsWith('~')).map((r) => loc(r.slice(1))) },
});
const members = [up('A', { a1: true, a2: true }), up('B', { b1: true }), up('C', { c1: true })];
const containers = [c('gold', 2), c('scratch', 1)];
const vdisks = [v('d1', 'gold', 'u1'), v('d2', 'scratch', 'u2')];

test('a member is up only when it answers as a member of this cluster', () => {
  assert.equal(memberState(ID, null), 'down');
  assert.equal(memberState(ID, { configured: false, clusterId: null }), 'unconfigured');
  assert.equal(memberState(ID, { configured: true, clusterId: 'c-2' }), 'other-cluster');
  assert.equal(memberState(ID, { configured: true, clusterId: ID }), 'up');
  const destroyed = memberHealthOf(ID, { serial: 'B', cvmIp: '10.0.0.2' }, { configured: false, clusterId: null, cluster: null, disks: [{ serial: 'b1', ok: true }] });
  assert.deepEqual([destroyed.state, destroyed.disks], ['unconfigured', []], 'its disks hold nothing of this cluster');
  assert.match(destroyed.detail, /no longer a member/);
  assert.match(memberHealthOf(ID, { serial: 'B', cvmIp: '1' }, null, 'ECONNREFUSED').detail, /does not answer \(ECONNREFUSED\)/);
  assert.match(memberHealthOf(ID, { serial: 'B', cvmIp: '1' }, { configured: true, clusterId: 'c-2', cluster: { name: 'solo' }, disks: [] }).detail, /another cluster \(solo c-2\)/);
});

test('every extent group with usable in-sync replicas on its RF distinct nodes and none stale: OK', () => {
  const r = resiliencyOf([rec('u1', 0, 'A/a1', 'B/b1'), rec('u1', 1, 'C/c1', 'A/a2'), rec('u2', 0, 'B/b1')], vdisks, containers, members, 2);
  assert.equal(r.ok, true);
  assert.deepEqual([r.extentGroups, r.atRf, r.belowRf, r.unavailable], [3, 3, 0, 0]);
  assert.deepEqual(r.containers.map((x) => [x.name, x.replicationFactor, x.extentGroups, x.belowRf]), [['gold', 2, 2, 0], ['scratch', 1, 1, 0]]);
  assert.deepEqual(r.examples, []);
});

test('no records at all is OK (nothing written yet), and containers are listed with none', () => {
  const r = resiliencyOf([], vdisks, containers, members, 2);
  assert.equal(r.ok, true);
  assert.deepEqual(r.containers.map((x) => x.extentGroups), [0, 0]);
});

test('a failed disk, a CVM that does not answer, and a destroyed member each take their replicas out of the count', () => {
  const ms = [up('A', { a1: false, a2: true }), { ...up('B', {}), state: 'down' as const, detail: 'does not answer' }, { ...up('C', {}), state: 'unconfigured' as const }];
  const r = resiliencyOf([
    rec('u1', 0, 'A/a1', 'A/a2'), // failed disk, and a second replica on the same node: 1 usable node
    rec('u1', 1, 'A/a2', 'B/b1'), // B down
    rec('u1', 2, 'C/c1', 'B/b1'), // none usable
    rec('u2', 0, 'A/a2'), // RF1: fine
  ], vdisks, containers, ms, 2);
  assert.equal(r.ok, false);
  assert.deepEqual([r.extentGroups, r.atRf, r.belowRf, r.unavailable], [4, 1, 3, 1]);
  assert.deepEqual(r.failedDisks, [{ node: 'A', serial: 'a1' }]);
  assert.deepEqual(r.examples.map((e) => [e.vdisk, e.egroup, e.usable]), [['d1', 0, 1], ['d1', 1, 1], ['d1', 2, 0]]);
  assert.deepEqual(r.examples[0]?.missing, ['A/a1: disk failed']);
  assert.deepEqual(r.examples[1]?.missing, ['B/b1: CVM 10.0.0.B does not answer']);
  assert.deepEqual(r.examples[2]?.missing, ['C/c1: CVM 10.0.0.C is unconfigured', 'B/b1: CVM 10.0.0.B does not answer']);
  assert.deepEqual(r.containers.find((x) => x.name === 'gold')?.belowRf, 3);
});

test('two replicas on one node count once; a short record, an unknown disk or node is below RF', () => {
  const r = resiliencyOf([rec('u1', 0, 'A/a1', 'A/a2'), rec('u1', 1, 'B/b1'), rec('u1', 2, 'B/b9', 'C/c1'), rec('u1', 3, 'Z/z1', 'C/c1')], vdisks, containers, members, 2);
  assert.equal(r.belowRf, 4);
  assert.deepEqual(r.examples.map((e) => e.missing), [
    ['A/a2: a second replica on node A'],
    ['the record lists 1 of 2 in-sync replicas'],
    ['B/b9: disk not reported by its CVM'],
    ['Z/z1: Z is not a member'],
  ]);
});

test('records of no known vdisk are not counted; an unknown container takes the cluster RF; at most 5 examples', () => {
  const r = resiliencyOf([rec('gone', 0, 'A/a1'), ...[0, 1, 2, 3, 4, 5, 6].map((b) => rec('u3', b, 'A/a1'))], [...vdisks, v('d3', 'lost', 'u3')], containers, members, 2);
  assert.equal(r.strayRecords, 1);
  assert.deepEqual([r.extentGroups, r.belowRf, r.examples.length], [7, 7, 5]);
  assert.equal(r.examples[0]?.replicationFactor, 2);
});

test('a stale replica: never OK, counted as being restored, even with RF usable in-sync replicas', () => {
  const r = resiliencyOf([
    rec('u1', 0, 'A/a1', 'B/b1', '~C/c1'), // RF in sync, a third being rebuilt: still not OK
    rec('u1', 1, 'A/a1', '~B/b1'), // missed a write: one in sync
    rec('u1', 2, '~A/a1', '~B/b1'), // nothing in sync: unavailable
    rec('u1', 3, 'A/a1', 'C/c1'),
    rec('u2', 0, 'B/b1', '~A/a2'), // RF1 with a stale replica: not OK either
  ], vdisks, containers, members, 2);
  assert.equal(r.ok, false);
  assert.deepEqual([r.extentGroups, r.atRf, r.belowRf, r.unavailable, r.restoring], [5, 1, 4, 1, 4]);
  assert.deepEqual(r.examples.map((e) => [e.egroup, e.usable, e.stale]), [[0, 2, 1], [1, 1, 1], [2, 0, 2], [0, 1, 1]]);
  assert.deepEqual(r.examples[0]?.missing, ['C/c1: stale (being restored)']);
  assert.deepEqual(r.examples[1]?.missing, ['the record lists 1 of 2 in-sync replicas', 'B/b1: stale (being restored)']);
  assert.deepEqual(r.containers.map((x) => [x.name, x.belowRf]), [['gold', 3], ['scratch', 1]]);
});

test('a stale replica never counts toward RF, even on a node and disk that are up', () => {
  const r = resiliencyOf([rec('u1', 0, 'A/a1', '~B/b1'), rec('u1', 1, 'A/a1', 'A/a2', '~B/b1')], vdisks, containers, members, 2);
  assert.deepEqual(r.examples.map((e) => e.usable), [1, 1]);
  assert.equal(r.unavailable, 0);
});
