/**
 * @module
 * A small Redfish client: session login (falling back to Basic), JSON GET/POST/PATCH/DELETE,
 * errors with the service's MessageId. Used by the CLI's tour and, later, by Foundation to drive
 * BMCs. Trusts the CA given (the rack's), never "insecure".
 */
import { Agent, fetch as ufetch } from 'undici';
import type { RedfishErrorBody } from './redfish.ts';

export class RedfishClientError extends Error {
  constructor(readonly status: number, readonly messageId: string | undefined, message: string) {
    super(message);
  }
}

export interface RedfishReply<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: { get(name: string): string | null };
}

export class RedfishClient {
  private token: string | undefined;
  private sessionUri: string | undefined;
  private readonly agent: Agent;

  constructor(readonly baseUrl: string, private readonly user: string, private readonly password: string, ca?: string, private readonly timeoutMs = 30_000) {
    this.agent = new Agent(ca ? { connect: { ca } } : {});
  }

  /** Opens a session (POST SessionService/Sessions); later calls use its X-Auth-Token. */
  async login(): Promise<string> {
    const r = await this.raw('POST', '/redfish/v1/SessionService/Sessions', { UserName: this.user, Password: this.password }, false);
    const token = r.headers.get('x-auth-token');
    if (!token) throw new RedfishClientError(r.status, undefined, 'the BMC returned no X-Auth-Token');
    this.token = token;
    this.sessionUri = r.headers.get('location') ?? undefined;
    return token;
  }

  async logout(): Promise<void> {
    if (this.sessionUri) await this.raw('DELETE', this.sessionUri).catch(() => undefined);
    this.token = undefined;
    this.sessionUri = undefined;
  }

  async close(): Promise<void> {
    await this.logout();
    await this.agent.close();
  }

  private async raw(method: string, path: string, body?: unknown, auth = true): Promise<RedfishReply> {
    const headers: Record<string, string> = { Accept: 'application/json', 'OData-Version': '4.0' };
    if (auth) {
      if (this.token) headers['X-Auth-Token'] = this.token;
      else headers['Authorization'] = `Basic ${Buffer.from(`${this.user}:${this.password}`).toString('base64')}`;
    }
    const init: Parameters<typeof ufetch>[1] = { method, headers, dispatcher: this.agent, signal: AbortSignal.timeout(this.timeoutMs) };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await ufetch(new URL(path, this.baseUrl), init);
    const text = await res.text();
    let json: unknown = {};
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = { text };
    }
    if (res.status >= 400) {
      const e = (json as Partial<RedfishErrorBody>).error;
      const id = e?.['@Message.ExtendedInfo']?.[0]?.MessageId;
      throw new RedfishClientError(res.status, id, `${method} ${path}: HTTP ${res.status}: ${e?.message ?? text.slice(0, 200)}`);
    }
    return { status: res.status, body: json as Record<string, unknown>, headers: res.headers };
  }

  async get<T = Record<string, unknown>>(path: string): Promise<T> {
    return (await this.raw('GET', path)).body as T;
  }

  post(path: string, body?: unknown): Promise<RedfishReply> {
    return this.raw('POST', path, body ?? {});
  }

  patch(path: string, body: unknown): Promise<RedfishReply> {
    return this.raw('PATCH', path, body);
  }

  delete(path: string): Promise<RedfishReply> {
    return this.raw('DELETE', path);
  }

  /** The first member of /redfish/v1/Systems (a node's BMC manages one system); null when it lists none. */
  async firstSystem(): Promise<string | null> {
    const c = await this.get<{ Members?: { '@odata.id'?: unknown }[] }>('/redfish/v1/Systems');
    const first = c.Members?.[0]?.['@odata.id'];
    return typeof first === 'string' ? first : null;
  }

  /** ComputerSystem.Reset of a system (ForceOff, On, GracefulRestart, …). */
  reset(system: string, type: 'On' | 'ForceOff' | 'GracefulShutdown' | 'GracefulRestart' | 'ForceRestart' | 'PowerCycle'): Promise<RedfishReply> {
    return this.post(`${system}/Actions/ComputerSystem.Reset`, { ResetType: type });
  }

  /** GETs every member of a collection. */
  async members<T = Record<string, unknown>>(collectionPath: string): Promise<T[]> {
    const c = await this.get<{ Members: { '@odata.id': string }[] }>(collectionPath);
    return Promise.all(c.Members.map((m) => this.get<T>(m['@odata.id'])));
  }
}
