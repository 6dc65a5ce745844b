/**
 * @module
 * Scenario driver for the rack (STYLE.md C11): a real rack in-process on its own loopback
 * network, at pace 0, with a Redfish client that trusts the rack's CA.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch as ufetch } from 'undici';
import { SystemClock } from '../../src/shared/clock.ts';
import { SeededRandom } from '../../src/shared/random.ts';
import { Rack, type CreateOptions } from '../../src/rack/node/rack.ts';
import type { NodeRuntime } from '../../src/rack/node/node-runtime.ts';

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
