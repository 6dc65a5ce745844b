/**
 * Image upload through Prism's v3 API (node/image-upload.ts), as Nutanix's clients make it: create
 * without source_uri, then PUT the file as octet-stream. Prism listens on a loopback port (TLS) and
 * the VM service is a fake whose upload hashes the stream it is handed, so what reaches it is the
 * file byte for byte. The deadlines are shortened so that each case takes well under a second or
 * two; the assertions give them several times their value.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import type { CallOptions } from '../../cvm/protocol/client.ts';
import type { Accepted, Task } from '../../cvm/protocol/vms.ts';
import { FakeVmService, basicAuth, testPrism, type TestPrism } from './fakes.ts';
import { createVipServer, type ConnectionLimits } from './server.ts';
import type { UploadLimits } from './image-upload.ts';

const V3 = '/api/nutanix/v3';
const MiB = 1 << 20;
const OCTETS = { 'content-type': 'application/octet-stream' };
/** Short deadlines: a request must arrive within 600 ms and be answered within 400 ms, but an upload may go on while data comes, idle at most 400 ms. */
const LIMITS: ConnectionLimits = { tlsHandshakeMs: 2_000, headersMs: 2_000, requestMs: 600, handlerMs: 400, keepAliveMs: 2_000, idleSocketMs: 10_000, checkEveryMs: 100 };
const UPLOAD: Partial<UploadLimits> = { idleMs: 400, maxBytes: 16 * MiB };
/** Far below the production deadlines (30 s and more): a connection closed within this was closed by a short one. */
const CUT_OFF_WITHIN_MS = 3_000;

/** The VM service with an upload that hashes what it is handed and records the image under the uuid asked, importing. */
class UploadingVmService extends FakeVmService {
  readonly uploads: { path: string; query: URLSearchParams; bytes: number; sha256: string }[] = [];
  readonly failed: string[] = [];
  /** Calls of the upload, whether they ended well or not. */
  uploadCalls = 0;

  readonly withUpload = async <T>(path: string, o: CallOptions = {}): Promise<T> => {
    if (!path.startsWith('/images/upload?')) return this.call<T>(path, o);
    this.uploadCalls++;
    assert.equal(o.method, 'PUT');
    const query = new URLSearchParams(path.slice(path.indexOf('?') + 1));
    const hash = createHash('sha256');
    let bytes = 0;
    try {
      for await (const chunk of o.stream as Readable) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
    } catch (e) {
      this.failed.push(String(e));
      throw e;
    }
    const uuid = query.get('uuid') ?? '';
    this.images.push({ uuid, name: query.get('name') ?? '', format: 'raw', vdisk: `image-${uuid}`, sizeBytes: 0, state: 'importing', source: `upload (${bytes} bytes)`, createdAt: '2026-12-02T00:00:00.000Z' });
    const t: Task = { uuid: `import-${uuid}`, operation: 'image.import', entity: { kind: 'image', uuid, name: query.get('name') ?? '' }, state: 'running', percent: 10, message: 'importing', error: null, result: null, createdAt: '2026-12-02T00:00:00.000Z', startedAt: '2026-12-02T00:00:00.000Z', finishedAt: null, parent: null, request: {} };
    this.tasks.set(t.uuid, t);
    this.uploads.push({ path, query, bytes, sha256: hash.digest('hex') });
    return { taskUuid: t.uuid, entityUuid: uuid } satisfies Accepted as T;
  };
}

interface Lab extends TestPrism {
  vms: UploadingVmService;
  port: number;
}

async function lab(limits: Partial<UploadLimits> = UPLOAD): Promise<Lab> {
  const vms = new UploadingVmService();
  const p = await testPrism({ cvm: vms.withUpload, limits: LIMITS, uploadLimits: limits });
  await p.app.listen({ host: '127.0.0.1', port: 0 });
  return { ...p, vms, port: (p.app.server.address() as AddressInfo).port };
}

const auth = { authorization: basicAuth() };

