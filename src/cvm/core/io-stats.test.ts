import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COARSE_STEP_MS, FINE, IoStats, STEP_MS, average } from './io-stats.ts';

test('rates per 5 s step per vdisk: IOPS, bytes per second, mean latency; idle steps are zeros', () => {
  let now = 1_000_000_000_000; // a multiple of the step
  const s = new IoStats(() => now);
  for (let i = 0; i < 50; i++) s.record('a', 'write', 4096, 200);
  for (let i = 0; i < 10; i++) s.record('a', 'read', 65536, 100 + i * 20);
  s.record('b', 'read', 512, 50);
  now += STEP_MS;
  s.sample();
  now += STEP_MS;
  s.sample();
  const q = s.query(now - 60_000);
  assert.equal(q.stepMs, STEP_MS);
  const [first, second] = q.series['a'] ?? [];
  assert.deepEqual(first, { t: now - 2 * STEP_MS, readIops: 2, writeIops: 10, readBps: 131072, writeBps: 40960, readLatUs: 190, writeLatUs: 200 });
  assert.deepEqual(second, { t: now - STEP_MS, readIops: 0, writeIops: 0, readBps: 0, writeBps: 0, readLatUs: 0, writeLatUs: 0 }, 'an idle step shows as zeros');
  assert.equal(s.query(now - 60_000, ['b']).series['b']?.[0]?.readBps, 512 / 5);
  assert.deepEqual(Object.keys(s.query(now - 60_000, ['b']).series), ['b']);
});

test('an hour of 5 s samples, a day of minute averages; older than an hour answers by the minute; bounded memory', () => {
  let now = 1_000_000_020_000 - (1_000_000_020_000 % COARSE_STEP_MS);
  const s = new IoStats(() => now);
  for (let step = 0; step < FINE + 120; step++) {
    s.record('a', 'write', 1000, 100);
    now += STEP_MS;
    s.sample();
  }
  const fine = s.query(now - 3_600_000);
  assert.equal(fine.stepMs, STEP_MS);
  assert.equal(fine.series['a']?.length, FINE, 'at most an hour of 5 s samples');
  const coarse = s.query(now - 2 * 3_600_000);
  assert.equal(coarse.stepMs, COARSE_STEP_MS);
  assert.ok((coarse.series['a']?.length ?? 0) >= 70);
  assert.ok(coarse.series['a']?.every((x) => Math.abs(x.writeIops - 0.2) < 1e-9 && x.t % COARSE_STEP_MS === 0));
  assert.deepEqual(average([], 5), { t: 5, readIops: 0, writeIops: 0, readBps: 0, writeBps: 0, readLatUs: 0, writeLatUs: 0 });
});
