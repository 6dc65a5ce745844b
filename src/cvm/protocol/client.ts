/**
 * @module
 * A client of a CVM's API (protocol/cluster.ts) for its peers, Foundation, Prism and the CLI:
 * HTTPS with the caller's certificate (shared/http-client.ts); errors come back typed.
 */
import { callInternal, type CallOptions } from '../../shared/http-client.ts';
import { CVM_API_PORT } from './cluster.ts';

export type { CallOptions } from '../../shared/http-client.ts';

/** Calls `path` on the CVM at `ip` (GET without a body, POST with one, unless `method` says). */
export function cvmCall<T>(ip: string, path: string, o: CallOptions = {}): Promise<T> {
  return callInternal<T>(ip, CVM_API_PORT, path, o);
}
