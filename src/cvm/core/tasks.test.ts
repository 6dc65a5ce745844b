import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConflictError, InputError } from '../../shared/errors.ts';
import { abortTask, failTask, newTask, progressTask, runnable, startTask, succeedTask } from './tasks.ts';

const entity = { kind: 'vm' as const, uuid: 'vm-1', name: 'web' };

test('queued → running → succeeded, with the clock\'s times and a percent that only rises', () => {
  let t = newTask({ uuid: 't1', operation: 'vm.create', entity, request: {} }, 1000);
  assert.equal(t.state, 'queued');
  assert.equal(t.createdAt, new Date(1000).toISOString());
  t = startTask(t, 2000);
  assert.equal(t.startedAt, new Date(2000).toISOString());
  t = startTask(t, 3000, 'resumed');
  assert.equal(t.startedAt, new Date(2000).toISOString(), 'a resumed task keeps its start');
  t = progressTask(t, 40, 'copying');
  t = progressTask(t, 20);
  assert.equal(t.percent, 40);
  t = progressTask(t, 250);
  assert.equal(t.percent, 100);
  t = succeedTask(t, 4000, { vm: 'vm-1' });
  assert.equal(t.state, 'succeeded');
  assert.equal(t.finishedAt, new Date(4000).toISOString());
  assert.throws(() => failTask(t, 5000, new Error('x')), ConflictError);
  assert.throws(() => progressTask(t, 10), ConflictError);
});

test('a failure keeps the error\'s code and field; abort from queued', () => {
  const t = startTask(newTask({ uuid: 't1', operation: 'vm.create', entity, request: {} }, 0), 0);
  const f = failTask(t, 10, new InputError('nics[0].subnet', 'no subnet lan'));
  assert.deepEqual(f.error, { code: 'CVG_ERR_INPUT', message: 'nics[0].subnet: no subnet lan', field: 'nics[0].subnet' });
  const a = abortTask(newTask({ uuid: 't2', operation: 'vm.create', entity, request: {} }, 0), 5, 'the VM was deleted');
  assert.equal(a.state, 'aborted');
  assert.throws(() => succeedTask(newTask({ uuid: 't3', operation: 'x', entity, request: {} }, 0), 0), ConflictError);
});

test('runnable: the oldest open task of each entity not busy', () => {
  const mk = (uuid: string, at: number, e: string) => newTask({ uuid, operation: 'op', entity: { ...entity, uuid: e }, request: {} }, at);
  const tasks = [mk('c', 3, 'A'), mk('a', 1, 'A'), mk('b', 2, 'B'), { ...mk('d', 0, 'C'), state: 'succeeded' as const }, mk('e', 4, 'D')];
  assert.deepEqual(runnable(tasks, new Set()).map((t) => t.uuid), ['a', 'b', 'e']);
  assert.deepEqual(runnable(tasks, new Set(['B'])).map((t) => t.uuid), ['a', 'e']);
});
