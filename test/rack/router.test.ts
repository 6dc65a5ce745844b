/**
 * The Redfish router on its own (no HTTPS, a stand-in node): path decoding, a resource whose view
 * fails, request media types, the schema Link header, sessions that follow their account, and the
 * memory of failed logins.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SystemClock } from '../../src/shared/clock.ts';
import { hashPassword } from '../../src/shared/passwords.ts';
import { BmcMemory, MAX_TASKS } from '../../src/rack/node/redfish/bmc-state.ts';
import { RedfishRouter, describedBy, type Route, type HttpRequest } from '../../src/rack/node/redfish/router.ts';
import type { NodeRuntime, Account } from '../../src/rack/node/node-runtime.ts';

const PW = 'router-pass-1';
const HASH = hashPassword(PW);

function fakeNode(): NodeRuntime {
  const accounts: Account[] = [{ id: '1', userName: 'admin', passwordHash: HASH, roleId: 'Administrator', enabled: true, locked: false }];
  return { serial: 'NODE1', state: { accounts } } as unknown as NodeRuntime;
}

const basic = (u: string, p: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });

function req(method: string, path: string, headers: Record<string, string> = basic('admin', PW), rawBody = ''): HttpRequest {
  return { method, path, query: '', headers, body: () => Promise.resolve(rawBody) };
}

let deleted = 0;
let patched: unknown;
const routes: Route[] = [
  { path: '/redfish/v1/Systems', get: () => ({ '@odata.id': '/redfish/v1/Systems', '@odata.type': '#ComputerSystemCollection.ComputerSystemCollection', Name: 'S', Members: [], 'Members@odata.count': 0 }) },
  { path: '/redfish/v1/Systems/{id}', get: (c) => ({ '@odata.id': `/redfish/v1/Systems/${c.params['id']}`, '@odata.type': '#ComputerSystem.v1_20_0.ComputerSystem', Id: c.params['id'], Name: 'S' }) },
  {
    path: '/redfish/v1/Broken',
    get: () => {
      throw new Error('the view cannot be built');
    },
    patch: { privilege: 'Login', writable: ['A'], apply: (c) => void (patched = c.body) },
    delete: { privilege: 'Login', handle: () => ((deleted += 1), { status: 204 }) },
  },
  { path: '/redfish/v1/Act', post: { privilege: 'Login', parameters: ['X'], handle: () => ({ status: 204 }) } },
  { path: '/redfish/v1/Admin', get: () => ({ '@odata.type': '#Manager.v1_17_0.Manager', Id: '1', Name: 'M' }), post: { privilege: 'ConfigureManager', handle: () => ({ status: 204 }) } },
];

test('a path with a bad %-sequence is 404 ResourceMissingAtURI, not 500', async () => {
  const r = new RedfishRouter(routes, () => Date.now());
  const res = await r.handle(req('GET', '/redfish/v1/Systems/%E0%A4%A'), fakeNode(), new BmcMemory(new SystemClock()));
  assert.equal(res.status, 404);
  assert.match(JSON.parse(res.body).error['@Message.ExtendedInfo'][0].MessageId, /ResourceMissingAtURI$/);
});

test('a resource whose GET view fails can still be deleted and patched', async () => {
  const r = new RedfishRouter(routes, () => Date.now());
  const node = fakeNode();
  const mem = new BmcMemory(new SystemClock());
  assert.equal((await r.handle(req('GET', '/redfish/v1/Broken'), node, mem)).status, 500);
  assert.equal((await r.handle(req('DELETE', '/redfish/v1/Broken'), node, mem)).status, 204);
  assert.equal(deleted, 1);
  const p = await r.handle(req('PATCH', '/redfish/v1/Broken', { ...basic('admin', PW), 'content-type': 'application/json' }, '{"A": 1}'), node, mem);
  assert.ok(p.status === 200 || p.status === 204, `PATCH: ${p.status} ${p.body}`);
  assert.deepEqual(patched, { A: 1 });
  // with If-Match the ETag is needed, so the view's failure is the answer
  const im = await r.handle(req('PATCH', '/redfish/v1/Broken', { ...basic('admin', PW), 'content-type': 'application/json', 'if-match': '"abc"' }, '{"A": 2}'), node, mem);
  assert.equal(im.status, 500);
  assert.deepEqual(patched, { A: 1 });
});

test('a body that is not application/json is 415; no body needs no Content-Type', async () => {
  const r = new RedfishRouter(routes, () => Date.now());
  const node = fakeNode();
  const mem = new BmcMemory(new SystemClock());
  const bad = await r.handle(req('POST', '/redfish/v1/Act', { ...basic('admin', PW), 'content-type': 'text/plain;charset=UTF-8' }, '{"X": 1}'), node, mem);
  assert.equal(bad.status, 415);
  const body = JSON.parse(bad.body);
  assert.match(body.error.code, /GeneralError$/);
  assert.match(body.error.message, /application\/json/);
  const none = await r.handle(req('POST', '/redfish/v1/Act', basic('admin', PW), '{"X": 1}'), node, mem);
  assert.equal(none.status, 415, 'a body without a Content-Type');
  assert.equal((await r.handle(req('POST', '/redfish/v1/Act'), node, mem)).status, 204, 'no body, no Content-Type (sushy EjectMedia)');
  assert.equal((await r.handle(req('POST', '/redfish/v1/Act', { ...basic('admin', PW), 'content-type': 'application/json; charset=utf-8' }, '{"X": 1}'), node, mem)).status, 204);
  const patch = await r.handle(req('PATCH', '/redfish/v1/Broken', { ...basic('admin', PW), 'content-type': 'application/x-www-form-urlencoded' }, 'A=1'), node, mem);
  assert.equal(patch.status, 415);
});

test('GET names the schema of the resource in a Link header (rel=describedby)', async () => {
  const r = new RedfishRouter(routes, () => Date.now());
  const node = fakeNode();
  const mem = new BmcMemory(new SystemClock());
  const one = await r.handle(req('GET', '/redfish/v1/Systems/1'), node, mem);
  assert.equal(one.headers['Link'], '<http://redfish.dmtf.org/schemas/v1/ComputerSystem.v1_20_0.json>; rel=describedby');
  const coll = await r.handle(req('HEAD', '/redfish/v1/Systems'), node, mem);
  assert.equal(coll.headers['Link'], '<http://redfish.dmtf.org/schemas/v1/ComputerSystemCollection.json>; rel=describedby');
  assert.equal(describedBy({ v1: '/redfish/v1/' }), undefined);
  assert.equal(describedBy('<xml/>'), undefined);
});

test('a session acts with its account as it is now: a removed or disabled account ends it, a new role applies', async () => {
  const r = new RedfishRouter(routes, () => Date.now());
  const node = fakeNode();
  const mem = new BmcMemory(new SystemClock());
  const s = mem.createSession('admin', 'Administrator');
  const tok = { 'x-auth-token': s.token };
  assert.equal((await r.handle(req('POST', '/redfish/v1/Admin', tok), node, mem)).status, 204);
  node.state.accounts[0]!.roleId = 'ReadOnly';
  assert.equal((await r.handle(req('POST', '/redfish/v1/Admin', tok), node, mem)).status, 403, 'the demoted account lost ConfigureManager');
  node.state.accounts[0]!.enabled = false;
  assert.equal((await r.handle(req('GET', '/redfish/v1/Admin', tok), node, mem)).status, 401);
  node.state.accounts[0]!.enabled = true;
  assert.equal((await r.handle(req('GET', '/redfish/v1/Admin', tok), node, mem)).status, 401, 'the session ended; enabling the account again does not revive it');
  const s2 = mem.createSession('admin', 'Administrator');
  node.state.accounts = [];
  assert.equal((await r.handle(req('GET', '/redfish/v1/Admin', { 'x-auth-token': s2.token }), node, mem)).status, 401);
});

test('failed logins are forgotten after the lockout window and their number is capped', async () => {
  let now = 1_000_000;
  const r = new RedfishRouter(routes, () => now, { maxFailureEntries: 8 });
  const node = fakeNode();
  const failures = (): number => (r as unknown as { failures: Map<string, unknown> }).failures.size;
  for (let i = 0; i < 6; i++) await assert.rejects(r.login(node, `nobody${i}`, 'x'));
  assert.equal(failures(), 6);
  now += 61_000;
  await assert.rejects(r.login(node, 'late', 'x'));
  assert.equal(failures(), 1, 'entries older than the lockout window are dropped');
  for (let i = 0; i < 12; i++) await assert.rejects(r.login(node, `spray${i}`, 'x'));
  assert.ok(failures() <= 8, `at most 8 remembered, not ${failures()}`);
  // lockout still works for the names that are remembered
  for (let i = 0; i < 5; i++) await assert.rejects(r.login(node, 'admin', 'wrong'));
  assert.equal(r.lockedOut(node, 'admin'), true);
  await assert.rejects(r.login(node, 'admin', PW), /locked/);
  r.clearLockout(node, 'admin');
  assert.equal((await r.login(node, 'admin', PW)).userName, 'admin');
});

test('a login with an unknown user name takes as long as one with a wrong password', async () => {
  const r = new RedfishRouter(routes, () => Date.now(), { maxFailureEntries: 1000 });
  const node = fakeNode();
  const time = async (user: string): Promise<number> => {
    const t0 = process.hrtime.bigint();
    await r.login(node, user, 'wrong-password').catch(() => undefined);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  await time('warm-up');
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const known: number[] = [];
  const unknown: number[] = [];
  for (let i = 0; i < 3; i++) {
    known.push(await time('admin'));
    unknown.push(await time(`ghost${i}`)); // 3 failures: below the lockout threshold
  }
  assert.ok(median(unknown) > median(known) * 0.3, `unknown ${median(unknown).toFixed(1)} ms vs known ${median(known).toFixed(1)} ms`);
});

test('task Ids are never reused, even after the oldest tasks are dropped', () => {
  const mem = new BmcMemory(new SystemClock());
  const ids = new Set<string>();
  for (let i = 0; i < MAX_TASKS * 2 + 5; i++) ids.add(mem.newTask(`t${i}`).id);
  assert.equal(ids.size, MAX_TASKS * 2 + 5);
  assert.equal(mem.tasks.length, MAX_TASKS);
  mem.reboot(0);
  assert.ok(!ids.has(mem.newTask('after reboot').id));
});
