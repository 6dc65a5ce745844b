/**
 * @module
 * Who may call Foundation's API. On a loopback address (the default, 127.0.0.1) the public API is
 * open, as the reference's is on its isolated network. On any other address it takes a token,
 * generated at start and printed once (main.ts), sent as `Authorization: Bearer <token>` or, for
 * the web UI, in the cookie that `GET /login?token=<token>` sets (HttpOnly, SameSite=Strict) before
 * sending the browser on to `/`. A request the cookie authenticates that changes something must
 * come from Foundation's own pages (its Origin, when given, is Foundation's).
 *
 * What the nodes call is never under this token: they prove themselves with their own credentials
 * (node/credentials.ts). The web UI's files are open: they hold no data.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AuthError, ForbiddenError } from '../../shared/errors.ts';
import { bearerOf } from './credentials.ts';

export const API_COOKIE = 'converge_foundation';

/** Routes that do not take the API token (their patterns as Fastify knows them). */
const OPEN_ROUTES = new Set([
  '/login', '/', '/index.html', '/assets/*',
  '/foundation/media/:session/:serial/:token/installer.tar',
  '/foundation/media/:session/:serial/:token/config.json',
  '/foundation/media/:session/:serial/:token/bundle.tar.gz',
  '/foundation/installer/:session/:serial/report',
  '/foundation/cvm_announce',
]);

/** Whether an address Foundation listens on is loopback (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === '::1' || host === '[::1]' || host === 'localhost' || host === '::ffff:127.0.0.1';
}

function cookieOf(header: string | undefined, name: string): string {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return '';
}

/**
 * Requires the API token (when there is one) on every route but the open ones, and adds
 * `GET /login?token=` (always: without a token it just sends the browser to `/`).
 */
export function registerApiAuth(app: FastifyInstance, token: string | null): void {
  const want = token === null ? null : createHash('sha256').update(token).digest();
  const matches = (given: string): boolean => want !== null && given !== '' && timingSafeEqual(createHash('sha256').update(given).digest(), want);
  app.addHook('onRequest', (req: FastifyRequest, _reply, done) => {
    if (want === null || OPEN_ROUTES.has(req.routeOptions.url ?? '')) {
      done();
      return;
    }
    if (matches(bearerOf(req.headers.authorization))) {
      done();
      return;
    }
    if (matches(cookieOf(req.headers.cookie, API_COOKIE))) {
      const origin = req.headers.origin;
      if (req.method !== 'GET' && req.method !== 'HEAD' && origin !== undefined && origin !== `${req.protocol}://${req.host}`) {
        done(new ForbiddenError(`a request from ${origin.slice(0, 100)} may not use Foundation's cookie`));
        return;
      }
      done();
      return;
    }
    done(new AuthError('Foundation listens beyond loopback: send its API token (Authorization: Bearer <token>), or open the login URL it printed at start'));
  });
  app.get('/login', (req, reply) => {
    const given = (req.query as Record<string, unknown>)['token'];
    if (want === null) return reply.redirect('/', 303);
    if (typeof given !== 'string' || !matches(given)) throw new AuthError('not Foundation\'s API token (it prints it once at start)');
    return reply
      .header('Set-Cookie', `${API_COOKIE}=${given}; HttpOnly; SameSite=Strict; Path=/`)
      .header('Cache-Control', 'no-store')
      .redirect('/', 303);
  });
}
