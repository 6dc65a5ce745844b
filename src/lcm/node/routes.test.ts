/**
 * LCM's API as an attacker on the same network meets it, over real mutual TLS on 127.142.0.2 with a
 * real etcd (127.142.0.2:23790): no client certificate, a certificate of another CA, a host's
 * certificate: refused; the operator's: every malformed, oversized or out-of-range body refused
 * naming the field, in the internal API's error body, and nothing recorded.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Agent, fetch as ufetch } from 'undici';
import { etcdFixture } from '../../../test/drivers/etcd.ts';
import { createInternalApi } from '../../shared/http-api.ts';
import { memberIdentities, type Identity } from '../../shared/identity.ts';
import { createCa, issueCert } from '../../shared/tls.ts';
import { LCM_PORT, LCM_UPGRADE_KEY } from '../protocol/lcm.ts';
import { registerLcmRoutes } from './routes.ts';
import { LcmService } from './service.ts';

const IP = '127.142.0.2';
const etcd = etcdFixture(IP, 'lcm-routes');
let app: FastifyInstance | undefined;
let svc: LcmService | undefined;
const ids: Record<'operator' | 'host' | 'stranger', Identity> = {} as never;
let serverCa = '';

before(async () => {
  if (etcd.opts.skip) return;
  const dca = await createCa('lcm deployment');
  const cca = await createCa('lcm cluster');
  const other = await createCa('someone else');
  serverCa = dca.cert;
  const node = await issueCert(dca, { cn: 'N1', ou: 'node', ips: [IP], usage: 'both' });
  const op = await issueCert(dca, { cn: 'operator', ou: 'operator', usage: 'client' });
  const member = await memberIdentities(cca, { serial: 'N1', cvmIp: IP, hostIp: '127.142.1.1' });
  const strange = await issueCert(other, { cn: 'operator', ou: 'operator', usage: 'client' });
  ids.operator = { cert: op.cert, key: op.key, ca: [dca.cert] };
  ids.host = { cert: member.host.cert, key: member.host.key, ca: [dca.cert] };
  ids.stranger = { cert: strange.cert, key: strange.key, ca: [dca.cert] };
  const identity: Identity = { cert: member.cvm.cert, key: member.cvm.key, ca: [dca.cert, cca.cert] };
  svc = new LcmService({
    etcd: etcd.client(), cluster: { uuid: 'c-1', name: 'lab' }, self: { cvmIp: IP, serial: 'N1' }, members: () => [], identity, bundleDir: join(mkdtempSync(join(tmpdir(), 'lcm-routes-')), 'bundles'),
    bmc: () => Promise.resolve(undefined), imageCa: () => Promise.reject(new Error('no CA')), log: () => undefined,
  });
  app = createInternalApi({ tls: { identity: node, anchors: { deployment: dca.cert, cluster: cca.cert } }, bodyLimit: 1 << 20, longBodyIdleMs: 5000, log: () => undefined });
  registerLcmRoutes(app, () => svc as LcmService);
  await app.listen({ host: IP, port: LCM_PORT });
});
after(async () => {
  await svc?.stop();
  await app?.close();
});

/** A request with the given client certificate (none: undefined); the status and parsed body, or the connection's failure. */
async function call(who: Identity | undefined, method: string, path: string, body?: string | Buffer, type = 'application/json'): Promise<{ status: number; json: any } | { failed: string }> {
  const agent = new Agent({ connect: { ca: serverCa, ...(who ? { cert: who.cert, key: who.key } : {}) } });
  try {
    const r = await ufetch(`https://${IP}:${LCM_PORT}${path}`, { method, dispatcher: agent, ...(body === undefined ? {} : { body, headers: { 'content-type': type } }) });
    const text = await r.text();
    return { status: r.status, json: text ? JSON.parse(text) : undefined };
  } catch (e) {
    return { failed: String((e as { cause?: unknown }).cause ?? e) };
  } finally {
    await agent.close();
  }
}
const status = (r: { status: number } | { failed: string }): number | string => ('status' in r ? r.status : 'refused');

