/**
 * Foundation's HTTP edge, through the app factory and inject(): every JSON route parses its body
 * with a schema, so malformed input is a 4xx in Foundation's envelope naming the field, never a 500.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { SystemClock } from '../../shared/clock.ts';
import { Foundation } from './foundation.ts';
import { createFoundationApi } from './api.ts';

const dirs: string[] = [];
const apps: FastifyInstance[] = [];
after(async () => {
  for (const a of apps) await a.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Foundation with no rack and no SSDP (discovery finds nothing, at once). */
function app(): FastifyInstance {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-fapi-'));
  dirs.push(dir);
  const f = new Foundation({
    dataDir: dir, clock: new SystemClock(), url: 'http://127.0.0.1:1', log: () => undefined, profile: 'lab', bmcPort: 8443,
    creds: { user: 'admin', password: 'x' }, rackUrls: [], ssdpPort: 0,
  });
  const a = createFoundationApi(f);
  apps.push(a);
  return a;
}

type Reply = { status: number; json: any };
async function post(a: FastifyInstance, url: string, body: string | undefined, type = 'application/json'): Promise<Reply> {
  const r = await a.inject({ method: 'POST', url, ...(body === undefined ? {} : { payload: body }), headers: { 'content-type': type } });
  let json: unknown;
  try {
    json = r.json();
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, json };
}

