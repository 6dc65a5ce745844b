/**
 * Property tests of Prism's whole edge through `inject()` over fakes (node/fakes.ts): random
 * methods, paths (every route, with real and random parameters, and paths of no route), content
 * types, bodies and credentials. Whatever comes, Prism answers — never a 5xx, never a crash — and
 * every 4xx is in Prism's error shape (v2.0's on /api/nutanix/v2.0/, v3's everywhere else). And the
 * v3 list route with random filters answers 200 or a 400 naming its field, each within 100 ms.
 * Seeds are fixed: every machine runs the same cases.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { ADMIN, basicAuth, testPrism, type TestPrism } from './fakes.ts';

const SEED = 20_260_110;
const BUDGET_MS = 100;

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'OPTIONS' | 'PATCH' | 'HEAD';
/** The methods the routes take, more often than the others. */
const method = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<Method>('GET', 'POST') },
  { weight: 1, arbitrary: fc.constantFrom<Method>('PUT', 'DELETE', 'OPTIONS', 'PATCH', 'HEAD') },
);

/** Every route of Prism; `:id` is filled with a real id, a random one or a hostile one. */
const ROUTES = [
  '/', '/console/', '/api/converge/v1/prism', '/api/converge/v1/logout',
  '/PrismGateway/services/rest/v1/utils/change_default_system_password',
  '/api/vmm/unversioned/info', '/api/:id/unversioned/info',
  '/api/nutanix/v3/clusters/list', '/api/nutanix/v3/clusters/:id',
  '/api/nutanix/v3/hosts/list', '/api/nutanix/v3/hosts/:id', '/api/nutanix/v3/tasks/:id',
  '/api/nutanix/v2.0/storage_pools', '/api/nutanix/v2.0/storage_pools/:id',
  '/api/nutanix/v2.0/storage_containers', '/api/nutanix/v2.0/storage_containers/:id',
  '/api/nutanix/v2.0/virtual_disks', '/api/nutanix/v2.0/virtual_disks/:id',
  '/api/nutanix/v2.0/disks', '/api/nutanix/v2.0/disks/:id',
] as const;
const REAL_IDS = ['c1', 'host-1', 'ct-1', 'vd-1', 'vd1', 'D1', 'default-container', 'c1-pool'];

const segment = fc.oneof(
  fc.constantFrom(...REAL_IDS),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
  fc.constantFrom('%', '%E0%A4%A', '..', '.', '%00', '%2F', 'x'.repeat(150), ''),
);
const query = fc.oneof(
  fc.constant(''),
  fc.record({ count: fc.oneof(fc.nat().map(String), fc.string({ maxLength: 6 })), page: fc.oneof(fc.nat().map(String), fc.constantFrom('0', '-1', '1e300', '')) })
    .map((q) => `?count=${encodeURIComponent(q.count)}&page=${encodeURIComponent(q.page)}`),
  fc.string({ maxLength: 30 }).map((s) => `?${s}`),
);
const path = fc.tuple(
  fc.oneof(
    { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...ROUTES), segment).map(([r, id]) => r.replace(':id', id)) },
    { weight: 1, arbitrary: fc.array(segment, { maxLength: 5 }).map((xs) => `/${xs.join('/')}`) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('/api/nutanix/v3/', '/api/nutanix/v2.0/', '/api/vmm/v4.3/', '/PrismGateway/'), fc.array(segment, { maxLength: 3 })).map(([p, xs]) => p + xs.join('/')) },
  ),
  query,
).map(([p, q]) => p + q);

const contentType = fc.constantFrom(undefined, 'application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', '', ';;;', 'application/json; charset=latin-9');

