/**
 * NBD over TLS with client certificates, against the reference implementations: libnbd's nbdinfo
 * and nbdcopy and QEMU's qemu-io as clients of our server (nbds://…?tls-certificates=DIR,
 * tls-creds-x509), our client against nbdkit --tls=require --tls-verify-peer; and the refusals:
 * no certificate, a certificate from another CA, a server-only certificate, a plain-text client
 * (which gets NBD_REP_ERR_TLS_REQD and no export list), a server whose certificate does not
 * name it. Addresses 127.70.1.x.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync, existsSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { NbdServer } from '../../src/shared/nbd/server.ts';
import { NbdClient } from '../../src/shared/nbd/client.ts';
import { MemoryBackend, type NbdBackend } from '../../src/shared/nbd/backend.ts';
import * as C from '../../src/shared/nbd/constants.ts';
import { createCa, ensureServerCert, issuePeerCert, type Pem } from '../../src/shared/tls.ts';
import { RawNbdClient } from '../drivers/nbd-raw-client.ts';

const run = promisify(execFile);
const HOST = '127.70.1.1';
const CLIENT_IP = '127.70.1.2';
const NBDKIT_HOST = '127.70.1.3';
const dir = mkdtempSync(join(tmpdir(), 'cvg-nbd-tls-'));
let ca: Pem;
let client: Pem;
let stranger: Pem;
let banned: Pem;
let serverOnly: Pem;
let server: NbdServer;
let port = 0;

/** A libnbd / QEMU client certificate directory (ca-cert.pem, client-cert.pem, client-key.pem). */
function clientDir(name: string, caCert: string, cert?: Pem): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'ca-cert.pem'), caCert);
  if (cert) {
    writeFileSync(join(d, 'client-cert.pem'), cert.cert);
    writeFileSync(join(d, 'client-key.pem'), cert.key, { mode: 0o600 });
  }
  return d;
}

const nbds = (exp: string, certDir: string): string => `nbds://${HOST}:${port}/${exp}?tls-certificates=${certDir}`;

function shared(be: NbdBackend): NbdBackend {
  return { size: be.size, readOnly: be.readOnly, pread: (o, l) => be.pread(o, l), pwrite: (o, d, f) => be.pwrite(o, d, f), flush: () => be.flush(), trim: (o, l, f) => be.trim(o, l, f), zero: (o, l, f) => be.zero(o, l, f), close: () => Promise.resolve() };
}

const logs: string[] = [];

before(async () => {
  ca = await createCa('nbd-tls-test');
  const other = await createCa('someone-else');
  const serverCert = await issuePeerCert(ca, { ips: [HOST] });
  client = await issuePeerCert(ca, { ips: [CLIENT_IP], commonName: 'host-a' });
  banned = await issuePeerCert(ca, { ips: [CLIENT_IP], commonName: 'banned' });
  stranger = await issuePeerCert(other, { ips: [CLIENT_IP], commonName: 'host-a' });
  serverOnly = await ensureServerCert(ca, join(dir, 'server-only.pem'), join(dir, 'server-only.key'), [CLIENT_IP]);
  const exports: Record<string, NbdBackend> = { 'vd-a': new MemoryBackend(32 << 20), 'vd-b': new MemoryBackend(1 << 20) };
  server = new NbdServer({ list: () => Object.keys(exports), open: (n) => Promise.resolve(exports[n] ? shared(exports[n]) : undefined) }, (m) => logs.push(m), {
    tls: { cert: serverCert.cert, key: serverCert.key, ca: ca.cert },
    authorize: ({ certificate }) => !certificate.subject.split('\n').includes('CN=banned'),
  });
  port = (await server.listen(0, HOST)).port;
});

after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

test('nbdinfo over nbds:// with a client certificate lists the exports and reads their sizes', async () => {
  const certs = clientDir('good', ca.cert, client);
  const { stdout } = await run('nbdinfo', ['--list', '--json', nbds('', certs)]);
  const info = JSON.parse(stdout) as { exports: { 'export-name': string; 'export-size': number }[] };
  assert.deepEqual(info.exports.map((e) => e['export-name']).sort(), ['vd-a', 'vd-b']);
  const { stdout: size } = await run('nbdinfo', ['--size', nbds('vd-a', certs)]);
  assert.equal(size.trim(), String(32 << 20));
});

