/**
 * @module
 * Foundation's composition root: builds the service from options, binds its API, and (for a lab)
 * picks up the rack of the same data dir: its BMC credentials, CA and BMC list.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { SystemClock, type Clock } from '../shared/clock.ts';
import { InputError } from '../shared/errors.ts';
import { readJson } from '../shared/json-file.ts';
import type { Profile } from './core/types.ts';
import { Foundation } from './node/foundation.ts';
import { DeploymentPki } from '../shared/identity.ts';
import { useIdentity } from '../shared/http-client.ts';
import { createFoundationApi } from './node/api.ts';
import { rackEndpoint, type RackEndpoint } from '../rack/protocol/access.ts';
import { isLoopback } from './node/api-auth.ts';
import { createLogger } from '../shared/log.ts';

export interface FoundationOptions {
  dataDir: string;
  host?: string;
  port?: number;
  bmcUser?: string;
  bmcPassword?: string;
  bmcCa?: string;
  bmcPort?: number;
  /** Rack control APIs (URL and bearer token) to list BMCs from; default: the rack of dataDir. */
  racks?: RackEndpoint[];
  ssdpPort?: number;
  profile?: Profile;
  /** A folder of bundles to add to the repository at start. */
  bundles?: string;
  timeouts?: { bootMs: number; installSilenceMs: number; cvmMs: number };
  /** The built web UI served at `/` (default: this checkout's web/dist, built by npm run build:web). */
  uiDir?: string;
  clock?: Clock;
  log?: (m: string) => void;
  /**
   * The public API's token when Foundation listens beyond loopback (docs/foundation.md, "Who may
   * call what"); absent = a new random one, printed once through `print`. Ignored on loopback.
   */
  apiToken?: string;
  /** Where the token and its login URL are printed, once (default: stderr). */
  print?: (text: string) => void;
}

export interface RunningFoundation {
  foundation: Foundation;
  app: FastifyInstance;
  url: string;
  /** The public API's token; null on loopback (open). */
  apiToken: string | null;
  close(): Promise<void>;
}

/** Where `npm run build:web` writes the web UI (ADR 011). */
export const WEB_UI_DIR = fileURLToPath(new URL('../../web/dist/', import.meta.url));

interface RackJson {
  network: { bmcNetwork: string; bmcPort: number; controlPort: number; ssdpPort: number };
  bmc: { userName: string; password: string };
}

export async function startFoundation(o: FoundationOptions): Promise<RunningFoundation> {
  const host = o.host ?? '127.0.0.1';
  const port = o.port ?? 8000;
  const rack = readJson<RackJson>(join(o.dataDir, 'rack', 'rack.json'));
  const caPath = o.bmcCa ?? (rack ? join(o.dataDir, 'rack', 'ca', 'ca.crt') : undefined);
  const user = o.bmcUser ?? rack?.bmc.userName;
  const password = o.bmcPassword ?? rack?.bmc.password;
  if (!user || !password) throw new InputError('bmc-user', 'no BMC credentials: give --bmc-user and --bmc-password (or run a rack in the same data dir)');
  const url = `http://${host}:${port}`;
  // the deployment's CA: nodes imaged here trust it, and Foundation calls them as its operator
  const pki = await DeploymentPki.open(o.dataDir);
  useIdentity(pki.operator);
  // structured logs on stderr (JSON lines, no secret in them) unless the caller takes the messages
  const logger = o.log ? undefined : createLogger({ name: 'foundation' });
  const log = o.log ?? ((m: string): void => logger?.info(m));
  const foundation = new Foundation({
    pki,
    dataDir: o.dataDir,
    clock: o.clock ?? new SystemClock(),
    url,
    creds: caPath && existsSync(caPath) ? { user, password, ca: readFileSync(caPath, 'utf8') } : { user, password },
    bmcPort: o.bmcPort ?? rack?.network.bmcPort ?? 443,
    racks: o.racks ?? [rackEndpoint(o.dataDir)].filter((r) => r !== undefined),
    ssdpPort: o.ssdpPort ?? rack?.network.ssdpPort ?? 1900,
    profile: o.profile ?? 'lab',
    log,
    ...(o.timeouts ? { timeouts: o.timeouts } : {}),
  });
  if (o.bundles) {
    for (const f of readdirSync(o.bundles).filter((x) => x.endsWith('.tar.gz'))) {
      if (!foundation.bundles.list().includes(f)) await foundation.bundles.add(f, readFileSync(join(o.bundles, f)));
    }
  }
  const apiToken = isLoopback(host) ? null : (o.apiToken ?? randomBytes(24).toString('base64url'));
  const app = createFoundationApi(foundation, { uiDir: o.uiDir ?? WEB_UI_DIR, log, apiToken, ...(logger ? { logger } : {}) });
  await app.listen({ host, port });
  if (apiToken !== null && o.apiToken === undefined) {
    // shown this once, never logged
    (o.print ?? ((t: string): void => void process.stderr.write(t)))(
      `Foundation listens on ${host}, beyond loopback: its API takes this token (printed once)\n` +
      `  API:    Authorization: Bearer ${apiToken}\n` +
      `  web UI: ${host === '0.0.0.0' || host === '::' ? `http://<this machine's address>:${port}` : url}/login?token=${apiToken}\n`,
    );
  }
  return {
    foundation, app, url, apiToken,
    close: async () => {
      await app.close();
      await foundation.close();
    },
  };
}
