/**
 * @module
 * Foundation's HTTP API (Fastify): the public Foundation endpoints under /foundation/ with their
 * shapes, Converge's additions beside them (event stream, validation report, plan check, retry,
 * sessions), the endpoints nodes call, and the OpenAPI document. Errors are translated once, into
 * Foundation's envelope `{ error: { message, code, details, session_id } }`.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import { ConvergeError, InputError, NotFoundError, errorMessage, isConvergeError } from '../../shared/errors.ts';
import {
  cvmAnnounceSchema, imageNodesSchema, installerReportSchema, ipmiConfigSchema, nodeNetworkDetailsSchema, parseBody, planInputSchema, sessionActionSchema,
  type FoundationError,
} from '../protocol/api.ts';
import { EVENTS_CAUGHT_UP } from '../protocol/deploy.ts';
import { registerApiAuth } from './api-auth.ts';
import { MAX_BUNDLE_BYTES } from './bundles.ts';
import { bearerOf } from './credentials.ts';
import { FieldConflictError, PayloadTooLargeError } from './errors.ts';
import { Foundation, FOUNDATION_VERSION } from './foundation.ts';
import { OPENAPI } from './openapi.ts';
import { registerWebUi } from '../../shared/web-ui.ts';
import { httpStatusOf } from '../../shared/http-status.ts';
import type { Logger } from 'pino';
import { acceptEmptyJson } from '../../shared/http-api.ts';

/** The body limit of a JSON endpoint; image_nodes has its own (a body for hundreds of nodes). */
export const JSON_BODY_LIMIT = 1024 ** 2;
export const IMAGE_NODES_BODY_LIMIT = 8 * 1024 ** 2;
/** What nodes send (installer reports, CVM announcements). */
export const NODE_BODY_LIMIT = 64 * 1024;

function envelope(e: unknown, sessionId: string | null): FoundationError {
  const details: Record<string, string> = {};
  if (e instanceof InputError) details[e.field] = e.reason;
  if (e instanceof FieldConflictError) details[e.field] = e.reason;
  return { error: { message: errorMessage(e), code: isConvergeError(e) ? e.code : 'CVG_ERR_INTERNAL', details, session_id: sessionId } };
}

const q = (v: unknown): string => (typeof v === 'string' ? v : '');

/** The session a request names in its query (`session_id=`), for the error envelope. */
const sessionIdOf = (req: FastifyRequest): string | null => q((req.query as Record<string, unknown> | undefined)?.['session_id']) || null;

/**
 * Fastify's own refusals (before a handler runs) as Foundation's input errors: which part of the
 * request was wrong, and the status Fastify chose (400, 413, 415, ...).
 */
function fastifyInputError(e: FastifyError, req: FastifyRequest): InputError {
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new InputError('Content-Type', `${e.message}; this endpoint takes application/json`);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new InputError('body', 'is not valid JSON');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PayloadTooLargeError('body', req.routeOptions.bodyLimit ?? JSON_BODY_LIMIT);
    default:
      return new InputError('body', e.message || 'invalid request');
  }
}

export interface FoundationApiOptions {
  /** The built web UI (web/dist) to serve at `/`; absent = no UI routes. */
  uiDir?: string;
  /** Where unexpected (500) errors are logged. */
  log?: (m: string) => void;
  /** The largest bundle `upload` takes (default MAX_BUNDLE_BYTES). */
  maxBundleBytes?: number;
  /** The token the public API requires (node/api-auth.ts); null or absent = open (loopback). */
  apiToken?: string | null;
  /** Structured request log (shared/log.ts: no secret in it); absent = no request log. */
  logger?: Logger;
}

