/**
 * The connection's option haggling over an in-memory duplex: FORCEDTLS refusals before
 * NBD_OPT_STARTTLS, TLS over the same stream, the authorize hook, a server that does not list its
 * exports, and the handshake timeout on a virtual clock.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { VirtualClock } from '../clock.ts';
import { createCa, issuePeerCert, type Pem } from '../tls.ts';
import { NbdConnection, type ConnectionOptions, type ExportProvider } from './connection.ts';
import { MemoryBackend } from './backend.ts';
import { ByteReader } from './reader.ts';
import { createDuplexPair } from './duplex-pair.ts';
import { TlsUpgrader, startTlsClient } from './starttls.ts';
import * as codec from './codec.ts';
import * as C from './constants.ts';

interface Reply {
  option: number;
  type: number;
  data: Buffer;
}

/** A client end over an in-memory duplex that can switch to TLS. */
class Peer {
  reader: ByteReader;
  stream: Duplex;
  constructor(readonly raw: Duplex) {
    this.stream = raw;
    this.reader = new ByteReader(() => this.stream.pause(), () => this.stream.resume());
    this.listen(raw);
  }
  private listen(s: Duplex): void {
    s.on('data', (c: Buffer) => this.reader.push(c));
    s.on('end', () => this.reader.end());
    s.on('close', () => this.reader.end());
    s.on('error', () => this.reader.end());
  }
  async hello(): Promise<void> {
    await this.reader.read(18);
    const cf = Buffer.alloc(4);
    cf.writeUInt32BE(C.NBD_FLAG_C_FIXED_NEWSTYLE | C.NBD_FLAG_C_NO_ZEROES);
    this.stream.write(cf);
  }
  async option(option: number, data: Buffer = Buffer.alloc(0)): Promise<Reply[]> {
    this.stream.write(Buffer.concat([codec.encodeOptionHeader(option, data.length), data]));
    const out: Reply[] = [];
    for (;;) {
      const h = await this.reader.read(20);
      const len = h.readUInt32BE(16);
      const r = { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: len ? await this.reader.read(len) : Buffer.alloc(0) };
      out.push(r);
      if (r.type === C.NBD_REP_ACK || r.type >= C.NBD_REP_FLAG_ERROR) return out;
    }
  }
  async startTls(cert: Pem, ca: string): Promise<void> {
    const [ack] = await this.option(C.NBD_OPT_STARTTLS);
    assert.equal(ack?.type, C.NBD_REP_ACK);
    this.raw.removeAllListeners('data');
    this.raw.removeAllListeners('end');
    this.stream = await startTlsClient(this.raw, { cert: cert.cert, key: cert.key, ca, servername: '127.70.0.1' }, undefined);
    this.listen(this.stream);
  }
  /** True once the server has closed (reads fail). */
  closed(): Promise<boolean> {
    return this.reader.read(1).then(() => false, () => true);
  }
}

const goData = (name: string): Buffer => {
  const n = Buffer.from(name);
  const d = Buffer.alloc(4 + n.length + 2);
  d.writeUInt32BE(n.length, 0);
  n.copy(d, 4);
  return d;
};

let ca: Pem;
let serverCert: Pem;
let clientCert: Pem;
let bannedCert: Pem;
before(async () => {
  ca = await createCa('nbd-test');
  serverCert = await issuePeerCert(ca, { ips: ['127.70.0.1'] });
  clientCert = await issuePeerCert(ca, { ips: ['127.70.0.2'], commonName: 'host-a' });
  bannedCert = await issuePeerCert(ca, { ips: ['127.70.0.3'], commonName: 'banned' });
});

function serve(opts: ConnectionOptions): { peer: Peer; conn: NbdConnection; calls: string[] } {
  const calls: string[] = [];
  const exports: ExportProvider = {
    list: () => {
      calls.push('list');
      return ['vd1', 'vd2'];
    },
    open: (name) => {
      calls.push(`open ${name}`);
      return Promise.resolve(name === 'vd1' ? new MemoryBackend(1 << 20) : name === 'vd2' ? new MemoryBackend(1 << 20, { multiConn: false }) : undefined);
    },
  };
  const [a, b] = createDuplexPair();
  const conn = new NbdConnection(b, exports, () => undefined, opts);
  return { peer: new Peer(a), conn, calls };
}

