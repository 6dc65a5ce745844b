/**
 * The rack's two HTTP edges against a hostile client on the same network: the BMC (bodies read only
 * after authentication, 413 with a Redfish body, what Node's parser refuses, POST to a collection's
 * Members) and the control API (its bearer token, body schemas and limits, rotation).
 * Its own rack on 127.33 with ports of its own (faults.test.ts has 127.33 on the default ports).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { TestRack, rawRequest, type RawResponse } from '../drivers/rack-driver.ts';
import { RackApiError, RackClient } from '../../src/rack/protocol/client.ts';
import { readControlToken } from '../../src/rack/protocol/access.ts';

const BMC_PORT = 9443;
const CONTROL_PORT = 9080;
let tr: TestRack;
let ca: string;

before(async () => {
  tr = await TestRack.start('127.33', { nodes: 2, bmcPort: BMC_PORT, controlPort: CONTROL_PORT, ssdpPort: 21033 });
  ca = readFileSync(tr.rack.layout.caCert, 'utf8');
});
after(async () => {
  await tr.stop();
});

const BASE = 'Base.1.24.0';
const SYS = '/redfish/v1/Systems/1';
const BASIC = `Basic ${Buffer.from('admin:lab-password-1').toString('base64')}`;
const msgId = (r: { json: any }): string => r.json?.error?.['@Message.ExtendedInfo']?.[0]?.MessageId;

/** A raw request to BMC 0. */
function bmc(...data: (string | Buffer)[]): Promise<RawResponse> {
  return rawRequest({ host: tr.node(0).identity.bmcIp, port: BMC_PORT, ca, data });
}

/** A raw request to the control API. */
function control(...data: (string | Buffer)[]): Promise<RawResponse> {
  return rawRequest({ host: '127.33.255.254', port: CONTROL_PORT, data });
}

function assertRedfishError(r: RawResponse, status: number, id: string): void {
  assert.equal(r.status, status, r.body);
  assert.equal(r.headers['odata-version'], '4.0');
  assert.match(r.headers['content-type'] ?? '', /^application\/json/);
  assert.equal(r.json?.error?.code, `${BASE}.${id}`, r.body);
  assert.equal(msgId(r), `${BASE}.${id}`);
  assert.equal(typeof r.json.error.message, 'string');
}

test('BMC: a body over 1 MiB is answered 413 with a Redfish error, then the connection closes; nothing changes', async () => {
  const before = tr.node(0).state.power.power;
  const r = await tr.redfish(0).post(`${SYS}/Actions/ComputerSystem.Reset`, `{"ResetType":"On","pad":"${'x'.repeat(2 << 20)}"}`);
  assert.equal(r.status, 413, r.text);
  assert.equal(r.json.error.code, `${BASE}.GeneralError`);
  assert.match(r.json.error.message, /larger than 1048576 bytes/);
  assert.equal(r.headers.get('connection'), 'close');
  assert.equal(tr.node(0).state.power.power, before);
  // a Content-Length far beyond the limit is refused at once, without waiting for the body
  const huge = await bmc(`PATCH ${SYS} HTTP/1.1\r\nHost: x\r\nAuthorization: ${BASIC}\r\nContent-Type: application/json\r\nContent-Length: ${1 << 30}\r\n\r\n{`);
  assertRedfishError(huge, 413, 'GeneralError');
  assert.equal(huge.closed, true);
  assert.equal((await tr.redfish(0).get(SYS)).status, 200, 'the BMC answers on');
});

