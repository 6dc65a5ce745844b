/**
 * @module
 * Prism's HTTPS API and web page (Fastify). Every Prism serves on its CVM's address; the leader
 * also on the cluster virtual IP. A Prism that does not lead redirects (307) to the leader.
 *
 *   GET  /console/                                   the cluster summary page
 *   POST /api/nutanix/v3/clusters/list, GET /api/nutanix/v3/clusters/{uuid}
 *   POST /api/nutanix/v3/hosts/list,    GET /api/nutanix/v3/hosts/{uuid}
 *   GET  /api/nutanix/v3/tasks/{uuid}
 *   GET  /api/nutanix/v2.0/{storage_pools,storage_containers,virtual_disks,disks}[/{id}]
 *   POST /api/nutanix/v2.0/storage_containers        { name, replication_factor } → { value: true }
 *   POST /api/nutanix/v2.0/virtual_disks             { name, disk_capacity_in_bytes, storage_container_uuid } → { task_uuid }
 *   DELETE /api/nutanix/v2.0/virtual_disks/{uuid}    → { task_uuid }
 *   POST /PrismGateway/services/rest/v1/utils/change_default_system_password   { oldPassword, newPassword }
 *   GET  /api/converge/v1/prism                      who leads (no authentication)
 *   POST /api/converge/v1/logout
 *   OPTIONS /api/{namespace}/unversioned/info        a v4 SDK's version question: 404, no v4 here (docs/prism.md)
 *
 * Every request, in this order: a Prism that does not lead redirects it; then authentication — HTTP
 * Basic, or the session cookie a successful Basic login sets; wrong passwords are rate-limited per
 * client address and user (429 with Retry-After) — before its body is read or its route looked up;
 * then its body: JSON only (415 otherwise), at most BODY_LIMIT bytes (413), an empty one is none;
 * then the route (404). Errors are translated once, here (`answer`): v2.0 paths answer the v2.0
 * error body, every other path the v3 one.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { randomBytes } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import { AuthError, ConvergeError, InputError, NotFoundError, PreconditionError, TimeoutError, UnavailableError, errorMessage, isConvergeError } from '../../shared/errors.ts';
import { cvmCall, type CallOptions } from '../../cvm/protocol/client.ts';
import type { Vdisk } from '../../cvm/protocol/storage.ts';
import { LoginThrottle, parseBasic } from '../core/auth.ts';
import type { SharedSessions } from './sessions.ts';
import { CLUSTER_ATTRIBUTES, HOST_ATTRIBUTES, clusterAttrs, clusterEntity, hostAttrs, hostEntity, listOf, parseListRequest, taskOf, v3Error } from '../core/v3.ts';
import { disks, storageContainers, storagePools, v2Error, v2List, virtualDisks } from '../core/v2.ts';
import { summaryPage } from '../core/page.ts';
import { PRISM_PORT } from '../protocol/prism.ts';
import type { Accounts, Tasks } from './accounts.ts';
import type { SnapshotSource } from './source.ts';
import type { Leadership } from '../../shared/leadership.ts';
import { httpStatusOf } from '../../shared/http-status.ts';
import { PayloadTooLargeError, RequestTimeoutError, TooManyAttemptsError, UnsupportedMediaTypeError } from '../../shared/errors.ts';
import { acceptEmptyJson } from '../../shared/http-api.ts';

export const SESSION_COOKIE = 'NTNX_IGW_SESSION';

class TooManyAttempts extends TooManyAttemptsError {
  constructor(retryAfterS: number) {
    super(retryAfterS, `too many failed logins; try again in ${retryAfterS} s`);
  }
}

/** What the API needs, as ports: main.ts passes the real ones, tests fakes (node/fakes.ts). */
export interface PrismDeps {
  cvmIp: string;
  vip: string | null;
  source: Pick<SnapshotSource, 'get' | 'invalidate'>;
  accounts: Pick<Accounts, 'check' | 'changePassword'>;
  tasks: Pick<Tasks, 'get' | 'start'>;
  /** Login sessions, shared with the next leader (node/sessions.ts). */
  sessions: Pick<SharedSessions, 'use' | 'open' | 'close' | 'closeAllOf'>;
  leadership: Pick<Leadership, 'isLeader' | 'leader'>;
  sessionTtlS: number;
  log: (m: string) => void;
  tls: { key: string; cert: string };
  /** Calls this CVM's API (default: cvmCall to cvmIp). */
  cvm?: CvmCaller;
  /** How long a client may take (default CONNECTION_LIMITS; tests shorten them). */
  limits?: ConnectionLimits;
}