/** Bodies shaped like what the routes take, with wrong and hostile values among the right ones. */
const anyValue = fc.oneof(fc.jsonValue(), fc.constantFrom(undefined, null, -1, 0, 1.5, 1e300, '', 'x'.repeat(2000), [], {}));
const shapedBody = fc.oneof(
  fc.record({ kind: fc.constantFrom('host', 'cluster', 'vm', 5), length: anyValue, offset: anyValue, filter: fc.oneof(anyValue, fc.string({ maxLength: 200 })), sort_attribute: fc.oneof(anyValue, fc.constantFrom('name', 'uuid', 'hypervisor_ip')), sort_order: fc.oneof(anyValue, fc.constantFrom('ASCENDING', 'DESCENDING')) }, { requiredKeys: [] }),
  fc.record({ name: anyValue, replication_factor: fc.oneof(anyValue, fc.constantFrom(1, 2, 3, 4)) }, { requiredKeys: [] }),
  fc.record({ name: anyValue, disk_capacity_in_bytes: fc.oneof(anyValue, fc.constantFrom(1, 1 << 20, Number.MAX_SAFE_INTEGER)), storage_container_uuid: fc.oneof(anyValue, fc.constantFrom('ct-1', 'default-container')) }, { requiredKeys: [] }),
  fc.record({ oldPassword: fc.oneof(anyValue, fc.constant(ADMIN.password)), newPassword: anyValue }, { requiredKeys: [] }),
);
const payload = fc.oneof(
  fc.constant(undefined),
  shapedBody.map((b) => JSON.stringify(b)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 100 }),
  fc.constantFrom('', ' ', '{', '{"__proto__":{"a":1}}', '{"constructor":{"prototype":{}}}', '[[[[[[[[[[', 'null', '"x"', '\u0000', `[${'['.repeat(5000)}`),
);

type Credentials = 'admin' | 'none' | 'wrong-user' | 'garbage' | 'forged-cookie';
const credentials = fc.oneof({ weight: 6, arbitrary: fc.constant<Credentials>('admin') }, { weight: 1, arbitrary: fc.constantFrom<Credentials>('none', 'wrong-user', 'garbage', 'forged-cookie') });

/** Headers for a kind of credentials: the admin's current password (a case may have changed it); never wrong for the admin, so no lockout hides the routes. */
function headersFor(c: Credentials, p: TestPrism): Record<string, string> {
  switch (c) {
    case 'admin':
      return { authorization: basicAuth(ADMIN.user, p.accounts.passwords.get(ADMIN.user) ?? '') };
    case 'none':
      return {};
    case 'wrong-user':
      return { authorization: basicAuth('intruder', 'guess') };
    case 'garbage':
      return { authorization: 'Basic !!!not-base64' };
    case 'forged-cookie':
      return { cookie: 'NTNX_IGW_SESSION=forged' };
  }
}

/** Prism's error shape for the path the request went to (inject() resolves dot segments as a URL does). */
function assertErrorShape(sent: string, r: LightMyRequestResponse): void {
  const url = (sent.startsWith('//') ? new URL(`http://localhost${sent}`) : new URL(sent, 'http://localhost')).pathname;
  let j: Record<string, any>;
  try {
    j = r.json<Record<string, any>>();
  } catch {
    return assert.fail(`${r.statusCode} with a body that is not JSON: ${r.body.slice(0, 200)}`);
  }
  const v4 = /^\/api\/(clustermgmt|vmm|networking|prism)\/(v[0-9][^/]*|unversioned)\//.exec(url)?.[1];
  if (v4) {
    // the v4 error body: the SDKs pick its type by $objectType
    assert.equal(j['$objectType'], `${v4}.v4.error.ErrorResponse`, r.body);
    assert.equal(j['data']?.['$objectType'], `${v4}.v4.error.ErrorResponse`, r.body);
    assert.equal(typeof j['data']?.error?.[0]?.message, 'string', r.body);
    assert.match(j['data'].error[0].code, /^(CVG_ERR_[A-Z_]+|ENTITY_NOT_FOUND)$/, r.body);
    return;
  }
  if (url.startsWith('/api/nutanix/v2.0/')) {
    assert.equal(typeof j['message'], 'string', r.body);
    assert.equal(j['error_code']?.code, r.statusCode, r.body);
    assert.ok(Array.isArray(j['error_code']?.validation_errors), r.body);
    return;
  }
  assert.equal(j['api_version'], '3.1', r.body);
  assert.equal(j['code'], r.statusCode, r.body);
  assert.equal(j['state'], 'ERROR', r.body);
  assert.equal(typeof j['kind'], 'string', r.body);
  assert.equal(typeof j['message_list']?.[0]?.message, 'string', r.body);
  // a Converge error code, or the reference platform's ENTITY_NOT_FOUND on an entity's 404 (Terraform looks for it)
  assert.match(j['message_list'][0].reason, r.statusCode === 404 ? /^(CVG_ERR_[A-Z_]+|ENTITY_NOT_FOUND)$/ : /^CVG_ERR_[A-Z_]+$/, r.body);
}

