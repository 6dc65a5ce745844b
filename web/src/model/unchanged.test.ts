import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Unchanged } from './unchanged.ts';

test('a redraw keeps the objects of unchanged elements and takes the new ones of changed elements', () => {
  const u = new Unchanged<{ id: string; state: string; checks: string[] }>();
  const first = u.keep([{ id: 'a', state: 'running', checks: [] }, { id: 'b', state: 'pending', checks: [] }]);
  const second = u.keep([{ id: 'a', state: 'running', checks: [] }, { id: 'b', state: 'running', checks: [] }]);
  assert.equal(second[0], first[0], 'a did not change: the same object');
  assert.notEqual(second[1], first[1], 'b changed');
  assert.equal(second[1]?.state, 'running');
  // a nested change counts, and an element that left and came back is new
  const third = u.keep([{ id: 'a', state: 'running', checks: ['x'] }]);
  assert.notEqual(third[0], first[0]);
  const fourth = u.keep([{ id: 'a', state: 'running', checks: ['x'] }, { id: 'b', state: 'running', checks: [] }]);
  assert.equal(fourth[0], third[0]);
  assert.notEqual(fourth[1], second[1], 'b was gone in between');
});