/** A call of the local CVM's API (cvm/protocol/client.ts). */
export type CvmCaller = <T>(path: string, o?: CallOptions) => Promise<T>;

/** A request body larger than Prism takes. */
class BodyTooLarge extends PayloadTooLargeError {
  constructor(limit: number) {
    super('body', limit, `is larger than ${limit} bytes`);
  }
}

/** A request whose body did not arrive in time (the client's slowness, not Prism's). */
class RequestTooSlow extends RequestTimeoutError {
  constructor() {
    super('request', 'was not received in time; the connection is closed');
  }
}

/** A request body of a type Prism does not take. */
class UnsupportedMediaType extends UnsupportedMediaTypeError {
  constructor(type: string) {
    super('Content-Type', `must be application/json${type ? ` (got ${JSON.stringify(type.slice(0, 100))})` : ' when a body is sent'}`);
  }
}

/** The largest request body, in bytes: every body Prism takes is a small JSON object. */
export const BODY_LIMIT = 1 << 20;
/** Longest path parameter (a UUID is 36 characters); a longer one is refused. */
const MAX_PARAM_LENGTH = 100;

/**
 * How long a client may hold a connection over each part of a request, so that a slow or silent
 * client (slow-loris) cannot keep Prism's connections — and the VIP — busy. Node checks the header
 * and request deadlines every `checkEveryMs`, so one may run over by up to that much. There is no
 * cap on requests per connection: a connection busy with requests is a client being served, each
 * request is bounded by these deadlines, and Node would answer a pipelining client's requests past
 * the cap with a bare 503.
 */
export interface ConnectionLimits {
  /** To finish the TLS handshake after connecting. */
  tlsHandshakeMs: number;
  /** To send a request's headers, from its first byte. */
  headersMs: number;
  /** To send a whole request, headers and body (a 1 MiB body must come at 35 KB/s or faster). */
  requestMs: number;
  /** For Prism to answer once a request is routed; past it the answer is a 503 and the work is told to stop. */
  handlerMs: number;
  /** An idle kept-alive connection is closed after this. */
  keepAliveMs: number;
  /** A connection with no traffic either way is destroyed after this. */
  idleSocketMs: number;
  /** How often the header and request deadlines are checked. */
  checkEveryMs: number;
}

export const CONNECTION_LIMITS: ConnectionLimits = {
  tlsHandshakeMs: 10_000, headersMs: 10_000, requestMs: 30_000, handlerMs: 30_000,
  keepAliveMs: 10_000, idleSocketMs: 60_000, checkEveryMs: 1_000,
};

/** The options that carry the limits into an HTTPS server (the API's own, and the virtual IP's). */
const httpsOptions = (tls: PrismDeps['tls'], l: ConnectionLimits): HttpsServerOptions => ({
  ...tls, handshakeTimeout: l.tlsHandshakeMs, headersTimeout: l.headersMs, requestTimeout: l.requestMs, keepAliveTimeout: l.keepAliveMs, connectionsCheckingInterval: l.checkEveryMs,
});

/**
 * What a client whose request cannot be read at all is told before its connection ends (Node's
 * `clientError`: a request not received in time, headers too large, not HTTP), in Prism's shape.
 */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, reason, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'CVG_ERR_TIMEOUT', 'request: not received in time; the connection is closed']
      : err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'CVG_ERR_INPUT', 'headers: larger than Prism takes']
        : [400, 'CVG_ERR_INPUT', 'request: not valid HTTP'];
  const body = JSON.stringify(v3Error(status, 'prism', message, reason));
  if (socket.writable) socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  socket.destroy();
}

/** The server of the cluster's virtual IP (the leader's second address): the same app, the same limits. */
export function createVipServer(app: FastifyInstance, tls: PrismDeps['tls'], l: ConnectionLimits = CONNECTION_LIMITS): HttpsServer {
  const s = createHttpsServer(httpsOptions(tls, l), (req, res) => app.routing(req, res));
  s.setTimeout(l.idleSocketMs);
  s.on('clientError', answerClientError);
  return s;
}

/** Prism's statuses are Converge's (shared/http-status.ts), but where the reference's v3 differs: a stale spec_version is a 409, a slow backend a 503. */
function statusOf(e: unknown): number {
  if (e instanceof PreconditionError) return 409;
  if (e instanceof TimeoutError) return 503;
  return httpStatusOf(e);
}

