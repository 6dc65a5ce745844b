/**
 * @module
 * Prism's authentication rules (pure; time is injected):
 *
 *  - `parseBasic`: an HTTP Basic `Authorization` header → user and password.
 *  - `SessionStore`: a successful login opens a session (a random token in a cookie); a session
 *    idle longer than its lifetime expires. A session opened by another Prism can be adopted.
 *  - `LoginThrottle`: wrong passwords are rate-limited per client and user: after `maxFailures`
 *    failures within `windowMs`, further attempts are refused for `lockMs`, doubling with each
 *    lockout up to `maxLockMs`. A success clears the record.
 */

export interface Credentials {
  user: string;
  password: string;
}

/** Parses `Basic base64(user:password)`; null when the header is absent or not Basic. */
export function parseBasic(header: string | undefined): Credentials | null {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m?.[1]) return null;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const i = text.indexOf(':');
  if (i <= 0) return null;
  return { user: text.slice(0, i), password: text.slice(i + 1) };
}

export interface Session {
  token: string;
  user: string;
  createdAt: number;
  lastUsedAt: number;
}

export class SessionStore {
  private sessions = new Map<string, Session>();

  constructor(private readonly now: () => number, private readonly ttlMs: number, private readonly newToken: () => string) {}

  open(user: string): Session {
    this.prune();
    const t = this.now();
    const s: Session = { token: this.newToken(), user, createdAt: t, lastUsedAt: t };
    this.sessions.set(s.token, s);
    return s;
  }

  private idle(s: Session, t = this.now()): boolean {
    return t - s.lastUsedAt > this.ttlMs;
  }

  /** Takes in a session another Prism opened (the last leader); false when it has expired. */
  adopt(s: Session): boolean {
    if (this.idle(s)) return false;
    this.sessions.set(s.token, { ...s });
    return true;
  }

  /** The live session of a token (and marks it used), or undefined when unknown or expired. */
  use(token: string): Session | undefined {
    const s = this.sessions.get(token);
    if (!s) return undefined;
    const t = this.now();
    if (this.idle(s, t)) {
      this.sessions.delete(token);
      return undefined;
    }
    s.lastUsedAt = t;
    return s;
  }

  close(token: string): boolean {
    return this.sessions.delete(token);
  }

  /** Whether a token's session is live (without marking it used). */
  has(token: string): boolean {
    const s = this.sessions.get(token);
    return s !== undefined && !this.idle(s);
  }

  /** Forgets every session (they may live on elsewhere). */
  clear(): void {
    this.sessions.clear();
  }

  /** Ends every session of a user (after a password change); answers their tokens. */
  closeAllOf(user: string): string[] {
    const tokens = [...this.sessions].filter(([, s]) => s.user === user).map(([k]) => k);
    for (const k of tokens) this.sessions.delete(k);
    return tokens;
  }

  get size(): number {
    return this.sessions.size;
  }

  private prune(): void {
    const t = this.now();
    for (const [k, s] of this.sessions) if (this.idle(s, t)) this.sessions.delete(k);
  }
}

export interface ThrottleOptions {
  maxFailures: number;
  windowMs: number;
  lockMs: number;
  maxLockMs: number;
}

export const DEFAULT_THROTTLE: ThrottleOptions = { maxFailures: 5, windowMs: 60_000, lockMs: 30_000, maxLockMs: 15 * 60_000 };

interface Record_ {
  failures: number[];
  lockedUntil: number;
  lockouts: number;
}

export class LoginThrottle {
  private records = new Map<string, Record_>();

  constructor(private readonly now: () => number, private readonly o: ThrottleOptions = DEFAULT_THROTTLE) {}

  /** Milliseconds until this key may try again (0 = it may try now). */
  retryAfterMs(key: string): number {
    const r = this.records.get(key);
    return r ? Math.max(0, r.lockedUntil - this.now()) : 0;
  }

  failure(key: string): void {
    const t = this.now();
    const r = this.records.get(key) ?? { failures: [], lockedUntil: 0, lockouts: 0 };
    r.failures = r.failures.filter((f) => t - f < this.o.windowMs);
    r.failures.push(t);
    if (r.failures.length >= this.o.maxFailures) {
      r.lockedUntil = t + Math.min(this.o.lockMs * 2 ** r.lockouts, this.o.maxLockMs);
      r.lockouts++;
      r.failures = [];
    }
    this.records.set(key, r);
    if (this.records.size > 10_000) this.forgetStale(t);
  }

  success(key: string): void {
    this.records.delete(key);
  }

  private forgetStale(t: number): void {
    for (const [k, r] of this.records) {
      if (r.lockedUntil < t && r.failures.every((f) => t - f >= this.o.windowMs)) this.records.delete(k);
    }
  }
}
