import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../../shared/clock.ts';
import { LearningSwitch } from './learning-switch.ts';

const A = '52:54:00:00:00:0a';
const B = '52:54:00:00:00:0b';
const C = '52:54:00:00:00:0c';
const BCAST = 'ff:ff:ff:ff:ff:ff';
const MCAST = '33:33:00:00:00:01';

function sw(clock = new VirtualClock(), o = {}): LearningSwitch {
  const s = new LearningSwitch(clock, o);
  s.addPort('vm:1', 'local');
  s.addPort('vm:2', 'local');
  s.addPort('vm:3', 'local');
  s.addPort('tunnel:h2', 'tunnel');
  s.addPort('tunnel:h3', 'tunnel');
  return s;
}

test('broadcast, multicast and unknown unicast are flooded to every other port, never back to the source', () => {
  const s = sw();
  assert.deepEqual(s.forward('vm:1', A, BCAST), ['vm:2', 'vm:3', 'tunnel:h2', 'tunnel:h3']);
  assert.deepEqual(s.forward('vm:1', A, MCAST), ['vm:2', 'vm:3', 'tunnel:h2', 'tunnel:h3']);
  assert.deepEqual(s.forward('vm:2', B, C), ['vm:1', 'vm:3', 'tunnel:h2', 'tunnel:h3']);
});

test('a learned destination gets the frame on its port only; a frame for the source port\'s own segment goes nowhere', () => {
  const s = sw();
  s.forward('vm:1', A, BCAST);
  s.forward('tunnel:h2', B, BCAST);
  assert.deepEqual(s.forward('vm:3', C, A), ['vm:1']);
  assert.deepEqual(s.forward('vm:3', C, B), ['tunnel:h2']);
  assert.deepEqual(s.forward('vm:1', A, A), [], 'destination behind the port it came from');
});

test('split horizon: a frame from a tunnel is flooded to local ports only and never relayed to another tunnel', () => {
  const s = sw();
  assert.deepEqual(s.forward('tunnel:h2', B, BCAST), ['vm:1', 'vm:2', 'vm:3']);
  s.forward('tunnel:h3', C, BCAST);
  assert.deepEqual(s.forward('tunnel:h2', B, C), [], 'C is behind h3: h2 sent it to h3 itself');
});

test('aging: an entry older than agingMs is forgotten and its destination flooded again; traffic refreshes it', () => {
  const clock = new VirtualClock();
  const s = sw(clock, { agingMs: 1000 });
  s.forward('vm:1', A, BCAST);
  clock.advance(600);
  assert.deepEqual(s.forward('vm:2', B, A), ['vm:1']);
  s.forward('vm:1', A, B); // A seen again at t=600
  clock.advance(999);
  assert.deepEqual(s.forward('vm:2', B, A), ['vm:1']);
  clock.advance(1);
  assert.equal(s.lookup(A), undefined);
  assert.deepEqual(s.forward('vm:2', B, A).length, 4, 'flooded once aged out');
  assert.deepEqual(s.entries().map((e) => e.mac), [B]);
});

test('a MAC that moves is learned on its new port (a migrated VM)', () => {
  const s = sw();
  s.forward('tunnel:h2', A, BCAST);
  assert.equal(s.lookup(A), 'tunnel:h2');
  s.forward('vm:2', A, BCAST);
  assert.equal(s.lookup(A), 'vm:2');
});

test('removing a port forgets its MACs; group source MACs are not learned; the table is bounded (least recently seen evicted)', () => {
  const s = sw(new VirtualClock(), { maxMacs: 2 });
  s.forward('vm:1', A, BCAST);
  s.removePort('vm:1');
  assert.equal(s.lookup(A), undefined);
  assert.deepEqual(s.forward('vm:1', A, BCAST), [], 'a removed port forwards nothing');
  s.learn(MCAST, 'vm:2');
  assert.equal(s.lookup(MCAST), undefined);
  s.forward('vm:2', A, BCAST);
  s.forward('vm:3', B, BCAST);
  s.forward('vm:2', A, BCAST); // A is now the most recent
  s.forward('tunnel:h2', C, BCAST);
  assert.deepEqual(s.entries().map((e) => e.mac).sort(), [A, C]);
});
