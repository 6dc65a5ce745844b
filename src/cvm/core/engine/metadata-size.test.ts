import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EGROUP_BYTES, EXTENT_BYTES, KEYS } from './layout.ts';
import { expectedDistinct, GIB, LAB_NAMING, simulateMetadata, storedBytes, TIB, touched } from './metadata-size.ts';

test('a stored record counts its key and its JSON value in UTF-8 bytes', () => {
  assert.equal(storedBytes('/k', { a: 'é' }), 2 + Buffer.byteLength('{"a":"é"}'));
});

test('expected distinct cells: none, one draw, saturation, and the closed form', () => {
  assert.equal(expectedDistinct(100, 0), 0);
  assert.ok(Math.abs(expectedDistinct(100, 1) - 1) < 1e-9);
  assert.ok(expectedDistinct(100, 1e6) > 99.999);
  assert.ok(Math.abs(expectedDistinct(10, 5) - 10 * (1 - 0.9 ** 5)) < 1e-9);
  // accurate for huge cell counts, where 1 - 1/cells rounds badly
  assert.ok(Math.abs(expectedDistinct(2 ** 40, 1000) - 1000) < 1e-3);
});

test('sequential writes touch whole extent groups; sparse 4 KiB writes touch one each while they rarely collide', () => {
  assert.deepEqual(touched(TIB, GIB, 'sequential'), { egroups: 8, extents: 1024 });
  assert.deepEqual(touched(TIB, EGROUP_BYTES + 1, 'sequential'), { egroups: 2, extents: 129 });
  const r = touched(64 * TIB, 4096 * 1000, 'random');
  // 1,000 writes over 524,288 extent groups: about one collision
  assert.ok(r.egroups >= 998 && r.egroups <= 1000, String(r.egroups));
  assert.ok(r.extents >= r.egroups && r.extents <= 1000, String(r.extents));
});

test('1 TiB written sequentially is 8,192 extent-group records, placed RF times on distinct nodes, balanced', () => {
  const r = simulateMetadata({ nodes: 4, disksPerNode: 2, diskBytes: TIB, rf: 2 }, { writtenBytes: TIB, vdiskBytes: 256 * GIB, pattern: 'sequential' });
  assert.equal(r.vdisks, 4);
  assert.equal(r.egroupKeys, TIB / EGROUP_BYTES);
  assert.equal(r.keys, r.egroupKeys + 4 + 4);
  assert.equal(r.keysPerTiB, r.keys);
  assert.equal(r.allocatedBytes, 2 * TIB);
  // every disk carries about its share (the writer's node takes one replica of each of its extent groups)
  const mean = (2 * r.egroupKeys) / 8;
  assert.ok(r.replicasPerDisk.max <= 1.25 * mean && r.replicasPerDisk.min >= 0.75 * mean, JSON.stringify(r.replicasPerDisk));
  // each record's bytes: its key and its replicas, as the store keeps them
  const one = storedBytes(KEYS.egroup(LAB_NAMING.vdisk(0), 0), {
    replicas: [
      { node: LAB_NAMING.node(0), cvmIp: LAB_NAMING.cvmIp(0), disk: LAB_NAMING.disk(0, 0) },
      { node: LAB_NAMING.node(1), cvmIp: LAB_NAMING.cvmIp(1), disk: LAB_NAMING.disk(1, 0) },
    ],
    stale: [],
  });
  // (the index of the extent group adds up to 3 digits)
  assert.ok(Math.abs(r.egroupBytes / r.egroupKeys - one) <= 4, `${r.egroupBytes / r.egroupKeys} vs ${one}`);
});

test('sparse random writes over a large vdisk cost far more keys per TiB written, and allocate whole extents', () => {
  const r = simulateMetadata({ nodes: 3, disksPerNode: 1, diskBytes: TIB, rf: 2 }, { writtenBytes: 4096 * 2000, vdiskBytes: 64 * TIB, pattern: 'random' });
  const t = touched(64 * TIB, 4096 * 2000, 'random');
  assert.ok(r.egroupKeys === t.egroups && t.egroups > 1990, String(r.egroupKeys));
  assert.equal(r.allocatedBytes, 2 * t.extents * EXTENT_BYTES);
  assert.ok(r.keysPerTiB > 1e8);
});

test('more data than the cluster holds is refused by placement', () => {
  assert.throws(() => simulateMetadata({ nodes: 2, disksPerNode: 1, diskBytes: GIB, rf: 2 }, { writtenBytes: 2 * GIB, vdiskBytes: 2 * GIB, pattern: 'sequential' }));
});

test('the sink sees every key and value as counted, under the v2 prefixes', () => {
  const seen: [string, string][] = [];
  const r = simulateMetadata({ nodes: 3, disksPerNode: 2, diskBytes: TIB, rf: 2 }, { writtenBytes: 10 * GIB, vdiskBytes: 4 * GIB, pattern: 'sequential' }, LAB_NAMING, (k, v) => void seen.push([k, v]));
  assert.equal(seen.length, r.keys);
  assert.equal(seen.reduce((a, [k, v]) => a + Buffer.byteLength(k) + Buffer.byteLength(v), 0), r.bytes);
  assert.equal(seen.filter(([k]) => k.startsWith('/converge/v2/egroups/')).length, 80);
  assert.equal(seen.filter(([k]) => k.startsWith('/converge/v2/owners/')).length, 3);
  assert.equal(seen.filter(([k]) => k.startsWith('/converge/v2/alive/')).length, 3);
  const rec = JSON.parse(seen[0]?.[1] ?? '{}') as { replicas: { node: string }[]; stale: unknown[] };
  assert.equal(new Set(rec.replicas.map((x) => x.node)).size, 2);
  assert.deepEqual(rec.stale, []);
});
