/**
 * @module
 * Scenario driver for the rack (STYLE.md C11): a real rack in-process on its own loopback
 * network, at pace 0, with a Redfish client that trusts the rack's CA.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import { Agent, fetch as ufetch } from 'undici';
import { SystemClock } from '../../src/shared/clock.ts';
import { SeededRandom } from '../../src/shared/random.ts';
import { Rack, type CreateOptions } from '../../src/rack/node/rack.ts';
import type { NodeRuntime } from '../../src/rack/node/node-runtime.ts';
import { rackEndpoint, type RackEndpoint } from '../../src/rack/protocol/access.ts';
import { RackClient } from '../../src/rack/protocol/client.ts';

export interface RfResponse {
  status: number;
  headers: Headers;
  json: any;
  text: string;
}

export class RedfishTestClient {
  private auth: Record<string, string>;
  constructor(readonly base: string, private readonly agent: Agent, user?: string, password?: string) {
    this.auth = user ? { Authorization: `Basic ${Buffer.from(`${user}:${password ?? ''}`).toString('base64')}` } : {};
  }

  as(headers: Record<string, string>): RedfishTestClient {
    const c = new RedfishTestClient(this.base, this.agent);
    c.auth = headers;
    return c;
  }

  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<RfResponse> {
    const h: Record<string, string> = { ...this.auth, ...headers };
    const init: Parameters<typeof ufetch>[1] = { method, dispatcher: this.agent, headers: h };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      // JSON unless the test says otherwise
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json';
    }
    const res = await ufetch(`${this.base}${path}`, init);
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers as unknown as Headers, json, text };
  }

  get(path: string, headers?: Record<string, string>): Promise<RfResponse> {
    return this.request('GET', path, undefined, headers);
  }
  post(path: string, body?: unknown, headers?: Record<string, string>): Promise<RfResponse> {
    return this.request('POST', path, body, headers);
  }
  patch(path: string, body: unknown, headers?: Record<string, string>): Promise<RfResponse> {
    return this.request('PATCH', path, body, headers);
  }
  delete(path: string): Promise<RfResponse> {
    return this.request('DELETE', path);
  }
  head(path: string, headers?: Record<string, string>): Promise<RfResponse> {
    return this.request('HEAD', path, undefined, headers);
  }
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  json: any;
  /** Whether the server closed the connection after the answer. */
  closed: boolean;
}

/**
 * One HTTP/1.1 exchange over a fresh connection (TLS when `ca` is given), bytes as given: for what
 * fetch will not send (unknown methods, broken request lines, a body cut short). `data` is written
 * as is (strings and buffers in order, `pauseMs` between them); the answer is read until it is
 * complete (Content-Length or chunked; headers only for `head`) or the connection closes, for at
 * most `timeoutMs`.
 */
/** TLS sessions to resume, per host:port (a full handshake per request would dominate a fuzz run). */
const tlsSessions = new Map<string, Buffer>();

export function rawRequest(o: { host: string; port: number; ca?: string; data: (string | Buffer)[]; pauseMs?: number; timeoutMs?: number; head?: boolean }): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const key = `${o.host}:${o.port}`;
    const session = tlsSessions.get(key);
    const sock: Duplex = o.ca
      ? tlsConnect({ host: o.host, port: o.port, ca: o.ca, servername: '', ...(session ? { session } : {}) }).on('session', (s: Buffer) => void tlsSessions.set(key, s))
      : netConnect({ host: o.host, port: o.port });
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | undefined, closed: boolean): void => {
      if (settled) return;
      const r = parseResponse(buf, closed, o.head === true);
      if (!r && !closed && !err) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (r) resolve(r);
      else reject(err ?? new Error(`no complete HTTP answer (${buf.length} bytes: ${buf.toString('latin1').slice(0, 200)})`));
    };
    const timer = setTimeout(() => finish(new Error(`no answer within ${o.timeoutMs ?? 5000} ms (${buf.length} bytes so far)`), false), o.timeoutMs ?? 5000);
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      finish(undefined, false);
    });
    sock.on('end', () => finish(undefined, true));
    sock.on('close', () => finish(undefined, true));
    sock.on('error', (e) => finish(e, true));
    sock.once(o.ca ? 'secureConnect' : 'connect', () => {
      void (async () => {
        for (const [i, d] of o.data.entries()) {
          if (settled || sock.destroyed) return;
          if (i > 0 && o.pauseMs) await new Promise((r) => setTimeout(r, o.pauseMs));
          await new Promise<void>((r) => (sock.write(d) ? r() : sock.once('drain', () => r())));
        }
      })().catch(() => undefined);
    });
  });
}