function assertInputError(r: Reply, field: string, what: string): void {
  assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.json)}`);
  assert.equal(r.json.error.code, 'CVG_ERR_INPUT', what);
  assert.ok(field in r.json.error.details, `${what}: names ${field}: ${JSON.stringify(r.json.error.details)}`);
  assert.equal(typeof r.json.error.message, 'string');
  assert.ok('session_id' in r.json.error);
}

test('node_network_details: a wrong shape is a 400 naming the field', async () => {
  const a = app();
  assertInputError(await post(a, '/foundation/node_network_details', '{"nodes":5}'), 'nodes', 'nodes a number');
  assertInputError(await post(a, '/foundation/node_network_details', '{"nodes":[null]}'), 'nodes[0]', 'a null node');
  assertInputError(await post(a, '/foundation/node_network_details', '{"nodes":[{"ipv6_address":7}]}'), 'nodes[0].ipv6_address', 'a number address');
  assertInputError(await post(a, '/foundation/node_network_details', '[]'), 'body', 'an array');
  const none = await post(a, '/foundation/node_network_details', '{}');
  assert.equal(none.status, 200);
  assert.deepEqual(none.json, { nodes: [] });
});

test('plan_check: missing fields, nulls and numbers where strings belong are 400s naming the field', async () => {
  const a = app();
  assertInputError(await post(a, '/foundation/plan_check', '{}'), 'clusterName', 'empty object');
  assertInputError(await post(a, '/foundation/plan_check', '{"nodes":[]}'), 'clusterName', 'nodes only');
  assertInputError(await post(a, '/foundation/plan_check', '{"nodes":"abc"}'), 'clusterName', 'nodes a string');
  assertInputError(await post(a, '/foundation/plan_check', 'null'), 'body', 'null');
  assertInputError(await post(a, '/foundation/plan_check', undefined), 'body', 'no body');
  const good = {
    clusterName: 'c', dns: [], ntp: [], hostnamePrefix: 'n', lab: true,
    bmc: { netmask: '255.255.0.0', gateway: '127.49.255.254' },
    host: { netmask: '255.255.0.0', gateway: '127.49.255.254', start: '127.49.0.1' },
    cvm: { netmask: '255.255.0.0', gateway: '127.49.255.254', start: '127.49.1.1' },
    nodes: [{ serial: 'A', bmcIp: '127.49.2.1' }],
  };
  assertInputError(await post(a, '/foundation/plan_check', JSON.stringify({ ...good, nodes: 'abc' })), 'nodes', 'nodes a string');
  assertInputError(await post(a, '/foundation/plan_check', JSON.stringify({ ...good, nodes: [null] })), 'nodes[0]', 'a null node');
  assertInputError(await post(a, '/foundation/plan_check', JSON.stringify({ ...good, nodes: [{ serial: 5 }] })), 'nodes[0].serial', 'a number serial');
  assertInputError(await post(a, '/foundation/plan_check', JSON.stringify({ ...good, clusterName: null })), 'clusterName', 'a null name');
  assertInputError(await post(a, '/foundation/plan_check', JSON.stringify({ ...good, host: { ...good.host, gateway: 1 } })), 'host.gateway', 'a number gateway');
  assertInputError(await post(a, '/foundation/plan_check', JSON.stringify({ ...good, dns: [null] })), 'dns[0]', 'a null DNS server');
  // the plan's own rules stay the plan's errors, in a 200 answer
  const empty = await post(a, '/foundation/plan_check', JSON.stringify({ ...good, nodes: [] }));
  assert.equal(empty.status, 200);
  assert.equal(empty.json.plan, null);
  assert.equal(empty.json.errors[0].field, 'nodes');
});

test('image_nodes, ipmi_config, cvm_announce and installer reports: malformed bodies are 400s naming the field', async () => {
  const a = app();
  assertInputError(await post(a, '/foundation/cvm_announce', 'null'), 'body', 'null announcement');
  assertInputError(await post(a, '/foundation/cvm_announce', '{"serial":5}'), 'serial', 'number serial');
  assertInputError(await post(a, '/foundation/image_nodes', '{"blocks":[{"nodes":[null]}]}'), 'cvm_netmask', 'image_nodes without netmasks');
  assertInputError(await post(a, '/foundation/image_nodes', 'null'), 'body', 'image_nodes null');
  assertInputError(await post(a, '/foundation/ipmi_config', '{"ipmi_netmask":"255.0.0.0","ipmi_gateway":"10.0.0.1","blocks":[{"nodes":[5]}]}'), 'blocks[0].nodes[0]', 'ipmi_config number node');
  assertInputError(await post(a, '/foundation/installer/s/n/report', '{"percent":"x"}'), 'serial', 'report without serial');
});

test('a POST with Content-Type: application/json and no body is no body: accepted where none is needed', async () => {
  const a = app();
  const abort = await post(a, '/foundation/abort_session?session_id=nope', undefined);
  assert.equal(abort.status, 404, JSON.stringify(abort.json));
  assert.equal(abort.json.error.code, 'CVG_ERR_NOT_FOUND');
  assert.equal(abort.json.error.session_id, 'nope');
  const blank = await post(a, '/foundation/abort_session?session_id=nope', '  \n');
  assert.equal(blank.status, 404);
  const del = await a.inject({ method: 'DELETE', url: '/foundation/sessions', headers: { 'content-type': 'application/json' } });
  assert.equal(del.statusCode, 404);
  assert.equal(del.json().error.code, 'CVG_ERR_NOT_FOUND');
  const inBody = await post(a, '/foundation/abort_session', '{"session_id":"nope"}');
  assert.equal(inBody.status, 404, 'the session may be named in the body');
  assertInputError(await post(a, '/foundation/abort_session', undefined), 'session_id', 'no session at all');
});

test('Fastify\'s own refusals are in Foundation\'s envelope: bad JSON, a wrong content type, an unknown endpoint', async () => {
  const a = app();
  assertInputError(await post(a, '/foundation/plan_check', '{"clusterName":'), 'body', 'truncated JSON');
  assertInputError(await post(a, '/foundation/plan_check', '{"__proto__":{"x":1}}'), 'body', 'prototype poisoning');
  const xml = await post(a, '/foundation/plan_check', '<plan/>', 'application/xml');
  assert.equal(xml.status, 415);
  assert.ok('Content-Type' in xml.json.error.details);
  assertInputError(await post(a, '/foundation/plan_check', 'hello', 'text/plain'), 'body', 'text');
  const missing = await a.inject({ method: 'GET', url: '/foundation/nope?token=secret' });
  assert.equal(missing.statusCode, 404);
  assert.equal(missing.json().error.code, 'CVG_ERR_NOT_FOUND');
  assert.doesNotMatch(missing.body, /secret/, 'the query is not echoed');
});
