/**
 * @module
 * The rack's control API server (protocol/control.ts). In order, for every request: the bearer
 * token (from headers; nothing else is looked at before it), the route (404, or 405 with Allow),
 * for a change its media type, its body (read only now, at most CONTROL_BODY_LIMIT bytes) and its
 * schema, then the rack. Errors are translated here, once, into `{ error: { code, message, field? } }`.
 * The token lives in `<data-dir>/rack/control-token` (mode 0600); it is never logged or answered.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { z } from 'zod';
import { AuthError, ConflictError, InputError, NotFoundError, errorMessage, isConvergeError } from '../../shared/errors.ts';
import { parseHardwareModel, type HardwareModel } from '../core/models.ts';
import { CONTROL_BODY_LIMIT, addNodesSchema, emptySchema, faultPatchSchema, parseControlBody, type FaultPatch, type RackBmc, type RackFaults, type RackNodeSummary, type RackStatus } from '../protocol/control.ts';
import { BodyTooLarge, clientErrorStatus, hasBody, mediaType, readBody, splitTarget, writeRawResponse } from './http-util.ts';
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

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** A method the route exists for but does not take: 405 with Allow. */
class MethodNotAllowed extends InputError {
  constructor(method: string, path: string, readonly allow: readonly string[]) {
    super('method', `${method} is not allowed on ${path}; allowed: ${allow.join(', ')}`, allow, method);
  }
}

interface Answer {
  status: number;
  body: unknown;
  /** Runs after the answer is sent. */
  after?: () => void;
}

interface Route {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Segments; ':serial' matches one. */
  segments: readonly string[];
  /** For a change: the body's schema. */
  schema?: z.ZodType;
  run: (params: Record<string, string>, body: unknown) => Answer | Promise<Answer>;
}

function route<S extends z.ZodType>(method: 'POST' | 'PATCH' | 'DELETE', path: string, schema: S, run: (params: Record<string, string>, body: z.output<S>) => Answer | Promise<Answer>): Route {
  return { method, segments: path.split('/').filter(Boolean), schema, run: (p, b) => run(p, b as z.output<S>) };
}

function get(path: string, run: (params: Record<string, string>) => Answer): Route {
  return { method: 'GET', segments: path.split('/').filter(Boolean), run: (p) => run(p) };
}

export class ControlApi {
  private token: string;
  private readonly routes: Route[];

  /** `token` is the current one (the rack keeps it in its token file). */
  constructor(target: ControlTarget, private readonly tokenFile: string, token: string) {
    this.token = token;
    const t = target;
    const serial = (p: Record<string, string>): string => p['serial'] ?? '';
    this.routes = [
      get('/rack', () => ({ status: 200, body: t.status() })),
      get('/rack/bmcs', () => ({ status: 200, body: { bmcs: t.bmcs() } })),
      route('POST', '/rack/nodes', addNodesSchema, async (_p, b) => {
        const modelFile = b.modelFile === undefined ? undefined : parseHardwareModel(b.modelFile);
        return { status: 201, body: { nodes: await t.addNodes(b.count, b.model, modelFile) } };
      }),
      get('/rack/nodes/:serial', (p) => ({ status: 200, body: t.nodeSummary(serial(p)) })),
      route('PATCH', '/rack/nodes/:serial/faults', faultPatchSchema, async (p, b) => ({ status: 200, body: { faults: await t.setFaults(serial(p), b) } })),
      route('DELETE', '/rack/nodes/:serial/faults', emptySchema, async (p) => ({ status: 200, body: { faults: await t.clearFaults(serial(p)) } })),
      route('POST', '/rack/shutdown', emptySchema, () => ({ status: 202, body: { stopping: true }, after: () => t.shutdown() })),
      route('POST', '/rack/token', emptySchema, () => {
        this.token = writeControlToken(this.tokenFile);
        return { status: 200, body: { rotated: true } };
      }),
    ];
  }

