/**
 * The NBD server under clients that hold connections open: idle handshakes are dropped after the
 * handshake timeout, and connections beyond the per-address or the server-wide limit are closed as
 * soon as they are accepted (short timeouts and limits here; defaults 10 s, 64 per address, 1024).
 * Addresses 127.70.2.x.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { NbdServer, type NbdServerOptions } from '../../src/shared/nbd/server.ts';
import { MemoryBackend } from '../../src/shared/nbd/backend.ts';
import * as C from '../../src/shared/nbd/constants.ts';
import { InputError } from '../../src/shared/errors.ts';
import { RawNbdClient } from '../drivers/nbd-raw-client.ts';

const HOST = '127.70.2.1';

async function start(opts: NbdServerOptions): Promise<{ server: NbdServer; port: number; logs: string[] }> {
  const logs: string[] = [];
  const mem = new MemoryBackend(1 << 20);
  const server = new NbdServer({ list: () => ['vd'], open: () => Promise.resolve({ ...mem, size: mem.size, readOnly: false, pread: (o, l) => mem.pread(o, l), pwrite: (o, d) => mem.pwrite(o, d), flush: () => mem.flush(), trim: (o, l) => mem.trim(o, l), zero: (o, l) => mem.zero(o, l), close: () => Promise.resolve() }) }, (m) => logs.push(m), opts);
  const { port } = await server.listen(0, HOST);
  return { server, port, logs };
}

/** Opens a connection and reads the greeting: true if the server greeted, false if it closed at once. */
async function greeted(c: RawNbdClient): Promise<boolean> {
  return c.reader.read(18).then(() => true, () => false);
}

const until = async (what: string, cond: () => boolean, ms = 15_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

test('idle handshakes are dropped after the handshake timeout; a client in transmission is not', async () => {
  const { server, port, logs } = await start({ handshakeTimeoutMs: 1000, maxConnectionsPerAddress: 200 });
  try {
    const live = await RawNbdClient.connect(port, HOST, '127.70.2.2');
    await live.go('vd');
    const idle = await Promise.all(Array.from({ length: 100 }, () => RawNbdClient.connect(port, HOST, '127.70.2.2')));
    // half of them get as far as the options phase, half never send their flags
    await Promise.all(idle.slice(0, 50).map((c) => c.hello()));
    await Promise.all(idle.slice(50).map((c) => c.reader.read(18)));
    assert.deepEqual(await Promise.all(idle.map((c) => c.closedWithin(15_000))), idle.map(() => true), 'every idle connection was closed by the server');
    await until('the server to count them', () => server.stats().timedOut === 100);
    assert.equal(server.stats().open, 1);
    assert.ok(logs.some((l) => /no export chosen within 1000 ms/.test(l)));
    assert.equal((await live.request(C.NBD_CMD_WRITE, 0n, 2, Buffer.from('ok'))).error, 0, 'the client in transmission is still served');
    live.close();
    for (const c of idle) c.close();
  } finally {
    await server.close();
  }
});

test('per address: beyond the limit new connections are closed at once; other addresses are still served; a freed slot is reused', async () => {
  const { server, port, logs } = await start({ maxConnectionsPerAddress: 3 });
  try {
    const held = await Promise.all(Array.from({ length: 3 }, () => RawNbdClient.connect(port, HOST, '127.70.2.2')));
    assert.deepEqual(await Promise.all(held.map(greeted)), [true, true, true]);
    const over = await Promise.all(Array.from({ length: 20 }, () => RawNbdClient.connect(port, HOST, '127.70.2.2')));
    assert.deepEqual(await Promise.all(over.map(greeted)), over.map(() => false), 'closed without a greeting');
    assert.equal(server.stats().refused, 20);
    assert.equal(logs.filter((l) => /refusing connections: 3 connections open from 127\.70\.2\.2/.test(l)).length, 1, 'one log line for the burst');
    const other = await RawNbdClient.connect(port, HOST, '127.70.2.3');
    assert.equal(await greeted(other), true, 'another address is served');
    held[0]?.close();
    await until('the slot to free', () => server.stats().open === 3);
    const again = await RawNbdClient.connect(port, HOST, '127.70.2.2');
    assert.equal(await greeted(again), true);
    for (const c of [...held, ...over, other, again]) c.close();
  } finally {
    await server.close();
  }
});

test('server-wide: beyond maxConnections new connections are closed at once, from any address', async () => {
  const { server, port } = await start({ maxConnections: 4 });
  try {
    const held = await Promise.all([2, 3, 4, 5].map((i) => RawNbdClient.connect(port, HOST, `127.70.2.${i}`)));
    assert.deepEqual(await Promise.all(held.map(greeted)), [true, true, true, true]);
    const over = await RawNbdClient.connect(port, HOST, '127.70.2.6');
    assert.equal(await greeted(over), false);
    assert.equal(server.stats().refused, 1);
    for (const c of [...held, over]) c.close();
  } finally {
    await server.close();
  }
});

test('a flood of 1,000 idle connections from one address holds at most the limit open', async () => {
  const { server, port } = await start({ maxConnectionsPerAddress: 64, handshakeTimeoutMs: 60_000 });
  const socks: Socket[] = [];
  try {
    // in waves smaller than the listen backlog, so the kernel does not hold some back
    for (let wave = 1; wave <= 4; wave++) {
      socks.push(...await Promise.all(Array.from({ length: 250 }, () => new Promise<Socket>((resolve) => {
        const s = connect({ port, host: HOST, localAddress: '127.70.2.7' }, () => resolve(s));
        s.on('error', () => resolve(s));
      }))));
      await until('the server to accept or refuse each', () => server.stats().open + server.stats().refused === wave * 250);
      assert.equal(server.stats().open, 64);
    }
    assert.equal(server.stats().refused, 1000 - 64);
  } finally {
    for (const s of socks) s.destroy();
    await server.close();
  }
  assert.equal(server.stats().open, 0, 'close() dropped every connection');
});

test('limits and the timeout must be whole numbers of at least 1', () => {
  const exports = { list: () => [], open: () => Promise.resolve(undefined) };
  assert.throws(() => new NbdServer(exports, undefined, { maxConnections: 0 }), InputError);
  assert.throws(() => new NbdServer(exports, undefined, { maxConnectionsPerAddress: 1.5 }), InputError);
  assert.throws(() => new NbdServer(exports, undefined, { handshakeTimeoutMs: -1 }), InputError);
  assert.throws(() => new NbdServer(exports, undefined, { tls: { cert: 'not a certificate', key: 'nor a key', ca: 'x' } }), /certificate, key or CA cannot be used/);
});
