/**
 * @module
 * The CLI's one way of calling a Converge HTTP API: JSON (or octet-stream) in, JSON or text out,
 * a clear message when the service does not answer, and the service's error turned back into an
 * InputError (bad input, with its field) or an Error with the service's message.
 */
import { InputError, errorMessage } from '../shared/errors.ts';

export interface CallOptions {
  method?: string;
  body?: unknown;
  timeoutMs?: number;
  /** What to tell the user when nothing answers. */
  unreachable: string;
  /** A bearer token for the service (Foundation's API token off loopback). */
  token?: string | undefined;
  /** The field and message of an error body, in the service's own envelope. */
  errorOf: (json: unknown) => { field?: string; message?: string };
}

export async function callApi<T>(url: string, o: CallOptions): Promise<T> {
  const init: RequestInit = { method: o.method ?? (o.body === undefined ? 'GET' : 'POST'), signal: AbortSignal.timeout(o.timeoutMs ?? 120_000) };
  const auth: Record<string, string> = o.token ? { Authorization: `Bearer ${o.token}` } : {};
  init.headers = auth;
  if (Buffer.isBuffer(o.body)) {
    init.body = o.body;
    init.headers = { ...auth, 'Content-Type': 'application/octet-stream' };
  } else if (o.body !== undefined) {
    init.body = JSON.stringify(o.body);
    init.headers = { ...auth, 'Content-Type': 'application/json' };
  }
  let r: Response;
  try {
    r = await fetch(url, init);
  } catch (e) {
    throw new Error(`${o.unreachable} (${errorMessage(e)})`);
  }
  const text = await r.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // a text/plain answer (version, logs)
  }
  if (!r.ok) {
    const e = o.errorOf(json);
    if (r.status === 400 && e.field) throw new InputError(e.field, (e.message ?? 'invalid').replace(`${e.field}: `, ''));
    throw new Error(e.message ?? `HTTP ${r.status}`);
  }
  return json as T;
}