async function createPending(app: FastifyInstance, spec: Record<string, unknown> = { name: 'uploaded', description: 'a disk from my laptop', resources: { image_type: 'DISK_IMAGE' } }): Promise<{ uuid: string; task: string }> {
  const r = await app.inject({ method: 'POST', url: `${V3}/images`, headers: auth, payload: { api_version: '3.1.0', metadata: { kind: 'image' }, spec } });
  assert.equal(r.statusCode, 202, r.body);
  const j = r.json();
  assert.equal(j.status.state, 'PENDING');
  assert.equal(typeof j.status.execution_context.task_uuid, 'string', 'a string in a create\'s answer: Terraform and Ansible wait on it');
  return { uuid: j.metadata.uuid as string, task: j.status.execution_context.task_uuid as string };
}

interface Answer {
  status: number;
  body: string;
  connection: string | undefined;
  /** Bytes written before the answer came. */
  sent: number;
}

/** PUTs `chunks` (each after `gapMs`), stopping when Prism answers. */
function put(port: number, path: string, headers: Record<string, string>, chunks: Buffer[], gapMs = 0): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = false;
    const req = httpsRequest({ host: '127.0.0.1', port, method: 'PUT', path, rejectUnauthorized: false, agent: false, headers }, (res) => {
      answered = true;
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection, sent }));
    });
    req.on('error', (e) => (answered ? undefined : reject(e)));
    let i = 0;
    const next = (): void => {
      if (answered) return;
      const c = chunks[i++];
      if (c === undefined) {
        req.end();
        return;
      }
      sent += c.length;
      const more = req.write(c);
      if (gapMs > 0) setTimeout(next, gapMs);
      else if (more) next();
      else req.once('drain', next);
    };
    next();
  });
}

const v3Reason = (a: Answer): string => (JSON.parse(a.body) as { message_list: { reason: string }[] }).message_list[0]?.reason ?? '';
const v3Message = (a: Answer): string => (JSON.parse(a.body) as { message_list: { message: string }[] }).message_list[0]?.message ?? '';

test('the two steps of Nutanix\'s clients: a create without source_uri is an image PENDING (its task done), then its file PUT as octet-stream reaches the VM service byte for byte under the same uuid', async () => {
  const { app, port, vms, tasks } = await lab();
  const { uuid, task } = await createPending(app);
  assert.equal(tasks.tasks.get(task)?.operationType, 'kImageCreate');
  assert.deepEqual(tasks.tasks.get(task)?.entities, [{ kind: 'image', uuid, name: 'uploaded' }]);
  // before the file: GET and list show it PENDING, its create task listed
  const before = (await app.inject({ method: 'GET', url: `${V3}/images/${uuid}`, headers: auth })).json();
  assert.equal(before.status.state, 'PENDING');
  assert.deepEqual(before.status.execution_context.task_uuid, [task], 'a list in an entity: Terraform reads it as one');
  assert.equal(before.spec.description, 'a disk from my laptop');
  assert.equal(before.status.resources.image_type, 'DISK_IMAGE');
  const listed = (await app.inject({ method: 'POST', url: `${V3}/images/list`, headers: auth, payload: { kind: 'image', filter: 'name==uploaded' } })).json();
  assert.deepEqual(listed.entities.map((e: any) => [e.metadata.uuid, e.status.state]), [[uuid, 'PENDING']]);

  // the file: 5 MiB in uneven chunks, more than the 1 MiB any JSON body may be
  const file = randomBytes(5 * MiB + 123);
  const chunks = [file.subarray(0, 1000), file.subarray(1000, 3 * MiB), file.subarray(3 * MiB)];
  const r = await put(port, `${V3}/images/${uuid}/file`, { ...auth, ...OCTETS, accept: 'application/json' }, chunks);
  assert.equal(r.status, 202, r.body);
  const j = JSON.parse(r.body);
  assert.equal(j.metadata.uuid, uuid);
  assert.equal(j.status.state, 'PENDING');
  assert.equal(j.status.execution_context.task_uuid, `import-${uuid}`);
  assert.equal(vms.uploads.length, 1);
  const up = vms.uploads[0]!;
  assert.equal(up.sha256, createHash('sha256').update(file).digest('hex'), 'the bytes intact');
  assert.equal(up.bytes, file.length);
  assert.equal(up.query.get('uuid'), uuid, 'the image keeps the uuid the client was given');
  assert.equal(up.query.get('name'), 'uploaded');

  // after: the VM service's image (importing), its import task listed for Terraform's check of FAILED tasks
  const after = (await app.inject({ method: 'GET', url: `${V3}/images/${uuid}`, headers: auth })).json();
  assert.equal(after.status.state, 'PENDING');
  assert.deepEqual(after.status.execution_context.task_uuid, [`import-${uuid}`]);
  const again = await put(port, `${V3}/images/${uuid}/file`, { ...auth, ...OCTETS }, [Buffer.from('x')]);
  assert.equal(again.status, 404, 'its file came: no more PUTs');
  await app.close();
});

