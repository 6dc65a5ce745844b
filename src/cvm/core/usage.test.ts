import { test } from 'node:test';
import assert from 'node:assert/strict';
import { usageOf } from './usage.ts';
import { poolOf, type Container, type Vdisk } from './storage.ts';

const MiB = 1 << 20;

const GiB = 1024 ** 3;
const pool = poolOf([
  { serial: 'a1', node: 'A', cvmIp: '1', mediaType: 'SSD', capacityBytes: 10 * GiB },
  { serial: 'a2', node: 'A', cvmIp: '1', mediaType: 'HDD', capacityBytes: 20 * GiB },
  { serial: 'b1', node: 'B', cvmIp: '2', mediaType: 'SSD', capacityBytes: 30 * GiB },
]);
const c = (name: string, rf: 1 | 2 | 3): Container => ({ name, replicationFactor: rf, createdAt: '' });
const v = (name: string, container: string, uuid: string, sizeBytes = GiB): Vdisk => ({ name, container, uuid, sizeBytes, createdAt: '' });

test('disks, nodes and the pool add up; a failed disk offers no free space', () => {
  const live = new Map([['a1', { usedBytes: 1 * GiB, ok: true }], ['a2', { usedBytes: 2 * GiB, ok: false }], ['b1', { usedBytes: 3 * GiB, ok: true }]]);
  const u = usageOf(pool, live, [], []);
  assert.equal(u.capacityBytes, 60 * GiB);
  assert.equal(u.usedBytes, 6 * GiB);
  assert.equal(u.freeBytes, 9 * GiB + 27 * GiB, 'a2 failed: its free space does not count');
  assert.equal(u.healthyCapacityBytes, 40 * GiB);
  assert.deepEqual(u.nodes.map((n) => [n.node, n.capacityBytes / GiB, n.usedBytes / GiB, n.disks, n.failedDisks]), [['A', 30, 3, 2, 1], ['B', 30, 3, 1, 0]]);
});

test('a container costs the bytes its vdisks take on the healthy disks; logical is that over its RF', () => {
  const live = new Map([
    ['a1', { usedBytes: 0, ok: true, vdiskBytes: { u1: 3 * MiB, u2: MiB, gone: 9 * MiB } }],
    ['a2', { usedBytes: 0, ok: true, vdiskBytes: { u3: 2 * MiB } }],
    ['b1', { usedBytes: 0, ok: true, vdiskBytes: { u1: 3 * MiB, u3: MiB } }],
  ]);
  const u = usageOf(pool, live, [c('gold', 2), c('scratch', 1)], [v('d1', 'gold', 'u1'), v('d3', 'gold', 'u3', 2 * GiB), v('d2', 'scratch', 'u2')]);
  const gold = u.containers.find((x) => x.name === 'gold')!;
  assert.equal(gold.vdisks, 2);
  assert.equal(gold.provisionedBytes, 3 * GiB);
  assert.equal(gold.physicalBytes, 9 * MiB);
  assert.equal(gold.logicalBytes, Math.floor(4.5 * MiB), 'one extent of u3 is down to one replica: logical is physical / RF');
  const scratch = u.containers.find((x) => x.name === 'scratch')!;
  assert.deepEqual([scratch.logicalBytes, scratch.physicalBytes], [MiB, MiB]);
  assert.deepEqual(u.uncountedDisks, []);
});

test('a failed disk\'s bytes do not count; a disk whose CVM did not say is listed as uncounted', () => {
  const live = new Map([
    ['a1', { usedBytes: 0, ok: false, vdiskBytes: { u1: 3 * MiB } }],
    ['b1', { usedBytes: 0, ok: true, vdiskBytes: { u1: 3 * MiB } }],
  ]);
  const u = usageOf(pool, live, [c('gold', 2)], [v('d1', 'gold', 'u1')]);
  assert.deepEqual([u.containers[0]?.physicalBytes, u.containers[0]?.logicalBytes], [3 * MiB, 1.5 * MiB]);
  assert.deepEqual(u.uncountedDisks, ['a2'], 'a2: not reported (healthy, unknown)');
});
