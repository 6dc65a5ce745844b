import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, redactUrl } from './log.ts';

test('logs carry no secret: credentials in headers and fields, tokens in media URLs and queries', () => {
  const lines: string[] = [];
  const destination = new Writable({ write(c: Buffer, _e, done) { lines.push(c.toString()); done(); } });
  const log = createLogger({ name: 'test', destination });
  const SECRET = 's3cret-Value-42';
  log.info({ req: { method: 'GET', url: `/foundation/media/S1/NODE1/${SECRET}/config.json`, headers: { authorization: `Bearer ${SECRET}`, cookie: `c=${SECRET}` } } }, 'request');
  log.info({ body: { ipmi_password: SECRET, admin_password: SECRET, password: SECRET, token: SECRET, key: SECRET } }, 'body');
  log.info({ req: { method: 'GET', url: `/login?token=${SECRET}&next=/` } }, 'login');
  const all = lines.join('');
  assert.ok(lines.length >= 3);
  assert.doesNotMatch(all, new RegExp(SECRET));
  assert.match(all, /\[redacted\]/);
  assert.match(all, /"url":"\/foundation\/media\/S1\/NODE1\/\[redacted\]\/config\.json"/);
  assert.equal(redactUrl('/foundation/progress?session_id=x'), '/foundation/progress?session_id=x', 'other URLs as they are');
});
