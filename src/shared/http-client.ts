/**
 * @module
 * The client side of the internal APIs (http-api.ts): HTTPS with this process's identity as the
 * client certificate, the server verified against the identity's trust anchors, JSON in and out,
 * and the API's error body `{ error: { code, message, field? } }` rebuilt into the typed error it
 * was thrown as, so callers can tell bad input from a conflict or an unavailable store.
 *
 * A process has one identity (a node's, a CVM's, the operator's): its composition root calls
 * `useIdentity` once; a call may name another.
 */
import { Readable } from 'node:stream';
import { Agent, fetch } from 'undici';
import { AuthError, ConflictError, ForbiddenError, InputError, NotFoundError, UnavailableError, errorMessage, type ConvergeError } from './errors.ts';
import type { Identity } from './identity.ts';

export interface CallOptions {
  method?: string;
  body?: unknown;
  timeoutMs?: number;
  /** Gives up early when this aborts (the caller is stopping). */
  signal?: AbortSignal;
  /** Who calls (default: the process's identity, useIdentity). */
  identity?: Identity;
  /** A body sent as it is (application/octet-stream), streamed: an upload. */
  stream?: Readable | Buffer;
  /** More request headers. */
  headers?: Record<string, string>;
  /** The answer is bytes (a download): returned as a Buffer when the status is a success. */
  binary?: boolean;
}

/** An error the server answered that has no typed twin here (500s). */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** The typed error of an error body. */
export function errorOfBody(status: number, e: { code?: string; message?: string; field?: string } | undefined): ConvergeError | ApiError {
  const message = e?.message ?? `HTTP ${status}`;
  switch (e?.code ?? '') {
    case 'CVG_ERR_INPUT': {
      const field = e?.field ?? 'body';
      return new InputError(field, message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message);
    }
    case 'CVG_ERR_NOT_FOUND': {
      const err = new NotFoundError('resource', '');
      err.message = message;
      return err;
    }
    case 'CVG_ERR_CONFLICT':
      return new ConflictError(message);
    case 'CVG_ERR_UNAVAILABLE':
      return new UnavailableError(message);
    case 'CVG_ERR_AUTH':
      return new AuthError(message);
    case 'CVG_ERR_FORBIDDEN':
      return new ForbiddenError(message);
    default:
      return new ApiError(status, e?.code ?? 'CVG_ERR_INTERNAL', message);
  }
}

let processIdentity: Identity | undefined;

/** Sets the identity this process presents to the internal APIs. */
export function useIdentity(id: Identity): void {
  processIdentity = id;
}

export function currentIdentity(): Identity | undefined {
  return processIdentity;
}

const agents = new WeakMap<Identity, Agent>();

/** One connection pool per identity: TLS with its certificate, servers verified against its anchors. */
export function agentOf(id: Identity): Agent {
  let a = agents.get(id);
  if (!a) {
    a = new Agent({ connect: { ca: id.ca, cert: id.cert, key: id.key }, keepAliveTimeout: 10_000 });
    agents.set(id, a);
  }
  return a;
}

/** Whether a fetch failed on a connection the other side closed before answering (undici's SocketError). */
function closedUnderUs(e: unknown): boolean {
  const cause = (e as { cause?: { code?: string } }).cause;
  return cause?.code === 'UND_ERR_SOCKET';
}

/** Calls `https://<host>:<port><path>` (GET without a body, POST with one, unless `method` says). */
export async function callInternal<T>(host: string, port: number, path: string, o: CallOptions = {}): Promise<T> {
  const id = o.identity ?? processIdentity;
  if (!id) throw new AuthError(`no client identity to call ${host}:${port} with (the deployment's pki/operator.json, or the node's identity)`);
  const deadline = AbortSignal.timeout(o.timeoutMs ?? 15_000);
  const method = o.method ?? (o.body === undefined && o.stream === undefined ? 'GET' : 'POST');
  const fetchOnce = (): ReturnType<typeof fetch> => fetch(`https://${host}:${port}${path}`, {
    method,
    headers: { ...o.headers, ...(o.stream !== undefined ? { 'Content-Type': 'application/octet-stream' } : o.body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: o.stream ?? (o.body === undefined ? null : JSON.stringify(o.body)),
    ...(o.stream instanceof Readable ? { duplex: 'half' as const } : {}),
    signal: o.signal ? AbortSignal.any([o.signal, deadline]) : deadline,
    dispatcher: agentOf(id),
  });
  const unanswered = (e: unknown): UnavailableError => {
    // undici says "fetch failed"; what failed (refused, TLS, timeout) is its cause
    const cause = (e as { cause?: unknown }).cause;
    return new UnavailableError(`${host}:${port} does not answer (${errorMessage(cause ?? e)})`);
  };
  let r;
  try {
    r = await fetchOnce();
  } catch (e) {
    // closed before an answer: a server that refused our certificate after the TLS 1.3 handshake
    // (a host agent that had not yet read a new cluster's CA: it reads it on the refusal), or a
    // pooled connection closed as we used it: a GET is asked again once, on a new connection
    if (method !== 'GET' || !closedUnderUs(e) || deadline.aborted || o.signal?.aborted) throw unanswered(e);
    try {
      r = await fetchOnce();
    } catch (again) {
      throw unanswered(again);
    }
  }
  if (o.binary && r.ok) return Buffer.from(await r.arrayBuffer()) as T;
  const text = await r.text();
  let j: (T & { error?: { code?: string; message?: string; field?: string } }) | undefined;
  try {
    j = JSON.parse(text) as T & { error?: { code?: string; message?: string; field?: string } };
  } catch {
    if (r.ok) throw new ApiError(r.status, 'CVG_ERR_INTERNAL', `${host}:${port}${path} answered something other than JSON`);
  }
  if (!r.ok) throw errorOfBody(r.status, j?.error);
  return j as T;
}
