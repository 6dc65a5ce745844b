import { test } from 'node:test';
import assert from 'node:assert/strict';
import { placeReplicas, checkPoolSpace, type DiskSpace } from './placement.ts';
import { DiskFullError, UnavailableError } from '../../shared/errors.ts';

const d = (serial: string, node: string, freeBytes: number, ok = true): DiskSpace => ({ serial, node, cvmIp: `ip-${node}`, freeBytes, ok });
const disks = [d('a1', 'A', 10), d('a2', 'A', 50), d('b1', 'B', 30), d('b2', 'B', 5), d('c1', 'C', 100), d('d1', 'D', 1)];

test('the first replica is local, on the freest local disk; the others on distinct nodes, freest first', () => {
  assert.deepEqual(placeReplicas(disks, 'A', 2, 1), [{ node: 'A', cvmIp: 'ip-A', disk: 'a2' }, { node: 'C', cvmIp: 'ip-C', disk: 'c1' }]);
  const three = placeReplicas(disks, 'B', 3, 1);
  assert.deepEqual(three.map((r) => r.disk), ['b1', 'c1', 'a2']);
  assert.equal(new Set(three.map((r) => r.node)).size, 3, 'distinct nodes');
});

test('failed or full disks are skipped; a writer with no usable disk still gets RF remote replicas', () => {
  const some = [d('a1', 'A', 10, false), d('b1', 'B', 30), d('c1', 'C', 2), d('c2', 'C', 40)];
  assert.deepEqual(placeReplicas(some, 'A', 2, 20).map((r) => r.disk), ['c2', 'b1']);
});

test('not enough nodes for the RF: unavailable, with the reason', () => {
  assert.throws(() => placeReplicas([d('a1', 'A', 10), d('a2', 'A', 10)], 'A', 2, 1), (e: unknown) => e instanceof UnavailableError && /only 1 node/.test(e.message));
  assert.throws(() => placeReplicas(disks, 'A', 2, 1000), UnavailableError);
});

test('a pool 95 % full takes no new extent groups; failed disks do not count', () => {
  const cap = (): number => 100;
  checkPoolSpace([d('a', 'A', 10), d('b', 'B', 10)], cap);
  assert.throws(() => checkPoolSpace([d('a', 'A', 5), d('b', 'B', 4)], cap), DiskFullError);
  checkPoolSpace([d('a', 'A', 50), d('b', 'B', 0, false)], cap);
});

test('an SSD with room is preferred on each node, freest SSD first; a full SSD gives way to the HDDs', () => {
  const m = (serial: string, node: string, freeBytes: number, mediaType: string, capacityBytes = 100): DiskSpace => ({ ...d(serial, node, freeBytes), mediaType, capacityBytes });
  const pool = [m('a-hdd', 'A', 90, 'HDD'), m('a-ssd', 'A', 40, 'SSD'), m('b-hdd', 'B', 100, 'HDD'), m('b-ssd1', 'B', 50, 'SSD'), m('b-ssd2', 'B', 60, 'SSD')];
  assert.deepEqual(placeReplicas(pool, 'A', 2, 1).map((r) => r.disk), ['a-ssd', 'b-ssd2']);
  // a-ssd at 95 % used: past the fill mark, the HDD takes it
  const full = [m('a-hdd', 'A', 90, 'HDD'), m('a-ssd', 'A', 5, 'SSD'), m('b-hdd', 'B', 100, 'HDD')];
  assert.deepEqual(placeReplicas(full, 'A', 2, 1).map((r) => r.disk), ['a-hdd', 'b-hdd']);
  // media unknown: as before (freest)
  assert.deepEqual(placeReplicas([d('x1', 'A', 10), d('x2', 'A', 20)], 'A', 1, 1).map((r) => r.disk), ['x2']);
});
