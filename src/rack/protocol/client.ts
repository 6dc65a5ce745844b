/**
 * @module
 * A typed client of the rack's control API (protocol/control.ts), used by the CLI, Foundation's
 * discovery and tests. It sends the rack's bearer token (access.ts reads it from the data dir) on
 * every request. Errors from the API come back as RackApiError with the API's code and field.
 */
import type { RackEndpoint } from './access.ts';
import type { FaultPatch, RackBmc, RackFaults, RackNodeSummary, RackStatus } from './control.ts';

export class RackApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly field?: string, readonly allowed?: string[]) {
    super(message);
  }
}

export class RackClient {
  constructor(private readonly endpoint: RackEndpoint, private readonly timeoutMs = 30_000) {}

  get baseUrl(): string {
    return this.endpoint.url;
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.endpoint.token}` };
    const init: RequestInit = { method, headers, signal: AbortSignal.timeout(this.timeoutMs) };
    if (method !== 'GET' && method !== 'HEAD') {
      // the control API takes JSON only, on every change (a web page cannot send that unasked)
      init.body = JSON.stringify(body ?? {});
      headers['Content-Type'] = 'application/json';
    }
    const res = await fetch(`${this.endpoint.url}${path}`, init);
    const text = await res.text();
    let json: (T & { error?: { code: string; message: string; field?: string; allowed?: string[] } }) | undefined;
    try {
      json = JSON.parse(text) as typeof json;
    } catch {
      json = undefined;
    }
    if (!res.ok || json === undefined) {
      const e = json?.error;
      throw new RackApiError(res.status, e?.code ?? 'CVG_ERR_INTERNAL', e?.message ?? `HTTP ${res.status} from the rack control API`, e?.field, e?.allowed);
    }
    return json;
  }

  status(): Promise<RackStatus> {
    return this.call('GET', '/rack');
  }

  bmcs(): Promise<{ bmcs: RackBmc[] }> {
    return this.call('GET', '/rack/bmcs');
  }

  async addNodes(count: number, model?: string, modelFile?: unknown): Promise<RackNodeSummary[]> {
    const body: Record<string, unknown> = { count };
    if (model !== undefined) body['model'] = model;
    if (modelFile !== undefined) body['modelFile'] = modelFile;
    return (await this.call<{ nodes: RackNodeSummary[] }>('POST', '/rack/nodes', body)).nodes;
  }

  node(serial: string): Promise<RackNodeSummary> {
    return this.call('GET', `/rack/nodes/${encodeURIComponent(serial)}`);
  }

  async setFaults(serial: string, patch: FaultPatch): Promise<RackFaults> {
    return (await this.call<{ faults: RackFaults }>('PATCH', `/rack/nodes/${encodeURIComponent(serial)}/faults`, patch)).faults;
  }

  async clearFaults(serial: string): Promise<RackFaults> {
    return (await this.call<{ faults: RackFaults }>('DELETE', `/rack/nodes/${encodeURIComponent(serial)}/faults`)).faults;
  }

  async shutdown(): Promise<void> {
    await this.call('POST', '/rack/shutdown');
  }

  /** Makes the rack replace its token (and its token file); this client's token stops working. */
  async rotateToken(): Promise<void> {
    await this.call('POST', '/rack/token');
  }
}
