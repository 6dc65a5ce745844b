import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoginThrottle, SessionStore, parseBasic } from './auth.ts';

test('parseBasic reads user and password, with a colon allowed in the password', () => {
  const h = `Basic ${Buffer.from('admin:pa:ss').toString('base64')}`;
  assert.deepEqual(parseBasic(h), { user: 'admin', password: 'pa:ss' });
  assert.equal(parseBasic(undefined), null);
  assert.equal(parseBasic('Bearer abc'), null);
  assert.equal(parseBasic(`Basic ${Buffer.from('nocolon').toString('base64')}`), null);
  assert.equal(parseBasic(`Basic ${Buffer.from(':pw').toString('base64')}`), null);
});

test('a session expires after its idle lifetime; use keeps it alive', () => {
  let t = 0;
  let n = 0;
  const s = new SessionStore(() => t, 1000, () => `tok${++n}`);
  const a = s.open('admin');
  t = 900;
  assert.equal(s.use(a.token)?.user, 'admin');
  t = 1800; // 900 ms after the last use
  assert.equal(s.use(a.token)?.user, 'admin');
  t = 2900; // 1100 ms idle
  assert.equal(s.use(a.token), undefined);
  assert.equal(s.use('unknown'), undefined);
  const b = s.open('admin');
  s.open('other');
  assert.deepEqual(s.closeAllOf('admin'), [b.token]);
  assert.equal(s.use(b.token), undefined);
  assert.equal(s.size, 1);
});

test('a session another Prism opened is adopted while it is live, with its own idle time; an expired one is not', () => {
  let t = 10_000;
  const s = new SessionStore(() => t, 1000, () => 'never');
  assert.equal(s.adopt({ token: 'old', user: 'admin', createdAt: 0, lastUsedAt: 8_900 }), false, '1100 ms idle');
  assert.equal(s.use('old'), undefined);
  assert.equal(s.adopt({ token: 'live', user: 'admin', createdAt: 0, lastUsedAt: 9_500 }), true);
  assert.equal(s.has('live'), true);
  t = 10_400; // 900 ms after its last use elsewhere
  assert.equal(s.use('live')?.user, 'admin');
  t = 11_500;
  assert.equal(s.use('live'), undefined, 'idle again past its lifetime');
});

test('the throttle locks a key after maxFailures within the window, doubling each lockout', () => {
  let t = 0;
  const th = new LoginThrottle(() => t, { maxFailures: 3, windowMs: 10_000, lockMs: 1000, maxLockMs: 3000 });
  th.failure('k');
  th.failure('k');
  assert.equal(th.retryAfterMs('k'), 0);
  th.failure('k');
  assert.equal(th.retryAfterMs('k'), 1000);
  assert.equal(th.retryAfterMs('other'), 0, 'another client or user is not affected');
  t = 1000;
  assert.equal(th.retryAfterMs('k'), 0);
  for (let i = 0; i < 3; i++) th.failure('k');
  assert.equal(th.retryAfterMs('k'), 2000, 'second lockout doubles');
  t = 3000;
  for (let i = 0; i < 3; i++) th.failure('k');
  assert.equal(th.retryAfterMs('k'), 3000, 'capped at maxLockMs');
  th.success('k');
  assert.equal(th.retryAfterMs('k'), 0);
});

test('failures outside the window do not add up', () => {
  let t = 0;
  const th = new LoginThrottle(() => t, { maxFailures: 3, windowMs: 1000, lockMs: 5000, maxLockMs: 5000 });
  th.failure('k');
  t = 600;
  th.failure('k');
  t = 1200; // the first failure left the window
  th.failure('k');
  assert.equal(th.retryAfterMs('k'), 0);
  th.failure('k');
  assert.equal(th.retryAfterMs('k'), 5000);
});
