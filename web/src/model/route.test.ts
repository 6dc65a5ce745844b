import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashOfSession, routeOf } from './route.ts';
import { formatElapsed } from './format.ts';

test('a session\'s page is in the URL\'s hash, so a reload opens it again', () => {
  assert.deepEqual(routeOf(''), { page: 'wizard' });
  assert.deepEqual(routeOf('#/'), { page: 'wizard' });
  assert.deepEqual(routeOf('#/session/20261126-ab12'), { page: 'session', id: '20261126-ab12' });
  assert.deepEqual(routeOf(hashOfSession('a b/c')), { page: 'session', id: 'a b/c' });
  assert.deepEqual(routeOf('#/session/%E0%A4%A'), { page: 'wizard' }, 'a malformed id opens the wizard');
  assert.deepEqual(routeOf('#/session/'), { page: 'wizard' });
});

test('elapsed times: seconds, then m:ss, then h:mm:ss', () => {
  assert.equal(formatElapsed(null), '');
  assert.equal(formatElapsed(-5), '0 s');
  assert.equal(formatElapsed(59_999), '59 s');
  assert.equal(formatElapsed(65_000), '1:05');
  assert.equal(formatElapsed(3_723_000), '1:02:03');
});