/** Fastify's own errors (reading and parsing a request, routing it, timing it) as the domain errors they stand for. */
function domainError(err: unknown, req: FastifyRequest): unknown {
  if (err instanceof ConvergeError) return err;
  const fe = err as { code?: unknown; statusCode?: unknown; message?: unknown };
  const contentType = req.headers['content-type'];
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new BodyTooLarge(BODY_LIMIT);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new UnsupportedMediaType(contentType ?? '');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new InputError('body', 'is not valid JSON (or holds a __proto__ or constructor.prototype key)');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new InputError('Content-Length', 'does not match the body sent');
    case 'FST_ERR_BAD_URL':
      return new InputError('url', 'is not a valid URL (a malformed %-escape?)');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new InputError('url', `has a path segment longer than ${MAX_PARAM_LENGTH} characters`);
    case 'FST_ERR_HANDLER_TIMEOUT':
      return req.raw.complete === false ? new RequestTooSlow() : new TimeoutError('Prism did not answer in time; try again');
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return new InputError('request', typeof fe.message === 'string' ? fe.message : 'is not valid');
  return err;
}

const kindOf = (url: string): string => /\/v3\/([a-z_]+?)s?(\/|$)/.exec(url)?.[1] ?? 'prism';

declare module 'fastify' {
  interface FastifyRequest {
    user?: string;
  }
}

const SESSION_TOKEN = new RegExp(`(?:^|;\\s*)${SESSION_COOKIE}=([A-Za-z0-9_-]+)`);
/** The session token of a request's cookie, if it sends one. */
const sessionTokenOf = (req: FastifyRequest): string | undefined => SESSION_TOKEN.exec(req.headers.cookie ?? '')?.[1];

/** The paths anyone may call: who leads. */
const OPEN_ROUTES = new Set(['/api/converge/v1/prism']);

