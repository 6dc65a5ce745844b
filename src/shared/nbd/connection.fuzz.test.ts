/**
 * Property tests (fast-check) of the server's connection over an in-memory duplex, in both phases:
 *
 *  - any bytes at all: nothing is thrown out of the connection, what it sends is a greeting and
 *    well-formed option replies, and it closes the connection (at the latest at the handshake
 *    timeout);
 *  - any sequence of options, well-formed or not: each gets exactly one final reply, of a type the
 *    spec allows for that option (the exact one where the input decides it); with TLS required
 *    nothing but NBD_REP_ERR_TLS_REQD (and the ACK of STARTTLS or ABORT) is ever sent before TLS,
 *    and no export is listed or opened;
 *  - any sequence of requests after NBD_OPT_GO, simple or structured replies: exactly one reply per
 *    request, with its handle and the errno edge validation gives it; a bad magic closes.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Duplex } from 'node:stream';
import { VirtualClock } from '../clock.ts';
import { createCa, issuePeerCert } from '../tls.ts';
import { NbdConnection, type ConnectionOptions, type ExportProvider } from './connection.ts';
import { MemoryBackend } from './backend.ts';
import { ByteReader, StreamClosed } from './reader.ts';
import { createDuplexPair } from './duplex-pair.ts';
import { TlsUpgrader } from './starttls.ts';
import { validateRequest } from './validate.ts';
import * as codec from './codec.ts';
import * as C from './constants.ts';

const EXPORT_SIZE = 1 << 20;
const TIMEOUT_MS = 1000;
/** Longer than any answer takes, even on a loaded machine: past it, the connection hangs (a bug). */
const HANG_MS = 10_000;
const ERRNOS = new Set([C.NBD_EPERM, C.NBD_EIO, C.NBD_ENOMEM, C.NBD_EINVAL, C.NBD_ENOSPC, C.NBD_EOVERFLOW, C.NBD_ENOTSUP, C.NBD_ESHUTDOWN]);

let tls: TlsUpgrader;
before(async () => {
  const ca = await createCa('nbd-fuzz');
  const cert = await issuePeerCert(ca, { ips: ['127.70.0.1'] });
  tls = new TlsUpgrader({ cert: cert.cert, key: cert.key, ca: ca.cert });
});

/** A connection over an in-memory duplex, a reader of what it sends, and the calls it made on its exports. */
function connect(opts: ConnectionOptions = {}): { conn: NbdConnection; client: Duplex; reader: ByteReader; clock: VirtualClock; calls: string[]; ended: Promise<void> } {
  const calls: string[] = [];
  const exports: ExportProvider = {
    list: () => {
      calls.push('list');
      return ['vd', 'other'];
    },
    open: (name) => {
      calls.push(`open ${name}`);
      return Promise.resolve(name === 'vd' ? new MemoryBackend(EXPORT_SIZE) : undefined);
    },
  };
  const clock = new VirtualClock();
  const [client, server] = createDuplexPair();
  const conn = new NbdConnection(server, exports, () => undefined, { clock, handshakeTimeoutMs: TIMEOUT_MS, ...opts });
  const reader = new ByteReader(() => client.pause(), () => client.resume(), 64 << 20);
  client.on('data', (c: Buffer) => reader.push(c));
  const ended = new Promise<void>((resolve) => {
    client.on('end', () => resolve());
    client.on('close', () => resolve());
  });
  ended.then(() => reader.end(), () => undefined);
  client.on('error', () => undefined);
  return { conn, client, reader, clock, calls, ended };
}

/** Lets the in-memory streams and the connection run (each hop is a tick or a few). */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

/** Resolves with p, or fails the property if it does not settle in ms (a hang is a bug too). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_r, j) => (t = setTimeout(() => j(new Error(`${what}: nothing within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

async function readReply(reader: ByteReader): Promise<{ option: number; type: number; data: Buffer }> {
  const h = await within(reader.read(20), HANG_MS, 'option reply');
  assert.equal(h.readBigUInt64BE(0), C.NBD_REP_MAGIC, 'option reply magic');
  const len = h.readUInt32BE(16);
  return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: len ? await within(reader.read(len), HANG_MS, 'option reply data') : Buffer.alloc(0) };
}

/** Everything the server sends until it closes. */
async function drain(reader: ByteReader): Promise<Buffer> {
  const out: Buffer[] = [];
  for (;;) {
    try {
      out.push(await reader.read(1));
    } catch {
      return Buffer.concat(out);
    }
  }
}

const isFinal = (type: number): boolean => type === C.NBD_REP_ACK || type >= C.NBD_REP_FLAG_ERROR;

