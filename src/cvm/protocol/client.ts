/**
 * @module
 * A client of a CVM's API (protocol/cluster.ts) for its peers, Foundation, Prism and the CLI. The
 * API's error body `{ error: { code, message, field? } }` comes back as the typed error it was
 * thrown as, so callers can tell bad input from a conflict or an unavailable store.
 */
import { ConflictError, InputError, NotFoundError, UnavailableError, type ConvergeError } from '../../shared/errors.ts';
import { CVM_API_PORT } from './cluster.ts';

export interface CallOptions {
  method?: string;
  body?: unknown;
  timeoutMs?: number;
  /** Gives up early when this aborts (the caller is stopping). */
  signal?: AbortSignal;
}

/** An error the CVM answered that has no typed twin here (500s). */
export class CvmApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

function typed(status: number, e: { code?: string; message?: string; field?: string } | undefined): ConvergeError | CvmApiError {
  const message = e?.message ?? `HTTP ${status}`;
  const code: string = e?.code ?? '';
  switch (code) {
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
    default:
      return new CvmApiError(status, e?.code ?? 'CVG_ERR_INTERNAL', message);
  }
}

/** Calls `path` on the CVM at `ip` (GET without a body, POST with one, unless `method` says). */
export async function cvmCall<T>(ip: string, path: string, o: CallOptions = {}): Promise<T> {
  const deadline = AbortSignal.timeout(o.timeoutMs ?? 15_000);
  const r = await fetch(`http://${ip}:${CVM_API_PORT}${path}`, {
    method: o.method ?? (o.body === undefined ? 'GET' : 'POST'),
    headers: o.body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: o.body === undefined ? null : JSON.stringify(o.body),
    signal: o.signal ? AbortSignal.any([o.signal, deadline]) : deadline,
  });
  const j = (await r.json()) as T & { error?: { code?: string; message?: string; field?: string } };
  if (!r.ok) throw typed(r.status, j.error);
  return j;
}