test('without credentials the upload is a 401 before any of the body is read: the VM service is never called and the connection is closed', async () => {
  const { app, port, vms } = await lab();
  const { uuid } = await createPending(app);
  const big = Array.from({ length: 512 }, () => Buffer.alloc(256 * 1024, 1)); // 128 MiB, if it were all read
  const r = await put(port, `${V3}/images/${uuid}/file`, OCTETS, big);
  assert.equal(r.status, 401, r.body);
  assert.equal(r.connection, 'close', 'an unread body is not drained to keep the connection');
  assert.ok(r.sent < 64 * MiB, `${r.sent} bytes went out before the answer`);
  const wrong = await put(port, `${V3}/images/${uuid}/file`, { ...OCTETS, authorization: basicAuth('admin', 'nope') }, big.slice(0, 8));
  assert.equal(wrong.status, 401);
  assert.equal(vms.uploadCalls, 0);
  assert.equal((await app.inject({ method: 'GET', url: `${V3}/images/${uuid}`, headers: auth })).json().status.state, 'PENDING', 'still waiting for its file');
  await app.close();
});

test('refused from the headers: an unknown image 404 ENTITY_NOT_FOUND, another content type 415, an empty body 400 naming it, an announced body over the limit 413; none reaches the VM service', async () => {
  const { app, port, vms } = await lab();
  const { uuid } = await createPending(app);
  const unknown = await put(port, `${V3}/images/0b5e4a3c-1d2e-4f60-8a9b-0c1d2e3f4a5b/file`, { ...auth, ...OCTETS }, [Buffer.from('data')]);
  assert.equal(unknown.status, 404, unknown.body);
  assert.equal(v3Reason(unknown), 'ENTITY_NOT_FOUND', 'what Terraform looks for');
  assert.equal(JSON.parse(unknown.body).kind, 'image');
  for (const type of ['application/json', 'text/plain', 'multipart/form-data; boundary=x']) {
    const r = await put(port, `${V3}/images/${uuid}/file`, { ...auth, 'content-type': type }, [Buffer.from('{"data":1}')]);
    assert.equal(r.status, 415, `${type}: ${r.body}`);
    assert.match(v3Message(r), /^Content-Type: must be application\/octet-stream/);
  }
  const untyped = await put(port, `${V3}/images/${uuid}/file`, { ...auth, 'content-length': '4' }, [Buffer.from('data')]);
  assert.equal(untyped.status, 415, untyped.body);
  const empty = await put(port, `${V3}/images/${uuid}/file`, { ...auth, ...OCTETS, 'content-length': '0' }, []);
  assert.equal(empty.status, 400, empty.body);
  assert.equal((JSON.parse(empty.body) as { message_list: { details: Record<string, string> }[] }).message_list[0]?.details['body'], 'is empty: send the image file as the body');
  const announced = await put(port, `${V3}/images/${uuid}/file`, { ...auth, ...OCTETS, 'content-length': String(17 * MiB) }, [Buffer.alloc(MiB)]);
  assert.equal(announced.status, 413, announced.body);
  assert.equal(announced.connection, 'close');
  assert.equal(vms.uploadCalls, 0);
  // and the route is the upload's only: no other method, and the image's own path takes JSON as before
  assert.equal((await app.inject({ method: 'POST', url: `${V3}/images/${uuid}/file`, headers: { ...auth, ...OCTETS }, payload: 'x' })).statusCode, 404);
  await app.close();
});