test('any bytes: a greeting, then only well-formed option replies; the connection always closes', async () => {
  const input = fc.tuple(
    fc.constantFrom('none', 'flags', 'flags+magic'),
    fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 6 }),
    fc.boolean(),
  );
  await fc.assert(fc.asyncProperty(input, async ([prefix, chunks, endAfter]) => {
    const { conn, client, reader, clock } = connect(prefix === 'flags+magic' ? { tls } : {});
    if (prefix !== 'none') client.write(Buffer.from('00000003', 'hex'));
    if (prefix === 'flags+magic') client.write(Buffer.from('49484156454f5054', 'hex'));
    for (const c of chunks) client.write(c);
    if (endAfter) client.end();
    await settle();
    clock.advance(TIMEOUT_MS); // whatever state it is in, a handshake does not outlive this
    await within(conn.done, HANG_MS, 'the connection to end');
    const out = await within(drain(reader), HANG_MS, 'the stream to close');
    assert.ok(out.subarray(0, 18).equals(codec.encodeServerGreeting()), 'the greeting');
    let at = 18;
    while (at < out.length) {
      assert.ok(out.length - at >= 20, 'a whole reply header');
      assert.equal(out.readBigUInt64BE(at), C.NBD_REP_MAGIC);
      const type = out.readUInt32BE(at + 12);
      assert.ok(type === C.NBD_REP_ACK || type >= C.NBD_REP_FLAG_ERROR, `reply type 0x${type.toString(16)}`);
      at += 20 + out.readUInt32BE(at + 16);
    }
    assert.equal(at, out.length, 'nothing but replies');
    assert.equal(conn.phase, 'closed');
  }), { numRuns: 300 });
});

/** An option as a client might send it: a known or random code, well-formed or random data. */
const optionArb = fc.oneof(
  fc.record({ option: fc.constantFrom(C.NBD_OPT_LIST, C.NBD_OPT_STRUCTURED_REPLY, C.NBD_OPT_STARTTLS), data: fc.oneof(fc.constant(Buffer.alloc(0)), fc.uint8Array({ minLength: 1, maxLength: 16 }).map((b) => Buffer.from(b))) }),
  fc.record({
    option: fc.constantFrom(C.NBD_OPT_INFO, C.NBD_OPT_GO),
    data: fc.oneof(
      fc.tuple(fc.constantFrom('vd', 'other', 'nope', ''), fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 4 })).map(([name, reqs]) => {
        const n = Buffer.from(name);
        const d = Buffer.alloc(4 + n.length + 2 + reqs.length * 2);
        d.writeUInt32BE(n.length, 0);
        n.copy(d, 4);
        d.writeUInt16BE(reqs.length, 4 + n.length);
        reqs.forEach((r, i) => d.writeUInt16BE(r, 6 + n.length + i * 2));
        return d;
      }),
      fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b)),
    ),
  }),
  fc.record({ option: fc.constantFrom(C.NBD_OPT_EXPORT_NAME, C.NBD_OPT_ABORT), data: fc.constantFrom('vd', 'nope', '').map((s) => Buffer.from(s)) }),
  fc.record({ option: fc.oneof(fc.integer({ min: 9, max: 64 }), fc.nat()), data: fc.uint8Array({ maxLength: 32 }).map((b) => Buffer.from(b)) }),
  fc.record({ option: fc.nat(), data: fc.constant(Buffer.alloc(0)), tooBig: fc.constant(true) }),
);

