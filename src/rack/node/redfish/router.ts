/**
 * @module
 * The BMC's resource table and request dispatch: path matching, authentication (Basic and
 * X-Auth-Token sessions), privileges, ETags and If-Match, Allow and 405, PATCH property checks,
 * and the one translation of errors into Redfish error bodies. Transport-free: the HTTPS server
 * (rack.ts) hands it a method, a path, headers and a way to read the body, and writes back what it
 * returns. The body is read only for a PATCH or POST that passed authentication and the privilege
 * check: an anonymous client cannot make the BMC read (or buffer) anything.
 */
import { createHash, randomBytes } from 'node:crypto';
import { AuthError, ForbiddenError, InputError, NotFoundError, PreconditionError } from '../../../shared/errors.ts';
import { hashPassword, verifyPassword } from '../../../shared/passwords.ts';
import { errorBody, message } from '../../protocol/redfish.ts';
import type { NodeRuntime } from '../node-runtime.ts';
import { mediaType } from '../http-util.ts';
import type { BmcMemory } from './bmc-state.ts';
import { RedfishError, toRedfish } from './http-error.ts';

export type Privilege = 'Login' | 'ConfigureComponents' | 'ConfigureManager' | 'ConfigureUsers' | 'ConfigureSelf';

export const ROLE_PRIVILEGES: Record<string, readonly Privilege[]> = {
  Administrator: ['Login', 'ConfigureManager', 'ConfigureUsers', 'ConfigureComponents', 'ConfigureSelf'],
  Operator: ['Login', 'ConfigureComponents', 'ConfigureSelf'],
  ReadOnly: ['Login', 'ConfigureSelf'],
};

export interface Principal {
  userName: string;
  roleId: string;
  sessionId?: string;
}

