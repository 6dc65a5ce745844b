import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapLimit, within } from './async.ts';
import { TimeoutError } from './errors.ts';

test('mapLimit keeps the order and never runs more than the limit at once', async () => {
  let inFlight = 0;
  let most = 0;
  const out = await mapLimit([5, 1, 4, 2, 3], 2, async (x) => {
    inFlight++;
    most = Math.max(most, inFlight);
    await new Promise((r) => setTimeout(r, x));
    inFlight--;
    return x * 10;
  });
  assert.deepEqual(out, [50, 10, 40, 20, 30]);
  assert.equal(most, 2);
  assert.deepEqual(await mapLimit([], 4, () => Promise.resolve(1)), []);
});

test('within passes a prompt answer through and times out a slow one', async () => {
  assert.equal(await within(Promise.resolve(7), 50, 'x'), 7);
  await assert.rejects(within(new Promise(() => undefined), 20, 'the store'), (e: unknown) => e instanceof TimeoutError && /the store: no answer in 20 ms/.test(e.message));
});
