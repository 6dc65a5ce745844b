/**
 * @module
 * A client of a host agent's API (hostIp:8100, node-config.ts): HTTPS with the caller's
 * certificate (shared/http-client.ts); errors come back typed.
 */
import { callInternal, type CallOptions } from '../../shared/http-client.ts';
import { HOST_AGENT_PORT } from './node-config.ts';

/** Calls `path` on the host agent at `ip` (GET without a body, POST with one, unless `method` says). */
export function hostCall<T>(ip: string, path: string, o: CallOptions = {}): Promise<T> {
  return callInternal<T>(ip, HOST_AGENT_PORT, path, o);
}
