import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EGROUP_BYTES, EXTENT_BYTES, EXTENT_HEADER_BYTES } from './layout.ts';
import { committedBytes, egroupReserve, placeEgroup } from './place.ts';
import type { SpaceDisk } from './ports.ts';
import { PoolFullError, UnavailableError } from '../../../shared/errors.ts';

const MiB = 1 << 20;

test('an extent group reserves its full size (data and headers), the last one of a vdisk only up to the vdisk\'s end', () => {
  assert.equal(egroupReserve(10 * EGROUP_BYTES, 3), EGROUP_BYTES + 128 * EXTENT_HEADER_BYTES);
  assert.equal(egroupReserve(EGROUP_BYTES + 5 * MiB + 1, 1), 5 * MiB + 1 + 6 * EXTENT_HEADER_BYTES);
  assert.equal(egroupReserve(16 * MiB, 0), 16 * MiB + 16 * EXTENT_HEADER_BYTES);
  assert.equal(egroupReserve(16 * MiB, 1), 0);
});

test('committed bytes per disk count in-sync and stale replicas; a vdisk of unknown size counts whole extent groups', () => {
  const loc = (d: string): { node: string; cvmIp: string; disk: string } => ({ node: d, cvmIp: '', disk: d });
  const got = committedBytes([
    { vdisk: 'small', egroup: 0, record: { replicas: [loc('a'), loc('b')], stale: [] } },
    { vdisk: 'big', egroup: 0, record: { replicas: [loc('a')], stale: [loc('c')] } },
    { vdisk: 'gone', egroup: 2, record: { replicas: [loc('b')], stale: [] } },
  ], (v) => ({ small: 16 * MiB, big: 4 * EGROUP_BYTES } as Record<string, number>)[v]);
  const full = EGROUP_BYTES + 128 * EXTENT_HEADER_BYTES;
  const small = 16 * (EXTENT_BYTES + EXTENT_HEADER_BYTES);
  assert.deepEqual(Object.fromEntries(got), { a: small + full, b: small + full, c: full });
});

test('placement needs the reserve free: a disk with room for 1 MiB but not the extent group is skipped', () => {
  const d = (serial: string, node: string, free: number): SpaceDisk => ({ serial, node, cvmIp: node, freeBytes: free, ok: true, media: 'ssd' });
  const need = egroupReserve(4 * EGROUP_BYTES, 0);
  const disks = [d('a1', 'a', need - 1), d('b1', 'b', need), d('c1', 'c', 10 * need)];
  assert.deepEqual(placeEgroup(disks, 'a', 2, need).map((l) => l.disk).sort(), ['b1', 'c1'], 'not on the writer\'s full disk');
  assert.throws(() => placeEgroup(disks, 'a', 3, need), (e: unknown) => e instanceof PoolFullError && /pool is full.*only 2 node\(s\)/.test(e.message), 'three nodes with healthy disks, one without room: full');
  // too few nodes with a healthy disk at all: a passing fault (a node or disk down), not a full pool
  const down = [d('b1', 'b', 10 * need), { ...d('c1', 'c', 10 * need), ok: false }];
  assert.throws(() => placeEgroup(down, 'a', 2, need), (e: unknown) => e instanceof UnavailableError && !(e instanceof PoolFullError));
});