for (const mode of ['plain', 'tls-required'] as const) {
  test(`any options (${mode}): one final reply each, of the type the spec allows${mode === 'tls-required' ? '; nothing revealed before TLS' : ''}`, async () => {
    await fc.assert(fc.asyncProperty(fc.array(optionArb, { minLength: 1, maxLength: 8 }), async (options) => {
      const { conn, client, reader, calls } = connect(mode === 'tls-required' ? { tls } : {});
      await within(reader.read(18), HANG_MS, 'greeting');
      client.write(Buffer.from('00000003', 'hex'));
      let open = true;
      for (const o of options) {
        const tooBig = 'tooBig' in o;
        client.write(codec.encodeOptionHeader(o.option, tooBig ? C.MAX_OPTION_LENGTH + 1 : o.data.length));
        if (!tooBig) client.write(o.data);
        if (o.option === C.NBD_OPT_EXPORT_NAME && !tooBig) {
          // no error reply exists for EXPORT_NAME: the export's size and flags, or the server hangs up
          if (mode === 'plain' && o.data.toString() === 'vd') assert.equal((await within(reader.read(10), HANG_MS, 'EXPORT_NAME')).readBigUInt64BE(0), BigInt(EXPORT_SIZE));
          else assert.equal((await within(drain(reader), HANG_MS, 'EXPORT_NAME')).length, 0, 'closed without a word');
          open = false;
          break;
        }
        if (mode === 'tls-required' && o.option === C.NBD_OPT_STARTTLS && o.data.length === 0 && !tooBig) {
          const r = await readReply(reader);
          assert.equal(r.type, C.NBD_REP_ACK);
          client.write(Buffer.from('this is not a TLS ClientHello'));
          const out = await within(drain(reader), HANG_MS, 'close after a failed TLS handshake');
          assert.ok(out.length === 0 || out[0] === 0x15, 'at most a TLS alert record');
          open = false;
          break;
        }
        const replies = [];
        for (;;) {
          const r = await readReply(reader);
          assert.equal(r.option, o.option, 'the reply names the option');
          replies.push(r);
          if (isFinal(r.type)) break;
        }
        const final = replies.at(-1)?.type;
        const others = replies.slice(0, -1).map((r) => r.type);
        if (tooBig) {
          assert.equal(final, C.NBD_REP_ERR_TOO_BIG);
          open = false;
          break;
        }
        if (o.option === C.NBD_OPT_ABORT) {
          assert.equal(final, C.NBD_REP_ACK);
          open = false;
          break;
        }
        if (mode === 'tls-required') {
          assert.equal(replies.length, 1);
          assert.equal(final, o.option === C.NBD_OPT_STARTTLS ? C.NBD_REP_ERR_INVALID : C.NBD_REP_ERR_TLS_REQD);
          continue;
        }
        switch (o.option) {
          case C.NBD_OPT_LIST:
            if (o.data.length) assert.deepEqual([...others, final], [C.NBD_REP_ERR_INVALID]);
            else assert.deepEqual([...others, final], [C.NBD_REP_SERVER, C.NBD_REP_SERVER, C.NBD_REP_ACK]);
            break;
          case C.NBD_OPT_STRUCTURED_REPLY:
            assert.equal(final, o.data.length ? C.NBD_REP_ERR_INVALID : C.NBD_REP_ACK);
            break;
          case C.NBD_OPT_STARTTLS:
            assert.equal(final, C.NBD_REP_ERR_POLICY, 'no TLS here');
            break;
          case C.NBD_OPT_INFO:
          case C.NBD_OPT_GO: {
            const req = codec.decodeInfoRequest(o.data);
            if (!req) assert.equal(final, C.NBD_REP_ERR_INVALID);
            else if (req.name !== 'vd') assert.equal(final, C.NBD_REP_ERR_UNKNOWN);
            else {
              assert.equal(final, C.NBD_REP_ACK);
              assert.ok(others.every((t) => t === C.NBD_REP_INFO));
              if (o.option === C.NBD_OPT_GO) open = false; // transmission: another property's business
            }
            break;
          }
          default:
            assert.equal(final, C.NBD_REP_ERR_UNSUP);
        }
        if (!open) break;
      }
      if (mode === 'tls-required') assert.deepEqual(calls, [], 'no export listed or opened before TLS');
      client.destroy();
      await within(conn.done, HANG_MS, 'the connection to end');
    }), { numRuns: mode === 'plain' ? 200 : 100 });
  });
}

interface Req {
  type: number;
  flags: number;
  offset: bigint;
  length: number;
}