test('a body past the limit sent without a length is cut off on the way (413), and the VM service keeps nothing; the image may be uploaded again', async () => {
  const { app, port, vms } = await lab({ ...UPLOAD, maxBytes: 2 * MiB });
  const { uuid } = await createPending(app);
  const r = await put(port, `${V3}/images/${uuid}/file`, { ...auth, ...OCTETS }, Array.from({ length: 64 }, () => Buffer.alloc(64 * 1024, 7)));
  assert.equal(r.status, 413, r.body);
  assert.match(v3Message(r), /^body: is larger than an image upload may be \(2097152 bytes\)/);
  assert.equal(vms.uploads.length, 0);
  assert.equal(vms.failed.length, 1, 'the VM service\'s upload stream failed: it keeps nothing');
  const ok = await put(port, `${V3}/images/${uuid}/file`, { ...auth, ...OCTETS }, [Buffer.alloc(MiB, 7)]);
  assert.equal(ok.status, 202, ok.body);
  await app.close();
});

test('only the upload takes a body over the JSON limit, and only it outlasts the request and handler deadlines while its data keeps coming', async () => {
  const { app, port, vms } = await lab();
  const { uuid } = await createPending(app);
  // 2 MiB of JSON elsewhere: 413
  const json = await new Promise<number>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, method: 'POST', path: `${V3}/hosts/list`, rejectUnauthorized: false, agent: false, headers: { ...auth, 'content-type': 'application/json' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(`{"filter":"${'a'.repeat(2 * MiB)}"}`);
  });
  assert.equal(json, 413);
  // the file in 20 chunks 100 ms apart: 2 s, past the 600 ms request and 400 ms handler deadlines, never idle 400 ms
  const file = randomBytes(2 * MiB);
  const chunks = Array.from({ length: 20 }, (_, i) => file.subarray((i * file.length) / 20, ((i + 1) * file.length) / 20));
  const t0 = performance.now();
  const r = await put(port, `${V3}/images/${uuid}/file`, { ...auth, ...OCTETS }, chunks, 100);
  assert.equal(r.status, 202, r.body);
  assert.ok(performance.now() - t0 > 1_500, 'it took its time');
  assert.equal(vms.uploads[0]?.sha256, createHash('sha256').update(file).digest('hex'));
  // while a JSON body sent that slowly is still cut off
  const { uuid: other } = await createPending(app, { name: 'other', resources: {} });
  const slowJson = await put(port, `${V3}/images/list`, { ...auth, 'content-type': 'application/json', 'content-length': '200' }, Array.from({ length: 20 }, () => Buffer.from(' ')), 100);
  assert.equal(slowJson.status, 408, slowJson.body);
  assert.ok(other);
  await app.close();
});

test('a stalled upload is dropped after the idle limit: its connection closed, the VM service\'s upload failed, and the image waits for its file again', async () => {
  const { app, port, vms } = await lab();
  const { uuid } = await createPending(app);
  const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  await once(s, 'secureConnect');
  const closed = new Promise<number>((resolve) => {
    s.on('error', () => undefined);
    s.once('close', () => resolve(performance.now()));
  });
  const t0 = performance.now();
  s.write(`PUT ${V3}/images/${uuid}/file HTTP/1.1\r\nHost: prism\r\nAuthorization: ${basicAuth()}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${10 * MiB}\r\n\r\n`);
  s.write(Buffer.alloc(256 * 1024, 3)); // then nothing more
  const ms = (await closed) - t0;
  assert.ok(ms > 300, `closed after ${ms.toFixed(0)} ms: before the idle limit`);
  assert.ok(ms < CUT_OFF_WITHIN_MS, `a stalled upload held its connection ${ms.toFixed(0)} ms`);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(vms.uploadCalls, 1);
  assert.equal(vms.failed.length, 1, 'the VM service\'s upload stream failed: it keeps nothing');
  assert.equal(vms.uploads.length, 0);
  const again = await put(port, `${V3}/images/${uuid}/file`, { ...auth, ...OCTETS }, [Buffer.alloc(1000, 3)]);
  assert.equal(again.status, 202, again.body);
  await app.close();
});