test('nbdcopy over nbds://: 8 MiB in and out is byte-identical', async () => {
  const certs = clientDir('good', ca.cert, client);
  const src = join(dir, 'src.bin');
  const data = randomBytes(8 << 20);
  writeFileSync(src, data);
  await run('nbdcopy', [src, nbds('vd-a', certs)]);
  const back = join(dir, 'back.bin');
  await run('nbdcopy', [nbds('vd-a', certs), back]);
  assert.ok(readFileSync(back).subarray(0, data.length).equals(data));
});

test('qemu-io with tls-creds-x509 writes and reads back a pattern', async () => {
  const certs = clientDir('good', ca.cert, client);
  const { stdout } = await run('qemu-io', ['--object', `tls-creds-x509,id=tls0,endpoint=client,dir=${certs}`, '--image-opts', `driver=nbd,host=${HOST},port=${port},export=vd-b,tls-creds=tls0`, '-c', 'write -P 0x5a 0 64k', '-c', 'read -P 0x5a 0 64k']);
  assert.doesNotMatch(stdout, /Pattern verification failed|error/i);
});

test('a plain-text nbdinfo gets NBD_REP_ERR_TLS_REQD and no export list', async () => {
  const r = await run('nbdinfo', ['--list', `nbd://${HOST}:${port}/`], { env: { ...process.env, LIBNBD_DEBUG: '1' } }).then(() => assert.fail('listed without TLS'), (e: { stdout: string; stderr: string }) => e);
  assert.doesNotMatch(r.stdout, /vd-a|vd-b/);
  assert.doesNotMatch(r.stderr, /vd-a|vd-b/, 'not even in the debug trace');
  assert.match(r.stderr, /TLS is required/);
  await assert.rejects(run('nbdinfo', ['--size', `nbd://${HOST}:${port}/vd-a`]));
});

test('nbdinfo without a client certificate, or with one from another CA, is refused', async () => {
  for (const certs of [clientDir('none', ca.cert), clientDir('stranger', ca.cert, stranger)]) {
    const r = await run('nbdinfo', ['--list', nbds('', certs)]).then(() => assert.fail(`listed with ${certs}`), (e: { stdout: string }) => e);
    assert.doesNotMatch(r.stdout, /vd-a|vd-b/);
  }
});

test('on the wire, before STARTTLS: LIST, INFO, GO and unknown options get NBD_REP_ERR_TLS_REQD; EXPORT_NAME is hung up on', async () => {
  const c = await RawNbdClient.connect(port, HOST, CLIENT_IP);
  try {
    for (const opt of [C.NBD_OPT_LIST, C.NBD_OPT_INFO, C.NBD_OPT_GO, C.NBD_OPT_STRUCTURED_REPLY, 99]) {
      const replies = await c.option(opt, opt === C.NBD_OPT_GO || opt === C.NBD_OPT_INFO ? Buffer.from('000000047664' + '2d61' + '0000', 'hex') : undefined);
      assert.deepEqual(replies.map((r) => r.type), [C.NBD_REP_ERR_TLS_REQD], `option ${opt}`);
    }
    c.sock.write(Buffer.concat([Buffer.from('49484156454f5054' + '00000001' + '00000004', 'hex'), Buffer.from('vd-a')]));
    assert.equal(await c.closedWithin(2000), true);
  } finally {
    c.close();
  }
});

test('our client: with a certificate it reads and writes; without TLS, or with a certificate the server does not accept, it is refused', async () => {
  const tls = { cert: client.cert, key: client.key, ca: ca.cert };
  const c = await NbdClient.connect(HOST, port, 'vd-b', 5000, { tls });
  try {
    assert.equal(c.size, 1n << 20n);
    await c.request(C.NBD_CMD_WRITE, 4096n, 4, Buffer.from('tls!'));
    assert.equal((await c.request(C.NBD_CMD_READ, 4096n, 4))?.toString(), 'tls!');
  } finally {
    c.close();
  }
  await assert.rejects(NbdClient.connect(HOST, port, 'vd-b'), /NBD_REP_ERR_TLS_REQD/);
  for (const bad of [stranger, serverOnly, { cert: '', key: '' }]) {
    await assert.rejects(NbdClient.connect(HOST, port, 'vd-b', 5000, { tls: { ...bad, ca: ca.cert } }));
  }
  await assert.rejects(NbdClient.connect(HOST, port, 'vd-b', 5000, { tls: { ...banned, ca: ca.cert } }), /NBD_REP_ERR_POLICY.*not authorized/);
  assert.ok(logs.some((l) => /client certificate refused \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\)/.test(l)), 'another CA');
  assert.ok(logs.some((l) => /client certificate refused \(INVALID_PURPOSE\)/.test(l)), 'a serverAuth-only certificate');
  assert.ok(logs.some((l) => /peer did not return a certificate/.test(l)), 'no certificate');
});

