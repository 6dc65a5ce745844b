/**
 * @module
 * How a program on this machine reaches a rack's control API: its URL (from rack.json) and its
 * bearer token (the control-token file, mode 0600, readable only by the rack's owner). The CLI,
 * Foundation's discovery and tests all read them here, from the rack's data dir.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The token file's name in `<data-dir>/rack/`. */
export const CONTROL_TOKEN_FILE = 'control-token';

export interface RackEndpoint {
  /** The control API's base URL, e.g. http://127.10.255.254:8080 */
  url: string;
  token: string;
}

export function controlTokenPath(dataDir: string): string {
  return join(dataDir, 'rack', CONTROL_TOKEN_FILE);
}

/** The control token of the rack in a data dir; undefined when it has none (yet). */
export function readControlToken(dataDir: string): string | undefined {
  const p = controlTokenPath(dataDir);
  if (!existsSync(p)) return undefined;
  const t = readFileSync(p, 'utf8').trim();
  return t === '' ? undefined : t;
}

/** Where the control API of the rack in a data dir is, with its token; undefined without a rack or token. */
export function rackEndpoint(dataDir: string): RackEndpoint | undefined {
  const rackJson = join(dataDir, 'rack', 'rack.json');
  if (!existsSync(rackJson)) return undefined;
  const cfg = JSON.parse(readFileSync(rackJson, 'utf8')) as { network: { bmcNetwork: string; controlPort: number } };
  const token = readControlToken(dataDir);
  if (token === undefined) return undefined;
  return { url: `http://${cfg.network.bmcNetwork}.255.254:${cfg.network.controlPort}`, token };
}
