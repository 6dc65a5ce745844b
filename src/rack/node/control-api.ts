/**
 * @module
 * The rack's control API server (protocol/control.ts), on the platform's one HTTP factory
 * (shared/http-api.ts: Fastify, its bearer-token hook, its error mapping). In order, for every
 * request: the bearer token (from headers; nothing else is looked at before it), the route (404, or
 * 405 with Allow), for a change its media type, its body (read only now, at most CONTROL_BODY_LIMIT
 * bytes) and its schema, then the rack. Errors are answered as `{ error: { code, message, field?, allowed? } }`.
 * The token lives in `<data-dir>/rack/control-token` (mode 0600); it is never logged or answered.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { ConflictError, InputError, NotFoundError } from '../../shared/errors.ts';
import { createInternalApi, errorBody } from '../../shared/http-api.ts';
import { parseHardwareModel, type HardwareModel } from '../core/models.ts';
import { CONTROL_BODY_LIMIT, addNodesSchema, emptySchema, faultPatchSchema, parseControlBody, type FaultPatch, type RackBmc, type RackFaults, type RackNodeSummary, type RackStatus } from '../protocol/control.ts';
import { clientErrorStatus, mediaType, splitTarget, writeRawResponse } from './http-util.ts';
import { RedfishError } from './redfish/http-error.ts';

/** What the control API drives: the rack. */
export interface ControlTarget {
  status(): RackStatus;
  bmcs(): RackBmc[];
  addNodes(count: number, model?: string, modelFile?: HardwareModel): Promise<RackNodeSummary[]>;
  /** The node's summary; NotFoundError when the rack has no such node. */
  nodeSummary(serial: string): RackNodeSummary;
  setFaults(serial: string, patch: FaultPatch): Promise<RackFaults>;
  clearFaults(serial: string): Promise<RackFaults>;
  /** Stops the rack (called once the answer is sent). */
  shutdown(): void;
}

/** A new token: 32 random bytes, base64url. */
function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Writes a token file (mode 0600, replaced whole, never half-written). */
export function writeControlToken(path: string, token = newToken()): string {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${token}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600); // a leftover temporary file keeps its old mode otherwise
  renameSync(tmp, path);
  return token;
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

interface Route {
  method: Method;
  /** Fastify's form: ':serial' matches one segment. */
  path: string;
  /** For a change: the body's schema. */
  schema?: z.ZodType;
  run: (params: Record<string, string>, body: unknown) => unknown;
  /** Runs once the answer is sent. */
  after?: () => void;
  status?: number;
}

function change<S extends z.ZodType>(method: 'POST' | 'PATCH' | 'DELETE', path: string, schema: S, run: (params: Record<string, string>, body: z.output<S>) => unknown, more: Partial<Route> = {}): Route {
  return { method, path, schema, run: (p, b) => run(p, b as z.output<S>), ...more };
}

function get(path: string, run: (params: Record<string, string>) => unknown): Route {
  return { method: 'GET', path, run: (p) => run(p) };
}

/** The methods of `routes` that take `path` (a request path, matched segment by segment). */
function methodsOf(routes: readonly Route[], path: string): Method[] {
  let segs: string[];
  try {
    segs = path.split('/').filter(Boolean).map((x) => decodeURIComponent(x));
  } catch {
    return [];
  }
  return routes.filter((r) => {
    const want = r.path.split('/').filter(Boolean);
    return want.length === segs.length && want.every((w, i) => w.startsWith(':') || w === segs[i]);
  }).map((r) => r.method);
}

const METHOD_ERROR = { code: 'CVG_ERR_INPUT', message: 'the HTTP method is not one this API knows (it uses GET, POST, PATCH and DELETE)', field: 'method' };

/** What Node's HTTP parser refuses, in the API's shape: 501 for a method it does not know, 431, 408, 400. */
function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  const status = clientErrorStatus(err, socket);
  if (status === undefined) return void socket.destroy();
  const error = status === 501
    ? METHOD_ERROR
    : { code: 'CVG_ERR_INPUT', message: status === 431 ? 'the request headers are too large' : status === 408 ? 'the request took too long to arrive' : 'malformed HTTP request', field: 'request' };
  writeRawResponse(socket, status, { 'Content-Type': 'application/json' }, JSON.stringify({ error }));
}

