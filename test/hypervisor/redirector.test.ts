/**
 * The host's I/O redirector as a relay between a client and two "CVMs" that serve the same vdisk:
 * nbdkit on a Unix socket (the local CVM over the host↔CVM link) and nbdkit over TLS on
 * 127.126.0.2:10809 (a remote CVM, reached with the host's certificate). Data through it with
 * simple and structured replies (NbdClient; nbdcopy and qemu-img, which negotiate structured
 * replies); the local CVM killed under a stream of writes: no request fails, every byte lands;
 * the local one back: the redirector returns to it; bad requests refused with an NBD error.
 *
 * Addresses: 127.126.0.2 (the remote CVM).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redirector } from '../../src/hypervisor/redirector.ts';
import { NbdClient, NbdRequestError } from '../../src/shared/nbd/client.ts';
import * as C from '../../src/shared/nbd/constants.ts';
import { createCa, issuePeerCert } from '../../src/shared/tls.ts';
import type { NbdClientTls } from '../../src/shared/nbd/starttls.ts';

const run = promisify(execFile);
const REMOTE = '127.126.0.2';
const SIZE = 32 << 20;
let dir: string;
let file: string;
let local: ChildProcess | undefined;
let remote: ChildProcess;
let redirector: Redirector;
let tls: NbdClientTls;
const logs: string[] = [];
const sock = (): string => join(dir, 'link.sock');
const redir = (): string => join(dir, 'vdisks.sock');

async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startLocal(): Promise<void> {
  rmSync(sock(), { force: true });
  local = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-U', sock(), 'file', file], { stdio: 'ignore' });
  await until('the local nbdkit', () => existsSync(sock()));
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cvg-redir-'));
  file = join(dir, 'vdisk.img');
  writeFileSync(file, Buffer.alloc(SIZE));
  const ca = await createCa('redirector-test');
  const server = await issuePeerCert(ca, { ips: [REMOTE] });
  const client = await issuePeerCert(ca, { ips: ['127.126.0.1'], commonName: 'host-1' });
  const certs = join(dir, 'pki');
  mkdirSync(certs, { mode: 0o700 });
  writeFileSync(join(certs, 'ca-cert.pem'), ca.cert);
  writeFileSync(join(certs, 'server-cert.pem'), server.cert);
  writeFileSync(join(certs, 'server-key.pem'), server.key, { mode: 0o600 });
  tls = { cert: client.cert, key: client.key, ca: ca.cert };
  remote = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-i', REMOTE, '-p', '10809', '--tls=require', `--tls-certificates=${certs}`, '--tls-verify-peer', 'file', file], { stdio: 'ignore' });
  await startLocal();
  // the remote nbdkit is up once it accepts a TLS client
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      (await NbdClient.connect(REMOTE, 10809, 'vd', 2000, { tls })).close();
      break;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  redirector = new Redirector({
    localCvmIp: () => '127.126.0.1',
    cvms: () => ['127.126.0.1', REMOTE],
    vdisks: () => Promise.resolve(['vd']),
    log: (m) => logs.push(m),
    localLink: () => sock(),
    tls: () => tls,
  });
  await redirector.listen(redir());
});

after(async () => {
  await redirector?.close();
  local?.kill('SIGKILL');
  remote?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('data through the redirector: simple replies (NbdClient) and structured ones (nbdcopy, qemu-img) read what was written', async () => {
  const c = await NbdClient.connectPath(redir(), 'vd', 5000);
  assert.equal(c.size, BigInt(SIZE));
  const model = Buffer.alloc(SIZE);
  // writes of many sizes, 8 at a time on distinct ranges, then reads across them
  for (let round = 0; round < 20; round++) {
    await Promise.all([...Array(8).keys()].map(async (k) => {
      const len = [512, 4096, 65536, 1 << 20][(round + k) % 4] ?? 4096;
      const off = k * (4 << 20) + ((round * 77_777) % ((4 << 20) - len));
      const data = randomBytes(len);
      await c.request(C.NBD_CMD_WRITE, BigInt(off), len, data);
      data.copy(model, off);
    }));
  }
  await c.request(C.NBD_CMD_WRITE_ZEROES, 4096n, 8192);
  model.fill(0, 4096, 4096 + 8192);
  await c.request(C.NBD_CMD_FLUSH, 0n, 0);
  const back = Buffer.concat(await Promise.all([...Array(SIZE >> 20).keys()].map(async (i) => (await c.request(C.NBD_CMD_READ, BigInt(i << 20), 1 << 20)) ?? Buffer.alloc(0))));
  assert.ok(back.equals(model), 'what NbdClient reads back is what it wrote');
  assert.ok(readFileSync(file).equals(model), 'and it is on the vdisk');
  c.close();

  const copy = join(dir, 'copy.img');
  await run('nbdcopy', [`nbd+unix:///vd?socket=${redir()}`, copy]);
  assert.ok(readFileSync(copy).equals(model), 'nbdcopy (structured replies) reads the same bytes');
  const src = join(dir, 'src.img');
  writeFileSync(src, randomBytes(SIZE));
  await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, `nbd+unix:///vd?socket=${redir()}`]);
  await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, `nbd+unix:///vd?socket=${redir()}`]);
  assert.ok(readFileSync(file).equals(readFileSync(src)), 'qemu-img wrote every byte through it');
});

test('bad requests get an NBD error and change nothing; the connection goes on', async () => {
  const c = await NbdClient.connectPath(redir(), 'vd', 5000);
  const before = readFileSync(file);
  await assert.rejects(c.request(C.NBD_CMD_READ, BigInt(SIZE), 4096), (e: unknown) => e instanceof NbdRequestError && e.errno === C.NBD_EINVAL);
  await assert.rejects(c.request(C.NBD_CMD_WRITE, BigInt(SIZE - 100), 4096, randomBytes(4096)), (e: unknown) => e instanceof NbdRequestError && e.errno === C.NBD_ENOSPC);
  await assert.rejects(c.request(C.NBD_CMD_WRITE, 0n, 512, randomBytes(512), 0x8000), (e: unknown) => e instanceof NbdRequestError && e.errno === C.NBD_EINVAL);
  assert.ok(readFileSync(file).equals(before), 'nothing changed');
  assert.equal((await c.request(C.NBD_CMD_READ, 0n, 512))?.length, 512, 'the connection still serves');
  c.close();
});

test('the local CVM killed under a stream of writes: none fails, all land (through the remote CVM); back on the local one when it returns', async () => {
  const c = await NbdClient.connectPath(redir(), 'vd', 5000);
  const model = readFileSync(file);
  let written = 0;
  let failed = 0;
  let stop = false;
  const writer = async (k: number): Promise<void> => {
    for (let i = 0; !stop; i++) {
      const off = k * (SIZE / 4) + (i % (SIZE / 4 / 65536)) * 65536; // each writer its own quarter, one write at a time
      const data = randomBytes(65536);
      try {
        await c.request(C.NBD_CMD_WRITE, BigInt(off), data.length, data);
        data.copy(model, off);
        written++;
      } catch {
        failed++;
      }
    }
  };
  const writers = [0, 1, 2, 3].map(writer);
  await until('writes flowing', () => written > 50);
  local?.kill('SIGKILL');
  const atKill = written;
  await until('writes flowing through the remote CVM', () => written > atKill + 200, 30_000);
  assert.ok(logs.some((l) => l.includes(`now through CVM ${REMOTE}`)), logs.join('\n'));
  await startLocal();
  await until('back on the local CVM', () => logs.some((l) => l.includes('back on the local CVM')), 30_000);
  const atBack = written;
  await until('writes after failback', () => written > atBack + 100, 30_000);
  stop = true;
  await Promise.all(writers);
  assert.equal(failed, 0, 'no request failed');
  await c.request(C.NBD_CMD_FLUSH, 0n, 0);
  assert.ok(readFileSync(file).equals(model), 'every acknowledged write is on the vdisk');
  c.close();
});
