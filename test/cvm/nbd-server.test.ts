/**
 * The NBD server against real clients (Debian's nbdinfo, qemu-io, nbdcopy), edge validation over
 * a raw client, and a fuzz run of malformed handshakes and requests: the server and its other
 * connections survive any bad client.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { NbdServer } from '../../src/shared/nbd/server.ts';
import { MemoryBackend, FileBackend, type NbdBackend } from '../../src/shared/nbd/backend.ts';
import * as C from '../../src/shared/nbd/constants.ts';
import { SeededRandom } from '../../src/shared/random.ts';
import { RawNbdClient } from '../drivers/nbd-raw-client.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'cvg-nbd-'));
let server: NbdServer;
let port = 0;
const url = (name: string): string => `nbd://127.0.0.1:${port}/${name}`;

/** Exports share their backing store across connections but each connection gets a handle. */
function shared(be: NbdBackend): NbdBackend {
  return { size: be.size, readOnly: be.readOnly, pread: (o, l) => be.pread(o, l), pwrite: (o, d, f) => be.pwrite(o, d, f), flush: () => be.flush(), trim: (o, l, f) => be.trim(o, l, f), zero: (o, l, f) => be.zero(o, l, f), close: () => Promise.resolve() };
}

before(async () => {
  const mem = new MemoryBackend(64 << 20);
  const ro = new MemoryBackend(1 << 20, { readOnly: true });
  const file = await FileBackend.open(join(dir, 'vd-file.img'), 32 << 20);
  const exports: Record<string, NbdBackend> = { 'vd-mem': mem, 'vd-ro': ro, 'vd-file': file };
  server = new NbdServer({ list: () => Object.keys(exports), open: (n) => Promise.resolve(exports[n] ? shared(exports[n]) : undefined), description: (n) => `Converge test export ${n}` });
  port = (await server.listen(0, '127.0.0.1')).port;
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

test('nbdinfo lists the exports and sees their size, flags and block sizes', async () => {
  const { stdout } = await run('nbdinfo', ['--list', '--json', `nbd://127.0.0.1:${port}`]);
  const info = JSON.parse(stdout);
  assert.deepEqual(info.exports.map((e: any) => e['export-name']).sort(), ['vd-file', 'vd-mem', 'vd-ro']);
  const mem = info.exports.find((e: any) => e['export-name'] === 'vd-mem');
  assert.equal(mem['export-size'], 64 << 20);
  assert.equal(mem.is_read_only, false);
  assert.equal(mem.can_fua, true);
  assert.equal(mem.block_size_preferred, 4096);
  const ro = info.exports.find((e: any) => e['export-name'] === 'vd-ro');
  assert.equal(ro.is_read_only, true);
  assert.equal(ro.can_trim, false);
});

test('qemu-io writes and reads back patterns; the read-only export refuses writes', async () => {
  const { stdout } = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 4096 1M', '-c', 'read -P 0x5a 4096 1M', '-c', 'write -z 4096 64k', '-c', 'read -P 0 4096 64k', '-c', 'flush', '-c', 'discard 0 128k', url('vd-mem')]);
  assert.doesNotMatch(stdout, /Pattern verification failed|error/i);
  await assert.rejects(run('qemu-io', ['-f', 'raw', '-c', 'write 0 4k', url('vd-ro')]));
});

test('nbdcopy: 16 MiB of random data in and out of a file-backed export is byte-identical', async () => {
  const src = join(dir, 'src.bin');
  const data = randomBytes(16 << 20);
  writeFileSync(src, data);
  await run('nbdcopy', [src, url('vd-file')]);
  const back = join(dir, 'back.bin');
  await run('nbdcopy', [url('vd-file'), back]);
  assert.ok(readFileSync(back).subarray(0, data.length).equals(data));
});

test('edge validation: NBD error replies, and the connection goes on', async () => {
  const c = await RawNbdClient.connect(port);
  try {
    const size = await c.go('vd-mem');
    assert.equal(size, 64n << 20n);
    assert.equal((await c.request(C.NBD_CMD_READ, size, 1)).error, C.NBD_EINVAL, 'read past the end');
    assert.equal((await c.request(C.NBD_CMD_WRITE, size - 1n, 2, Buffer.alloc(2))).error, C.NBD_ENOSPC, 'write past the end');
    assert.equal((await c.request(77, 0n, 1)).error, C.NBD_EINVAL, 'unknown command');
    assert.equal((await c.request(C.NBD_CMD_READ, 0n, 1, undefined, C.NBD_CMD_FLAG_FUA)).error, C.NBD_EINVAL, 'bad flag');
    assert.equal((await c.request(C.NBD_CMD_READ, 0n, C.MAX_PAYLOAD + 1)).error, C.NBD_EINVAL, 'oversized read');
    assert.equal((await c.request(C.NBD_CMD_WRITE, 0n, 3, Buffer.from('abc'), C.NBD_CMD_FLAG_FUA)).error, 0);
    const r = await c.request(C.NBD_CMD_READ, 0n, 3);
    assert.equal(r.data?.toString(), 'abc', 'the connection still works after the errors');
  } finally {
    c.close();
  }
  const ro = await RawNbdClient.connect(port);
  try {
    await ro.go('vd-ro');
    assert.equal((await ro.request(C.NBD_CMD_WRITE, 0n, 1, Buffer.alloc(1))).error, C.NBD_EPERM);
  } finally {
    ro.close();
  }
  const unknown = await RawNbdClient.connect(port);
  await assert.rejects(unknown.go('no-such-export'), /0x80000006/);
  unknown.close();
});

test('fuzz: malformed handshakes, options and requests never take the server down', async () => {
  const rnd = new SeededRandom(42);
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd.next() * 256)));
  const keeper = await RawNbdClient.connect(port);
  await keeper.go('vd-mem');
  for (let i = 0; i < 150; i++) {
    const kind = i % 3;
    if (kind === 0) {
      // garbage from the first byte
      await blast(bytes(1 + Math.floor(rnd.next() * 200)));
    } else if (kind === 1) {
      // valid client flags, then a mangled option (sometimes with a huge length)
      const opt = bytes(16);
      opt.writeBigUInt64BE(C.IHAVEOPT, 0);
      if (rnd.next() < 0.5) opt.writeUInt32BE(0xffffffff, 12);
      await blast(Buffer.concat([Buffer.from('00000003', 'hex'), opt, bytes(Math.floor(rnd.next() * 64))]));
    } else {
      // a proper GO, then random requests with a valid magic
      const c = await RawNbdClient.connect(port);
      await c.go('vd-mem');
      for (let k = 0; k < 5; k++) {
        const req = bytes(28);
        req.writeUInt32BE(C.NBD_REQUEST_MAGIC, 0);
        req.writeUInt16BE(Math.floor(rnd.next() * 10), 6);
        if (req.readUInt16BE(6) === C.NBD_CMD_WRITE) req.writeUInt32BE(Math.floor(rnd.next() * 4096), 24);
        c.sock.write(req);
      }
      c.sock.write(bytes(40));
      await new Promise((r) => setTimeout(r, 5));
      c.close();
    }
  }
  // the long-lived connection and new ones still work
  assert.equal((await keeper.request(C.NBD_CMD_WRITE, 4096n, 4, Buffer.from('live'))).error, 0);
  assert.equal((await keeper.request(C.NBD_CMD_READ, 4096n, 4)).data?.toString(), 'live');
  keeper.close();
  const { stdout } = await run('nbdinfo', ['--size', url('vd-mem')]);
  assert.equal(stdout.trim(), String(64 << 20));
});

function blast(b: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' }, () => {
      s.write(b);
      setTimeout(() => { s.destroy(); resolve(); }, 3);
    });
    s.on('error', () => resolve());
  });
}