test('BMC: an unauthenticated request is refused from its headers, before its body is read', async () => {
  // 50 MiB announced, 1 KiB sent: the 401 comes without the BMC waiting for (or keeping) the rest
  for (const path of [`${SYS}/Actions/ComputerSystem.Reset`, '/redfish/v1/AccountService/Accounts', '/redfish/v1/NoSuchThing']) {
    const r = await bmc(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${50 << 20}\r\n\r\n`, 'x'.repeat(1024));
    assertRedfishError(r, 401, 'NoValidSession');
    assert.equal(r.closed, true, 'the connection closes: the unread body cannot be taken for a request');
  }
  // a session login (no authentication needed) with a body over the limit: 413
  const s = await bmc(`POST /redfish/v1/SessionService/Sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${50 << 20}\r\n\r\n`);
  assertRedfishError(s, 413, 'GeneralError');
});

test("BMC: what Node's HTTP parser refuses gets a well-formed Redfish answer: 501 for an unknown method, 400 otherwise", async () => {
  const unknown = await bmc(`FAKEMETHOD ${SYS} HTTP/1.1\r\nHost: x\r\nAuthorization: ${BASIC}\r\n\r\n`);
  assertRedfishError(unknown, 501, 'OperationNotAllowed');
  const lower = await bmc('get /redfish/v1/ HTTP/1.1\r\nHost: x\r\n\r\n');
  assertRedfishError(lower, 501, 'OperationNotAllowed');
  // a method the parser knows but Redfish does not: 501 too; a Redfish method the resource lacks: 405
  assertRedfishError(await bmc(`PROPFIND ${SYS} HTTP/1.1\r\nHost: x\r\nAuthorization: ${BASIC}\r\n\r\n`), 501, 'OperationNotAllowed');
  const put = await bmc(`PUT ${SYS} HTTP/1.1\r\nHost: x\r\nAuthorization: ${BASIC}\r\nContent-Length: 0\r\n\r\n`);
  assertRedfishError(put, 405, 'OperationNotAllowed');
  assert.ok(put.headers['allow']?.includes('PATCH'));
  for (const bad of ['GET /redfish/v1/ HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n', 'GET /redfish/v1/ HTTP/9.9\r\n\r\n', 'GET /a b c HTTP/1.1\r\n\r\n', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'y'.repeat(20_000)}\r\n\r\n`]) {
    const r = await bmc(bad);
    assert.ok(r.status === 400 || r.status === 431, `${JSON.stringify(bad.slice(0, 40))}: ${r.status}`);
    assertRedfishError(r, r.status, 'GeneralError');
  }
  // an odd request target names no resource (and does not break the URL parser)
  assertRedfishError(await bmc(`GET http://[::1/nowhere HTTP/1.1\r\nHost: x\r\nAuthorization: ${BASIC}\r\n\r\n`), 404, 'ResourceMissingAtURI');
  assert.equal((await tr.redfish(0).get(SYS)).status, 200, 'the BMC answers on');
});

test('BMC: POST to a collection\'s Members works as POST to the collection (DSP0266 "POST (create)")', async () => {
  const anon = tr.redfish(0, null);
  const login = await anon.post('/redfish/v1/SessionService/Sessions/Members', { UserName: 'admin', Password: 'lab-password-1' });
  assert.equal(login.status, 201, login.text);
  const token = login.headers.get('x-auth-token');
  assert.ok(token);
  assert.match(login.headers.get('location') ?? '', /^\/redfish\/v1\/SessionService\/Sessions\/\w+/);
  const mine = tr.redfish(0, null).as({ 'X-Auth-Token': token });
  assert.equal((await mine.get(SYS)).status, 200);
  assert.equal((await mine.delete(login.headers.get('location')!)).status, 204);
  // accounts: as for the collection, authentication and ConfigureUsers are needed
  const body = { UserName: 'member1', Password: 'member1-pass', RoleId: 'ReadOnly' };
  assert.equal((await anon.post('/redfish/v1/AccountService/Accounts/Members', body)).status, 401);
  const made = await tr.redfish(0).post('/redfish/v1/AccountService/Accounts/Members', body);
  assert.equal(made.status, 201, made.text);
  const ro = tr.redfish(0, 'member1', 'member1-pass');
  assert.equal((await ro.post('/redfish/v1/AccountService/Accounts/Members', { ...body, UserName: 'member2' })).status, 403);
  assert.equal((await tr.redfish(0).delete(made.headers.get('location')!)).status, 204);
  // where the collection takes no POST, neither does Members
  assert.equal((await tr.redfish(0).post('/redfish/v1/Systems/Members', {})).status, 404);
});