test('our client checks the server: a certificate naming another address, or from another CA, is refused', async () => {
  await assert.rejects(NbdClient.connect(HOST, port, 'vd-b', 5000, { tls: { cert: client.cert, key: client.key, ca: ca.cert, servername: '127.70.1.9' } }), /does not match|altnames/);
  await assert.rejects(NbdClient.connect(HOST, port, 'vd-b', 5000, { tls: { cert: client.cert, key: client.key, ca: stranger.cert.slice(stranger.cert.indexOf('-----BEGIN', 10)) } }), /self-signed|unable to verify|certificate/i);
});

test('over a Unix socket the client names the server it expects (the host↔CVM link)', async () => {
  const path = join(dir, 'nbd.sock');
  await server.listenPath(path);
  const tls = { cert: client.cert, key: client.key, ca: ca.cert };
  await assert.rejects(NbdClient.connectPath(path, 'vd-b', 5000, { tls }), /servername/);
  const c = await NbdClient.connectPath(path, 'vd-b', 5000, { tls: { ...tls, servername: HOST } });
  assert.equal(c.size, 1n << 20n);
  c.close();
  await assert.rejects(NbdClient.connectPath(path, 'vd-b'), /NBD_REP_ERR_TLS_REQD/);
});

/** A free TCP port on an address (nbdkit needs one given). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function startNbdkit(certDir: string): Promise<{ proc: ChildProcess; port: number }> {
  const p = await freePort(NBDKIT_HOST);
  const pidfile = join(dir, `nbdkit-${p}.pid`);
  const proc = spawn('nbdkit', ['-f', '--exit-with-parent', '-i', NBDKIT_HOST, '-p', String(p), '-P', pidfile, '--tls=require', `--tls-certificates=${certDir}`, '--tls-verify-peer', 'memory', '64M'], { stdio: 'ignore' });
  for (let i = 0; i < 300 && !existsSync(pidfile); i++) await new Promise((r) => setTimeout(r, 50)); // nbdkit writes it once it accepts connections
  assert.ok(existsSync(pidfile), 'nbdkit started');
  return { proc, port: p };
}

function stopNbdkit(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null) return resolve();
    proc.once('exit', () => resolve());
    proc.kill();
  });
}

test('our client against nbdkit --tls=require --tls-verify-peer: STARTTLS, GO, write and read back; a stranger is refused', async () => {
  const certs = join(dir, 'nbdkit');
  mkdirSync(certs, { recursive: true });
  const nbdkitCert = await issuePeerCert(ca, { ips: [NBDKIT_HOST] });
  writeFileSync(join(certs, 'ca-cert.pem'), ca.cert);
  writeFileSync(join(certs, 'server-cert.pem'), nbdkitCert.cert);
  writeFileSync(join(certs, 'server-key.pem'), nbdkitCert.key, { mode: 0o600 });
  const { proc, port: kitPort } = await startNbdkit(certs);
  try {
    const c = await NbdClient.connect(NBDKIT_HOST, kitPort, '', 5000, { tls: { cert: client.cert, key: client.key, ca: ca.cert } });
    try {
      assert.equal(c.size, 64n << 20n);
      const data = randomBytes(256 << 10);
      await c.request(C.NBD_CMD_WRITE, 1n << 20n, data.length, data, C.NBD_CMD_FLAG_FUA);
      assert.ok((await c.request(C.NBD_CMD_READ, 1n << 20n, data.length))?.equals(data));
    } finally {
      c.close();
    }
    await assert.rejects(NbdClient.connect(NBDKIT_HOST, kitPort, '', 5000, { tls: { cert: stranger.cert, key: stranger.key, ca: ca.cert } }));
    await assert.rejects(NbdClient.connect(NBDKIT_HOST, kitPort, ''), /NBD_REP_ERR_TLS_REQD/);
  } finally {
    await stopNbdkit(proc);
  }
});