export function createPrismApi(d: PrismDeps): FastifyInstance {
  const cvm: CvmCaller = d.cvm ?? (<T>(path: string, o?: CallOptions): Promise<T> => cvmCall<T>(d.cvmIp, path, o));
  const l = d.limits ?? CONNECTION_LIMITS;
  const app = Fastify({
    logger: false, https: httpsOptions(d.tls, l), bodyLimit: BODY_LIMIT,
    requestTimeout: l.requestMs, keepAliveTimeout: l.keepAliveMs, connectionTimeout: l.idleSocketMs,
    handlerTimeout: l.handlerMs, clientErrorHandler: answerClientError,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // a URL the router cannot take (a bad %-escape, an overlong segment) is answered like any bad request: after authentication
    frameworkErrors: (err, req, reply) => {
      authenticate(req, reply).then(() => answer(err, req, reply), (e: unknown) => answer(e, req, reply));
    },
  });
  const throttle = new LoginThrottle(Date.now);

  /** The one translation of errors to HTTP: v2.0 paths answer the v2.0 error body, every other path the v3 one. */
  const answer = (err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const e = domainError(err, req);
    const status = statusOf(e);
    if (status >= 500) d.log(`${req.method} ${req.url}: ${errorMessage(e)}`);
    if (e instanceof TooManyAttempts) void reply.header('Retry-After', String(e.retryAfterS));
    if (e instanceof AuthError && !(e instanceof TooManyAttempts)) void reply.header('WWW-Authenticate', 'Basic realm="Prism"');
    const reason = isConvergeError(e) ? e.code : 'CVG_ERR_INTERNAL';
    const details = e instanceof InputError ? { [e.field]: e.reason } : {};
    if (req.url.startsWith('/api/nutanix/v2.0/')) return reply.status(status).send(v2Error(status, errorMessage(e), e instanceof InputError ? e.field : undefined));
    return reply.status(status).send(v3Error(status, kindOf(req.url), errorMessage(e), reason, details));
  };
  app.setErrorHandler(answer);

  // JSON is the only body Prism takes, and an empty one is no body (the v4 SDKs send Content-Type:
  // application/json without a body on OPTIONS and DELETE); the body limit holds as before
  app.removeAllContentTypeParsers();
  acceptEmptyJson(app, BODY_LIMIT);

  // authentication: the session cookie, or Basic credentials (which open a session)
  const authenticate = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const token = sessionTokenOf(req);
    const s = token ? await d.sessions.use(token) : undefined;
    if (s) {
      req.user = s.user;
      return;
    }
    const cred = parseBasic(req.headers.authorization);
    if (!cred) throw new AuthError('authentication required: HTTP Basic credentials or a session cookie');
    const key = `${req.ip}|${cred.user}`;
    const wait = throttle.retryAfterMs(key);
    if (wait > 0) throw new TooManyAttempts(Math.ceil(wait / 1000));
    if (!(await d.accounts.check(cred.user, cred.password))) {
      throttle.failure(key);
      d.log(`failed login for ${JSON.stringify(cred.user.slice(0, 64))} from ${req.ip}`);
      throw new AuthError('wrong user name or password');
    }
    throttle.success(key);
    req.user = cred.user;
    const opened = d.sessions.open(cred.user);
    void reply.header('Set-Cookie', `${SESSION_COOKIE}=${opened.token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${d.sessionTtlS}`);
  };

  // on every request, before its body is read and whether or not a route matches: a Prism that does
  // not lead sends it to the one that does; then who sends it must be known
  app.addHook('onRequest', async (req, reply) => {
    if (OPEN_ROUTES.has(req.routeOptions.url ?? '')) return;
    if (!d.leadership.isLeader) {
      const onVip = d.vip !== null && req.socket.localAddress?.replace(/^::ffff:/, '') === d.vip;
      const leader = d.leadership.leader;
      if (!leader || leader === d.cvmIp || onVip) throw new UnavailableError('no Prism leader is elected yet; try again in a few seconds');
      return reply.redirect(`https://${d.vip ?? leader}:${PRISM_PORT}${req.url}`, 307);
    }
    await authenticate(req, reply);
  });

  const body = (req: FastifyRequest): Record<string, unknown> => {
    const b = req.body ?? {};
    if (typeof b !== 'object' || Array.isArray(b)) throw new InputError('body', 'must be a JSON object');
    return b as Record<string, unknown>;
  };
  const param = (req: FastifyRequest, name: string): string => (req.params as Record<string, string>)[name] ?? '';

  app.get('/api/converge/v1/prism', () => ({ cvmIp: d.cvmIp, vip: d.vip, leader: d.leadership.leader, isLeader: d.leadership.isLeader }));
  app.post('/api/converge/v1/logout', async (req, reply) => {
    const token = sessionTokenOf(req);
    // the cookie and this Prism's session end whatever the store says; a stored copy left behind expires with its lease
    if (token) await d.sessions.close(token).catch((e: unknown) => d.log(`logout: the store did not delete the session: ${errorMessage(e)}`));
    return reply.header('Set-Cookie', `${SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0`).send({ value: true });
  });
  app.post('/PrismGateway/services/rest/v1/utils/change_default_system_password', async (req) => {
    const b = body(req);
    const user = req.user ?? '';
    if (typeof b['oldPassword'] !== 'string' || !(await d.accounts.check(user, b['oldPassword']))) throw new InputError('oldPassword', 'is not the current password');
    await d.accounts.changePassword(user, b['oldPassword'], b['newPassword']);
    await d.sessions.closeAllOf(user).catch((e: unknown) => {
      throw new UnavailableError(`the password is changed, but the configuration store did not end every session of ${user} (${errorMessage(e)}); change it again to end them`);
    });
    d.log(`password of ${user} changed`);
    return { value: true };
  });

  // ---- the web page ----
  app.get('/', (_req, reply) => reply.redirect('/console/', 302));
  app.get('/console/', async (req, reply) => reply.type('text/html; charset=utf-8').header('Cache-Control', 'no-store').send(summaryPage(await d.source.get(), req.user ?? '')));

  // ---- v4 version negotiation (docs/prism.md): this Prism serves no v4 namespace; a v4 SDK then uses its own default version ----
  app.options('/api/:namespace/unversioned/info', (req) => {
    throw new NotFoundError('v4 API', `${param(req, 'namespace')} (this Prism serves /api/nutanix/v3 and /api/nutanix/v2.0)`);
  });

  // ---- v3 ----
  const V3 = '/api/nutanix/v3';
  app.post(`${V3}/clusters/list`, async (req) => {
    const r = parseListRequest(req.body, 'cluster', CLUSTER_ATTRIBUTES);
    return { api_version: '3.1', ...listOf([clusterEntity(await d.source.get())], r, clusterAttrs) };
  });
  app.get(`${V3}/clusters/:uuid`, async (req) => {
    const s = await d.source.get();
    if (param(req, 'uuid') !== s.cluster.clusterId) throw new NotFoundError('cluster', param(req, 'uuid'));
    return clusterEntity(s);
  });
  app.post(`${V3}/hosts/list`, async (req) => {
    const r = parseListRequest(req.body, 'host', HOST_ATTRIBUTES);
    const s = await d.source.get();
    return { api_version: '3.1', ...listOf(s.members.map((m) => hostEntity(m, s)), r, hostAttrs) };
  });
  app.get(`${V3}/hosts/:uuid`, async (req) => {
    const s = await d.source.get();
    const m = s.members.find((x) => x.hostUuid === param(req, 'uuid'));
    if (!m) throw new NotFoundError('host', param(req, 'uuid'));
    return hostEntity(m, s);
  });
  app.get(`${V3}/tasks/:uuid`, async (req) => taskOf(await d.tasks.get(param(req, 'uuid')), (await d.source.get()).cluster.clusterId));

  // ---- v2.0 storage ----
  const V2 = '/api/nutanix/v2.0';
  const one = (what: string, xs: Record<string, unknown>[], key: string, id: string): Record<string, unknown> => {
    const x = xs.find((e) => e[key] === id || e['id'] === id || e['name'] === id);
    if (!x) throw new NotFoundError(what, id);
    return x;
  };
  app.get(`${V2}/storage_pools`, async (req) => v2List(storagePools(await d.source.get()), req.query as Record<string, unknown>));
  app.get(`${V2}/storage_pools/:id`, async (req) => one('storage pool', storagePools(await d.source.get()), 'storagepool_uuid', param(req, 'id')));
  app.get(`${V2}/storage_containers`, async (req) => v2List(storageContainers(await d.source.get()), req.query as Record<string, unknown>));
  app.get(`${V2}/storage_containers/:id`, async (req) => one('storage container', storageContainers(await d.source.get()), 'storage_container_uuid', param(req, 'id')));
  app.post(`${V2}/storage_containers`, async (req) => {
    const b = body(req);
    try {
      await cvm('/storage/containers', { body: { name: b['name'], replicationFactor: b['replication_factor'] ?? (await d.source.get()).cluster.redundancyFactor } });
    } catch (e) {
      throw e instanceof InputError && e.field === 'replicationFactor' ? new InputError('replication_factor', e.reason) : e;
    }
    d.source.invalidate();
    return { value: true };
  });
  app.get(`${V2}/virtual_disks`, async (req) => v2List(virtualDisks(await d.source.get()), req.query as Record<string, unknown>));
  app.get(`${V2}/virtual_disks/:id`, async (req) => one('virtual disk', virtualDisks(await d.source.get()), 'uuid', param(req, 'id')));
  app.post(`${V2}/virtual_disks`, async (req) => {
    const b = body(req);
    const s = await d.source.get();
    const cuuid = b['storage_container_uuid'];
    const container = cuuid === undefined ? s.containers[0] : s.containers.find((c) => c.uuid === cuuid || c.name === cuuid);
    if (!container) throw new InputError('storage_container_uuid', cuuid === undefined ? 'the cluster has no container' : 'no such storage container');
    const size = b['disk_capacity_in_bytes'];
    if (typeof size !== 'number' || !Number.isInteger(size) || size <= 0) throw new InputError('disk_capacity_in_bytes', 'must be a positive whole number of bytes');
    const name = b['name'] ?? `vdisk-${randomBytes(4).toString('hex')}`;
    if (typeof name !== 'string') throw new InputError('name', 'must be a string');
    const task = await d.tasks.start('kVDiskCreate', [], async (progress) => {
      await progress(10, `creating vdisk ${name} in ${container.name}`);
      let vd: Vdisk;
      try {
        vd = await cvm<Vdisk>('/storage/vdisks', { body: { name, size, container: container.name } });
      } catch (e) {
        throw e instanceof InputError ? new InputError(e.field === 'size' ? 'disk_capacity_in_bytes' : e.field, e.reason) : e;
      }
      d.source.invalidate();
      return [{ kind: 'virtual_disk', uuid: vd.uuid, name: vd.name }];
    });
    return { task_uuid: task };
  });
  app.delete(`${V2}/virtual_disks/:id`, async (req) => {
    const v = one('virtual disk', virtualDisks(await d.source.get()), 'uuid', param(req, 'id'));
    const name = String(v['name']);
    const task = await d.tasks.start('kVDiskDelete', [{ kind: 'virtual_disk', uuid: String(v['uuid']), name }], async (progress) => {
      await progress(10, `deleting vdisk ${name}`);
      await cvm(`/storage/vdisks/${encodeURIComponent(name)}`, { method: 'DELETE' });
      d.source.invalidate();
    });
    return { task_uuid: task };
  });
  app.get(`${V2}/disks`, async (req) => v2List(disks(await d.source.get()), req.query as Record<string, unknown>));
  app.get(`${V2}/disks/:id`, async (req) => one('disk', disks(await d.source.get()), 'disk_uuid', param(req, 'id')));

  app.setNotFoundHandler((req) => {
    throw new NotFoundError('endpoint', `${req.method} ${req.url.split('?')[0] ?? ''}`);
  });
  return app;
}
