import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chartColumns, peak } from './series.ts';
import type { IoSample } from '../../../../src/cvm/protocol/stats.ts';

const s = (t: number, o: Partial<IoSample> = {}): IoSample => ({ t, readIops: 0, writeIops: 0, readBps: 0, writeBps: 0, readLatUs: 0, writeLatUs: 0, ...o });

test('one point per step up to now, zero where nothing was sampled, gaps in latency', () => {
  const now = 1_000_000_000 + 2500; // 2.5 s into a 5 s step
  const c = chartColumns([s(1_000_000_000 - 5000, { writeIops: 100, writeBps: 409_600, writeLatUs: 800 })], 5000, now, 1);
  assert.equal(c.t.length, 13, 'a minute of 5 s steps, both ends');
  assert.equal(c.t.at(-1), 1_000_000, 'the last step is the one now is in (seconds)');
  assert.deepEqual(c.writeIops.slice(-3), [0, 100, 0]);
  assert.deepEqual(c.writeLatUs.slice(-3), [null, 800, null]);
  assert.equal(peak(c.writeBps), 409_600);
  assert.equal(c.readLatUs.every((x) => x === null), true);
});

test('5 s samples in a 60 s step average over the whole step; latencies weighted by I/Os', () => {
  const base = 6_000_000_000;
  const pts = [s(base, { writeIops: 120, readIops: 10, readLatUs: 100 }), s(base + 5000, { writeIops: 120, readIops: 30, readLatUs: 500 })];
  const c = chartColumns(pts, 60_000, base + 59_000, 2);
  const i = c.t.indexOf(base / 1000);
  assert.ok(i >= 0);
  assert.equal(c.writeIops[i], 20, '2 of 12 five-second samples at 120 IOPS: 20 IOPS over the minute');
  assert.equal(c.readLatUs[i], 400, '(10×100 + 30×500) / 40');
  assert.equal(chartColumns([], 0, base, 1).t.length, 13, 'no step given: 5 s');
});
