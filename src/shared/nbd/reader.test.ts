import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteReader } from './reader.ts';

/** A source that stops pushing while paused, like a socket. */
function source(total: number, chunk: number, highWater: number): { reader: ByteReader; pump: () => void; paused: () => boolean } {
  let sent = 0;
  let paused = false;
  const pump = (): void => {
    while (!paused && sent < total) {
      const n = Math.min(chunk, total - sent);
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = (sent + i) & 0xff;
      sent += n;
      reader.push(b);
    }
  };
  const reader: ByteReader = new ByteReader(() => (paused = true), () => {
    if (!paused) return;
    paused = false;
    queueMicrotask(pump);
  }, highWater);
  return { reader, pump, paused: () => paused };
}

test('a read larger than the high-water mark completes (backpressure does not starve it)', async () => {
  const s = source(3 << 20, 64 << 10, 1 << 20);
  s.pump();
  assert.equal(s.paused(), true, 'the source is held back while nobody reads');
  const b = await s.reader.read(3 << 20);
  assert.equal(b.length, 3 << 20);
  assert.ok(b.every((x, i) => x === (i & 0xff)), 'the bytes arrive in order');
});

test('readv of more than the high-water mark completes too, as the chunks that arrived', async () => {
  const s = source(2 << 20, 100_000, 256 << 10);
  s.pump();
  const parts = await s.reader.readv(2 << 20);
  assert.equal(parts.reduce((a, p) => a + p.length, 0), 2 << 20);
});

test('reads after the end fail; exact reads split chunks correctly', async () => {
  const r = new ByteReader(() => undefined, () => undefined);
  r.push(Buffer.from([1, 2, 3, 4, 5]));
  assert.deepEqual([...(await r.read(2))], [1, 2]);
  assert.deepEqual([...(await r.read(3))], [3, 4, 5]);
  r.end();
  await assert.rejects(r.read(1), /closed/);
});