test('property: any method, path, content type, body and credentials — no 5xx, no crash, every 4xx in Prism\'s error shape', async (t) => {
  const p = await testPrism();
  const seen = new Map<number, number>();
  try {
    await fc.assert(fc.asyncProperty(method, path, contentType, payload, credentials, async (method, url, ct, body, cred) => {
      const r = await p.app.inject({ method, url, headers: { ...headersFor(cred, p), ...(ct === undefined ? {} : { 'content-type': ct }) }, ...(body === undefined ? {} : { payload: body }) });
      seen.set(r.statusCode, (seen.get(r.statusCode) ?? 0) + 1);
      assert.ok(r.statusCode < 500, `${method} ${url} (${String(ct)}, ${cred}): ${r.statusCode} ${r.body.slice(0, 300)}`);
      if (r.statusCode >= 400 && method !== 'HEAD') assertErrorShape(url, r);
    }), { seed: SEED, numRuns: 1500 });
  } finally {
    await p.app.close();
  }
  t.diagnostic(`statuses: ${JSON.stringify([...seen].sort((a, b) => a[0] - b[0]))}`);
  // the cases reached the routes, not only the gate
  for (const status of [200, 400, 401, 404, 415]) assert.ok((seen.get(status) ?? 0) > 0, `no case answered ${status}: ${JSON.stringify([...seen])}`);
  assert.deepEqual(p.logs.filter((l) => !l.startsWith('failed login')), [], 'nothing was logged as a server error');
});

/** Filter texts: FIQL-looking clauses joined at random, and plain noise, up to just over the bound. */
const FIQL_CHARS = ['n', 'a', 'm', 'e', '_', 'u', 'i', 'd', '.', '-', '0', '1', '=', '!', ';', ',', '(', ')', '*', '%', '2', 'g', 't', ' ', '[', '\\'];
const filterText = fc.oneof(
  fc.string({ unit: fc.constantFrom(...FIQL_CHARS), maxLength: 1_050 }),
  fc.array(fc.tuple(fc.constantFrom('name', 'uuid', 'serial_number', 'hypervisor_ip', 'colour'), fc.constantFrom('==', '!=', '=gt=', '=le=', '=x='), fc.string({ unit: fc.constantFrom(...FIQL_CHARS), maxLength: 30 })), { maxLength: 60 })
    .map((cs) => cs.map(([a, op, v]) => `${a}${op}${v}`).join(';')),
  fc.constantFrom('uuid==0e4f2c4a([0-9a-f-]*)*X', `uuid==${'.*a'.repeat(330)}X`, Array.from({ length: 50 }, () => 'uuid==*a*b*a*X').join(',')),
);

test('property: the v3 list route with any filter, length, offset and sort answers 200 or a 400 naming its field, each within 100 ms', async () => {
  const p = await testPrism();
  const headers = { 'content-type': 'application/json', authorization: basicAuth() };
  const fields = new Set(['filter', 'length', 'offset', 'sort_attribute', 'sort_order', 'kind', 'body']);
  try {
    await fc.assert(fc.asyncProperty(filterText, fc.record({ length: anyValue, offset: anyValue, sort_attribute: fc.constantFrom('name', 'uuid', 'hypervisor_ip', 'colour'), sort_order: fc.constantFrom('ASCENDING', 'DESCENDING') }, { requiredKeys: [] }), async (filter, rest) => {
      for (let attempt = 0; ; attempt++) {
        const t0 = performance.now();
        const r = await p.app.inject({ method: 'POST', url: '/api/nutanix/v3/hosts/list', headers, payload: JSON.stringify({ kind: 'host', filter, ...rest }) });
        const took = performance.now() - t0;
        assert.ok(r.statusCode === 200 || r.statusCode === 400, `${r.statusCode} ${r.body.slice(0, 300)}`);
        if (r.statusCode === 400) {
          assertErrorShape('/api/nutanix/v3/hosts/list', r);
          const details = r.json<{ message_list: { details: Record<string, unknown> }[] }>().message_list[0]?.details ?? {};
          assert.ok(Object.keys(details).length === 1 && fields.has(Object.keys(details)[0] ?? ''), r.body);
        }
        // a run over budget is timed once more: a GC pause is not the route's doing
        if (took < BUDGET_MS) return;
        if (attempt > 0) assert.fail(`filter ${JSON.stringify(filter.slice(0, 60))} took ${took.toFixed(1)} ms`);
      }
    }), { seed: SEED, numRuns: 600 });
  } finally {
    await p.app.close();
  }
});