test('TLS required: every option but STARTTLS and ABORT is answered NBD_REP_ERR_TLS_REQD, and no export is listed or opened', async () => {
  const { peer, conn, calls } = serve({ tls: new TlsUpgrader({ cert: serverCert.cert, key: serverCert.key, ca: ca.cert }) });
  await peer.hello();
  for (const [opt, data] of [[C.NBD_OPT_LIST, Buffer.alloc(0)], [C.NBD_OPT_INFO, goData('vd1')], [C.NBD_OPT_GO, goData('vd1')], [C.NBD_OPT_STRUCTURED_REPLY, Buffer.alloc(0)], [C.NBD_OPT_LIST_META_CONTEXT, Buffer.alloc(8)], [77, Buffer.from('x')]] as const) {
    const replies = await peer.option(opt, data);
    assert.deepEqual(replies.map((r) => [r.option, r.type]), [[opt, C.NBD_REP_ERR_TLS_REQD]], `option ${opt}`);
  }
  assert.equal((await peer.option(C.NBD_OPT_STARTTLS, Buffer.from('x')))[0]?.type, C.NBD_REP_ERR_INVALID, 'STARTTLS takes no data');
  assert.deepEqual(calls, [], 'the exports were never asked for');
  // EXPORT_NAME cannot be refused with an error: the server hangs up [proto.md "FORCEDTLS mode"]
  peer.stream.write(Buffer.concat([codec.encodeOptionHeader(C.NBD_OPT_EXPORT_NAME, 3), Buffer.from('vd1')]));
  assert.equal(await peer.closed(), true);
  await conn.done;
  assert.deepEqual(calls, []);
});

test('TLS required: ABORT before TLS is acknowledged and ends the session', async () => {
  const { peer, conn } = serve({ tls: new TlsUpgrader({ cert: serverCert.cert, key: serverCert.key, ca: ca.cert }) });
  await peer.hello();
  assert.equal((await peer.option(C.NBD_OPT_ABORT))[0]?.type, C.NBD_REP_ACK);
  assert.equal(await peer.closed(), true);
  await conn.done;
});

test('after STARTTLS with a client certificate, haggling goes on over TLS; a second STARTTLS is invalid', async () => {
  const { peer, conn, calls } = serve({ tls: new TlsUpgrader({ cert: serverCert.cert, key: serverCert.key, ca: ca.cert }) });
  await peer.hello();
  await peer.startTls(clientCert, ca.cert);
  const list = await peer.option(C.NBD_OPT_LIST);
  assert.deepEqual(list.map((r) => r.type), [C.NBD_REP_SERVER, C.NBD_REP_SERVER, C.NBD_REP_ACK]);
  assert.equal((await peer.option(C.NBD_OPT_STARTTLS))[0]?.type, C.NBD_REP_ERR_INVALID);
  const go = await peer.option(C.NBD_OPT_GO, goData('vd1'));
  assert.equal(go.at(-1)?.type, C.NBD_REP_ACK);
  assert.equal(conn.phase, 'transmission');
  assert.deepEqual(calls, ['list', 'open vd1']);
  peer.stream.write(codec.encodeRequest({ flags: 0, type: C.NBD_CMD_DISC, handle: 1n, offset: 0n, length: 0 }));
  await conn.done;
});

test('the authorize hook refuses a verified certificate: every option is then NBD_REP_ERR_POLICY', async () => {
  const seen: string[] = [];
  const { peer, conn, calls } = serve({
    tls: new TlsUpgrader({ cert: serverCert.cert, key: serverCert.key, ca: ca.cert }),
    authorize: ({ certificate }) => {
      seen.push(certificate.subject.split('\n')[0] ?? '');
      return !certificate.subject.includes('CN=banned');
    },
  });
  await peer.hello();
  await peer.startTls(bannedCert, ca.cert);
  for (const opt of [C.NBD_OPT_LIST, C.NBD_OPT_GO]) {
    const [r] = await peer.option(opt, opt === C.NBD_OPT_GO ? goData('vd1') : Buffer.alloc(0));
    assert.equal(r?.type, C.NBD_REP_ERR_POLICY);
    assert.match(r?.data.toString() ?? '', /CN=banned.*not authorized/);
  }
  assert.deepEqual(seen, ['CN=banned']);
  assert.deepEqual(calls, []);
  peer.stream.destroy();
  await conn.done;
});

