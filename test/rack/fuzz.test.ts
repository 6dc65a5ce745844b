/**
 * Property-based fuzzing (fast-check) of the rack's two HTTP edges, over raw connections so that
 * anything goes: random methods (known, unknown, malformed), paths (every route of the table with
 * its parameters, plus random ones, `/Members`, %-sequences, queries), credentials, content types,
 * bodies (the routes' own properties with random values, random JSON, garbage, bodies over the
 * limit). The properties: every request gets an answer (no reset, no crash), none is a 5xx except
 * 501 where the protocol says so (a method the server does not know; a `$` query on a BMC), and
 * every error is in the protocol's own shape: a Redfish error body on the BMC, the control API's
 * `{ error: { code, message, field? } }` there. Bounded: a few seconds per edge.
 * Its own rack on 127.35 with ports of its own (sushy.test.ts has 127.35 on the default ports).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { TestRack, rawRequest, type RawResponse } from '../drivers/rack-driver.ts';
import { redfishRoutes, type BmcHost } from '../../src/rack/node/redfish/resources.ts';
import { KNOWN_METHODS } from '../../src/rack/node/redfish/router.ts';
import { readControlToken } from '../../src/rack/protocol/access.ts';

const BMC_PORT = 9443;
const CONTROL_PORT = 9080;
/** Wall-clock budget of each property (fast-check stops there and reports what it ran). */
const BUDGET_MS = 5000;
let tr: TestRack;
let ca: string;

before(async () => {
  tr = await TestRack.start('127.35', { nodes: 1, bmcPort: BMC_PORT, controlPort: CONTROL_PORT, ssdpPort: 21035 });
  ca = readFileSync(tr.rack.layout.caCert, 'utf8');
});
after(async () => {
  await tr.stop();
});

const BASIC = `Basic ${Buffer.from('admin:lab-password-1').toString('base64')}`;
const BIG = (1 << 20) + 10;

/** A request as bytes: request line, headers, body. */
function wire(method: string, target: string, headers: Record<string, string>, body: string | undefined): string {
  const h = { Host: 'fuzz', ...headers, ...(body !== undefined ? { 'Content-Length': String(Buffer.byteLength(body)) } : {}) };
  return `${method} ${target} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body ?? ''}`;
}

const methodArb = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom('GET', 'GET', 'POST', 'POST', 'PATCH', 'PATCH', 'DELETE', ...KNOWN_METHODS) },
  { weight: 2, arbitrary: fc.constantFrom('FAKEMETHOD', 'PROPFIND', 'TRACE', 'CONNECT', 'get', 'PURGE', 'M-SEARCH') },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z!#$%&'*+.^_`|~-]{1,12}$/) },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 8 }) },
);

const segmentArb = fc.oneof(
  fc.constantFrom('1', '2', 'Members', 'Disk.Bay.0', 'CPU1', 'SEL', 'Console', 'BMC', 'HBA0', '..', '.', '%2e%2e', '%zz', '%E0%A4%A', '%00', '$metadata', 'x'),
  fc.stringMatching(/^[A-Za-z0-9._~%-]{1,12}$/),
  fc.string({ maxLength: 6 }),
);
const queryArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant('') },
  { weight: 1, arbitrary: fc.constantFrom('?$expand=*', '?$top=1', '?only', '?$filter=x%20eq%201', '?a=b&c') },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }).map((q) => `?${q}`) },
);

/** Bodies: nothing, the routes' own properties with random values, random JSON, garbage, too big. */
function bodyArb(props: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<string | undefined> {
  const known = fc.dictionary(fc.constantFrom(...Object.keys(props)), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 })
    .chain((d) => fc.record(Object.fromEntries(Object.keys(d).map((k) => [k, fc.oneof(props[k] as fc.Arbitrary<unknown>, fc.jsonValue({ maxDepth: 2 }))]))));
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 6, arbitrary: known.map((o) => JSON.stringify(o)) },
    { weight: 2, arbitrary: fc.json({ maxDepth: 3 }) },
    { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.constantFrom('{', '{"a":', 'null', '[]', '"x"', '\u0000', '{"__proto__":{"x":1}}') },
    { weight: 1, arbitrary: fc.constant(`{"pad":"${'x'.repeat(BIG)}"}`) },
  );
}

const contentTypeArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  { weight: 3, arbitrary: fc.constantFrom(undefined, 'text/plain', 'application/json; charset=utf-8', 'application/x-www-form-urlencoded', 'APPLICATION/JSON', 'multipart/form-data; boundary=x') },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
);

/** A fetched answer, or the failure to get one (which the properties count as a failure). */
async function send(host: string, port: number, tls: boolean, method: string, target: string, headers: Record<string, string>, body: string | undefined): Promise<RawResponse> {
  return rawRequest({ host, port, ...(tls ? { ca } : {}), data: [wire(method, target, headers, body)], timeoutMs: 10_000, head: method === 'HEAD' });
}

test('fuzz: the Redfish service answers every request, never with a 5xx it should not, errors always as Redfish error bodies', async () => {
  const routePaths = redfishRoutes({} as BmcHost).map((r) => r.path);
  const filled = (p: string, seg: string): string =>
    p.replace('{sid}', '1').replace(/\{(\w+)\}/g, (_m, name: string) => (name === 'id' && p.includes('/Accounts/') && seg === '1' ? '2' : seg)); // admin (account 1) stays usable
  const pathArb = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...routePaths).map((p) => filled(p, '1')) },
    { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...routePaths), segmentArb).map(([p, s]) => filled(p, s)) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...routePaths), segmentArb).map(([p, s]) => `${filled(p, '1')}/${s}`) },
    { weight: 1, arbitrary: fc.constantFrom(...routePaths).map((p) => `${filled(p, '1')}/Members`) },
    { weight: 2, arbitrary: fc.array(segmentArb, { maxLength: 4 }).map((ss) => `/redfish/v1/${ss.join('/')}`) },
    { weight: 1, arbitrary: fc.constantFrom('/', '*', '//redfish/v1', '/redfish/v1//Systems', 'http://x/redfish/v1/Systems', '/redfish/v1/Systems/1/') },
  );
  const props: Record<string, fc.Arbitrary<unknown>> = {
    ResetType: fc.constantFrom('On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart', 'PowerCycle', 'Nmi', 'Bogus'),
    Boot: fc.record({ BootSourceOverrideTarget: fc.constantFrom('Cd', 'Hdd', 'Pxe', 'None', 'Usb'), BootSourceOverrideEnabled: fc.constantFrom('Once', 'Continuous', 'Disabled', 'Never') }, { requiredKeys: [] }),
    AssetTag: fc.string({ maxLength: 40 }),
    Image: fc.constantFrom('http://127.0.0.1:9/none.iso', 'nfs://x/y', 'http://user:pw@127.0.0.1:9/a.tar', '%zz'),
    Inserted: fc.boolean(), WriteProtected: fc.boolean(),
    ImageURI: fc.constantFrom('http://127.0.0.1:9/fw.json', 'ftp://x', ''),
    TransferProtocol: fc.constantFrom('HTTP', 'HTTPS', 'FTP'),
    SessionTimeout: fc.oneof(fc.integer({ min: -10, max: 100_000 }), fc.double()),
    HostName: fc.string({ maxLength: 70 }),
    Attributes: fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
    UserName: fc.stringMatching(/^[a-z][a-z0-9]{0,10}$/).filter((u) => u !== 'admin'),
    Password: fc.string({ maxLength: 70 }),
    RoleId: fc.constantFrom('Administrator', 'Operator', 'ReadOnly', 'Root'),
    Locked: fc.boolean(),
    '@odata.id': fc.string({ maxLength: 10 }),
  };
  const authArb = fc.oneof(
    { weight: 8, arbitrary: fc.constant<Record<string, string>>({ Authorization: BASIC }) },
    { weight: 2, arbitrary: fc.constantFrom<Record<string, string>>({}, { 'X-Auth-Token': 'not-a-session' }, { Authorization: 'Bearer x' }, { Authorization: 'Basic %%%' }) },
    // an unknown user costs a password hash check (as slow as a wrong password): rarely
    { weight: 1, arbitrary: fc.constant<Record<string, string>>({ Authorization: `Basic ${Buffer.from('fuzzer:wrong-password').toString('base64')}` }) },
  );
  const extraArb = fc.oneof(
    { weight: 8, arbitrary: fc.constant({}) },
    { weight: 2, arbitrary: fc.record({ 'If-Match': fc.constantFrom('"x"', '*', 'W/"y"'), 'If-None-Match': fc.constantFrom('"x"', '*'), 'OData-Version': fc.constantFrom('4.0', '3.0', '') }, { requiredKeys: [] }) },
  );
  // half at random, half aimed: a route that takes PATCH or POST, with credentials, JSON and its properties
  const routes = redfishRoutes({} as BmcHost);
  const changes = routes.flatMap((r) => [...(r.patch ? [['PATCH', r.path]] : []), ...(r.post ? [['POST', r.path]] : [])] as [string, string][]);
  const requestArb = fc.oneof(
    fc.record({ method: methodArb, path: pathArb, query: queryArb, auth: authArb, type: contentTypeArb, extra: extraArb, body: bodyArb(props) }),
    fc.record({
      target: fc.constantFrom(...changes), query: fc.constant(''), auth: fc.constant<Record<string, string>>({ Authorization: BASIC }),
      type: fc.constant<string | undefined>('application/json'), extra: fc.constant({}), body: bodyArb(props),
    }).map(({ target, ...rest }) => ({ ...rest, method: target[0], path: filled(target[1], '1') })),
  );
  const bmcIp = tr.node(0).identity.bmcIp;
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(requestArb, async ({ method, path, query, auth, type, extra, body }) => {
      runs += 1;
      const headers: Record<string, string> = { ...auth, ...extra };
      if (type !== undefined) headers['Content-Type'] = type;
      const r = await send(bmcIp, BMC_PORT, true, method, `${path}${query}`, headers, body);
      const what = `${method} ${path}${query} ${body?.slice(0, 80) ?? ''} → ${r.status} ${r.body.slice(0, 300)}`;
      assert.ok(Number.isInteger(r.status), what);
      const unknownMethod = !KNOWN_METHODS.includes(method);
      if (r.status >= 500) assert.ok(r.status === 501 && (unknownMethod || query.includes('$')), `a 5xx: ${what}`);
      if (r.status === 405) assert.ok(r.headers['allow'], `405 without Allow: ${what}`);
      if (r.status >= 400 && method !== 'HEAD') {
        assert.match(r.headers['content-type'] ?? '', /^application\/json/, what);
        const e = r.json?.error;
        assert.ok(e && typeof e.message === 'string' && typeof e.code === 'string' && e.code.startsWith('Base.1.24.0.'), `not a Redfish error body: ${what}`);
        assert.ok(Array.isArray(e['@Message.ExtendedInfo']) && e['@Message.ExtendedInfo'].length > 0 && e['@Message.ExtendedInfo'].every((m: { MessageId?: unknown }) => typeof m.MessageId === 'string'), `no Base messages: ${what}`);
      }
    }),
    { numRuns: 600, interruptAfterTimeLimit: BUDGET_MS },
  );
  assert.ok(runs >= 50, `only ${runs} requests in ${BUDGET_MS} ms`);
  // and it still answers as it should
  const ok = await send(bmcIp, BMC_PORT, true, 'GET', '/redfish/v1/Systems/1', { Authorization: BASIC }, undefined);
  assert.equal(ok.status, 200);
});

