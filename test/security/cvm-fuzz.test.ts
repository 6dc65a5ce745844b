/**
 * Property-based fuzz of the CVM's API (issue 10): a real CVM process object on loopback, its API
 * over mutual TLS, called with the operator's certificate and random methods, paths, content
 * types and bodies. Whatever comes in, the answer is well-formed HTTP, never an internal error
 * (500), and every error is the API's `{ error: { code, message } }`. The same for callers
 * without a certificate: nothing is served.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Cvm } from '../../src/cvm/node/cvm.ts';
import { httpRequest, rawTls, type RawAnswer } from '../drivers/raw-https.ts';
import { formatDisk } from '../../src/shared/disk-volume.ts';
import { DeploymentPki, writeIdentity, type Identity } from '../../src/shared/identity.ts';

const IP = '127.95.1.1';
const dir = mkdtempSync(join(tmpdir(), 'cvg-cvmfuzz-'));
let cvm: Cvm;
let operator: Identity;
let ca: string[];

before(async () => {
  const pki = await DeploymentPki.open(dir);
  operator = pki.operator;
  const idPath = join(dir, 'node', 'identity.json');
  const id = await pki.nodeIdentity('FUZZ1', ['127.95.0.1', IP]);
  writeIdentity(idPath, id);
  ca = id.ca;
  const disks = [0, 1].map((i) => {
    const p = join(dir, 'disks', `d${i}`);
    formatDisk(p, { serial: `FZ${i}`, model: 'M', mediaType: 'SSD', capacityBytes: 64 << 20 });
    return { serial: `FZ${i}`, path: p, mediaType: 'SSD', capacityBytes: 64 << 20 };
  });
  cvm = new Cvm({
    serial: 'FUZZ1', cvmIp: IP, hostIp: '127.95.0.1', foundationUrl: 'http://127.0.0.1:9', versions: { hypervisor: '1.0.0', nos: '1.0.0' },
    disks, cvm: { vcpus: 2, ramGiB: 4 }, stateDir: join(dir, 'state'), identity: idPath,
    link: { api: join(dir, 'api.sock'), nbd: join(dir, 'nbd.sock') },
  }, () => undefined);
  await cvm.start();
});
after(async () => {
  await cvm.stop();
  rmSync(dir, { recursive: true, force: true });
});

const raw = (request: Buffer, id: Pick<Identity, 'cert' | 'key'> | null): Promise<RawAnswer> => rawTls(IP, 2100, request, { ca, ...(id ?? {}) });

const ROUTES = ['/status', '/storage/pool', '/storage/containers', '/storage/vdisks', '/storage/vdisks/x', '/storage/vdisks/x/replicas', '/storage/containers/c',
  '/cluster/ca', '/cluster/health', '/cluster/create', '/cluster/prepare', '/cluster/commit', '/cluster/destroy', '/egroup/sync-many', '/nope',
  '/vms', '/vms/x', '/vms/x/power', '/vms/x/clone', '/vms/x/migrate', '/vms/x/console', '/vms/x/console/input', '/images', '/images/upload', '/images/x',
  '/subnets', '/subnets/x', '/tasks', '/tasks/x', '/hosts', '/hosts/x/maintenance', '/hosts/x/power-on'];

const pathArb = fc.oneof(
  fc.constantFrom(...ROUTES),
  fc.tuple(fc.constantFrom(...ROUTES), fc.string({ maxLength: 12 })).map(([r, x]) => r + encodeURIComponent(x)),
  fc.constantFrom('/storage/vdisks/%E0%A4%A', '/storage/vdisks/%', '/storage/vdisks/' + 'a'.repeat(300), '//status', '/status?x=%zz', '/storage/vdisks/..%2f..%2fetc'),
);
const bodyArb = fc.oneof(
  fc.constant(''),
  fc.json({ maxDepth: 3 }),
  fc.string({ maxLength: 200 }),
  fc.record({ name: fc.string({ maxLength: 40 }), cvmIps: fc.array(fc.string({ maxLength: 20 }), { maxLength: 4 }), size: fc.oneof(fc.string({ maxLength: 10 }), fc.integer()), clusterId: fc.string({ maxLength: 40 }) }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
);
const typeArb = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/octet-stream', '', 'application/x-www-form-urlencoded');

const request = (method: string, path: string, type: string, body: string): Buffer => httpRequest(IP, method, path, type, body);

test('any request with the operator\'s certificate: a well-formed answer, never an internal error, errors in the API\'s shape', async () => {
  await fc.assert(fc.asyncProperty(fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS'), pathArb, typeArb, bodyArb, async (method, path, type, body) => {
    // a destroy the operator means would be obeyed: the fuzz sends it only with a cluster id that is not this CVM's
    if (path.startsWith('/cluster/destroy')) body = JSON.stringify({ clusterId: 'not-this-one' });
    const a = await raw(request(method, path, type, body), operator);
    assert.ok(a.status >= 200 && a.status < 600, `${method} ${path}: no HTTP answer`);
    assert.notEqual(a.status, 500, `${method} ${path} ${type} ${body.slice(0, 80)} → 500: ${a.body.slice(0, 300)}`);
    if (a.status >= 400 && a.status !== 503) assert.match(a.body, /"error":\{"code":"CVG_ERR_[A-Z_]+","message":/, `${method} ${path} → ${a.status}: ${a.body.slice(0, 200)}`);
  }), { numRuns: 300, seed: 10 });
  // the CVM is still unconfigured and well
  const st = await raw(request('GET', '/status', '', ''), operator);
  assert.equal(st.status, 200);
  assert.match(st.body, /"configured":false/);
});

test('without a certificate, nothing is served, whatever is sent', async () => {
  await fc.assert(fc.asyncProperty(pathArb, bodyArb, async (path, body) => {
    const a = await raw(request('POST', path, 'application/json', body), null);
    assert.equal(a.status, 0, `${path}: answered ${a.status} to a client without a certificate`);
  }), { numRuns: 40, seed: 11 });
});