/** A complete response in buf, or undefined. */
function parseResponse(buf: Buffer, closed: boolean, headOnly: boolean): RawResponse | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const head = buf.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1] ?? NaN);
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let rest = buf.subarray(end + 4);
  let body: Buffer;
  if (headOnly || status === 204 || status === 304) {
    body = Buffer.alloc(0);
  } else if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
    const parts: Buffer[] = [];
    for (;;) {
      const nl = rest.indexOf('\r\n');
      if (nl < 0) return undefined;
      const size = parseInt(rest.subarray(0, nl).toString('latin1'), 16);
      if (rest.length < nl + 2 + size + 2) return undefined;
      if (size === 0) break;
      parts.push(rest.subarray(nl + 2, nl + 2 + size));
      rest = rest.subarray(nl + 2 + size + 2);
    }
    body = Buffer.concat(parts);
  } else if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (rest.length < n) return undefined;
    body = rest.subarray(0, n);
  } else {
    if (!closed) return undefined;
    body = rest;
  }
  const text = body.toString('utf8');
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status, headers, body: text, json, closed: closed || headers['connection']?.toLowerCase() === 'close' };
}

export const PASSWORD = 'lab-password-1';

export class TestRack {
  readonly agent: Agent;
  /** What the rack logged. */
  readonly logs: string[];
  private stopped = false;
  private constructor(readonly rack: Rack, readonly dataDir: string, private readonly owned: boolean, logs: string[]) {
    this.logs = logs;
    this.agent = new Agent({ connect: { ca: readFileSync(rack.layout.caCert, 'utf8') }, keepAliveTimeout: 10 });
  }

  /** Starts a new rack in a fresh temp dir on the given loopback /16 (each test file its own). */
  static async start(network: string, opts: Partial<CreateOptions> = {}, dataDir?: string): Promise<TestRack> {
    const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'cvg-rack-'));
    const logs: string[] = [];
    const ropts = { dataDir: dir, clock: new SystemClock(), random: new SeededRandom(7), log: (m: string) => void logs.push(m) };
    const rack = Rack.exists(dir) ? Rack.load(ropts) : Rack.create(ropts, { nodes: 2, pace: 0, bmcNetwork: network, bmcPassword: PASSWORD, ssdpPort: 20000 + Number(network.split('.')[1]), ...opts });
    try {
      await rack.start();
    } catch (e) {
      await rack.stop().catch(() => undefined);
      throw e;
    }
    return new TestRack(rack, dir, dataDir === undefined, logs);
  }

  node(i = 0): NodeRuntime {
    const n = this.rack.nodes[i];
    if (!n) throw new Error(`no node ${i}`);
    return n;
  }

  /** The control API's URL and bearer token, read from the data dir as every caller does. */
  endpoint(): RackEndpoint {
    const ep = rackEndpoint(this.dataDir);
    if (!ep) throw new Error(`no control endpoint in ${this.dataDir}`);
    return ep;
  }

  /** A client of the control API (with the rack's token). */
  api(timeoutMs?: number): RackClient {
    return new RackClient(this.endpoint(), timeoutMs);
  }

  /** A client of node i's BMC; user null = anonymous. */
  redfish(i = 0, user: string | null = 'admin', password = PASSWORD): RedfishTestClient {
    return new RedfishTestClient(this.rack.bmcUrl(this.node(i).identity.bmcIp), this.agent, user ?? undefined, password);
  }

  /** Polls until f() is truthy (at most timeoutMs). */
  async until<T>(f: () => T | Promise<T>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await f();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Stops the rack (once; later calls do nothing); removes its data dir unless keep is set. */
  async stop(keep = false): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.rack.stop();
    await this.agent.close();
    if (this.owned && !keep) rmSync(this.dataDir, { recursive: true, force: true });
  }
}
