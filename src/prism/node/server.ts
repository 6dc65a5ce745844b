/**
 * @module
 * Prism's HTTPS API and web page (Fastify). Every Prism serves on its CVM's address; the leader
 * also on the cluster virtual IP. A Prism that does not lead redirects (307) to the leader.
 *
 *   GET  /console/…                                  the browser console (node/console-routes.ts; no credentials: it logs in)
 *   POST /api/converge/v1/login                      { username, password } → { username } and the session cookie
 *   GET  /api/converge/v1/session                    { username } of the session
 *   GET  /api/converge/v1/cluster                    the cluster snapshot (core/snapshot.ts) and its health verdict
 *   GET  /api/converge/v1/vms/{uuid}/console/stream  websocket: the VM's serial console (node/console-routes.ts)
 *   POST /api/nutanix/v3/clusters/list, GET /api/nutanix/v3/clusters/{uuid}
 *   POST /api/nutanix/v3/hosts/list,    GET /api/nutanix/v3/hosts/{uuid}
 *   GET  /api/nutanix/v3/tasks/{uuid},   POST /api/nutanix/v3/tasks/list
 *   POST /api/nutanix/v3/{vms,images,subnets}/list, GET …/{uuid}, POST (create), DELETE …/{uuid}; PUT /api/nutanix/v3/vms/{uuid}
 *   PUT  /api/nutanix/v3/images/{uuid}/file          octet-stream: the file of an image created without source_uri (node/image-upload.ts)
 *        (the VM service's entities in v3 shapes: core/v3-vms.ts; docs/prism.md)
 *   GET  /api/nutanix/v2.0/{storage_pools,storage_containers,virtual_disks,disks,hosts,vms}[/{id}], /cluster, /tasks/{uuid}
 *   POST /api/nutanix/v2.0/vms/{uuid}/set_power_state   { transition } → { task_uuid }
 *   GET  /api/nutanix/v2.0/health_checks (runs them), /alerts[?resolved=&acknowledged=&severity=], /alerts/{id}
 *   POST /api/nutanix/v2.0/alerts/{acknowledge,resolve}  { alert_ids } → { successful_alert_ids, unsuccessful_alert_ids }
 *   GET  /api/converge/v1/health[?format=text]        the checks now (text: NCC's report)
 *   GET  /api/converge/v1/stats?entity=cluster|vm:<uuid>|host:<uuid>|vdisk:<uuid>&minutes=N   IOPS, throughput, latency over time
 *        (/PrismGateway/services/rest/v2.0/… is the same API)
 *   POST /api/nutanix/v2.0/storage_containers        { name, replication_factor } → { value: true }
 *   POST /api/nutanix/v2.0/virtual_disks             { name, disk_capacity_in_bytes, storage_container_uuid } → { task_uuid }
 *   DELETE /api/nutanix/v2.0/virtual_disks/{uuid}    → { task_uuid }
 *   POST /PrismGateway/services/rest/v1/utils/change_default_system_password   { oldPassword, newPassword }
 *   GET  /api/converge/v1/prism                      who leads (no authentication)
 *   POST /api/converge/v1/logout
 *   OPTIONS /api/{namespace}/unversioned/info        a v4 SDK's version question: { data: "v4.3" } for the namespaces served
 *   /api/{clustermgmt,vmm,networking,prism}/v4.x/…   v4 (node/v4-routes.ts)
 *
 * Every request, in this order: a Prism that does not lead redirects it; then authentication — HTTP
 * Basic, or the session cookie a successful Basic login sets; wrong passwords are rate-limited per
 * client address and user (429 with Retry-After) — before its body is read or its route looked up;
 * then its body: JSON only (415 otherwise), at most BODY_LIMIT bytes (413), an empty one is none
 * (but an image's file: octet-stream, up to 8 GiB, as long as it keeps arriving; image-upload.ts);
 * then the route (404). Errors are translated once, here (`answer`): v2.0 paths answer the v2.0
 * error body, every other path the v3 one.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { randomBytes } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import { AuthError, ConflictError, ConvergeError, InputError, NotFoundError, PreconditionError, TimeoutError, UnavailableError, errorMessage, isConvergeError } from '../../shared/errors.ts';
import { cvmCall, type CallOptions } from '../../cvm/protocol/client.ts';
import type { Vdisk } from '../../cvm/protocol/storage.ts';
import { LoginThrottle, parseBasic } from '../core/auth.ts';
import type { SharedSessions } from './sessions.ts';
import { CLUSTER_ATTRIBUTES, HOST_ATTRIBUTES, TASK_ATTRIBUTES, clusterAttrs, clusterEntity, hostAttrs, hostEntity, listOf, parseListRequest, taskAttrs, taskOf, v3Error } from '../core/v3.ts';
import {
  IMAGE_ATTRIBUTES, SUBNET_ATTRIBUTES, VM_ATTRIBUTES, accepted, deleting, imageAttrs, imageEntity, parseV3ImageCreate, parseV3SubnetCreate, parseV3VmCreate, parseV3VmUpdate,
  subnetAttrs, subnetEntity, vmAttrs, vmEntity, vmTaskOf, type V3VmContext,
} from '../core/v3-vms.ts';
import type { Accepted, Image, Subnet, Task, Vm } from '../../cvm/protocol/vms.ts';
import { V4_NAMESPACES, v4Error } from '../core/v4.ts';
import { IfMatchError, registerV4Routes } from './v4-routes.ts';
import { registerLcmRoutes, upgradeTasks, type LcmCaller } from './lcm-routes.ts';
import { lcmCall } from '../../lcm/protocol/client.ts';
import { alertById, type HealthPort } from './health.ts';
import { VmListView } from './vm-view.ts';
import { byUuid, fieldAs, vmOf } from './vm-service.ts';
import { healthOf } from '../core/snapshot.ts';
import { parseStatsEntity, seriesOf, vdisksOf } from '../core/stats.ts';
import type { StatsAnswer } from '../../cvm/protocol/stats.ts';
import { nccReport, type Alert, type CheckResult } from '../core/health.ts';
import { disks, parseV2Transition, storageContainers, storagePools, v2Cluster, v2Error, v2Host, v2List, v2Task, v2Vm, virtualDisks } from '../core/v2.ts';
import { isConsoleAsset, registerConsole } from './console-routes.ts';
import { PRISM_PORT } from '../protocol/prism.ts';
import type { Accounts, Tasks } from './accounts.ts';
import type { SnapshotSource } from './source.ts';
import { nameUuid } from '../../shared/name-uuid.ts';
import type { Leadership } from '../../shared/leadership.ts';
import { httpStatusOf } from '../../shared/http-status.ts';
import { PayloadTooLargeError, RequestTimeoutError, TooManyAttemptsError, UnsupportedMediaTypeError } from '../../shared/errors.ts';
import { acceptEmptyJson, boundRequestArrival } from '../../shared/http-api.ts';
import { ImageUploads, registerImageUpload, type UploadLimits } from './image-upload.ts';

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
  tasks: Pick<Tasks, 'get' | 'start' | 'list'>;
  /** Login sessions, shared with the next leader (node/sessions.ts). */
  sessions: Pick<SharedSessions, 'use' | 'open' | 'close' | 'closeAllOf'>;
  leadership: Pick<Leadership, 'isLeader' | 'leader'>;
  sessionTtlS: number;
  log: (m: string) => void;
  tls: { key: string; cert: string };
  /** Calls this CVM's API (default: cvmCall to cvmIp). */
  cvm?: CvmCaller;
  /** Calls LCM on this CVM (default: lcmCall to cvmIp). */
  lcm?: LcmCaller;
  /** The VM service's VMs for lists, from a mirror of its records (node/vm-records.ts); default: its API's list. */
  vmRecords?: () => Promise<Vm[]>;
  /** Calls a member CVM's API by address (default: cvmCall). */
  cvmAt?: <T>(ip: string, path: string, o?: CallOptions) => Promise<T>;
  /** Health checks and alerts (node/health.ts); without it those routes answer 503. */
  health?: HealthPort;
  /** How long a client may take (default CONNECTION_LIMITS; tests shorten them). */
  limits?: ConnectionLimits;
  /** How large and slow an image upload may be (default UPLOAD_LIMITS, node/image-upload.ts; tests shorten them). */
  uploadLimits?: Partial<UploadLimits>;
  /** The built browser console (web/prism/dist, or console/ beside prism.mjs in the bundle; node/console-routes.ts). */
  consoleDir: string;
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
 * deadline every `checkEveryMs`, so it may run over by up to that much. There is no
 * cap on requests per connection: a connection busy with requests is a client being served, each
 * request is bounded by these deadlines, and Node would answer a pipelining client's requests past
 * the cap with a bare 503.
 */
