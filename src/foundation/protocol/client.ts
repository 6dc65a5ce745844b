/**
 * @module
 * A typed client of Foundation's API over `fetch` (the browser's or Node's): one method per
 * endpoint a deployment uses, and Foundation's error envelope turned back into a
 * FoundationApiError naming the field, so the web UI shows the same message the API gives.
 * Free of runtime dependencies: the web UI bundles it.
 */
import type {
  DiscoverBlock, FoundationError, ImageNodesInput, PlanInput, PlanResult, ProgressResponse, SessionSummary, UploadReply, ValidationReport,
} from './deploy.ts';

/** An error answer of Foundation: its HTTP status, code, the field it names (if any) and why. */
export class FoundationApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly field: string | null) {
    super(message);
    this.name = 'FoundationApiError';
  }
}

type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

export class FoundationClient {
  /**
   * @param base Foundation's origin, e.g. `http://127.0.0.1:8000`; '' for the page's own origin.
   * @param fetcher the fetch to use (the global one by default).
   * @param token Foundation's API token, when it listens beyond loopback (a browser that opened
   *   its login URL sends the cookie instead).
   */
  constructor(readonly base = '', private readonly fetcher: Fetch = (i, init) => fetch(i, init), private readonly token: string | null = null) {}

  private async call(method: string, path: string, body?: unknown): Promise<Response> {
    const init: RequestInit = { method };
    const headers: Record<string, string> = this.token ? { Authorization: `Bearer ${this.token}` } : {};
    if (body instanceof Blob || body instanceof ArrayBuffer || body instanceof Uint8Array) {
      init.body = body as NonNullable<RequestInit['body']>;
      headers['Content-Type'] = 'application/octet-stream';
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    init.headers = headers;
    let r: Response;
    try {
      r = await this.fetcher(`${this.base}${path}`, init);
    } catch (e) {
      throw new FoundationApiError(0, 'CVG_ERR_UNAVAILABLE', `Foundation does not answer at ${this.base || 'this address'} (${e instanceof Error ? e.message : String(e)})`, null);
    }
    if (r.ok) return r;
    const text = await r.text();
    let env: Partial<FoundationError> | undefined;
    try {
      env = JSON.parse(text) as Partial<FoundationError>;
    } catch {
      env = undefined;
    }
    const e = env?.error;
    const field = e?.details ? (Object.keys(e.details)[0] ?? null) : null;
    const why = field !== null ? e?.details[field] : undefined;
    throw new FoundationApiError(r.status, e?.code ?? `HTTP_${r.status}`, e ? (why !== undefined && !e.message.includes(why) ? `${field ?? ''}: ${why}` : e.message) : `HTTP ${r.status}: ${text.slice(0, 200)}`, field);
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await (await this.call(method, path, body)).json()) as T;
  }

  private async text(path: string): Promise<string> {
    return (await this.call('GET', path)).text();
  }

  discover(ranges: readonly string[] = []): Promise<DiscoverBlock[]> {
    return this.json('GET', `/foundation/discover_nodes${ranges.length ? `?range=${encodeURIComponent(ranges.join(','))}` : ''}`);
  }

  /** The validation report; the firmware minimum is `bundle`'s (default: the newest bundle's). */
  validation(o: { rf: 1 | 2 | 3; overrides?: readonly string[]; profile?: 'lab' | 'production'; bundle?: string }): Promise<ValidationReport> {
    const q = new URLSearchParams({ redundancy_factor: String(o.rf) });
    if (o.overrides?.length) q.set('overrides', o.overrides.join(','));
    if (o.profile) q.set('profile', o.profile);
    if (o.bundle) q.set('nos_package', o.bundle);
    return this.json('GET', `/foundation/validation?${q.toString()}`);
  }

  planCheck(input: PlanInput): Promise<PlanResult> {
    return this.json('POST', '/foundation/plan_check', input);
  }

  bundles(): Promise<string[]> {
    return this.json('GET', '/foundation/enumerate_nos_packages');
  }

  upload(filename: string, bundle: Blob | ArrayBuffer | Uint8Array): Promise<UploadReply> {
    return this.json('POST', `/foundation/upload?installer_type=nos&filename=${encodeURIComponent(filename)}`, bundle);
  }

  imageNodes(body: ImageNodesInput): Promise<{ session_id: string }> {
    return this.json('POST', '/foundation/image_nodes', body);
  }

  progress(sessionId: string): Promise<ProgressResponse> {
    return this.json('GET', `/foundation/progress?session_id=${encodeURIComponent(sessionId)}`);
  }

  sessions(): Promise<SessionSummary[]> {
    return this.json('GET', '/foundation/sessions');
  }

  nodeLog(sessionId: string, serial: string): Promise<string> {
    return this.text(`/foundation/node_log?session_id=${encodeURIComponent(sessionId)}&serial=${encodeURIComponent(serial)}`);
  }

  clusterLog(sessionId: string): Promise<string> {
    return this.text(`/foundation/cluster_log?session_id=${encodeURIComponent(sessionId)}`);
  }

  async retryNode(sessionId: string, serial: string): Promise<void> {
    await this.call('POST', `/foundation/retry_node?session_id=${encodeURIComponent(sessionId)}&serial=${encodeURIComponent(serial)}`);
  }

  async abortSession(sessionId: string): Promise<void> {
    await this.call('POST', `/foundation/abort_session?session_id=${encodeURIComponent(sessionId)}`);
  }

  /** The event stream's URL (server-sent events; `after` = the last seq already seen). */
  eventsUrl(sessionId: string, after = 0): string {
    return `${this.base}/foundation/events?session_id=${encodeURIComponent(sessionId)}${after > 0 ? `&after=${after}` : ''}`;
  }
}