test('control API: every route needs the bearer token; without it 401 in the API\'s shape, and nothing changes', async () => {
  const file = tr.rack.layout.controlToken;
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const token = readControlToken(tr.dataDir)!;
  assert.match(token, /^[A-Za-z0-9_-]{43}$/);
  let shutdowns = 0;
  tr.rack.onShutdownRequest = () => void (shutdowns += 1);
  const serial = tr.node(0).serial;
  const nodes = tr.rack.config.nodes.length;
  const routes: [string, string, string][] = [
    ['GET', '/rack', ''], ['GET', '/rack/bmcs', ''], ['POST', '/rack/nodes', '{"count":1}'], ['GET', `/rack/nodes/${serial}`, ''],
    ['PATCH', `/rack/nodes/${serial}/faults`, '{"bmcUnreachable":true}'], ['DELETE', `/rack/nodes/${serial}/faults`, '{}'],
    ['POST', '/rack/shutdown', '{}'], ['POST', '/rack/token', '{}'], ['GET', '/rack/nothing', ''],
  ];
  for (const auth of [undefined, 'Bearer wrong-token', `Bearer ${token}x`, `Basic ${Buffer.from(`x:${token}`).toString('base64')}`, `bearer${token}`]) {
    for (const [method, path, body] of routes) {
      const headers: Record<string, string> = { 'Content-Type': 'application/json' };
      if (auth) headers['Authorization'] = auth;
      const init: RequestInit = { method, headers };
      if (body) init.body = body;
      const res = await fetch(`${tr.rack.controlUrl}${path}`, init);
      const json = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(res.status, 401, `${method} ${path} with ${auth ?? 'no token'}`);
      assert.equal(json.error.code, 'CVG_ERR_AUTH');
      assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="converge-rack"');
      assert.ok(!JSON.stringify(json).includes(token), 'the answer does not echo a token');
    }
  }
  assert.equal(shutdowns, 0);
  assert.equal(tr.rack.config.nodes.length, nodes);
  assert.equal(tr.rack.summary(tr.node(0)).bmc.reachable, true);
  assert.equal(readControlToken(tr.dataDir), token, 'the token was not rotated');
  // an unauthenticated change with a big body: refused from its headers, the body not read
  const big = await control(`POST /rack/nodes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${50 << 20}\r\n\r\n{"count":`);
  assert.equal(big.status, 401);
  assert.equal(big.json.error.code, 'CVG_ERR_AUTH');
  assert.equal(big.closed, true);
  // with the token, the same client works; the token is in no log
  const api = tr.api();
  assert.equal((await api.status()).nodes.length, nodes);
  await api.shutdown();
  assert.equal(shutdowns, 1);
  tr.rack.onShutdownRequest = () => undefined;
  assert.ok(!tr.logs.join('\n').includes(token), 'the rack log does not show the token');
});

