import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ago, bytes, duration, latency, percent, rate } from './format.ts';

test('sizes, rates and latencies read as an operator expects', () => {
  assert.equal(bytes(0), '0 B');
  assert.equal(bytes(1536), '1.50 KiB');
  assert.equal(bytes(64 * 2 ** 20), '64.0 MiB');
  assert.equal(bytes(300 * 2 ** 30), '300 GiB');
  assert.equal(bytes(-1), '–');
  assert.equal(rate(2 ** 20), '1.00 MiB/s');
  assert.equal(latency(850.4), '850 µs');
  assert.equal(latency(2400), '2.4 ms');
  assert.equal(latency(25_000), '25 ms');
  assert.equal(percent(1, 3), '33 %');
  assert.equal(percent(1, 0), '–');
});

test('times are relative to the now given', () => {
  const now = Date.parse('2026-12-05T10:00:00Z');
  assert.equal(ago('2026-12-05T10:00:00Z', now), 'just now');
  assert.equal(ago('2026-12-05T09:59:30Z', now), '30 s ago');
  assert.equal(ago('2026-12-05T09:57:00Z', now), '3 min ago');
  assert.equal(ago('2026-12-05T07:00:00Z', now), '3 h ago');
  assert.equal(ago('2026-12-01T10:00:00Z', now), '4 d ago');
  assert.equal(ago('', now), '–');
  assert.equal(ago('not a time', now), '–');
  assert.equal(duration('2026-12-05T09:59:59.500Z', '2026-12-05T10:00:00Z', now), '500 ms');
  assert.equal(duration('2026-12-05T09:56:55Z', null, now), '3 min 5 s');
  assert.equal(duration(null, null, now), '–');
});
