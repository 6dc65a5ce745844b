import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LightMyRequestResponse } from 'fastify';
import { ADMIN, basicAuth, testPrism } from './fakes.ts';

const V3 = '/api/nutanix/v3';
const V2 = '/api/nutanix/v2.0';
const JSON_CT = { 'content-type': 'application/json' };

/** Prism's v3 error body (every path but /api/nutanix/v2.0/). */
function assertV3Error(r: LightMyRequestResponse, status: number, message?: RegExp): Record<string, any> {
  assert.equal(r.statusCode, status, r.body);
  const j = r.json<Record<string, any>>();
  assert.equal(j['api_version'], '3.1');
  assert.equal(j['code'], status);
  assert.equal(j['state'], 'ERROR');
  assert.equal(typeof j['kind'], 'string');
  assert.equal(typeof j['message_list']?.[0]?.message, 'string');
  assert.equal(typeof j['message_list']?.[0]?.reason, 'string');
  if (message) assert.match(j['message_list'][0].message, message);
  return j;
}

test('an empty JSON body is no body: the v4 SDKs\' OPTIONS and DELETE with Content-Type: application/json and nothing after it', async () => {
  const { app, tasks } = await testPrism();
  const info = await app.inject({ method: 'OPTIONS', url: '/api/vmm/unversioned/info', headers: { ...JSON_CT, authorization: basicAuth(), 'content-length': '0' } });
  assert.equal(info.statusCode, 200, info.body);
  assert.deepEqual(info.json(), { data: 'v4.3' }, 'the version the v4 SDKs negotiate with (they use v4.2 or later)');
  const other = await app.inject({ method: 'OPTIONS', url: '/api/lcm/unversioned/info', headers: { ...JSON_CT, authorization: basicAuth(), 'content-length': '0' } });
  assertV3Error(other, 404, /^v4 API namespace not found: lcm /);
  const vd = (await app.inject({ method: 'GET', url: `${V2}/virtual_disks`, headers: { authorization: basicAuth() } })).json<{ entities: { uuid: string }[] }>().entities[0]?.uuid ?? '';
  const del = await app.inject({ method: 'DELETE', url: `${V2}/virtual_disks/${vd}`, headers: { ...JSON_CT, authorization: basicAuth() } });
  assert.equal(del.statusCode, 200, del.body);
  assert.equal(tasks.tasks.get(del.json<{ task_uuid: string }>().task_uuid)?.operationType, 'kVDiskDelete');
  // and a POST whose body is empty, or only white space, is a list with the defaults
  for (const payload of ['', ' \n']) {
    const list = await app.inject({ method: 'POST', url: `${V3}/hosts/list`, headers: { ...JSON_CT, authorization: basicAuth() }, payload });
    assert.equal(list.statusCode, 200, list.body);
    assert.equal(list.json<{ metadata: { total_matches: number } }>().metadata.total_matches, 3);
  }
  await app.close();
});

test('authentication comes first: without credentials every method and path is a 401 in Prism\'s shape, whatever the body', async () => {
  const { app } = await testPrism();
  const cases: { method: 'GET' | 'POST' | 'OPTIONS' | 'DELETE' | 'PUT'; url: string; payload?: string; headers?: Record<string, string> }[] = [
    { method: 'OPTIONS', url: '/api/vmm/unversioned/info', headers: JSON_CT },
    { method: 'POST', url: `${V3}/hosts/list`, payload: '{not json', headers: JSON_CT },
    { method: 'POST', url: `${V3}/hosts/list`, payload: '', headers: JSON_CT },
    { method: 'POST', url: `${V3}/hosts/list`, payload: 'x', headers: { 'content-type': 'application/xml' } },
    { method: 'DELETE', url: `${V2}/virtual_disks/nope`, headers: JSON_CT },
    { method: 'PUT', url: '/no/such/path', payload: '{}', headers: JSON_CT },
    { method: 'GET', url: `${V3}/hosts/%E0%A4%A` },
    { method: 'GET', url: `${V3}/hosts/${'x'.repeat(200)}` },
  ];
  for (const c of cases) {
    const r = await app.inject({ method: c.method, url: c.url, headers: c.headers ?? {}, ...(c.payload === undefined ? {} : { payload: c.payload }) });
    assert.equal(r.statusCode, 401, `${c.method} ${c.url}: ${r.body}`);
    assert.match(String(r.headers['www-authenticate']), /^Basic realm="Prism"/);
    if (c.url.startsWith(V2)) assert.match(r.json<{ message: string }>().message, /authentication required/);
    else if (c.url.startsWith('/api/vmm/')) assert.match(r.json<{ data: { error: { message: string }[] } }>().data.error[0]?.message ?? '', /authentication required/, 'v4 paths answer the v4 error body');
    else assertV3Error(r, 401, /authentication required/);
  }
  const who = await app.inject({ method: 'GET', url: '/api/converge/v1/prism' });
  assert.equal(who.statusCode, 200, 'who leads needs no credentials');
  await app.close();
});