test('fuzz: the control API answers every request, never with a 5xx it should not, errors always as { error: { code, message } }', async () => {
  const serial = tr.node(0).serial;
  // racking nodes is tested elsewhere; here a valid count must not start hundreds of BMCs
  const added: unknown[] = [];
  (tr.rack as unknown as { addNodes: (...a: unknown[]) => Promise<unknown[]> }).addNodes = (...a: unknown[]) => {
    added.push(a);
    return Promise.resolve([]);
  };
  tr.rack.onShutdownRequest = () => undefined; // what the daemon would do is not this test's
  const pathArb = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('/rack', '/rack/bmcs', '/rack/nodes', `/rack/nodes/${serial}`, `/rack/nodes/${serial}/faults`, '/rack/shutdown', '/rack/token') },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom('/rack/nodes/', '/rack/', '/'), segmentArb, fc.constantFrom('', '/faults', '/x')).map(([a, b, c]) => `${a}${b}${c}`) },
    { weight: 1, arbitrary: fc.constantFrom('*', '//rack', '/rack/', 'http://x/rack', '/rack?x=1', '/rack/nodes/%zz/faults') },
  );
  const props: Record<string, fc.Arbitrary<unknown>> = {
    count: fc.oneof(fc.integer({ min: -2, max: 1002 }), fc.double(), fc.constant(null)),
    model: fc.constantFrom('CVG-H1065', 'CVG-F1120', 'NOPE', ''),
    modelFile: fc.oneof(fc.constant({ name: 'X' }), fc.jsonValue({ maxDepth: 2 })),
    bmcUnreachable: fc.boolean(), powerOnFailure: fc.boolean(), bootFailure: fc.boolean(),
    bmcSlowMs: fc.integer({ min: -1, max: 700_000 }),
    failedDisks: fc.array(fc.oneof(fc.constantFrom(...tr.node(0).inventory.disks.map((d) => d.serial)), fc.string({ maxLength: 8 })), { maxLength: 3 }),
    nicLinkDown: fc.array(fc.constantFrom('NIC1', 'NIC2', 'NIC9', ''), { maxLength: 3 }),
    installerCrashAtPercent: fc.oneof(fc.integer({ min: -5, max: 105 }), fc.constant(null)),
  };
  const authArb = fc.constantFrom<'token' | 'none' | 'wrong'>('token', 'token', 'token', 'none', 'wrong');
  // half at random, half aimed: a route that takes a body, with the token, JSON and its fields
  const changes: [string, string][] = [['POST', '/rack/nodes'], ['PATCH', `/rack/nodes/${serial}/faults`], ['DELETE', `/rack/nodes/${serial}/faults`], ['POST', '/rack/shutdown']];
  const requestArb = fc.oneof(
    fc.record({ method: methodArb, path: pathArb, auth: authArb, type: contentTypeArb, body: bodyArb(props) }),
    fc.record({ target: fc.constantFrom(...changes), auth: fc.constant<'token'>('token'), type: fc.constant<string | undefined>('application/json'), body: bodyArb(props) })
      .map(({ target, ...rest }) => ({ ...rest, method: target[0], path: target[1] })),
  );
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(requestArb, async ({ method, path, auth, type, body }) => {
      runs += 1;
      const headers: Record<string, string> = {};
      // every caller reads the token from the data dir (a fuzzed POST /rack/token may have replaced it)
      if (auth !== 'none') headers['Authorization'] = `Bearer ${auth === 'token' ? readControlToken(tr.dataDir) ?? '' : 'wrong-token'}`;
      if (type !== undefined) headers['Content-Type'] = type;
      const r = await send('127.35.255.254', CONTROL_PORT, false, method, path, headers, body);
      const what = `${method} ${path} (${auth}) ${body?.slice(0, 80) ?? ''} → ${r.status} ${r.body.slice(0, 300)}`;
      const unknownMethod = !['GET', 'HEAD', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS', 'PROPFIND', 'TRACE', 'PURGE', 'M-SEARCH'].includes(method);
      if (r.status >= 500) assert.ok(r.status === 501 && (unknownMethod || method === 'CONNECT'), `a 5xx: ${what}`);
      if (auth !== 'token' && r.status < 400) assert.fail(`answered without the token: ${what}`);
      if (r.status === 405) assert.ok(r.headers['allow'], `405 without Allow: ${what}`);
      if (r.status >= 400 && method !== 'HEAD') {
        const e = r.json?.error;
        assert.ok(e && typeof e.code === 'string' && e.code.startsWith('CVG_ERR_') && typeof e.message === 'string', `not the API's error shape: ${what}`);
        if (r.status === 400) assert.equal(typeof e.field, 'string', `a 400 names no field: ${what}`);
      }
    }),
    { numRuns: 600, interruptAfterTimeLimit: BUDGET_MS },
  );
  assert.ok(runs >= 50, `only ${runs} requests in ${BUDGET_MS} ms`);
  for (const a of added) {
    const [count, model] = a as [unknown, unknown];
    assert.ok(Number.isInteger(count) && (count as number) >= 1 && (count as number) <= 1000 && (model === undefined || typeof model === 'string'), `rack add reached with ${JSON.stringify(a)}`);
  }
  await tr.rack.clearFaults(serial);
  assert.equal((await tr.api().node(serial)).serial, serial);
});