test('without TLS configured, STARTTLS is refused with NBD_REP_ERR_POLICY and plain haggling goes on', async () => {
  const { peer, conn } = serve({});
  await peer.hello();
  assert.equal((await peer.option(C.NBD_OPT_STARTTLS))[0]?.type, C.NBD_REP_ERR_POLICY);
  assert.equal((await peer.option(C.NBD_OPT_LIST)).length, 3);
  peer.stream.destroy();
  await conn.done;
});

test('TLS optional (require: false): plain clients are served, and STARTTLS still upgrades', async () => {
  const tls = new TlsUpgrader({ cert: serverCert.cert, key: serverCert.key, ca: ca.cert, require: false });
  const plain = serve({ tls });
  await plain.peer.hello();
  assert.equal((await plain.peer.option(C.NBD_OPT_LIST)).at(-1)?.type, C.NBD_REP_ACK);
  plain.peer.stream.destroy();
  const secure = serve({ tls });
  await secure.peer.hello();
  await secure.peer.startTls(clientCert, ca.cert);
  assert.equal((await secure.peer.option(C.NBD_OPT_LIST)).at(-1)?.type, C.NBD_REP_ACK);
  secure.peer.stream.destroy();
  await Promise.all([plain.conn.done, secure.conn.done]);
});

test('listExports: false refuses NBD_OPT_LIST with NBD_REP_ERR_POLICY; exports can still be opened by name', async () => {
  const { peer, conn, calls } = serve({ listExports: false });
  await peer.hello();
  const [r] = await peer.option(C.NBD_OPT_LIST);
  assert.equal(r?.type, C.NBD_REP_ERR_POLICY);
  assert.equal((await peer.option(C.NBD_OPT_INFO, goData('vd1'))).at(-1)?.type, C.NBD_REP_ACK);
  assert.deepEqual(calls, ['open vd1']);
  peer.stream.destroy();
  await conn.done;
});

test('handshake timeout: a client that never chooses an export is dropped; one in transmission is not', async () => {
  const clock = new VirtualClock();
  const idle = serve({ clock, handshakeTimeoutMs: 1000 });
  await idle.peer.hello();
  const busy = serve({ clock, handshakeTimeoutMs: 1000 });
  await busy.peer.hello();
  assert.equal((await busy.peer.option(C.NBD_OPT_GO, goData('vd1'))).at(-1)?.type, C.NBD_REP_ACK);
  clock.advance(999);
  assert.equal(idle.conn.phase, 'options');
  clock.advance(1);
  assert.equal(await idle.peer.closed(), true);
  await idle.conn.done;
  assert.equal(idle.conn.timedOut, true);
  assert.equal(busy.conn.phase, 'transmission');
  assert.equal(clock.pending, 0, 'no timer is left behind');
  busy.peer.stream.destroy();
  await busy.conn.done;
});

test('NBD_FLAG_CAN_MULTI_CONN is advertised only for a backend whose FLUSH covers every connection', async () => {
  const flagsOf = async (name: string): Promise<number> => {
    const { peer, conn } = serve({});
    await peer.hello();
    const go = await peer.option(C.NBD_OPT_GO, goData(name));
    const info = go.find((r) => r.type === C.NBD_REP_INFO && r.data.readUInt16BE(0) === C.NBD_INFO_EXPORT);
    assert.ok(info, `an NBD_INFO_EXPORT for ${name}`);
    peer.stream.destroy();
    await conn.done;
    return info.data.readUInt16BE(10);
  };
  assert.equal((await flagsOf('vd1')) & C.NBD_FLAG_CAN_MULTI_CONN, C.NBD_FLAG_CAN_MULTI_CONN);
  assert.equal((await flagsOf('vd2')) & C.NBD_FLAG_CAN_MULTI_CONN, 0);
});
