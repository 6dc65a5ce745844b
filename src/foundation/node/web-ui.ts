/**
 * @module
 * Serves Foundation's web UI (the wizard and the live flow diagram, built from web/ by Vite into
 * web/dist, ADR 011) at `/`: index.html and its hashed assets, read from disk on each request so a
 * rebuild shows without a restart. A missing build answers 503 saying how to build it; nothing
 * outside the build folder is ever served.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
};

/** Where a request path lands inside dir, or null when it would leave it or is not a file. */
export function uiFile(dir: string, path: string): string | null {
  const root = resolve(dir);
  let rel: string;
  try {
    rel = decodeURIComponent(path.split('?')[0] ?? '');
  } catch {
    return null;
  }
  const file = resolve(join(root, rel === '/' || rel === '' ? 'index.html' : rel));
  if (file !== root && !file.startsWith(root + sep)) return null;
  try {
    return statSync(file).isFile() ? file : null;
  } catch {
    return null;
  }
}

export function registerWebUi(app: FastifyInstance, dir: string): void {
  const notBuilt = `Foundation's web UI is not built (no ${join(dir, 'index.html')}).\n` +
    'Build it with: npm run build:web   (scripts/setup.sh, run by scripts/demo.sh and scripts/test.sh, does it)\n' +
    'The API is at /foundation/ (description: /foundation/openapi.json).\n';
  const serve = (path: string, reply: FastifyReply): FastifyReply => {
    if (!existsSync(join(dir, 'index.html'))) return reply.status(503).type('text/plain; charset=utf-8').send(notBuilt);
    const file = uiFile(dir, path);
    if (!file) return reply.status(404).type('text/plain; charset=utf-8').send(`not found: ${path}\n`);
    // hashed asset names change with their content; index.html must always be fetched again
    const immutable = file.includes(`${sep}assets${sep}`);
    return reply
      .type(TYPES[extname(file)] ?? 'application/octet-stream')
      .header('Cache-Control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .send(readFileSync(file));
  };
  app.get('/', (_req, reply) => serve('/', reply));
  app.get('/index.html', (_req, reply) => serve('/', reply));
  app.get('/assets/*', (req, reply) => serve(req.url, reply));
}
