/**
 * A deployed lab, tried as a hostile tester on the same network would (issue 10): every request
 * that once worked without credentials is refused at the TLS handshake (or with 401/403), and
 * changes nothing — the cluster stays healthy, the data readable.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Etcd3 } from 'etcd3';
import { TestFoundation } from '../drivers/foundation-driver.ts';
import { cvmCall } from '../../src/cvm/protocol/client.ts';
import { hostCall } from '../../src/hypervisor/protocol/client.ts';
import { DeploymentPki, type Identity } from '../../src/shared/identity.ts';
import { createCa, issueCert } from '../../src/shared/tls.ts';
import { ForbiddenError, ConflictError, UnavailableError } from '../../src/shared/errors.ts';
import { encodeRequest, OP_WRITE, REQ_MAGIC } from '../../src/cvm/core/replication-codec.ts';
import type { CvmStatus, StoreHealth } from '../../src/cvm/protocol/cluster.ts';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NbdClient } from '../../src/shared/nbd/client.ts';
import fc from 'fast-check';
import { httpRequest, rawTls } from '../drivers/raw-https.ts';

const NET = '127.92';
const CVMS = [`${NET}.1.1`, `${NET}.1.2`, `${NET}.1.3`];
const HOSTS = [`${NET}.0.1`, `${NET}.0.2`, `${NET}.0.3`];
let t: TestFoundation;
let stranger: Identity;
let node: Identity;

before(async () => {
  t = await TestFoundation.start('127.91', 18091, 3);
  await t.upload();
  const r = await t.call('POST', '/foundation/image_nodes', t.imageBody(NET, [0, 1, 2], {
    clusters: [{ cluster_name: 'lab', cluster_members: CVMS, cluster_init_now: true, redundancy_factor: 2, cvm_dns_servers: '127.0.0.53', cvm_ntp_servers: '127.0.0.123' }],
  }));
  assert.equal(r.status, 200, r.text);
  const p = await t.waitStopped(r.json.session_id as string, 180_000);
  assert.equal(p.aggregate_percent_complete, 100, JSON.stringify(p.clusters));
  // a certificate of a CA nobody trusts, claiming to be the operator
  const other = await issueCert(await createCa('attacker'), { cn: 'operator', ou: 'operator', usage: 'client' });
  stranger = { cert: other.cert, key: other.key, ca: (await DeploymentPki.open(t.dir)).operator.ca };
  // a real node certificate of this deployment (a node is not the operator)
  node = await (await DeploymentPki.open(t.dir)).nodeIdentity('INTRUDER', ['127.92.9.9']);
});
after(async () => {
  await t.stop();
});

/** Whether anything answers at HTTP level to a client with no certificate (the handshake should fail). */
async function answersWithoutCert(host: string, port: number, request: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host, port, rejectUnauthorized: false }, () => s.write(request));
    let out = '';
    s.on('data', (c: Buffer) => (out += c.toString()));
    s.on('error', () => resolve(out));
    s.on('close', () => resolve(out));
    s.setTimeout(5000, () => s.destroy());
  });
}

async function healthy(): Promise<void> {
  for (const ip of CVMS) {
    const st = await cvmCall<CvmStatus>(ip, '/status');
    assert.equal(st.configured, true, `${ip} still in the cluster`);
    assert.ok(st.services.some((s) => s.name === 'etcd' && s.state === 'up'), `${ip}: etcd up`);
  }
  const h = await cvmCall<StoreHealth>(CVMS[0]!, '/cluster/health');
  assert.equal(h.quorum, true);
}

test('the CVM API: destroy, prepare, create without a certificate get no answer; with another CA\'s none either; a node may not destroy', async () => {
  const destroy = 'POST /cluster/destroy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}';
  for (const ip of CVMS) assert.doesNotMatch(await answersWithoutCert(ip, 2100, destroy), /HTTP\/1\.1 200/, `${ip}: no certificate, no destroy`);
  await assert.rejects(cvmCall(CVMS[1]!, '/cluster/destroy', { body: {}, identity: stranger }), (e: unknown) => e instanceof UnavailableError);
  await assert.rejects(cvmCall(CVMS[1]!, '/cluster/destroy', { body: {}, identity: node }), (e: unknown) => e instanceof ForbiddenError);
  await assert.rejects(cvmCall(CVMS[1]!, '/cluster/create', { body: { name: 'evil', cvmIps: [CVMS[1]] }, identity: node }), (e: unknown) => e instanceof ForbiddenError);
  // plain HTTP to the API port: not served
  const plain = await new Promise<string>((resolve) => {
    const s = tcpConnect(2100, CVMS[0], () => s.write('GET /status HTTP/1.1\r\nHost: x\r\n\r\n'));
    let out = '';
    s.on('data', (c: Buffer) => (out += c.toString()));
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
    s.setTimeout(3000, () => s.destroy());
  });
  assert.doesNotMatch(plain, /"serial"/);
  await healthy();
});