test('a logged-in user\'s malformed request is a 400 or 415 in Prism\'s shape naming what is wrong; an unknown path a 404', async () => {
  const { app } = await testPrism();
  const auth = { authorization: basicAuth() };
  assertV3Error(await app.inject({ method: 'POST', url: `${V3}/hosts/list`, headers: { ...JSON_CT, ...auth }, payload: '{not json' }), 400, /^body: is not valid JSON/);
  assertV3Error(await app.inject({ method: 'POST', url: `${V3}/hosts/list`, headers: { ...JSON_CT, ...auth }, payload: '{"__proto__":{"x":1}}' }), 400, /^body: /);
  assertV3Error(await app.inject({ method: 'POST', url: `${V3}/hosts/list`, headers: { 'content-type': 'text/plain', ...auth }, payload: 'length=5' }), 415, /^Content-Type: must be application\/json/);
  assertV3Error(await app.inject({ method: 'POST', url: `${V3}/hosts/list`, headers: auth, payload: Buffer.from('{}') }), 415, /^Content-Type: /);
  assertV3Error(await app.inject({ method: 'GET', url: `${V3}/volume_groups/list`, headers: auth }), 404, /endpoint not found: GET \/api\/nutanix\/v3\/volume_groups\/list/);
  assertV3Error(await app.inject({ method: 'GET', url: `${V3}/hosts/%E0%A4%A`, headers: auth }), 400, /^url: /);
  assertV3Error(await app.inject({ method: 'GET', url: `${V3}/hosts/${'x'.repeat(200)}`, headers: auth }), 400, /^url: has a path segment longer than/);
  const v2 = await app.inject({ method: 'POST', url: `${V2}/storage_containers`, headers: { ...JSON_CT, ...auth }, payload: '[' });
  assert.equal(v2.statusCode, 400);
  assert.deepEqual(v2.json<{ error_code: unknown }>().error_code, { code: 400, validation_errors: [{ field: 'body', message: v2.json<{ message: string }>().message }] });
  await app.close();
});

test('the ReDoS filter of the hostile tester answers 400 naming filter in under 100 ms, and Prism answers the next request', async () => {
  const { app } = await testPrism();
  const headers = { ...JSON_CT, authorization: basicAuth() };
  // the first inject() loads its module: not the filter's time
  await app.inject({ method: 'GET', url: '/api/converge/v1/prism' });
  // timed twice at most: a run over budget once may be a GC pause or a busy machine, twice is the filter
  for (let attempt = 0; ; attempt++) {
    const t0 = performance.now();
    const r = await app.inject({ method: 'POST', url: `${V3}/hosts/list`, headers, payload: JSON.stringify({ filter: 'uuid==0e4f2c4a([0-9a-f-]*)*X' }) });
    const took = performance.now() - t0;
    const j = assertV3Error(r, 400, /^filter: /);
    assert.equal(typeof j['message_list'][0].details.filter, 'string');
    if (took < 100) break;
    assert.ok(attempt === 0, `took ${took.toFixed(1)} ms`);
  }
  assertV3Error(await app.inject({ method: 'POST', url: `${V3}/clusters/list`, headers, payload: JSON.stringify({ filter: `name==${'a'.repeat(33_000)}` }) }), 400, /^filter: is 33006 characters long; at most 1000/);
  assert.equal((await app.inject({ method: 'POST', url: `${V3}/clusters/list`, headers, payload: JSON.stringify({ filter: 'name==la.*' }) })).json<{ metadata: { total_matches: number } }>().metadata.total_matches, 1);
  await app.close();
});

test('a body over 1 MiB is a 413 in Prism\'s shape and the connection is closed; the process goes on', async () => {
  const { app } = await testPrism();
  const big = JSON.stringify({ filter: 'x'.repeat(2 << 20) });
  for (const auth of [basicAuth(), basicAuth(ADMIN.user, 'wrong')]) {
    const r = await app.inject({ method: 'POST', url: `${V3}/hosts/list`, headers: { ...JSON_CT, authorization: auth }, payload: big });
    if (auth === basicAuth()) {
      assertV3Error(r, 413, /^body: is larger than 1048576 bytes/);
      assert.equal(r.headers['connection'], 'close');
    } else {
      assertV3Error(r, 401, /wrong user name or password/);
    }
  }
  assert.equal((await app.inject({ method: 'POST', url: `${V3}/hosts/list`, headers: { ...JSON_CT, authorization: basicAuth() }, payload: '{}' })).statusCode, 200);
  await app.close();
});
