import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FailureDetector, type DownRecord } from './failure-detector.ts';

const at = (): { now: () => number; step: (ms: number) => void } => {
  let t = 1_000_000;
  return { now: () => t, step: (ms) => (t += ms) };
};

test('an alive key that goes is declared down once, with who and when; the down key makes it down for everyone', () => {
  const c = at();
  const a = new FailureDetector({ self: 'A', graceMs: 5000 }, c.now);
  const b = new FailureDetector({ self: 'B', graceMs: 5000 }, c.now);
  for (const d of [a, b]) d.snapshot(['A', 'B', 'C'], []);
  const s = a.aliveGone('C');
  assert.equal(s.actions.length, 1);
  const act = s.actions[0]!;
  assert.equal(act.kind, 'declare-down');
  const rec = (act as { record: DownRecord }).record;
  assert.deepEqual({ node: rec.node, by: rec.by, at: rec.at }, { node: 'C', by: 'A', at: new Date(1_000_000).toISOString() });
  assert.equal(a.isDown('C'), false, 'down only once the key is in the store');
  assert.deepEqual(a.aliveGone('C').actions, [], 'declared once per absence');
  // B saw the alive key go as well; both may try: the store keeps the first (create-if-absent)
  assert.equal(b.aliveGone('C').actions.length, 1);
  for (const d of [a, b]) {
    const e = d.downPut(rec);
    assert.deepEqual(e.events, [{ kind: 'down', node: 'C', record: rec }]);
    assert.ok(d.isDown('C'));
    assert.deepEqual(d.downPut(rec).events, [], 'one event per declaration');
  }
});

test('a node that returns clears its own declaration; everyone sees it up', () => {
  const c = at();
  const rec: DownRecord = { node: 'C', by: 'A', at: 'x', reason: 'r' };
  const self = new FailureDetector({ self: 'C', graceMs: 5000 }, c.now);
  const other = new FailureDetector({ self: 'A', graceMs: 5000 }, c.now);
  assert.deepEqual(self.snapshot(['A', 'B'], [rec]).events, [{ kind: 'down', node: 'C', record: rec }]);
  other.snapshot(['A', 'B'], [rec]);
  assert.deepEqual(self.alivePut('C').actions, [{ kind: 'clear-down', node: 'C' }]);
  assert.deepEqual(self.alivePut('C').actions, [], 'once');
  assert.deepEqual(other.alivePut('C').actions, [], 'only the node itself clears it');
  assert.ok(other.isDown('C'), 'still down until the key goes');
  assert.deepEqual(other.downGone('C').events, [{ kind: 'up', node: 'C' }]);
  assert.equal(other.isDown('C'), false);
  assert.deepEqual(other.downGone('C').events, [], 'one event');
});

test('a CVM never declares itself down', () => {
  const c = at();
  const d = new FailureDetector({ self: 'A', graceMs: 1000 }, c.now);
  d.setMembers(['A', 'B']);
  d.snapshot(['B'], []);
  assert.deepEqual(d.aliveGone('A').actions, []);
  c.step(5000);
  assert.deepEqual(d.tick().actions, []);
});

test('a member never seen alive is declared down after the grace period', () => {
  const c = at();
  const d = new FailureDetector({ self: 'A', graceMs: 6000 }, c.now);
  d.snapshot(['A', 'B'], []);
  assert.deepEqual(d.setMembers(['A', 'B', 'C']).actions, []);
  c.step(5000);
  assert.deepEqual(d.tick().actions, []);
  c.step(1000);
  const s = d.tick();
  assert.equal(s.actions.length, 1);
  assert.equal(s.actions[0]?.kind, 'declare-down');
  assert.deepEqual(d.tick().actions, [], 'declared once');
  // it shows up before the declaration lands: nothing more
  d.alivePut('C');
  c.step(10_000);
  assert.deepEqual(d.tick().actions, []);
});

test('a fresh snapshot reports the changes it finds', () => {
  const c = at();
  const d = new FailureDetector({ self: 'A', graceMs: 6000 }, c.now);
  const rb: DownRecord = { node: 'B', by: 'A', at: 'x', reason: 'r' };
  d.snapshot(['A'], [rb]);
  assert.deepEqual(d.snapshot(['A', 'B'], []).events, [{ kind: 'up', node: 'B' }]);
  assert.deepEqual(d.downNodes(), []);
});