test('etcd: a client without a cluster certificate reads nothing (not the CA key, not the admin hash)', async () => {
  const noCert = new Etcd3({ hosts: `https://${CVMS[0]!}:2379`, credentials: { rootCertificate: Buffer.from(t.memberTls(0).ca) }, dialTimeout: 2000 });
  try {
    await assert.rejects(Promise.race([noCert.get('/converge/prism/ca').string(), new Promise((_r, j) => setTimeout(() => j(new Error('timed out')), 8000))]));
  } finally {
    noCert.close();
  }
  const plain = new Etcd3({ hosts: `http://${CVMS[0]!}:2379`, dialTimeout: 2000 });
  try {
    await assert.rejects(Promise.race([plain.get('/converge/cluster').string(), new Promise((_r, j) => setTimeout(() => j(new Error('timed out')), 8000))]));
  } finally {
    plain.close();
  }
  // a member's certificate does read it
  const member = t.store(CVMS);
  try {
    assert.ok(await member.get('/converge/cluster').string());
  } finally {
    member.close();
  }
});

test('replication: a raw write frame from a stranger is never served', async () => {
  const frame = encodeRequest({ op: OP_WRITE, id: 1, disk: 'S0', vdisk: '0123abcd-4567-89ef-0123-456789abcdef', block: 0, offset: 0, length: 4 });
  assert.equal(frame.readUInt32BE(0), REQ_MAGIC);
  const got = await new Promise<Buffer>((resolve) => {
    const s = tcpConnect(2009, CVMS[0], () => s.write(Buffer.concat([frame, Buffer.from('evil')])));
    const out: Buffer[] = [];
    s.on('data', (c: Buffer) => out.push(c));
    s.on('close', () => resolve(Buffer.concat(out)));
    s.on('error', () => resolve(Buffer.concat(out)));
    s.setTimeout(3000, () => s.destroy());
  });
  assert.ok(got.length === 0 || got[0] === 0x15 || got[0] === 0x16, 'only TLS alerts or nothing come back, never a replication reply');
});

test('vdisks: NBD on a CVM without a certificate gets no export list and no data; hosts serve no NBD on the network', async () => {
  await cvmCall(CVMS[0]!, '/storage/vdisks', { body: { name: 'secret', size: '8M' } });
  const nbd = (uri: string): Promise<{ ok: boolean; out: string }> => new Promise((resolve) => {
    execFile('nbdinfo', ['--list', uri], { timeout: 20_000 }, (err, stdout, stderr) => resolve({ ok: !err, out: stdout + stderr }));
  });
  const plain = await nbd(`nbd://${CVMS[0]!}:10809/`);
  assert.equal(plain.ok, false);
  assert.doesNotMatch(plain.out, /secret/, 'no export list for a stranger');
  await assert.rejects(NbdClient.connect(CVMS[1]!, 10809, 'secret', 5000), 'no plain NBD session');
  await assert.rejects(NbdClient.connect(CVMS[1]!, 10809, 'secret', 5000, { tls: { cert: stranger.cert, key: stranger.key, ca: t.memberTls(0).ca } }), 'another CA\'s certificate');
  await assert.rejects(NbdClient.connect(HOSTS[0]!, 10809, 'secret', 2000), 'the redirector is not on the network');
  // the operator's certificate does get in
  const ok = await NbdClient.connect(CVMS[1]!, 10809, 'secret', 5000, { tls: t.nbdTls() });
  ok.close();
});

