import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errorOf } from './errors.ts';
import { v3Error } from '../../../../src/prism/core/v3.ts';
import { v2Error } from '../../../../src/prism/core/v2.ts';
import { v4Error } from '../../../../src/prism/core/v4.ts';

test('an error of every API version gives its message and the field it names', () => {
  assert.deepEqual(errorOf(v3Error(400, 'vm', 'spec.name: is taken', 'CVG_ERR_INPUT', { 'spec.name': 'is taken' })), { message: 'spec.name: is taken', field: 'spec.name' });
  assert.deepEqual(errorOf(v3Error(404, 'vm', 'VM not found: x', 'ENTITY_NOT_FOUND')), { message: 'VM not found: x' });
  assert.deepEqual(errorOf(v2Error(400, 'alert_ids: must be a list', 'alert_ids')), { message: 'alert_ids: must be a list', field: 'alert_ids' });
  assert.deepEqual(errorOf(v4Error('vmm', 412, 'If-Match: stale', 'CVG_ERR_PRECONDITION', { field: 'If-Match' })), { message: 'If-Match: stale', field: 'If-Match' });
  assert.deepEqual(errorOf('Bad Gateway'), { message: 'Bad Gateway' });
  assert.deepEqual(errorOf(null), { message: '' });
  assert.deepEqual(errorOf({ message_list: 'nope' }), { message: '' });
});