export interface ConnectionLimits {
  /** To finish the TLS handshake after connecting. */
  tlsHandshakeMs: number;
  /** To send a request's headers, from its first byte. */
  headersMs: number;
  /**
   * To send a whole request once its headers are in (a 1 MiB body must come at 35 KB/s or faster);
   * bounded per route by boundRequestArrival (shared/http-api.ts), not by Node's server, so that an
   * image's file (image-upload.ts) may take as long as it keeps arriving.
   */
  requestMs: number;
  /** For Prism to answer once a request is routed; past it the answer is a 503 and the work is told to stop. */
  handlerMs: number;
  /** An idle kept-alive connection is closed after this. */
  keepAliveMs: number;
  /** A connection with no traffic either way is destroyed after this. */
  idleSocketMs: number;
  /** How often Node checks the header deadline. */
  checkEveryMs: number;
}

export const CONNECTION_LIMITS: ConnectionLimits = {
  tlsHandshakeMs: 10_000, headersMs: 10_000, requestMs: 30_000, handlerMs: 30_000,
  keepAliveMs: 10_000, idleSocketMs: 60_000, checkEveryMs: 1_000,
};

/** The options that carry the limits into an HTTPS server (the API's own, and the virtual IP's); the request deadline is the app's (requestMs). */
const httpsOptions = (tls: PrismDeps['tls'], l: ConnectionLimits): HttpsServerOptions => ({
  ...tls, handshakeTimeout: l.tlsHandshakeMs, headersTimeout: l.headersMs, requestTimeout: 0, keepAliveTimeout: l.keepAliveMs, connectionsCheckingInterval: l.checkEveryMs,
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
  // a websocket (the VM console) is routed by the app's own server
  s.on('upgrade', (req, socket, head) => app.server.emit('upgrade', req, socket, head));
  s.setTimeout(l.idleSocketMs);
  s.on('clientError', answerClientError);
  return s;
}

/** Prism's statuses are Converge's (shared/http-status.ts), but where the reference's v3 differs: a stale spec_version is a 409, a slow backend a 503. */
function statusOf(e: unknown): number {
  if (e instanceof IfMatchError) return e.httpStatus;
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

const usecs = (iso: string | null): number | null => (iso ? Date.parse(iso) * 1000 : null);
/** An alert in v2.0's shape. */
function v2Alert(a: Alert): Record<string, unknown> {
  return {
    id: a.id, alert_title: a.title, message: a.message, severity: a.severity === 'critical' ? 'kCritical' : a.severity === 'warning' ? 'kWarning' : 'kInfo',
    check_id: a.check, alert_type_uuid: a.check, classifications: [a.check.split('/')[0] ?? ''],
    created_time_stamp_in_usecs: usecs(a.createdAt), last_occurrence_time_stamp_in_usecs: usecs(a.lastSeenAt),
    acknowledged: a.acknowledged, acknowledged_time_stamp_in_usecs: usecs(a.acknowledgedAt), acknowledged_by_username: a.acknowledgedBy,
    resolved: a.resolved, resolved_time_stamp_in_usecs: usecs(a.resolvedAt), resolved_by_username: a.resolvedBy,
    affected_entities: [{ entity_type: a.entity.kind, id: a.entity.id, entity_name: a.entity.name }],
    possible_causes: [{ cause: [a.cause], resolution: [a.resolution] }],
  };
}
/** A health check's result in v2.0's list. */
const v2Check = (r: CheckResult): Record<string, unknown> => ({ id: r.check, name: r.title, status: r.status, entity: { entity_type: r.entity.kind, id: r.entity.id, entity_name: r.entity.name }, detail: r.detail, cause: r.cause, resolution: r.resolution });

/** The Prism gateway's v2.0 prefix, an alias of /api/nutanix/v2.0/. */
const GATEWAY_V2 = '/PrismGateway/services/rest/v2.0/';
/** A v4 path (or the version question), and its namespace: answered in the v4 error body. */
const V4_PATH = new RegExp(`^/api/(${V4_NAMESPACES.join('|')})/(?:v[0-9][^/]*|unversioned)/`);
const kindOf = (url: string): string => /\/v3\/([a-z_]+?)s?(\/|$)/.exec(url)?.[1] ?? 'prism';
/** How long a task of Prism's waits for a step of the VM service (a shutdown the guest ignores, a slow migration). */
const VM_TASK_WAIT_MS = 30 * 60_000;
/** The entities whose 404 says ENTITY_NOT_FOUND, as the reference platform's does (Terraform looks for it to know an entity is gone). */
const ENTITY_KINDS = new Set(['vm', 'image', 'subnet', 'task', 'host', 'cluster']);

const RESOURCES = 'spec.resources';
function vmCreateField(f: string): string {
  const m = /^(disks|nics)\[(\d+)\](?:\.(\w+))?$/.exec(f);
  if (m) return `${RESOURCES}.${m[1] === 'disks' ? 'disk_list' : 'nic_list'}[${m[2] ?? 0}]${m[3] === 'subnet' ? '.subnet_reference' : m[3] === 'ip' ? '.ip_endpoint_list' : m[3] === 'image' || m[3] === 'cdromImage' ? '.data_source_reference' : ''}`;
  return ({ name: 'spec.name', vcpus: `${RESOURCES}.num_sockets`, memoryMiB: `${RESOURCES}.memory_size_mib`, disks: `${RESOURCES}.disk_list`, nics: `${RESOURCES}.nic_list` } as Record<string, string>)[f] ?? f;
}
const vmUpdateField = (f: string): string => (f === 'specVersion' ? 'metadata.spec_version' : vmCreateField(f.replace(/^add(Disks|Nics)/, (_m, x: string) => x.toLowerCase())));
const subnetField = (f: string): string => ({ name: 'spec.name', vlanId: `${RESOURCES}.vlan_id`, cidr: `${RESOURCES}.ip_config.subnet_ip`, gateway: `${RESOURCES}.ip_config.default_gateway_ip`, pool: `${RESOURCES}.ip_config.pool_list` } as Record<string, string>)[f.split('.')[0] ?? f] ?? f;

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
/** The console's login: a user name and password for the session cookie (the leader's). */
const LOGIN = '/api/converge/v1/login';

export function createPrismApi(d: PrismDeps): FastifyInstance {
  const cvm: CvmCaller = d.cvm ?? (<T>(path: string, o?: CallOptions): Promise<T> => cvmCall<T>(d.cvmIp, path, o));
  const lcm: LcmCaller = d.lcm ?? (<T>(path: string, o?: CallOptions): Promise<T> => lcmCall<T>(d.cvmIp, path, o));
  const l = d.limits ?? CONNECTION_LIMITS;
  const app = Fastify({
    logger: false, https: httpsOptions(d.tls, l), bodyLimit: BODY_LIMIT,
    // the request deadline is per route (boundRequestArrival, below): Node's would cut an image upload
    requestTimeout: 0, keepAliveTimeout: l.keepAliveMs, connectionTimeout: l.idleSocketMs,
    handlerTimeout: l.handlerMs, clientErrorHandler: answerClientError,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // older tools call v2.0 under the Prism gateway's path: the same API
    rewriteUrl: (req) => (req.url?.startsWith(GATEWAY_V2) ? `/api/nutanix/v2.0/${req.url.slice(GATEWAY_V2.length)}` : req.url ?? '/'),
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
    // the browser console asks with X-Requested-With and shows its own login page: no Basic prompt for it
    if (e instanceof AuthError && !(e instanceof TooManyAttempts) && req.headers['x-requested-with'] === undefined) void reply.header('WWW-Authenticate', 'Basic realm="Prism"');
    const kind = kindOf(req.url);
    const reason = e instanceof NotFoundError && ENTITY_KINDS.has(kind) ? 'ENTITY_NOT_FOUND' : isConvergeError(e) ? e.code : 'CVG_ERR_INTERNAL';
    const field = e instanceof InputError ? e.field : (e as { field?: unknown }).field;
    const details = e instanceof InputError ? { [e.field]: e.reason } : typeof field === 'string' ? { [field]: errorMessage(e) } : {};
    const v4ns = V4_PATH.exec(req.url)?.[1];
    if (v4ns) return reply.status(status).send(v4Error(v4ns, status, errorMessage(e), reason, e instanceof InputError ? { field: e.field } : {}));
    if (req.url.startsWith('/api/nutanix/v2.0/')) return reply.status(status).send(v2Error(status, errorMessage(e), e instanceof InputError ? e.field : undefined));
    return reply.status(status).send(v3Error(status, kind, errorMessage(e), reason, details));
  };
  app.setErrorHandler(answer);

  // JSON is the only body Prism takes, and an empty one is no body (the v4 SDKs send Content-Type:
  // application/json without a body on OPTIONS and DELETE); the body limit holds as before
  app.removeAllContentTypeParsers();
  acceptEmptyJson(app, BODY_LIMIT);
  // but an image's file (node/image-upload.ts): octet-stream, on its own route, which alone may take
  // as long as its body keeps arriving; so the request deadline is per route, not Node's server's
  const uploads = new ImageUploads({ cvm, tasks: d.tasks, ...(d.uploadLimits ? { limits: d.uploadLimits } : {}) });
  boundRequestArrival(app, {
    requestTimeoutMs: l.requestMs, longBodyIdleMs: uploads.limits.idleMs,
    // as Node's own deadline answered (clientError): a 408 in Prism's shape, and the connection closed
    onExpired: (req, reply) => {
      if (reply.raw.headersSent) req.raw.socket.destroy();
      else answerClientError(Object.assign(new Error('request not received in time'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), req.raw.socket);
    },
  });

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
    await logIn(req, reply, cred.user, cred.password);
  };
  /** Checks a user's password (failures rate-limited per client address and user) and opens a session in the cookie. */
  const logIn = async (req: FastifyRequest, reply: FastifyReply, user: string, password: string): Promise<void> => {
    const key = `${req.ip}|${user}`;
    const wait = throttle.retryAfterMs(key);
    if (wait > 0) throw new TooManyAttempts(Math.ceil(wait / 1000));
    if (!(await d.accounts.check(user, password))) {
      throttle.failure(key);
      d.log(`failed login for ${JSON.stringify(user.slice(0, 64))} from ${req.ip}`);
      throw new AuthError('wrong user name or password');
    }
    throttle.success(key);
    req.user = user;
    const opened = d.sessions.open(user);
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
    // the console's files and its login: no credentials yet
    if (isConsoleAsset(req.url.split('?')[0] ?? '') || req.routeOptions.url === LOGIN) return;
    await authenticate(req, reply);
  });

  const body = (req: FastifyRequest): Record<string, unknown> => {
    const b = req.body ?? {};
    if (typeof b !== 'object' || Array.isArray(b)) throw new InputError('body', 'must be a JSON object');
    return b as Record<string, unknown>;
  };
  const param = (req: FastifyRequest, name: string): string => (req.params as Record<string, string>)[name] ?? '';

  app.get('/api/converge/v1/prism', () => ({ cvmIp: d.cvmIp, vip: d.vip, leader: d.leadership.leader, isLeader: d.leadership.isLeader }));
  app.post(LOGIN, async (req, reply) => {
    const b = body(req);
    for (const k of ['username', 'password']) {
      const v = b[k];
      if (typeof v !== 'string' || v.length === 0 || v.length > 256) throw new InputError(k, 'must be a string of 1 to 256 characters');
    }
    await logIn(req, reply, b['username'] as string, b['password'] as string);
    return { username: req.user };
  });
  app.get('/api/converge/v1/session', (req) => ({ username: req.user }));
  // the console's dashboard, hosts and storage pages: what Prism knows of the cluster now, and its verdict
  app.get('/api/converge/v1/cluster', async () => {
    const s = await d.source.get();
    return { ...s, health: healthOf(s) };
  });
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

  // ---- the browser console (node/console-routes.ts) ----
  app.get('/', (_req, reply) => reply.redirect('/console/', 302));
  registerConsole(app, { dir: d.consoleDir, cvm, log: d.log });


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
  /** The tasks that are not Prism's own: the VM service's and the LCM upgrade's (the upgrade and each step reached). */
  const serviceTasks = async (): Promise<Task[]> => (await Promise.all([cvm<Task[]>('/tasks'), upgradeTasks(lcm)])).flat();
  /** One of them: the VM service's (most are), else one of the upgrade's; NotFoundError('task', `shown`). */
  const serviceTask = async (uuid: string, shown = uuid): Promise<Task> => {
    try {
      return await cvm<Task>(`/tasks/${encodeURIComponent(uuid)}`);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
      const upgrade = (await upgradeTasks(lcm)).find((t) => t.uuid === uuid);
      if (!upgrade) throw new NotFoundError('task', shown);
      return upgrade;
    }
  };
  app.get(`${V3}/tasks/:uuid`, async (req) => {
    const uuid = param(req, 'uuid');
    const clusterId = (await d.source.get()).cluster.clusterId;
    try {
      return taskOf(await d.tasks.get(uuid), clusterId);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
      return vmTaskOf(await serviceTask(uuid), clusterId);
    }
  });
  app.post(`${V3}/tasks/list`, async (req) => {
    const r = parseListRequest(req.body, 'task', TASK_ATTRIBUTES);
    const clusterId = (await d.source.get()).cluster.clusterId;
    // the VM service's tasks, Prism's own (storage, image and subnet deletes, updates in steps) and the upgrade's, newest first
    const [others, mine] = await Promise.all([serviceTasks(), d.tasks.list()]);
    const tasks = others.map((t) => vmTaskOf(t, clusterId)).concat(mine.map((t) => taskOf(t, clusterId))).sort((a, b) => String(b['creation_time']).localeCompare(String(a['creation_time'])));
    return { api_version: '3.1', ...listOf(tasks, r, taskAttrs) };
  });

  // ---- v3: the VM service's VMs, images and subnets (core/v3-vms.ts) ----
  const vmContext = async (): Promise<V3VmContext> => {
    const [s, subnets, images] = await Promise.all([d.source.get(), cvm<Subnet[]>('/subnets'), cvm<Image[]>('/images')]);
    return {
      cluster: { uuid: s.cluster.clusterId, name: s.cluster.name },
      hosts: s.members.map((m) => ({ serial: m.serial, hostIp: m.hostIp, uuid: m.hostUuid, name: m.host?.hostname ?? m.hostIp })),
      subnets, images, containers: s.containers.map((c) => ({ uuid: c.uuid, name: c.name })),
    };
  };
  const getVm = (uuid: string): Promise<Vm> => vmOf(cvm, uuid, 'vm');
  /** A task of Prism's own that is done when `work` is (a step of the VM service taken synchronously, or several in a row). */
  const prismTask = (op: string, entity: { kind: string; uuid: string; name: string }, work: () => Promise<void> = () => Promise.resolve()): Promise<string> =>
    d.tasks.start(op, [entity], async () => {
      await work();
    });
  /** Waits for a VM service task to end; a failed one fails the caller with its reason. */
  const vmServiceTask = async (uuid: string): Promise<void> => {
    const deadline = Date.now() + VM_TASK_WAIT_MS;
    for (;;) {
      if (Date.now() > deadline) throw new TimeoutError(`the VM service's task ${uuid} did not end within ${VM_TASK_WAIT_MS / 60_000} minutes`);
      const t = await cvm<Task>(`/tasks/${encodeURIComponent(uuid)}`);
      if (t.state === 'succeeded') return;
      if (t.state === 'failed' || t.state === 'aborted') throw new ConflictError(`${t.operation} failed: ${t.error?.message ?? t.state}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  // lists come from a read model refreshed at most every second (node/vm-view.ts); a change made here invalidates it
  const vmView = new VmListView(async () => {
    const [vms, ctx] = await Promise.all([d.vmRecords ? d.vmRecords() : cvm<Vm[]>('/vms'), vmContext()]);
    return { vms, ctx };
  });
  const changed = <T>(x: T): T => {
    vmView.invalidate();
    return x;
  };
  app.post(`${V3}/vms/list`, async (req) => {
    const r = parseListRequest(req.body, 'vm', VM_ATTRIBUTES);
    const v = await vmView.get();
    const entities = vmView.shapes(v, 'v3', vmEntity);
    return { api_version: '3.1', ...listOf(entities, r, vmAttrs) };
  });
  app.get(`${V3}/vms/:uuid`, async (req) => {
    const [vm, ctx] = await Promise.all([getVm(param(req, 'uuid')), vmContext()]);
    return vmEntity(vm, ctx);
  });
  app.post(`${V3}/vms`, async (req, reply) => {
    const { request, spec } = parseV3VmCreate(req.body, await vmContext());
    const a = changed(await cvm<Accepted>('/vms', { body: request }).catch(fieldAs(vmCreateField)));
    return reply.status(202).send(accepted('vm', a.entityUuid, 0, spec, a.taskUuid));
  });
  app.put(`${V3}/vms/:uuid`, async (req, reply) => {
    const vm = await getVm(param(req, 'uuid'));
    const { update, power, spec } = parseV3VmUpdate(req.body, vm, await vmContext());
    const path = `/vms/${encodeURIComponent(vm.uuid)}`;
    const entity = { kind: 'vm', uuid: vm.uuid, name: vm.name };
    let task: string;
    if (update && !power) task = (await cvm<Accepted>(path, { method: 'PUT', body: update }).catch(fieldAs(vmUpdateField))).taskUuid;
    else if (power && !update) task = (await cvm<Accepted>(`${path}/power`, { body: { action: power } })).taskUuid;
    else if (update && power) {
      // what needs the VM off is done while it is off: powered off first, or powered on after
      const change = async (): Promise<void> => vmServiceTask((await cvm<Accepted>(path, { method: 'PUT', body: { ...update, specVersion: (await getVm(vm.uuid)).specVersion } }).catch(fieldAs(vmUpdateField))).taskUuid);
      const switchPower = async (): Promise<void> => vmServiceTask((await cvm<Accepted>(`${path}/power`, { body: { action: power } })).taskUuid);
      task = await prismTask('kVmUpdate', entity, async () => {
        if (power === 'on') {
          await change();
          await switchPower();
        } else {
          await switchPower();
          await change();
        }
      });
    } else task = await prismTask('kVmUpdate', entity);
    vmView.invalidate();
    return reply.status(202).send(accepted('vm', vm.uuid, vm.specVersion, spec, task));
  });
  app.delete(`${V3}/vms/:uuid`, async (req, reply) => {
    const vm = await getVm(param(req, 'uuid'));
    const a = changed(await cvm<Accepted>(`/vms/${encodeURIComponent(vm.uuid)}`, { method: 'DELETE' }));
    return reply.status(202).send(deleting('vm', vm.uuid, a.taskUuid));
  });

  const base = (req: FastifyRequest): string => `https://${req.headers.host ?? `${d.cvmIp}:${PRISM_PORT}`}`;
  const getImage = async (uuid: string): Promise<Image> => byUuid(await cvm<Image[]>('/images'), uuid, 'image');
  // images waiting for their file (node/image-upload.ts) show PENDING beside the VM service's
  app.post(`${V3}/images/list`, async (req) => {
    const r = parseListRequest(req.body, 'image', IMAGE_ATTRIBUTES);
    const ctx = await vmContext();
    return { api_version: '3.1', ...listOf(uploads.withPending(ctx.images).map((i) => imageEntity(i, ctx, base(req))), r, imageAttrs) };
  });
  app.get(`${V3}/images/:uuid`, async (req) => {
    const ctx = await vmContext(); // it holds the images: one read
    return imageEntity(byUuid(uploads.withPending(ctx.images), param(req, 'uuid'), 'image'), ctx, base(req));
  });
  app.post(`${V3}/images`, async (req, reply) => {
    const create = parseV3ImageCreate(req.body);
    if ('upload' in create) return reply.status(202).send(await uploads.create(create.upload, create.spec)); // the file comes by PUT …/file
    const { request, spec } = create;
    const a = await cvm<Accepted>('/images', { body: request }).catch(fieldAs((f) => (f === 'url' ? 'spec.resources.source_uri' : f === 'name' ? 'spec.name' : f)));
    return reply.status(202).send(accepted('image', a.entityUuid, 0, spec, a.taskUuid));
  });
  registerImageUpload(app, uploads);
  app.delete(`${V3}/images/:uuid`, async (req, reply) => {
    const pending = await uploads.delete(param(req, 'uuid'));
    if (pending) return reply.status(202).send(pending);
    const img = await getImage(param(req, 'uuid'));
    await cvm(`/images/${encodeURIComponent(img.uuid)}`, { method: 'DELETE' });
    return reply.status(202).send(deleting('image', img.uuid, await prismTask('kImageDelete', { kind: 'image', uuid: img.uuid, name: img.name })));
  });

  const getSubnet = async (uuid: string): Promise<Subnet> => byUuid(await cvm<Subnet[]>('/subnets'), uuid, 'subnet');
  app.post(`${V3}/subnets/list`, async (req) => {
    const r = parseListRequest(req.body, 'subnet', SUBNET_ATTRIBUTES);
    const ctx = await vmContext();
    return { api_version: '3.1', ...listOf(ctx.subnets.map((x) => subnetEntity(x, ctx)), r, subnetAttrs) };
  });
  app.get(`${V3}/subnets/:uuid`, async (req) => {
    const ctx = await vmContext(); // it holds the subnets: one read
    return subnetEntity(byUuid(ctx.subnets, param(req, 'uuid'), 'subnet'), ctx);
  });
  app.post(`${V3}/subnets`, async (req, reply) => {
    const { request, spec } = parseV3SubnetCreate(req.body, await vmContext());
    const subnet = await cvm<Subnet>('/subnets', { body: request }).catch(fieldAs(subnetField));
    return reply.status(202).send(accepted('subnet', subnet.uuid, 0, spec, await prismTask('kSubnetCreate', { kind: 'subnet', uuid: subnet.uuid, name: subnet.name })));
  });
  app.delete(`${V3}/subnets/:uuid`, async (req, reply) => {
    const subnet = await getSubnet(param(req, 'uuid'));
    await cvm(`/subnets/${encodeURIComponent(subnet.uuid)}`, { method: 'DELETE' });
    return reply.status(202).send(deleting('subnet', subnet.uuid, await prismTask('kSubnetDelete', { kind: 'subnet', uuid: subnet.uuid, name: subnet.name })));
  });

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
  app.get(`${V2}/cluster`, async () => v2Cluster(await d.source.get()));
  app.get(`${V2}/clusters`, async (req) => v2List([v2Cluster(await d.source.get())], req.query as Record<string, unknown>));
  const v2Hosts = async (): Promise<Record<string, unknown>[]> => {
    const [s, vms] = await Promise.all([d.source.get(), cvm<Vm[]>('/vms').catch(() => [] as Vm[])]);
    return s.members.map((m) => v2Host(m, s, vms.filter((v) => v.host?.serial === m.serial).length));
  };
  app.get(`${V2}/hosts`, async (req) => v2List(await v2Hosts(), req.query as Record<string, unknown>));
  app.get(`${V2}/hosts/:id`, async (req) => one('host', await v2Hosts(), 'uuid', param(req, 'id')));
  app.get(`${V2}/vms`, async (req) => {
    const [vms, ctx] = await Promise.all([cvm<Vm[]>('/vms'), vmContext()]);
    const { include_vm_disk_config: _d, include_vm_nic_config: _n, ...paging } = req.query as Record<string, unknown>;
    return v2List(vms.map((v) => v2Vm(v, ctx)), paging);
  });
  app.get(`${V2}/vms/:id`, async (req) => v2Vm(await getVm(param(req, 'id')), await vmContext()));
  app.post(`${V2}/vms/:id/set_power_state`, async (req) => {
    const action = parseV2Transition(req.body);
    const vm = await getVm(param(req, 'id'));
    return { task_uuid: changed(await cvm<Accepted>(`/vms/${encodeURIComponent(vm.uuid)}/power`, { body: { action } })).taskUuid };
  });
  app.get(`${V2}/tasks/:uuid`, async (req) => {
    const uuid = param(req, 'uuid');
    try {
      const t = await d.tasks.get(uuid);
      return v2Task({ uuid: t.uuid, state: t.status, percent: t.percentage, operation: t.operationType, entities: t.entities, error: t.error, createdAt: t.createdAt, finishedAt: t.completedAt });
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
      const t = await serviceTask(uuid);
      return v2Task({ uuid: t.uuid, state: t.state, percent: t.percent, operation: t.operation, entities: [t.entity], error: t.error?.message ?? null, createdAt: t.createdAt, finishedAt: t.finishedAt });
    }
  });

  // ---- health checks and alerts (core/health.ts) ----
  const health = (): HealthPort => {
    if (!d.health) throw new UnavailableError('health checks are not running in this Prism');
    return d.health;
  };
  app.get(`${V2}/health_checks`, async (req) => v2List((await health().run()).map(v2Check), req.query as Record<string, unknown>));
  app.get('/api/converge/v1/health', async (req, reply) => {
    const results = await health().run();
    if ((req.query as Record<string, unknown>)['format'] === 'text') return reply.type('text/plain; charset=utf-8').send(nccReport(results));
    return { results };
  });
  const flag = (q: Record<string, unknown>, k: string): boolean | undefined => {
    const v = q[k];
    if (v === undefined) return undefined;
    if (v !== 'true' && v !== 'false') throw new InputError(k, 'must be true or false');
    return v === 'true';
  };
  app.get(`${V2}/alerts`, async (req) => {
    const q = req.query as Record<string, unknown>;
    const resolved = flag(q, 'resolved');
    const acknowledged = flag(q, 'acknowledged');
    const severity = q['severity'];
    if (severity !== undefined && severity !== 'critical' && severity !== 'warning' && severity !== 'info') throw new InputError('severity', 'must be critical, warning or info');
    const { resolved: _r, acknowledged: _a, severity: _s, ...paging } = q;
    const alerts = (await health().alerts()).filter((a) => (resolved === undefined || a.resolved === resolved) && (acknowledged === undefined || a.acknowledged === acknowledged) && (severity === undefined || a.severity === severity));
    return v2List(alerts.map(v2Alert), paging);
  });
  app.get(`${V2}/alerts/:id`, async (req) => v2Alert(await alertById(health(), param(req, 'id'))));
  for (const change of ['acknowledge', 'resolve'] as const) {
    app.post(`${V2}/alerts/${change}`, async (req) => {
      const ids = body(req)['alert_ids'];
      if (!Array.isArray(ids) || ids.length === 0 || ids.length > 1000 || !ids.every((x) => typeof x === 'string' && x.length <= 64)) throw new InputError('alert_ids', 'must be a list of 1 to 1,000 alert ids');
      const r = await health().update(ids as string[], change, req.user ?? '');
      return { successful_alert_ids: r.done, unsuccessful_alert_ids: r.missing };
    });
  }

  // ---- performance (core/stats.ts): every CVM's per-vdisk samples, summed for the entity ----
  app.get('/api/converge/v1/stats', async (req) => {
    const q = req.query as Record<string, unknown>;
    const entity = parseStatsEntity(q['entity']);
    const minutes = q['minutes'] === undefined ? 60 : Number(q['minutes']);
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 1440) throw new InputError('minutes', 'must be a whole number from 1 to 1440');
    const s = await d.source.get();
    const vms = entity.kind === 'vm' || entity.kind === 'host' ? await cvm<Vm[]>('/vms') : [];
    if (entity.kind === 'vm' && !vms.some((v) => v.uuid === entity.uuid)) throw new NotFoundError('VM', entity.uuid);
    if (entity.kind === 'host' && !s.members.some((m) => m.hostUuid === entity.uuid)) throw new NotFoundError('host', entity.uuid);
    const vdisks = vdisksOf(entity, vms, (h) => s.members.find((m) => m.hostUuid === h)?.serial, (name) => s.vdisks.find((v) => v.name === name)?.uuid);
    const since = Date.now() - minutes * 60_000;
    // every CVM: a VM's I/O enters through whichever CVM its host reaches (a CVM that does not answer is left out)
    const at = d.cvmAt ?? cvmCall;
    const answers = await Promise.all(s.members.map((m) => at<StatsAnswer>(m.cvmIp, `/stats/vdisks?since=${since}`, { timeoutMs: 5000 }).catch(() => null)));
    return { entity: q['entity'] ?? 'cluster', ...seriesOf(answers.filter((a): a is StatsAnswer => a !== null), vdisks) };
  });

  // ---- v4 (node/v4-routes.ts) ----
  registerV4Routes(app, { source: d.source, tasks: d.tasks, cvm, vmContext, vmView, serviceTasks, serviceTask });
  registerLcmRoutes(app, { lcm, source: d.source, tasks: d.tasks, nameUuid, cvmIp: d.cvmIp });

  app.setNotFoundHandler((req) => {
    throw new NotFoundError('endpoint', `${req.method} ${req.url.split('?')[0] ?? ''}`);
  });
  return app;
}