test('without a certificate, with another CA\'s, or a host\'s: nothing answers', etcd.opts, async () => {
  for (const who of [undefined, ids.stranger]) {
    for (const [m, p] of [['GET', '/lcm/bundles'], ['GET', '/lcm/tasks'], ['POST', '/lcm/upgrade'], ['PUT', '/lcm/bundles']] as const) {
      const r = await call(who, m, p, m === 'GET' ? undefined : '{}');
      assert.ok(status(r) === 401 || status(r) === 'refused', `${m} ${p} as ${who ? 'a stranger' : 'nobody'}: ${JSON.stringify(r)}`);
    }
  }
  const host = await call(ids.host, 'POST', '/lcm/upgrade', '{"to":"1.1.0"}');
  assert.equal(status(host), 403, 'a host may not start an upgrade');
  assert.equal(status(await call(ids.host, 'GET', '/lcm/tasks')), 403, 'nor read its tasks');
  const none = await call(ids.operator, 'GET', '/lcm/tasks');
  assert.deepEqual('status' in none ? [none.status, none.json] : none, [200, []], 'no upgrade has run: no tasks');
});

test('bad input refused naming the field; an oversized body 413; nothing recorded', etcd.opts, async () => {
  const op = ids.operator;
  const expect = async (m: string, p: string, body: string | Buffer | undefined, code: number, field?: string, type?: string): Promise<void> => {
    const r = await call(op, m, p, body, type);
    assert.ok('status' in r, JSON.stringify(r));
    assert.equal(r.status, code, `${m} ${p}: ${JSON.stringify(r.json)}`);
    if (field) assert.equal(r.json.error.field, field, `${m} ${p}: ${JSON.stringify(r.json)}`);
  };
  await expect('POST', '/lcm/upgrade', '{"to":', 400);
  await expect('POST', '/lcm/upgrade', '[]', 400);
  await expect('POST', '/lcm/upgrade', '{"to":5}', 400, 'to');
  await expect('POST', '/lcm/upgrade', '{"to":"1.1.0","extra":1}', 400);
  await expect('POST', '/lcm/upgrade', '{"to":"1.1.0","stepTimeoutsS":{"restart":1}}', 400, 'stepTimeoutsS.restart');
  await expect('POST', '/lcm/upgrade', '{"to":"1.1.0","stepTimeoutsS":{"reboot":60}}', 400, 'stepTimeoutsS');
  await expect('POST', '/lcm/upgrade', '{"to":"9.9.9"}', 400, 'to');
  await expect('POST', '/lcm/upgrade', JSON.stringify({ to: 'x'.repeat(2 << 20) }), 413);
  await expect('GET', '/lcm/plan?to=../../etc/passwd', undefined, 400, 'to');
  await expect('GET', '/lcm/plan', undefined, 400, 'to');
  await expect('GET', '/lcm/precheck?to=1.1.0&x=1', undefined, 400);
  await expect('GET', '/lcm/bundles/..%2F..%2Fetc/file', undefined, 400, 'version');
  await expect('PUT', '/lcm/bundles', Buffer.from('not a bundle'), 400, 'body', 'application/octet-stream');
  await expect('PUT', '/lcm/bundles', '{"a":1}', 400, 'body');
  await expect('PUT', '/lcm/bundles', Buffer.alloc(257 << 20), 413, undefined, 'application/octet-stream');
  await expect('GET', '/lcm/upgrade', undefined, 404);
  for (const a of ['pause', 'resume', 'abort']) await expect('POST', `/lcm/upgrade/${a}`, '{}', 404);
  assert.deepEqual((await call(op, 'GET', '/lcm/bundles') as { json: unknown }).json, [], 'no bundle kept');
  assert.equal(await etcd.client().get(LCM_UPGRADE_KEY).string(), null, 'no upgrade recorded');
});