  /** Serves the API on a node:http server, and answers what its parser refuses in the API's shape. */
  attach(server: Server): void {
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res));
    const methodError = { code: 'CVG_ERR_INPUT', message: 'the HTTP method is not one this API knows (it uses GET, POST, PATCH and DELETE)', field: 'method' };
    server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      const status = clientErrorStatus(err, socket);
      if (status === undefined) return void socket.destroy();
      const error = status === 501
        ? methodError
        : { code: 'CVG_ERR_INPUT', message: status === 431 ? 'the request headers are too large' : status === 408 ? 'the request took too long to arrive' : 'malformed HTTP request', field: 'request' };
      writeRawResponse(socket, status, { 'Content-Type': 'application/json' }, JSON.stringify({ error }));
    });
    // CONNECT (a proxy's method) would otherwise get its connection closed unanswered
    server.on('connect', (_req: IncomingMessage, socket: Duplex) => writeRawResponse(socket, 501, { 'Content-Type': 'application/json' }, JSON.stringify({ error: methodError })));
  }

  /** Checks `Authorization: Bearer <token>` (a constant-time comparison of digests). */
  private authenticate(req: IncomingMessage): void {
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    if (!m?.[1] || !timingSafeEqual(digest(m[1]), digest(this.token))) {
      throw new AuthError("the rack control API needs Authorization: Bearer <token>, the token in the rack's data dir (rack/control-token)");
    }
  }

  private match(method: string, path: string): { route: Route; params: Record<string, string> } {
    let segs: string[];
    try {
      segs = path.split('/').filter(Boolean).map((s) => decodeURIComponent(s));
    } catch {
      throw new NotFoundError('control endpoint', path);
    }
    const allow: string[] = [];
    for (const r of this.routes) {
      if (r.segments.length !== segs.length) continue;
      const params: Record<string, string> = {};
      if (!r.segments.every((want, i) => (want.startsWith(':') ? ((params[want.slice(1)] = segs[i] ?? ''), true) : want === segs[i]))) continue;
      if (r.method === method) return { route: r, params };
      allow.push(r.method);
    }
    if (allow.length > 0) throw new MethodNotAllowed(method, path, allow);
    throw new NotFoundError('control endpoint', path);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      // an answer before the body was read to its end: the connection cannot carry another request
      if (hasBody(req) && !req.complete) headers['Connection'] = 'close';
      res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers });
      res.end(JSON.stringify(body));
    };
    try {
      this.authenticate(req);
      const method = req.method ?? 'GET';
      const { route: r, params } = this.match(method, splitTarget(req.url ?? '/').path);
      let body: unknown;
      if (r.schema) {
        // JSON only: a web page cannot send that without a CORS preflight, which this API never allows
        if (mediaType(req.headers['content-type']) !== 'application/json') {
          throw new InputError('Content-Type', 'must be application/json (the control API takes JSON only)', ['application/json'], req.headers['content-type'] ?? '(none)');
        }
        const raw = await readBody(req, CONTROL_BODY_LIMIT, 1 << 20);
        let v: unknown = {};
        if (raw.trim()) {
          try {
            v = JSON.parse(raw);
          } catch {
            throw new InputError('body', 'malformed JSON');
          }
        }
        body = parseControlBody(r.schema, v);
      }
      const a = await r.run(params, body);
      send(a.status, a.body);
      a.after?.();
    } catch (e) {
      if (res.headersSent) return void res.end();
      const t = translate(e);
      send(t.status, { error: t.error }, t.headers);
    }
  }
}

/** The one translation of errors into the control API's answers. */
function translate(e: unknown): { status: number; error: Record<string, unknown>; headers: Record<string, string> } {
  const error: Record<string, unknown> = { code: isConvergeError(e) ? e.code : 'CVG_ERR_INTERNAL', message: errorMessage(e) };
  const headers: Record<string, string> = {};
  let status = 500;
  if (e instanceof InputError) {
    status = e instanceof MethodNotAllowed ? 405 : 400;
    if (e instanceof MethodNotAllowed) headers['Allow'] = e.allow.join(', ');
    error['field'] = e.field;
    if (e.allowed) error['allowed'] = e.allowed;
  } else if (e instanceof AuthError) {
    status = 401;
    headers['WWW-Authenticate'] = 'Bearer realm="converge-rack"';
  } else if (e instanceof NotFoundError) {
    status = 404;
  } else if (e instanceof ConflictError) {
    status = 409;
  } else if (e instanceof BodyTooLarge) {
    status = 413;
    Object.assign(error, { code: 'CVG_ERR_INPUT', field: 'body', message: `${e.message}; nothing was changed` });
    headers['Connection'] = 'close';
  } else if (e instanceof RedfishError) {
    // a BMC address conflict while racking nodes (409)
    status = e.status;
    error['code'] = e.status === 409 ? 'CVG_ERR_CONFLICT' : 'CVG_ERR_INTERNAL';
  }
  return { status, error, headers };
}
