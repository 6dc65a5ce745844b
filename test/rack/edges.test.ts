/**
 * The rack's HTTP edges against a hostile client on the same network: the BMC reads a body only
 * after authentication, answers one over its limit with 413 and a Redfish body, answers what Node's
 * HTTP parser refuses with a Redfish body too, and takes POST to a collection's Members.
 * Its own rack on 127.33 with ports of its own (faults.test.ts has 127.33 on the default ports).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TestRack, rawRequest, type RawResponse } from '../drivers/rack-driver.ts';

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
