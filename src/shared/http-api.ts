/**
 * @module
 * One way to serve the platform's internal HTTP APIs (the CVM's, the host agent's): Fastify over
 * TLS that requires a client certificate from the trusted CAs (identity.ts), one authorization hook
 * (each route names the roles it admits; the default is every authenticated role), one error
 * mapping into `{ error: { code, message, field? } }`, body limits, and JSON bodies that may be
 * empty (clients send `Content-Type: application/json` with no body on DELETE and OPTIONS).
 *
 * Without `tls` the API is plain HTTP for a Unix socket only its node reaches (the host↔CVM link),
 * and every caller is `localPeer`.
 *
 * With `bearer` (the rack's control API: plain HTTP on loopback), a caller proves itself with
 * `Authorization: Bearer <token>` instead (compared in constant time with the current token, so a
 * rotated one works at once); a caller without it is answered 401 with `WWW-Authenticate: Bearer`
 * from the same hook, before any body is read (and the connection is closed, since the body was not).
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { Transform } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { AuthError, ConvergeError, ForbiddenError, InputError, NotFoundError, PayloadTooLargeError, RequestTimeoutError, errorMessage, isConvergeError } from './errors.ts';
import { httpStatusOf } from './http-status.ts';
import { peerOf, serverTls, type Anchors, type Identity, type Peer, type Role } from './identity.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling (set before any route runs; never null once a handler runs). */
    peer: Peer | null;
  }
  interface FastifyContextConfig {
    /** The roles this route admits (default: every authenticated role). */
    roles?: readonly Role[];
    /**
     * The body may take as long as it keeps arriving (an upload), each chunk within the API's
     * `longBodyIdleMs`; only on an app bounded by boundRequestArrival (an API made with that
     * option, Prism); otherwise the request timeout holds.
     */
    longBody?: boolean;
  }
}

export { httpStatusOf };

export interface ErrorBody {
  error: { code: string; message: string; field?: string; allowed?: string[] };
}

export function errorBody(e: unknown): ErrorBody {
  const err: ErrorBody['error'] = { code: isConvergeError(e) ? e.code : 'CVG_ERR_INTERNAL', message: errorMessage(e) };
  if (e instanceof InputError) {
    err.field = e.field;
    if (e.allowed) err.allowed = [...e.allowed];
  }
  return { error: err };
}

export interface InternalApiOptions {
  /** Serve TLS with this identity, admitting clients whose certificates chain to `anchors()`. */
  tls?: { identity: Pick<Identity, 'cert' | 'key'>; anchors: Anchors };
  /** The caller of a plain-HTTP (host-link) API. */
  localPeer?: Peer;
  /**
   * Admit callers that send `Authorization: Bearer <token()>` as `peer` (a certificate, with `tls`,
   * still admits its own peer). `realm` goes into the 401's WWW-Authenticate; `hint` into its message.
   */
  bearer?: { token: () => string; peer: Peer; realm?: string; hint?: string };
  /** Whether `/a/` and `//a` are `/a` (default: no, such a path is not found). */
  lenientSlashes?: boolean;
  /** Answers what Node's HTTP parser refuses (default: Fastify's 400). */
  clientErrorHandler?: (err: Error & { code?: string }, socket: Socket) => void;
  /** Largest request body, bytes (default 1 MiB); a route may set its own. */
  bodyLimit?: number;
  /** How long a request (headers and body) may take to arrive (default 30 s). */
  requestTimeoutMs?: number;
  /**
   * Routes whose config says `longBody: true` may take as long as their body keeps arriving, with
   * at most this long between two chunks. The other routes keep `requestTimeoutMs`, then bounded
   * by a hook instead of by Node's server (whose bound is one for every request).
   */
  longBodyIdleMs?: number;
  log?: (m: string) => void;
}