export interface Ctx {
  node: NodeRuntime;
  mem: BmcMemory;
  params: Record<string, string>;
  body: Record<string, unknown>;
  principal: Principal | undefined;
  /** Set by the router; handlers may check finer privileges (e.g. own account). */
  can: (p: Privilege) => boolean;
  /** Checks credentials (with lockout); for session login. */
  login: (userName: string, password: string) => Promise<Principal>;
  /** Whether the account is locked out after repeated failed logins (ManagerAccount Locked). */
  lockedOut: (userName: string) => boolean;
  /** Clears the failed-login counter of an account (PATCH Locked: false). */
  clearLockout: (userName: string) => void;
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface PatchSpec {
  privilege: Privilege;
  /** Writable property paths, "/"-separated (e.g. "Boot/BootSourceOverrideTarget"). */
  writable: readonly string[];
  /** Validates the whole body first, then applies it (nothing changes when it throws). */
  apply: (c: Ctx) => void | Promise<void>;
}

export interface PostSpec {
  privilege: Privilege;
  /** Set for actions: the action's name, for ActionParameter* messages. */
  action?: string;
  /** Parameters an action accepts; others get ActionParameterUnknown. */
  parameters?: readonly string[];
  handle: (c: Ctx) => Reply | Promise<Reply>;
}

export interface Route {
  path: string;
  /** GET without authentication (DSP0266 "Service root", "$metadata", "odata"). */
  public?: boolean;
  contentType?: string;
  get?: (c: Ctx) => unknown;
  /** Status of a GET when not 200 (a task monitor answers 202 while its task runs). */
  getStatus?: (c: Ctx) => number;
  patch?: PatchSpec;
  post?: PostSpec;
  /** POST that needs no authentication (session login). */
  publicPost?: boolean;
  delete?: { privilege: Privilege; handle: (c: Ctx) => Reply };
}

export interface HttpRequest {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string | string[] | undefined>;
  /** Reads the request body (once); rejects with BodyTooLarge over the limit. */
  body: () => Promise<string>;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

interface Compiled {
  route: Route;
  segments: string[];
}

const header = (h: HttpRequest['headers'], name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * The methods this service knows (DSP0266 "Requests"; OPTIONS for CORS). A method outside them is
 * 501 Not Implemented ("the server does not recognize the request method"); one of them that a
 * resource does not support is 405 with Allow.
 */
export const KNOWN_METHODS: readonly string[] = ['GET', 'HEAD', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS'];

/** Failed logins lock an account after this many in a row ... */
export const LOCKOUT_THRESHOLD = 5;
/** ... for this long; older failures are forgotten. */
export const LOCKOUT_MS = 60_000;
/** At most this many user names have failed logins remembered (unknown names included). */
export const MAX_FAILURE_ENTRIES = 1000;

export interface RouterOptions {
  maxFailureEntries?: number;
}

/**
 * The schema a JSON resource conforms to (DSP0266 "Link header"): from its @odata.type,
 * "#ComputerSystem.v1_20_0.ComputerSystem" → ComputerSystem.v1_20_0.json, and for an unversioned
 * collection "#ComputerSystemCollection.ComputerSystemCollection" → ComputerSystemCollection.json.
 */
export function describedBy(resource: unknown): string | undefined {
  if (resource === null || typeof resource !== 'object') return undefined;
  const t = (resource as Record<string, unknown>)['@odata.type'];
  if (typeof t !== 'string') return undefined;
  const parts = t.replace(/^#/, '').split('.');
  if (parts.length < 2) return undefined;
  const file = parts.length >= 3 && /^v\d+_\d+_\d+$/.test(parts[1] ?? '') ? `${parts[0]}.${parts[1]}` : parts[0];
  return `<http://redfish.dmtf.org/schemas/v1/${file}.json>; rel=describedby`;
}

export function etagOf(resource: unknown): string {
  return `"${createHash('sha1').update(JSON.stringify(resource)).digest('hex').slice(0, 20)}"`;
}

/** Leaf property paths of a PATCH body; annotations (keys with "@") are skipped. */
function leafPaths(v: unknown, prefix = ''): string[] {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return [prefix];
  const out: string[] = [];
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (k.includes('@')) continue;
    const p = prefix ? `${prefix}/${k}` : k;
    if (x !== null && typeof x === 'object' && !Array.isArray(x) && Object.keys(x).length > 0) out.push(...leafPaths(x, p));
    else out.push(p);
  }
  return out;
}

function hasPath(obj: unknown, path: string): boolean {
  let cur: unknown = obj;
  for (const k of path.split('/')) {
    if (cur === null || typeof cur !== 'object' || !(k in cur)) return false;
    cur = (cur as Record<string, unknown>)[k];
  }
  return true;
}

export class RedfishRouter {
  private compiled: Compiled[];
  /** Basic-auth results already verified: avoids an scrypt per request. user\0sha256(pw) → hash checked. */
  private basicCache = new Map<string, string>();
  /** Failed logins per BMC and user name, in insertion order (oldest first). */
  private failures = new Map<string, { count: number; since: number }>();
  private readonly maxFailures: number;
  /** A hash to check passwords of unknown users against, so they take as long as known ones. */
  private dummyHash: string | undefined;

  constructor(routes: readonly Route[], private readonly now: () => number, opts: RouterOptions = {}) {
    this.compiled = routes.map((route) => ({ route, segments: route.path.split('/').filter(Boolean) }));
    this.maxFailures = opts.maxFailureEntries ?? MAX_FAILURE_ENTRIES;
  }

  private match(path: string): { route: Route; params: Record<string, string> } | undefined {
    let segs: string[];
    try {
      segs = path.split('/').filter(Boolean).map((s) => decodeURIComponent(s));
    } catch {
      return undefined; // a bad %-sequence names no resource
    }
    outer: for (const c of this.compiled) {
      if (c.segments.length !== segs.length) continue;
      const params: Record<string, string> = {};
      for (let i = 0; i < segs.length; i++) {
        const want = c.segments[i] as string;
        const got = segs[i] as string;
        if (want.startsWith('{')) params[want.slice(1, -1)] = got;
        else if (want !== got) continue outer;
      }
      return { route: c.route, params };
    }
    return undefined;
  }

  /**
   * The route for a request. DSP0266 "POST (create)": a POST to a resource collection is the same
   * as a POST to its Members property, and a service that adds members supports both forms.
   */
  private matchFor(method: string, path: string): { route: Route; params: Record<string, string> } | undefined {
    if (method === 'POST' && path.endsWith('/Members')) {
      const collection = this.match(path.slice(0, -'/Members'.length));
      if (collection?.route.post) return collection;
    }
    return this.match(path);
  }

  private async authenticate(req: HttpRequest, node: NodeRuntime, mem: BmcMemory): Promise<Principal> {
    const token = header(req.headers, 'x-auth-token');
    if (token) {
      const s = mem.sessionByToken(token);
      if (!s) throw new AuthError('the X-Auth-Token is not a valid session (expired or logged out)');
      // the session acts for its account as the account is now: gone, disabled or locked ends it
      const acct = node.state.accounts.find((a) => a.userName === s.userName);
      if (!acct || !acct.enabled || acct.locked) {
        mem.sessions.delete(s.id);
        throw new AuthError('the X-Auth-Token is not a valid session (its account was removed, disabled or locked)');
      }
      s.roleId = acct.roleId;
      return { userName: acct.userName, roleId: acct.roleId, sessionId: s.id };
    }
    const auth = header(req.headers, 'authorization');
    if (auth?.startsWith('Basic ')) {
      const dec = Buffer.from(auth.slice(6), 'base64').toString('utf8');
      const i = dec.indexOf(':');
      if (i > 0) return await this.login(node, dec.slice(0, i), dec.slice(i + 1));
    }
    throw new AuthError('authentication required: use HTTP Basic or an X-Auth-Token from POST /redfish/v1/SessionService/Sessions');
  }

  /** Whether a user of this BMC is locked out by failed logins now. */
  lockedOut(node: NodeRuntime, userName: string): boolean {
    const f = this.failures.get(`${node.serial}\0${userName}`);
    return f !== undefined && f.count >= LOCKOUT_THRESHOLD && this.now() - f.since < LOCKOUT_MS;
  }

  clearLockout(node: NodeRuntime, userName: string): void {
    this.failures.delete(`${node.serial}\0${userName}`);
  }

  /** Forgets failures older than the lockout window, then the oldest beyond the cap. */
  private evictFailures(): void {
    const now = this.now();
    for (const [k, f] of this.failures) if (now - f.since >= LOCKOUT_MS) this.failures.delete(k);
    while (this.failures.size >= this.maxFailures) {
      const oldest = this.failures.keys().next();
      if (oldest.done === true) break;
      this.failures.delete(oldest.value);
    }
  }

  /** Checks credentials, with account lockout after 5 failures in a row (for 60 s). */
  async login(node: NodeRuntime, userName: string, password: string): Promise<Principal> {
    const acct = node.state.accounts.find((a) => a.userName === userName);
    const who = `${node.serial}\0${userName}`;
    const f = this.failures.get(who);
    const locked = this.lockedOut(node, userName);
    const key = `${node.serial}\0${userName}\0${createHash('sha256').update(password).digest('hex')}`;
    let ok = false;
    if (!locked) {
      if (acct === undefined) {
        // as slow as a wrong password for a real account: the time does not tell which names exist
        this.dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
        await verifyPassword(password, this.dummyHash);
      } else {
        ok = this.basicCache.get(key) === acct.passwordHash || (await verifyPassword(password, acct.passwordHash));
      }
    }
    if (!ok || !acct || !acct.enabled || acct.locked) {
      const fresh = f !== undefined && this.now() - f.since < LOCKOUT_MS;
      const n = fresh ? f.count + 1 : 1;
      this.failures.delete(who); // re-inserted last: the map stays in age order
      this.evictFailures();
      this.failures.set(who, { count: n, since: fresh ? f.since : this.now() });
      throw new AuthError(locked ? 'the account is locked after repeated failed logins; try again later' : 'invalid user name or password');
    }
    this.failures.delete(who);
    this.basicCache.set(key, acct.passwordHash);
    return { userName: acct.userName, roleId: acct.roleId };
  }

  async handle(req: HttpRequest, node: NodeRuntime, mem: BmcMemory): Promise<HttpResponse> {
    const method = req.method.toUpperCase();
    let path = req.path;
    if (path.length > 1 && path.endsWith('/') && path !== '/redfish/v1/') path = path.slice(0, -1);
    if (path === '/redfish/v1') path = '/redfish/v1/';
    let action: string | undefined;
    const base: Record<string, string> = { 'OData-Version': '4.0', 'Cache-Control': 'no-cache', 'Content-Type': 'application/json; charset=utf-8' };
    try {
      const odv = header(req.headers, 'odata-version');
      if (!KNOWN_METHODS.includes(method)) throw new RedfishError(501, `${method} is not an HTTP method this service knows; Redfish uses GET, HEAD, POST, PATCH, PUT and DELETE`, [message('OperationNotAllowed')]);
      if (odv !== undefined && odv !== '4.0') throw new RedfishError(412, `OData-Version ${odv} is not supported; use 4.0`, [message('PreconditionFailed')]);
      const m = this.matchFor(method, path);
      const isPublic = m !== undefined && ((m.route.public === true && (method === 'GET' || method === 'HEAD')) || (m.route.publicPost === true && method === 'POST'));
      const principal = isPublic ? undefined : await this.authenticate(req, node, mem);
      if (!m) throw new RedfishError(404, `no resource at ${path}`, [message('ResourceMissingAtURI', [path])]);
      if (/(^|&)\$/.test(req.query)) throw new RedfishError(501, 'query parameters are not supported by this service', [message('QueryNotSupported')]);
      const route = m.route;
      const privileges = principal ? ROLE_PRIVILEGES[principal.roleId] ?? [] : [];
      const can = (p: Privilege): boolean => privileges.includes(p);
      const need = (p: Privilege): void => {
        if (!isPublic && !can(p)) throw new ForbiddenError(`role ${principal?.roleId ?? '(none)'} lacks the ${p} privilege`);
      };
      const allow = ['GET', 'HEAD', route.patch && 'PATCH', route.post && 'POST', route.delete && 'DELETE'].filter(Boolean).join(', ');
      const ctx: Ctx = {
        node, mem, params: m.params, body: {}, principal, can,
        login: (u, p) => this.login(node, u, p),
        lockedOut: (u) => this.lockedOut(node, u),
        clearLockout: (u) => this.clearLockout(node, u),
      };
      if (!route.get && (method === 'GET' || method === 'HEAD')) {
        throw new RedfishError(405, `${method} is not allowed on ${path}`, [message('OperationNotAllowed')], { Allow: allow.replace('GET, HEAD', '').replace(/^, /, '') || 'POST' });
      }
      const view = (): unknown => (route.get ? route.get(ctx) : undefined);
      switch (method) {
        case 'GET':
        case 'HEAD': {
          const current = view();
          const etag = current === undefined ? undefined : etagOf(current);
          need('Login');
          const inm = header(req.headers, 'if-none-match');
          const headers: Record<string, string> = { ...base, Allow: allow };
          if (route.contentType) headers['Content-Type'] = route.contentType;
          if (etag) headers['ETag'] = etag;
          const schema = route.contentType ? undefined : describedBy(current);
          if (schema) headers['Link'] = schema;
          if (inm && etag && inm.split(',').map((s) => s.trim().replace(/^W\//, '')).includes(etag)) return { status: 304, headers, body: '' };
          const text = typeof current === 'string' ? current : JSON.stringify(current);
          return { status: route.getStatus ? route.getStatus(ctx) : 200, headers, body: method === 'HEAD' ? '' : text };
        }
        case 'PATCH': {
          if (!route.patch) break;
          // The current view gives the ETag and names read-only properties. A resource that does not
          // exist is 404; a view that fails for another reason does not stop a PATCH (without If-Match).
          let current: unknown;
          let viewError: Error | undefined;
          try {
            current = view();
          } catch (e) {
            if (e instanceof NotFoundError || (e instanceof RedfishError && e.status === 404)) throw e;
            viewError = e instanceof Error ? e : new Error(String(e));
          }
          const etag = current === undefined ? undefined : etagOf(current);
          need(route.patch.privilege);
          const ifMatch = header(req.headers, 'if-match');
          if (ifMatch && ifMatch !== '*' && !ifMatch.split(',').map((s) => s.trim().replace(/^W\//, '')).includes(etag ?? '')) {
            if (viewError !== undefined) throw viewError;
            throw new PreconditionError(`If-Match ${ifMatch} does not match the resource's current ETag ${etag ?? ''}`);
          }
          const raw = await req.body();
          this.checkContentType(req, raw);
          ctx.body = this.parseBody(raw, true);
          const paths = leafPaths(ctx.body).filter((p) => p !== '');
          if (paths.length === 0) throw new RedfishError(400, 'the PATCH body changes nothing', [message('NoOperation')]);
          const bad = paths.filter((p) => !route.patch?.writable.includes(p));
          if (bad.length > 0) {
            const msgs = bad.map((p) => (hasPath(current, p) ? message('PropertyNotWritable', [p], [`#/${p}`]) : message('PropertyUnknown', [p], [`#/${p}`])));
            throw new RedfishError(400, `${bad.map((p) => (hasPath(current, p) ? `${p} is read-only` : `${p} is not a property of this resource`)).join('; ')}; nothing was changed`, msgs);
          }
          await route.patch.apply(ctx);
          let after: unknown;
          try {
            after = view();
          } catch {
            return { status: 204, headers: { ...base }, body: '' }; // applied; the view cannot be shown
          }
          const headers: Record<string, string> = { ...base };
          if (after !== undefined) headers['ETag'] = etagOf(after);
          return { status: 200, headers, body: JSON.stringify(after) };
        }
        case 'POST': {
          if (!route.post) break;
          action = route.post.action;
          need(route.post.privilege);
          const raw = await req.body();
          this.checkContentType(req, raw);
          ctx.body = this.parseBody(raw, false);
          if (route.post.parameters) {
            const unknown = Object.keys(ctx.body).filter((k) => !k.includes('@') && !route.post?.parameters?.includes(k));
            if (unknown.length > 0) {
              throw new RedfishError(400, `unknown parameter(s) ${unknown.join(', ')} for ${action ?? 'this action'}; accepted: ${route.post.parameters.join(', ') || '(none)'}`,
                unknown.map((u) => message('ActionParameterUnknown', [action ?? path, u], [`#/${u}`])));
            }
          }
          const r = await route.post.handle(ctx);
          return { status: r.status, headers: { ...base, ...r.headers }, body: r.body === undefined ? '' : JSON.stringify(r.body) };
        }
        case 'DELETE': {
          if (!route.delete) break;
          need(route.delete.privilege);
          const r = route.delete.handle(ctx);
          return { status: r.status, headers: { ...base, ...r.headers }, body: r.body === undefined ? '' : JSON.stringify(r.body) };
        }
        default:
          break;
      }
      // a member that does not exist is 404 whatever the method
      view();
      throw new RedfishError(405, `${method} is not allowed on ${path}; allowed: ${allow}`, [message('OperationNotAllowed')], { Allow: allow });
    } catch (e) {
      const r = toRedfish(e, action);
      return { status: r.status, headers: { ...base, ...r.headers }, body: JSON.stringify(r.body) };
    }
  }

  /** A request body must be JSON (DSP0266): another media type is 415. No body needs no type. */
  private checkContentType(req: HttpRequest, raw: string): void {
    if (raw.trim() === '') return;
    const type = mediaType(req.headers['content-type']);
    if (type !== 'application/json') {
      throw new RedfishError(415, `the request body must be sent as Content-Type: application/json, not ${type || '(none)'}`, [message('GeneralError')]);
    }
  }

  private parseBody(raw: string, required: boolean): Record<string, unknown> {
    if (raw.trim() === '') {
      if (required) throw new RedfishError(400, 'the request body is empty; send a JSON object', [message('MalformedJSON')]);
      return {};
    }
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw new RedfishError(400, `malformed JSON: ${(e as Error).message}`, [message('MalformedJSON')]);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new RedfishError(400, 'the request body must be a JSON object', [message('MalformedJSON')]);
    return v as Record<string, unknown>;
  }
}

/** Helpers for validating body values in handlers; each names the field on failure. */
export const need = {
  string(body: Record<string, unknown>, field: string, required: boolean): string | undefined {
    const v = body[field];
    if (v === undefined) {
      if (required) throw new InputError(field, 'is required');
      return undefined;
    }
    if (typeof v !== 'string') throw new InputError(field, `must be a string, not ${JSON.stringify(v)}`, undefined, v);
    return v;
  },
  boolean(body: Record<string, unknown>, field: string): boolean | undefined {
    const v = body[field];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') throw new InputError(field, `must be true or false, not ${JSON.stringify(v)}`, undefined, v);
    return v;
  },
  oneOf<T extends string>(body: Record<string, unknown>, field: string, allowed: readonly T[], required: boolean): T | undefined {
    const v = body[field];
    if (v === undefined) {
      if (required) throw new InputError(field, 'is required');
      return undefined;
    }
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) throw new InputError(field, `must be one of ${allowed.join(', ')}`, allowed, v);
    return v as T;
  },
};

export { errorBody };