const reqArb: fc.Arbitrary<Req> = fc.record({
  type: fc.oneof(fc.constantFrom(C.NBD_CMD_READ, C.NBD_CMD_WRITE, C.NBD_CMD_FLUSH, C.NBD_CMD_TRIM, C.NBD_CMD_CACHE, C.NBD_CMD_WRITE_ZEROES, C.NBD_CMD_BLOCK_STATUS), fc.integer({ min: 0, max: 0xffff })),
  flags: fc.oneof(fc.constant(0), fc.constantFrom(C.NBD_CMD_FLAG_FUA, C.NBD_CMD_FLAG_DF, C.NBD_CMD_FLAG_NO_HOLE, C.NBD_CMD_FLAG_FAST_ZERO), fc.integer({ min: 0, max: 0xffff })),
  offset: fc.oneof(fc.bigInt({ min: 0n, max: BigInt(EXPORT_SIZE) }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
  length: fc.oneof(fc.integer({ min: 0, max: 8192 }), fc.integer({ min: 0, max: EXPORT_SIZE + 1 }), fc.nat({ max: 0xffffffff })),
});

/** Reads one reply (simple, or a structured chunk) and checks it against the request it answers. */
async function readOne(reader: ByteReader, structured: boolean, expected: Map<bigint, { req: Req; error: number }>): Promise<void> {
  const what = (e: { req: Req }): string => JSON.stringify({ ...e.req, offset: String(e.req.offset) });
  if (structured) {
    const h = await within(reader.read(20), HANG_MS, 'structured reply');
    assert.equal(h.readUInt32BE(0), C.NBD_STRUCTURED_REPLY_MAGIC, 'structured replies were negotiated');
    const handle = h.readBigUInt64BE(8);
    const e = expected.get(handle);
    assert.ok(e, `a reply for a request in flight (${handle})`);
    assert.equal(h.readUInt16BE(4) & C.NBD_REPLY_FLAG_DONE, C.NBD_REPLY_FLAG_DONE, 'one chunk, the last');
    const type = h.readUInt16BE(6);
    const body = await within(reader.read(h.readUInt32BE(16)), HANG_MS, 'chunk payload');
    if (e.error) {
      assert.equal(type, C.NBD_REPLY_TYPE_ERROR);
      assert.equal(body.readUInt32BE(0), e.error, `errno for ${what(e)}`);
    } else if (e.req.type === C.NBD_CMD_READ) {
      assert.equal(type, C.NBD_REPLY_TYPE_OFFSET_DATA);
      assert.equal(body.length, 8 + e.req.length);
    } else assert.equal(type, C.NBD_REPLY_TYPE_NONE);
    expected.delete(handle);
    return;
  }
  const h = await within(reader.read(16), HANG_MS, 'simple reply');
  assert.equal(h.readUInt32BE(0), C.NBD_SIMPLE_REPLY_MAGIC);
  const handle = h.readBigUInt64BE(8);
  const e = expected.get(handle);
  assert.ok(e, `a reply for a request in flight (${handle})`);
  const error = h.readUInt32BE(4);
  assert.equal(error, e.error, `errno for ${what(e)}`);
  assert.ok(error === 0 || ERRNOS.has(error));
  if (error === 0 && e.req.type === C.NBD_CMD_READ) await within(reader.read(e.req.length), HANG_MS, 'read data');
  expected.delete(handle);
}

test('any requests after NBD_OPT_GO: one reply each, with its handle and the errno edge validation gives; a bad magic or DISC closes', async () => {
  const input = fc.tuple(fc.boolean(), fc.array(reqArb, { minLength: 1, maxLength: 12 }), fc.constantFrom('disc', 'bad-magic', 'eof'));
  await fc.assert(fc.asyncProperty(input, async ([structured, reqs, ending]) => {
    const { conn, client, reader } = connect();
    await within(reader.read(18), HANG_MS, 'greeting');
    client.write(Buffer.from('00000003', 'hex'));
    if (structured) {
      client.write(codec.encodeOptionHeader(C.NBD_OPT_STRUCTURED_REPLY, 0));
      assert.equal((await readReply(reader)).type, C.NBD_REP_ACK);
    }
    const go = Buffer.from('00000002' + '7664' + '0000', 'hex');
    client.write(Buffer.concat([codec.encodeOptionHeader(C.NBD_OPT_GO, go.length), go]));
    for (;;) if ((await readReply(reader)).type === C.NBD_REP_ACK) break;
    const expected = new Map<bigint, { req: Req; error: number }>();
    let handle = 1n;
    for (const r of reqs) {
      // a WRITE's payload follows its header: keep those the test sends small
      const length = r.type === C.NBD_CMD_WRITE ? r.length % 65536 : r.length;
      const h = handle++;
      client.write(codec.encodeRequest({ flags: r.flags, type: r.type, handle: h, offset: r.offset, length }));
      if (r.type === C.NBD_CMD_WRITE) client.write(Buffer.alloc(length, 0xab));
      if (r.type === C.NBD_CMD_DISC) break; // the server closes after the requests in flight
      const bad = validateRequest({ magic: C.NBD_REQUEST_MAGIC, flags: r.flags, type: r.type, handle: h, offset: r.offset, length }, BigInt(EXPORT_SIZE), false, structured);
      expected.set(h, { req: { ...r, length }, error: bad?.error ?? 0 });
    }
    const sentDisc = reqs.some((r) => r.type === C.NBD_CMD_DISC);
    if (!sentDisc) {
      if (ending === 'disc') client.write(codec.encodeRequest({ flags: 0, type: C.NBD_CMD_DISC, handle: 0n, offset: 0n, length: 0 }));
      else if (ending === 'bad-magic') client.write(Buffer.alloc(28, 0x42));
      else client.end();
    }
    // DISC: every request before it is answered [proto.md "Terminating the transmission phase"];
    // after a bad magic or the client's EOF (hard disconnects) replies may be cut short
    const allOwed = sentDisc || ending === 'disc';
    try {
      while (expected.size > 0) await readOne(reader, structured, expected);
    } catch (e) {
      if (allOwed || !(e instanceof StreamClosed)) throw e;
    }
    await within(conn.done, HANG_MS, 'the connection to end');
    assert.equal((await within(drain(reader), HANG_MS, 'close')).length, 0, 'nothing after the last reply');
  }), { numRuns: 150 });
});
