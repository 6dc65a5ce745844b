/**
 * @module
 * Serves a web UI built by Vite (Foundation's wizard and flow diagram at `/`, ADR 011; Prism's
 * console at `/console/`, ADR 017) through @fastify/static: index.html (never cached) and its hashed
 * assets (cached for good), read from disk on each request so a rebuild shows without a restart.
 * A single-page app's own paths (`/console/vms/…`) answer index.html. A missing build answers 503
 * saying how to build it. Nothing outside the build folder, and no dotfile, is ever served
 * (@fastify/send keeps every path inside the root).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';

export interface WebUiOptions {
  /** Where the UI is served: `/` or a path ending in `/` (default `/`). */
  base?: string;
  /** What the UI is, for the not-built answer (default "Foundation's web UI"). */
  what?: string;
  /** What else to say when it is not built (where the API is). */
  hint?: string;
  /** Whether the UI routes in the browser: every other GET under `base` answers index.html (default false). */
  spa?: boolean;
}

export function registerWebUi(app: FastifyInstance, dir: string, o: WebUiOptions = {}): void {
  const root = resolve(dir);
  const base = o.base ?? '/';
  const notBuilt = `${o.what ?? "Foundation's web UI"} is not built (no ${join(root, 'index.html')}).\n` +
    'Build it with: npm run build:web   (scripts/setup.sh, run by scripts/demo.sh and scripts/test.sh, does it)\n' +
    (o.hint ?? 'The API is at /foundation/ (description: /foundation/openapi.json).\n');
  // the routes below pick the files; the plugin sends them (types, ETag, ranges, path checks)
  void app.register(fastifyStatic, { root, serve: false, dotfiles: 'ignore', index: false, suppressWarning: true });
  const serve = (file: string, reply: FastifyReply, immutable: boolean): FastifyReply | Promise<void> => {
    if (!existsSync(join(root, 'index.html'))) return reply.status(503).type('text/plain; charset=utf-8').send(notBuilt);
    if (!existsSync(join(root, file))) {
      reply.callNotFound();
      return reply;
    }
    // hashed asset names change with their content; index.html must always be fetched again
    return reply.header('Cache-Control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache').sendFile(file, { cacheControl: false });
  };
  const index = (_req: unknown, reply: FastifyReply): FastifyReply | Promise<void> => serve('index.html', reply, false);
  app.get(base, index);
  app.get(`${base}index.html`, index);
  app.get(`${base}assets/*`, (req, reply) => {
    const rest = (req.params as { '*': string })['*'];
    // a path that climbs out is not found, as any other file outside the build (send would say 403)
    if (rest.split(/[\\/]/).includes('..')) {
      reply.callNotFound();
      return reply;
    }
    return serve(`assets/${rest}`, reply, true);
  });
  if (o.spa) app.get(`${base}*`, index);
}