test('control API: bodies are checked against their schema (400 naming the field), limited (413), JSON only', async () => {
  const token = tr.endpoint().token;
  const call = async (method: string, path: string, body: string, type = 'application/json'): Promise<{ status: number; json: any; headers: Headers }> => {
    const res = await fetch(`${tr.rack.controlUrl}${path}`, { method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': type }, body });
    return { status: res.status, json: await res.json(), headers: res.headers };
  };
  const serial = tr.node(0).serial;
  const nodes = tr.rack.config.nodes.length;
  const faults = JSON.stringify(tr.node(0).state.faults);
  const cases: [string, string, string, string][] = [
    ['POST', '/rack/nodes', '{"count":0}', 'count'],
    ['POST', '/rack/nodes', '{"count":1001}', 'count'],
    ['POST', '/rack/nodes', '{"count":1,"colour":"red"}', 'colour'],
    ['POST', '/rack/nodes', '{"model":""}', 'model'],
    ['POST', '/rack/nodes', '{"modelFile":{"name":"X"}}', 'model.vendor'],
    ['POST', '/rack/nodes', '7', 'body'],
    ['POST', '/rack/nodes', '{"count":', 'body'],
    ['PATCH', `/rack/nodes/${serial}/faults`, '{"failedDisks":[1]}', 'failedDisks.0'],
    ['PATCH', `/rack/nodes/${serial}/faults`, '{"bmcSlowMs":1.5}', 'bmcSlowMs'],
    ['PATCH', `/rack/nodes/${serial}/faults`, '{"installerCrashAtPercent":"half"}', 'installerCrashAtPercent'],
    ['PATCH', `/rack/nodes/${serial}/faults`, '{"bootFailure":true,"melt":true}', 'melt'],
    ['DELETE', `/rack/nodes/${serial}/faults`, '{"all":true}', 'all'],
    ['POST', '/rack/shutdown', '{"now":true}', 'now'],
    ['POST', '/rack/token', '[]', 'body'],
  ];
  for (const [method, path, body, field] of cases) {
    const r = await call(method, path, body);
    assert.equal(r.status, 400, `${method} ${path} ${body}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error.code, 'CVG_ERR_INPUT');
    assert.equal(r.json.error.field, field, `${method} ${path} ${body}`);
  }
  const tooBig = await call('PATCH', `/rack/nodes/${serial}/faults`, JSON.stringify({ failedDisks: ['x'.repeat(100 << 10)] }));
  assert.equal(tooBig.status, 413);
  assert.deepEqual([tooBig.json.error.code, tooBig.json.error.field], ['CVG_ERR_INPUT', 'body']);
  assert.equal(tooBig.headers.get('connection'), 'close');
  const wrongType = await call('POST', '/rack/shutdown', '{}', 'text/plain');
  assert.deepEqual([wrongType.status, wrongType.json.error.field], [400, 'Content-Type']);
  assert.equal(tr.rack.config.nodes.length, nodes, 'no node was added');
  assert.equal(JSON.stringify(tr.node(0).state.faults), faults, 'no fault was injected');
  // a known path with another method: 405 with Allow; an unknown method: 501 in the API's shape
  const put = await control(`PUT /rack HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Length: 0\r\n\r\n`);
  assert.deepEqual([put.status, put.headers['allow'], put.json.error.field], [405, 'GET', 'method']);
  // a method only some servers know, and a wrong method with a body of the wrong type: 405 still (the method is checked first)
  const purge = await control(`PURGE /rack/nodes/${serial}/faults HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`);
  assert.deepEqual([purge.status, purge.headers['allow'], purge.json.error.allowed], [405, 'PATCH, DELETE', ['PATCH', 'DELETE']]);
  const putText = await control(`PUT /rack/nodes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi`);
  assert.deepEqual([putText.status, putText.headers['allow']], [405, 'POST']);
  const fake = await control('FAKEMETHOD /rack HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.deepEqual([fake.status, fake.json.error.code, fake.json.error.field], [501, 'CVG_ERR_INPUT', 'method']);
  const garbage = await control('GET /rack HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n');
  assert.deepEqual([garbage.status, garbage.json.error.code], [400, 'CVG_ERR_INPUT']);
  assert.equal((await tr.api().node(serial)).serial, serial, 'the API answers on');
});

test('control API: the token rotates; the old one stops working at once, the new one is in the file', async () => {
  const old = tr.endpoint();
  await new RackClient(old).rotateToken();
  const now = tr.endpoint();
  assert.notEqual(now.token, old.token);
  assert.equal(statSync(tr.rack.layout.controlToken).mode & 0o777, 0o600);
  await assert.rejects(new RackClient(old).status(), (e: unknown) => e instanceof RackApiError && e.status === 401 && e.code === 'CVG_ERR_AUTH');
  assert.equal((await new RackClient(now).bmcs()).bmcs.length, 2);
  assert.ok(!tr.logs.join('\n').includes(now.token));
});