/** Fastify's own 4xx (malformed JSON, body too large, bad content type) as the domain error it is. */
function fastifyError(err: { statusCode?: number; code?: string; message?: string }, bodyLimit: number): ConvergeError | undefined {
  if (typeof err.statusCode !== 'number' || err.statusCode >= 500) return undefined;
  if (err.statusCode === 413) return new PayloadTooLargeError('body', bodyLimit, `is larger than this endpoint accepts (${bodyLimit} bytes); nothing was changed`);
  if (err.statusCode === 415) return new InputError('Content-Type', err.message ?? 'unsupported');
  return new InputError('body', err.message ?? 'invalid request');
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Whether `Authorization` carries the bearer token (a constant-time comparison of digests). */
function bearerMatches(authorization: string | undefined, token: string): boolean {
  const m = /^Bearer +(\S+) *$/i.exec(authorization ?? '');
  return !!m?.[1] && token !== '' && timingSafeEqual(digest(m[1]), digest(token));
}

/** Whether a request announces a body (Content-Length above 0, or chunked). */
function announcesBody(req: FastifyRequest): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

/**
 * JSON as Fastify parses it (prototype poisoning refused), except that an empty body is no body:
 * clients send `Content-Type: application/json` with no body on DELETE, OPTIONS and bodiless POSTs.
 * Every HTTP API of Converge (the internal ones, Foundation, Prism) takes JSON this way.
 */
export function acceptEmptyJson(app: FastifyInstance, bodyLimit?: number): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string', ...(bodyLimit === undefined ? {} : { bodyLimit }) }, (req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') done(null, undefined);
    else void parseJson(req, text, done);
  });
}

/** A body stream that fails (and so ends the request) when no chunk arrives for `idleMs`. */
export function idleGuard(payload: NodeJS.ReadableStream, idleMs: number, destroy: (e: Error) => void): Transform {
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const e = new RequestTimeoutError('body', `no data for ${Math.round(idleMs / 1000)} s; the upload was given up`);
      out.destroy(e);
      destroy(e);
    }, idleMs);
    timer.unref();
  };
  const out = new Transform({
    transform(chunk: Buffer, _enc, done) {
      arm();
      done(null, chunk);
    },
    flush(done) {
      clearTimeout(timer);
      done();
    },
    destroy(err, cb) {
      clearTimeout(timer);
      cb(err);
    },
  });
  arm();
  payload.on('error', (e: Error) => out.destroy(e));
  payload.pipe(out);
  return out;
}

export interface RequestDeadlines {
  /** How long a request may take to arrive once its headers are in (0: no bound). */
  requestTimeoutMs: number;
  /** On a `longBody` route: the longest wait for the next chunk of the body. */
  longBodyIdleMs: number;
  /** What ends a request still arriving at its deadline (default: its connection is destroyed). */
  onExpired?: (req: FastifyRequest, reply: FastifyReply) => void;
}

/**
 * The request deadline per route, for an app whose Node server has none (`requestTimeout: 0`; Node's
 * bound is one for every request): a request still arriving `requestTimeoutMs` after its headers
 * is ended by `onExpired`, except on routes whose config says `longBody: true` (an upload), whose
 * body may take as long as it keeps arriving, with at most `longBodyIdleMs` between two chunks
 * (idleGuard: then its connection is destroyed).
 */
export function boundRequestArrival(app: FastifyInstance, o: RequestDeadlines): void {
  const expire = o.onExpired ?? ((req: FastifyRequest): void => {
    req.raw.socket.destroy();
  });
  app.addHook('onRequest', (req, reply, done) => {
    if (req.routeOptions.config.longBody || o.requestTimeoutMs <= 0) return done();
    // what Node's requestTimeout does: a request still arriving after the bound loses its connection
    const t = setTimeout(() => {
      // (a request made by inject() has no `complete`, and no socket to end)
      if (req.raw.complete === false) expire(req, reply);
    }, o.requestTimeoutMs);
    t.unref();
    req.raw.once('close', () => clearTimeout(t));
    done();
  });
  app.addHook('preParsing', (req, _reply, payload, done) => {
    if (!req.routeOptions.config.longBody) return done(null, payload);
    done(null, idleGuard(payload, o.longBodyIdleMs, () => req.raw.socket.destroy()));
  });
}

