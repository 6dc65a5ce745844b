/**
 * @module
 * A client of LCM's API (routes in node/routes.ts) for the CLI, Prism and LCM's peers: HTTPS with
 * the caller's certificate (shared/http-client.ts); errors come back typed.
 */
import { callInternal, type CallOptions } from '../../shared/http-client.ts';
import { LCM_PORT } from './lcm.ts';

/** Calls `path` on the LCM of the CVM at `ip`. */
export function lcmCall<T>(ip: string, path: string, o: CallOptions = {}): Promise<T> {
  return callInternal<T>(ip, LCM_PORT, path, o);
}