test('a checksum, from the create\'s spec or the X-Nutanix-Checksum headers Terraform and Ansible send, is checked as the file goes through: a mismatch is a 400 and the VM service keeps nothing', async () => {
  const { app, port, vms } = await lab();
  const file = randomBytes(300_000);
  const sha1 = createHash('sha1').update(file).digest('hex');
  const sha256 = createHash('sha256').update(file).digest('hex');
  const { uuid } = await createPending(app, { name: 'summed', resources: { checksum: { checksum_algorithm: 'SHA_256', checksum_value: sha256.toUpperCase() } } });
  const bad = await put(port, `${V3}/images/${uuid}/file`, { ...auth, ...OCTETS }, [randomBytes(300_000)]);
  assert.equal(bad.status, 400, bad.body);
  assert.match(v3Message(bad), /^X-Nutanix-Checksum-Bytes: the file received \(300000 bytes\) has SHA_256 [0-9a-f]{64}, not [0-9a-f]{64}; nothing was kept$/);
  assert.equal(vms.uploads.length, 0);
  const good = await put(port, `${V3}/images/${uuid}/file`, { ...auth, ...OCTETS }, [file]);
  assert.equal(good.status, 202, good.body);
  const { uuid: second } = await createPending(app, { name: 'headers', resources: {} });
  const headerBad = await put(port, `${V3}/images/${second}/file`, { ...auth, ...OCTETS, 'x-nutanix-checksum-type': 'SHA_1', 'x-nutanix-checksum-bytes': '0'.repeat(40) }, [file]);
  assert.equal(headerBad.status, 400, headerBad.body);
  const malformed = await put(port, `${V3}/images/${second}/file`, { ...auth, ...OCTETS, 'x-nutanix-checksum-type': 'MD5', 'x-nutanix-checksum-bytes': 'abc' }, [file]);
  assert.equal(malformed.status, 400, malformed.body);
  assert.match(v3Message(malformed), /^X-Nutanix-Checksum-Type: must be SHA_1 or SHA_256/);
  const headerGood = await put(port, `${V3}/images/${second}/file`, { ...auth, ...OCTETS, 'x-nutanix-checksum-type': 'SHA_1', 'x-nutanix-checksum-bytes': sha1 }, [file]);
  assert.equal(headerGood.status, 202, headerGood.body);
  assert.equal(vms.uploads.length, 2);
  // an import from a URL still refuses one (the VM service does not check it)
  const url = await app.inject({ method: 'POST', url: `${V3}/images`, headers: auth, payload: { spec: { name: 'u', resources: { source_uri: 'http://x/y.img', checksum: { checksum_algorithm: 'SHA_1', checksum_value: sha1 } } } } });
  assert.equal(url.statusCode, 400);
  await app.close();
});