export function createFoundationApi(f: Foundation, o: FoundationApiOptions = {}): FastifyInstance {
  // every JSON body is small; only the bundle upload is large, and it is streamed to disk (below)
  const loggerInstance: FastifyBaseLogger | undefined = o.logger;
  const app = Fastify({
    ...(loggerInstance ? { loggerInstance, logController: new LogController({ disableRequestLogging: true }) } : { logger: false }),
    bodyLimit: JSON_BODY_LIMIT,
    // a URL the router cannot take (a broken escape, a segment past 100 characters), in the envelope
    frameworkErrors: (err, _req, r) => {
      const tooLong = err.code === 'FST_ERR_MAX_PARAM_LENGTH';
      const reply = r as unknown as FastifyReply;
      void reply.status(tooLong ? 414 : 400).send(envelope(new InputError('url', tooLong ? 'a path segment is longer than 100 characters' : 'is not a valid URL (a broken % escape?)'), null));
    },
  });
  // one line a request: what changes something or failed at info, the pollers' GETs at debug (URLs without their secrets)
  if (o.logger) {
    app.addHook('onResponse', (req, reply, done) => {
      const line = { req, status: reply.statusCode, ms: Math.round(reply.elapsedTime) };
      if (req.method !== 'GET' || reply.statusCode >= 400) req.log.info(line, 'request');
      else req.log.debug(line, 'request');
      done();
    });
  }
  const maxBundleBytes = o.maxBundleBytes ?? MAX_BUNDLE_BYTES;
  acceptEmptyJson(app);
  app.setErrorHandler((err: unknown, req, reply) => {
    const fe = err as FastifyError;
    if (!(err instanceof ConvergeError) && typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
      void reply.status(fe.statusCode).send(envelope(fastifyInputError(fe, req), sessionIdOf(req)));
      return;
    }
    const status = httpStatusOf(err);
    if (status === 401) void reply.header('WWW-Authenticate', 'Bearer realm="foundation"');
    if (status >= 500) o.log?.(`${req.method} ${req.url.split('?')[0] ?? ''}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    void reply.status(status).send(envelope(err, sessionIdOf(req)));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send(envelope(new NotFoundError('endpoint', `${req.method} ${(req.url.split('?')[0] ?? '').slice(0, 200)}`), sessionIdOf(req)));
  });
  registerApiAuth(app, o.apiToken ?? null);
  const sessionOf = (query: unknown, body?: { session_id?: string | undefined }): string => {
    const id = q((query as Record<string, unknown>)['session_id']) || (body?.session_id ?? '');
    if (!id) throw new InputError('session_id', 'is required');
    return id;
  };
  const text = (reply: FastifyReply, body: string): FastifyReply => reply.type('text/plain; charset=utf-8').send(body);

  // ---- the public Foundation API -------------------------------------------------------------
  app.get('/foundation/version', (_req, reply) => text(reply, FOUNDATION_VERSION));
  app.get('/foundation/discover_nodes', async (req) => {
    const range = q((req.query as Record<string, unknown>)['range']);
    return Foundation.blocks(await f.discover(range ? range.split(',') : []));
  });
  app.post('/foundation/node_network_details', async (req) => {
    const body = parseBody(nodeNetworkDetailsSchema, req.body ?? {});
    const blocks = Foundation.blocks(await f.discover());
    const all = blocks.flatMap((b) => b['nodes'] as Record<string, unknown>[]);
    const want = body.nodes.map((n) => n.ipv6_address);
    return { nodes: all.filter((n) => want.length === 0 || want.includes(n['ipv6_address'] as string)).map((n) => ({
      ipv6_address: n['ipv6_address'], node_serial: n['node_serial'], cvm_ip: n['svm_ip'] ?? '', hypervisor_ip: '', ipmi_ip: n['ipmi_ip'], hypervisor_hostname: '', ipmi_gateway: '', ipmi_netmask: '',
    })) };
  });
  app.post('/foundation/ipmi_config', async (req) => f.ipmiConfig(parseBody(ipmiConfigSchema, req.body)));
  app.post('/foundation/image_nodes', { bodyLimit: IMAGE_NODES_BODY_LIMIT }, async (req) => ({ session_id: await f.imageNodes(parseBody(imageNodesSchema, req.body)) }));
  app.get('/foundation/progress', (req) => f.session(sessionOf(req.query)).progress());
  const abort = (req: FastifyRequest): Record<string, unknown> => {
    const body = req.method === 'POST' ? parseBody(sessionActionSchema, req.body ?? {}) : {};
    const s = f.session(sessionOf(req.query, body));
    s.abort();
    return { session_id: s.id, aborted: true };
  };
  app.get('/foundation/abort_session', abort);
  app.post('/foundation/abort_session', abort);
  app.get('/foundation/enumerate_nos_packages', () => f.bundles.list());
  app.get('/foundation/enumerate_hypervisor_isos', () => ({
    kvm: f.bundles.list().map((b) => ({ filename: `bundled with ${b}`, supported: true })), esx: [], hyperv: [], linux: [], xen: [],
  }));
  void app.register((scope, _opts, next) => {
    // the bundle upload alone takes octet-stream, and reads it as a stream: to a file, never to memory
    scope.addContentTypeParser('application/octet-stream', (req, payload, done) => {
      if (Number(req.headers['content-length']) > maxBundleBytes) done(new PayloadTooLargeError('body', maxBundleBytes), undefined);
      else done(null, payload);
    });
    scope.post('/foundation/upload', {
      // the query is checked before the body is read
      onRequest: (req, _reply, done) => {
        const query = req.query as Record<string, unknown>;
        const type = q(query['installer_type']);
        if (type !== 'nos') done(new InputError('installer_type', type === 'kvm' ? 'the hypervisor ships inside the release bundle; upload the bundle with installer_type=nos' : 'must be nos'));
        else if (!q(query['filename'])) done(new InputError('filename', 'is required'));
        else done();
      },
    }, async (req, reply) => {
      if (!(req.body instanceof Readable)) throw new InputError('Content-Type', 'send the bundle as application/octet-stream');
      try {
        const r = await f.bundles.add(q((req.query as Record<string, unknown>)['filename']), req.body, maxBundleBytes);
        return { name: r.name, md5sum: r.md5sum, in_whitelist: true, version: r.bundle.manifest.version };
      } catch (e) {
        // the rest of a refused upload is not worth reading
        if (!req.raw.complete) void reply.header('Connection', 'close');
        throw e;
      }
    });
    next();
  });
  app.get('/foundation/node_log', (req, reply) => {
    const query = req.query as Record<string, unknown>;
    const s = f.session(sessionOf(query));
    const key = q(query['serial']) || q(query['hypervisor_ip']);
    const n = s.record.nodes.find((x) => x.serial === key || x.hostIp === key);
    if (!n) throw new NotFoundError('node in session', key || '(give serial or hypervisor_ip)');
    return text(reply, s.nodeLog(n.serial));
  });
  app.get('/foundation/cluster_log', (req, reply) => {
    const s = f.session(sessionOf(req.query));
    return text(reply, s.events().filter((e) => e.serial === null).map((e) => `${e.time} ${e.message}`).join('\n') + '\n');
  });

  // ---- Converge's additions --------------------------------------------------------------------
  app.get('/foundation/openapi.json', () => OPENAPI);
  app.get('/foundation/sessions', () => f.listSessions());
  app.get('/foundation/validation', async (req) => {
    const query = req.query as Record<string, unknown>;
    const profile = q(query['profile']) || undefined;
    if (profile !== undefined && profile !== 'lab' && profile !== 'production') throw new InputError('profile', 'must be lab or production', ['lab', 'production'], profile);
    const rf = query['redundancy_factor'] === undefined ? 2 : Number(query['redundancy_factor']);
    if (rf !== 1 && rf !== 2 && rf !== 3) throw new InputError('redundancy_factor', 'must be 1, 2 or 3', ['1', '2', '3'], query['redundancy_factor']);
    const overrides = q(query['overrides']).split(',').filter(Boolean);
    const nosPackage = q(query['nos_package']);
    return f.validateDiscovered({ rf, overrides, ...(profile ? { profile } : {}), ...(nosPackage ? { nosPackage } : {}) });
  });
  app.post('/foundation/plan_check', (req) => f.planCheck(parseBody(planInputSchema, req.body)));
  app.post('/foundation/retry_node', (req) => {
    const query = req.query as Record<string, unknown>;
    const body = parseBody(sessionActionSchema, req.body ?? {});
    const s = f.session(sessionOf(query, body));
    const serial = q(query['serial']) || (body.serial ?? '');
    if (!serial) throw new InputError('serial', 'is required (the node to retry)');
    s.retry(serial);
    return { session_id: s.id, retried: serial };
  });
  app.get('/foundation/events', (req, reply) => {
    const query = req.query as Record<string, unknown>;
    const s = f.session(sessionOf(query));
    const after = Number(q(query['after']) || (req.headers['last-event-id'] as string | undefined) || 0);
    if (!Number.isInteger(after) || after < 0) throw new InputError('after', 'must be the seq of an event (a whole number)');
    reply.raw.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
    const send = (e: { seq: number }): void => void reply.raw.write(`id: ${e.seq}\nevent: progress\ndata: ${JSON.stringify(e)}\n\n`);
    const replay = s.events(after);
    for (const e of replay) send(e);
    // the log is replayed: a client rebuilding its view can draw now (live events follow)
    reply.raw.write(`event: ${EVENTS_CAUGHT_UP}\ndata: ${JSON.stringify({ seq: replay.at(-1)?.seq ?? after })}\n\n`);
    s.on('event', send);
    const ping = setInterval(() => reply.raw.write(': keep-alive\n\n'), 15_000);
    req.raw.on('close', () => {
      clearInterval(ping);
      s.off('event', send);
    });
    return reply;
  });

  // ---- the web UI (wizard and live flow diagram) --------------------------------------------
  if (o.uiDir !== undefined) registerWebUi(app, o.uiDir);

  // ---- what the nodes call -------------------------------------------------------------------
  // the media: the random media token in the path is the credential (node/credentials.ts)
  type Media = { session: string; serial: string; token: string };
  app.get('/foundation/media/:session/:serial/:token/installer.tar', async (req, reply) => {
    const p = req.params as Media;
    return reply.type('application/x-tar').send(await f.installerImage(p.session, p.serial, p.token));
  });
  app.get('/foundation/media/:session/:serial/:token/config.json', async (req, reply) => {
    const p = req.params as Media;
    return reply.header('Cache-Control', 'no-store').send(await f.installConfig(p.session, p.serial, p.token));
  });
  app.get('/foundation/media/:session/:serial/:token/bundle.tar.gz', (req, reply) => {
    const p = req.params as Media;
    return reply.type('application/gzip').send(f.mediaBundle(p.session, p.serial, p.token));
  });
  // reports and announcements: the body is checked first, then the node's credential
  app.post('/foundation/installer/:session/:serial/report', { bodyLimit: NODE_BODY_LIMIT }, (req) => {
    const p = req.params as { session: string; serial: string };
    f.installerReport(p.session, p.serial, bearerOf(req.headers.authorization), parseBody(installerReportSchema, req.body));
    return { ok: true };
  });
  app.post('/foundation/cvm_announce', { bodyLimit: NODE_BODY_LIMIT }, (req) => {
    f.cvmAnnounce(bearerOf(req.headers.authorization), parseBody(cvmAnnounceSchema, req.body));
    return { ok: true };
  });
  app.get('/foundation/bundles/:file', (req, reply) => {
    const { file } = req.params as { file: string };
    return reply.type('application/gzip').send(f.bundles.stream(file));
  });
  return app;
}