test('Foundation: a node callback without its credential is refused and changes nothing; the rack control API wants its token', async () => {
  const announced = join(t.dir, 'foundation', 'announced.json');
  const before = readFileSync(announced);
  const junk = { serial: t.tr.node(0).serial, cvmIp: CVMS[0], hostIp: HOSTS[0], hypervisorVersion: '6.6.6', nosVersion: '6.6.6', configured: false, clusterId: null };
  for (let i = 0; i < 5; i++) {
    const r = await t.call('POST', '/foundation/cvm_announce', junk);
    assert.ok(r.status === 401 || r.status === 403, `cvm_announce without a credential: ${r.status}`);
  }
  assert.ok(readFileSync(announced).equals(before), 'announced.json unchanged');
  const nodes = (await t.call('GET', '/foundation/discover_nodes')).json.flatMap((b: any) => b.nodes);
  assert.ok(!nodes.some((n: any) => n.nos_version === '6.6.6'), 'discovery shows no forged version');
  const shutdown = await fetch(`${t.tr.rack.controlUrl}/rack/shutdown`, { method: 'POST' });
  assert.equal(shutdown.status, 401);
  assert.equal((await hostCall<{ serial: string }>(HOSTS[0]!, '/status')).serial, t.tr.node(0).serial, 'the rack still runs');
});

test('fuzz of a clustered node\'s host agent with the operator\'s certificate: never a 500, errors in the API\'s shape, and the node stays where it is', async () => {
  const op = (await DeploymentPki.open(t.dir)).operator;
  const ip = z4();
  const bodyArb = fc.oneof(fc.constant(''), fc.json({ maxDepth: 3 }), fc.string({ maxLength: 200 }),
    fc.record({ hostname: fc.string({ maxLength: 70 }), hostIp: fc.oneof(ip, fc.string({ maxLength: 20 })), cvmIp: ip, hostNetmask: ip, hostGateway: ip, cvmNetmask: ip, cvmGateway: ip, foundationUrl: fc.webUrl(), cvm: fc.record({ vcpus: fc.integer(), ramGiB: fc.double() }) }, { requiredKeys: [] }).map((o) => JSON.stringify(o)));
  await fc.assert(fc.asyncProperty(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH'), fc.constantFrom('/status', '/configure', '/configure/x', '/', '/%E0%A4%A', '/status?x=%zz'), fc.constantFrom('application/json', 'text/plain', ''), bodyArb, async (method, path, type, body) => {
    const a = await rawTls(HOSTS[1]!, 8100, httpRequest(HOSTS[1]!, method, path, type, body), { ca: op.ca, cert: op.cert, key: op.key });
    assert.ok(a.status >= 200 && a.status < 500, `${method} ${path} ${body.slice(0, 80)} → ${a.status}: ${a.body.slice(0, 200)}`);
    if (a.status >= 400) assert.match(a.body, /"error":\{"code":"CVG_ERR_[A-Z_]+","message":/);
  }), { numRuns: 150, seed: 12 });
  const st = await hostCall<{ cvm: { ip: string } }>(HOSTS[1]!, '/status');
  assert.equal(st.cvm.ip, CVMS[1], 'no configuration was applied');
  await healthy();
});

/** Dotted IPv4 addresses. */
function z4(): fc.Arbitrary<string> {
  return fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((x) => x.join('.'));
}

test('the host agent: /configure needs the operator, and is refused while the node is in a cluster', async () => {
  const configure = 'POST /configure HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}';
  assert.doesNotMatch(await answersWithoutCert(HOSTS[0]!, 8100, configure), /HTTP\/1\.1 20/);
  const body = {
    hostname: 'moved', hostIp: `${NET}.0.99`, hostNetmask: '255.255.0.0', hostGateway: `${NET}.255.254`,
    cvmIp: `${NET}.1.99`, cvmNetmask: '255.255.0.0', cvmGateway: `${NET}.255.254`, foundationUrl: 'http://127.0.0.1:1', cvm: { vcpus: 4, ramGiB: 8 },
  };
  await assert.rejects(hostCall(HOSTS[0]!, '/configure', { body, identity: node }), (e: unknown) => e instanceof ForbiddenError);
  await assert.rejects(hostCall(HOSTS[0]!, '/configure', { body }), (e: unknown) => e instanceof ConflictError && /belongs to a cluster/.test(e.message));
  const st = await hostCall<{ cvm: { ip: string } }>(HOSTS[0]!, '/status');
  assert.equal(st.cvm.ip, CVMS[0], 'the CVM did not move');
  await healthy();
});