test('a create without source_uri is checked before the client sends gigabytes: the name as the VM service takes it, not one taken; a pending image can be deleted', async () => {
  const { app, vms } = await lab();
  const taken = await app.inject({ method: 'POST', url: `${V3}/images`, headers: auth, payload: { spec: { name: vms.images[0]!.name, resources: {} } } });
  assert.equal(taken.statusCode, 409, taken.body);
  const { uuid } = await createPending(app, { name: 'twice', resources: { image_type: 'ISO_IMAGE' } });
  assert.equal((await app.inject({ method: 'POST', url: `${V3}/images`, headers: auth, payload: { spec: { name: 'twice', resources: {} } } })).statusCode, 409, 'a pending image\'s name is taken too');
  const bad = await app.inject({ method: 'POST', url: `${V3}/images`, headers: auth, payload: { spec: { name: '../etc', resources: {} } } });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().message_list[0].details['spec.name'], 'letters, digits, space, . _ -, starting with a letter or digit');
  assert.equal((await app.inject({ method: 'GET', url: `${V3}/images/${uuid}`, headers: auth })).json().status.resources.image_type, 'ISO_IMAGE');
  const del = await app.inject({ method: 'DELETE', url: `${V3}/images/${uuid}`, headers: auth });
  assert.equal(del.statusCode, 202, del.body);
  assert.equal(del.json().status.state, 'DELETE_PENDING');
  const gone = await app.inject({ method: 'GET', url: `${V3}/images/${uuid}`, headers: auth });
  assert.equal(gone.statusCode, 404);
  assert.equal(gone.json().message_list[0].reason, 'ENTITY_NOT_FOUND');
  assert.ok(!vms.calls.some((c) => c.startsWith('DELETE')), 'the VM service never had it');
  // a name the VM service got meanwhile (another client): refused before the file is sent on
  const { uuid: late } = await createPending(app, { name: 'late', resources: {} });
  vms.images.push({ ...vms.images[0]!, uuid: '0b5e4a3c-1d2e-4f60-8a9b-0c1d2e3f4a5b', name: 'late' });
  const { port } = listening(app);
  const r = await put(port, `${V3}/images/${late}/file`, { ...auth, ...OCTETS }, [Buffer.alloc(MiB)]);
  assert.equal(r.status, 409, r.body);
  assert.match(v3Message(r), /^spec\.name: an image named late was made since this one was created/);
  assert.equal(r.connection, 'close');
  assert.equal(vms.uploadCalls, 0);
  await app.close();
});

const listening = (app: FastifyInstance): { port: number } => ({ port: (app.server.address() as AddressInfo).port });

test('the request deadline Node\'s server no longer holds is the app\'s: with a long handler deadline, a JSON body sent too slowly is still cut off at the request deadline with a 408 in Prism\'s shape', async () => {
  const vms = new UploadingVmService();
  const { app } = await testPrism({ cvm: vms.withUpload, limits: { ...LIMITS, handlerMs: 30_000 }, uploadLimits: UPLOAD });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  const t0 = performance.now();
  const r = await put(port, `${V3}/images/list`, { ...auth, 'content-type': 'application/json', 'content-length': '200' }, Array.from({ length: 40 }, () => Buffer.from(' ')), 100);
  const ms = performance.now() - t0;
  assert.equal(r.status, 408, r.body);
  assert.equal(v3Reason(r), 'CVG_ERR_TIMEOUT');
  assert.match(v3Message(r), /^request: not received in time/);
  assert.ok(ms > 500 && ms < CUT_OFF_WITHIN_MS, `cut off after ${ms.toFixed(0)} ms`);
  await app.close();
});

test('through the virtual IP\'s server too, an upload outlasts the request deadline while its data keeps coming', async () => {
  const { app, tls, vms } = await lab();
  const { uuid } = await createPending(app);
  const vip = createVipServer(app, tls, LIMITS);
  vip.listen(0, '127.0.0.1');
  await once(vip, 'listening');
  const file = randomBytes(MiB);
  const chunks = Array.from({ length: 10 }, (_, i) => file.subarray((i * file.length) / 10, ((i + 1) * file.length) / 10));
  const r = await put((vip.address() as AddressInfo).port, `${V3}/images/${uuid}/file`, { ...auth, ...OCTETS }, chunks, 100);
  assert.equal(r.status, 202, r.body);
  assert.equal(vms.uploads[0]?.sha256, createHash('sha256').update(file).digest('hex'));
  vip.close();
  await app.close();
});