export function createInternalApi(o: InternalApiOptions): FastifyInstance {
  let anchors = o.tls?.anchors;
  const bearer = o.bearer;
  const requestTimeoutMs = o.requestTimeoutMs ?? 30_000;
  const longBodies = o.longBodyIdleMs !== undefined;
  const app = Fastify({
    logger: false,
    bodyLimit: o.bodyLimit ?? 1 << 20,
    // a client that sends its request slowly cannot hold a connection (a long answer, e.g. cluster
    // create, may take minutes: the bound is on the request's arrival only); with long bodies the
    // hooks below keep it per route
    requestTimeout: longBodies ? 0 : requestTimeoutMs,
    keepAliveTimeout: 10_000,
    ...(o.tls ? { https: serverTls(o.tls.identity, o.tls.anchors) } : {}),
    ...(o.clientErrorHandler ? { clientErrorHandler: o.clientErrorHandler } : {}),
    ...(o.lenientSlashes ? { routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true } } : {}),
    // a URL Fastify cannot decode (a malformed percent-encoding) is bad input, in this API's shape
    frameworkErrors: (err, _req, reply) => {
      void (reply as FastifyReply).status(400).send(errorBody(new InputError('url', err.message)));
    },
  });
  acceptEmptyJson(app);
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.decorateRequest('peer', null);
  app.addHook('onRequest', (req: FastifyRequest, reply, done) => {
    const sock = req.raw.socket as Partial<TLSSocket>;
    req.peer = anchors && typeof sock.getPeerCertificate === 'function' ? peerOf(sock as TLSSocket, anchors) : o.tls || bearer ? null : (o.localPeer ?? null);
    if (!req.peer && bearer && bearerMatches(req.headers.authorization, bearer.token())) req.peer = bearer.peer;
    const roles = req.routeOptions.config.roles;
    if (!req.peer && bearer) {
      void reply.header('WWW-Authenticate', bearer.realm ? `Bearer realm="${bearer.realm}"` : 'Bearer');
      done(new AuthError(bearer.hint ?? 'this API needs Authorization: Bearer <token>'));
    } else if (!req.peer) done(new AuthError('a client certificate of this deployment or cluster is required'));
    else if (roles && !roles.includes(req.peer.role)) done(new ForbiddenError(`${req.method} ${req.routeOptions.url ?? req.url} is not open to ${req.peer.role} certificates (it takes ${roles.join(', ')})`));
    else done();
  });
  if (longBodies) boundRequestArrival(app, { requestTimeoutMs, longBodyIdleMs: o.longBodyIdleMs ?? 60_000 });
  // an answer before the request's body was read to its end (refused from its headers): the
  // connection cannot carry another request, and closing it is how the body is left unread
  app.addHook('onSend', (req, reply, payload, done) => {
    if (announcesBody(req) && !req.raw.complete) void reply.header('Connection', 'close');
    done(null, payload);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send(errorBody(new NotFoundError('route', `${req.method} ${req.url}`)));
  });
  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const e = err instanceof ConvergeError ? err : (fastifyError(err as { statusCode?: number }, req.routeOptions.bodyLimit ?? o.bodyLimit ?? 1 << 20) ?? err);
    const status = httpStatusOf(e);
    if (status >= 500) o.log?.(`${req.method} ${req.url}: ${errorMessage(err)}`);
    void reply.status(status).send(errorBody(e));
  });
  /** Trusts new anchors from now on (a cluster created or destroyed): new connections see them. */
  app.decorate('setAnchors', (next: Anchors, identity?: Pick<Identity, 'cert' | 'key'>) => {
    if (!o.tls) return;
    anchors = next;
    const server = app.server as unknown as { setSecureContext?: (opts: object) => void };
    server.setSecureContext?.(serverTls(identity ?? o.tls.identity, next));
  });
  return app;
}

/** Changes the trust of an API made by createInternalApi. */
export function setAnchors(app: FastifyInstance, anchors: Anchors, identity?: Pick<Identity, 'cert' | 'key'>): void {
  (app as unknown as { setAnchors: (a: Anchors, i?: Pick<Identity, 'cert' | 'key'>) => void }).setAnchors(anchors, identity);
}
