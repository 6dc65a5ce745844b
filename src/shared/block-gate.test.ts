import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockGate } from './block-gate.ts';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('shared holders run together; an exclusive one waits for them and holds back newcomers', async () => {
  const g = new BlockGate();
  const log: string[] = [];
  let releaseA!: () => void;
  const a = g.shared(1, async () => {
    log.push('a+');
    await new Promise<void>((r) => (releaseA = r));
    log.push('a-');
  });
  const b = g.shared(1, () => {
    log.push('b');
    return Promise.resolve();
  });
  await tick();
  const x = g.exclusive(1, () => {
    log.push('x');
    return Promise.resolve();
  });
  const c = g.shared(1, () => {
    log.push('c');
    return Promise.resolve();
  });
  const other = g.shared(2, () => {
    log.push('other');
    return Promise.resolve();
  });
  await tick();
  assert.deepEqual(log, ['a+', 'b', 'other'], 'x waits for a; c waits behind x; another key is not held');
  releaseA();
  await Promise.all([a, b, x, c, other]);
  assert.deepEqual(log, ['a+', 'b', 'other', 'a-', 'x', 'c']);
});

test('two exclusive holders of one key run one after the other; errors release the gate', async () => {
  const g = new BlockGate();
  let inside = 0;
  let most = 0;
  const run = (): Promise<void> => g.exclusive(7, async () => {
    inside++;
    most = Math.max(most, inside);
    await tick();
    inside--;
  });
  await Promise.all([run(), run(), run()]);
  assert.equal(most, 1);
  await assert.rejects(g.exclusive(7, () => Promise.reject(new Error('boom'))));
  assert.equal(await g.shared(7, () => Promise.resolve(5)), 5);
});