/**
 * The control API: a Fastify instance to listen with. `token` is the current one (the rack keeps
 * it in `tokenFile`); POST /rack/token replaces both, and the next request needs the new one.
 */
export function createControlApi(target: ControlTarget, tokenFile: string, token: string): FastifyInstance {
  let current = token;
  const t = target;
  const serial = (p: Record<string, string>): string => p['serial'] ?? '';
  const routes: Route[] = [
    get('/rack', () => t.status()),
    get('/rack/bmcs', () => ({ bmcs: t.bmcs() })),
    change('POST', '/rack/nodes', addNodesSchema, async (_p, b) => {
      const modelFile = b.modelFile === undefined ? undefined : parseHardwareModel(b.modelFile);
      try {
        return { nodes: await t.addNodes(b.count, b.model, modelFile) };
      } catch (e) {
        // a BMC address conflict while racking nodes
        if (e instanceof RedfishError && e.status === 409) throw new ConflictError(e.message);
        throw e;
      }
    }, { status: 201 }),
    get('/rack/nodes/:serial', (p) => t.nodeSummary(serial(p))),
    change('PATCH', '/rack/nodes/:serial/faults', faultPatchSchema, async (p, b) => ({ faults: await t.setFaults(serial(p), b) })),
    change('DELETE', '/rack/nodes/:serial/faults', emptySchema, async (p) => ({ faults: await t.clearFaults(serial(p)) })),
    change('POST', '/rack/shutdown', emptySchema, () => ({ stopping: true }), { status: 202, after: () => t.shutdown() }),
    change('POST', '/rack/token', emptySchema, () => {
      current = writeControlToken(tokenFile);
      return { rotated: true };
    }),
  ];

  const app = createInternalApi({
    bearer: {
      token: () => current,
      peer: { role: 'operator', name: 'rack control token' },
      realm: 'converge-rack',
      hint: "the rack control API needs Authorization: Bearer <token>, the token in the rack's data dir (rack/control-token)",
    },
    bodyLimit: CONTROL_BODY_LIMIT,
    lenientSlashes: true, // as before: `/rack/` and `//rack` are /rack
    clientErrorHandler: answerClientError,
  });
  // CONNECT (a proxy's method) would otherwise get its connection closed unanswered
  app.server.on('connect', (_req: unknown, socket: Duplex) => writeRawResponse(socket, 501, { 'Content-Type': 'application/json' }, JSON.stringify({ error: METHOD_ERROR })));
  app.addHook('onSend', (_req, reply, payload, done) => {
    void reply.header('Cache-Control', 'no-store');
    done(null, payload);
  });
  // after the token (the factory's hook, registered first): a path no route takes is 404, a known
  // path with another method 405 with Allow, before any body is read
  app.addHook('onRequest', (req: FastifyRequest, reply: FastifyReply, done) => {
    if (!req.is404) return done();
    const path = splitTarget(req.url).path;
    const allow = methodsOf(routes, path);
    if (allow.length === 0) return done(new NotFoundError('control endpoint', path));
    const e = new InputError('method', `${req.method} is not allowed on ${path}; allowed: ${allow.join(', ')}`, allow, req.method);
    void reply.status(405).header('Allow', allow.join(', ')).send(errorBody(e));
  });
  for (const r of routes) {
    const schema = r.schema;
    app.route({
      method: r.method,
      url: r.path,
      exposeHeadRoute: false,
      // JSON only: a web page cannot send that without a CORS preflight, which this API never allows
      ...(schema
        ? {
            onRequest: (req: FastifyRequest, _reply: FastifyReply, done: (e?: Error) => void) => {
              const type = req.headers['content-type'];
              if (mediaType(type) === 'application/json') done();
              else done(new InputError('Content-Type', 'must be application/json (the control API takes JSON only)', ['application/json'], type ?? '(none)'));
            },
          }
        : {}),
      handler: async (req, reply) => {
        const params = req.params as Record<string, string>;
        const body = schema ? parseControlBody(schema, req.body === undefined ? {} : req.body) : undefined;
        const answer = await r.run(params, body);
        if (r.after) reply.raw.once('close', r.after);
        return reply.status(r.status ?? 200).send(answer);
      },
    });
  }
  return app;
}
