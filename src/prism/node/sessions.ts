/**
 * @module
 * Prism's login sessions, shared through the configuration store so a new leader knows the
 * sessions the last one opened: a failover does not log anybody out.
 *
 * The leader keeps its sessions in memory (core/auth.ts SessionStore). A session is written to the
 * store when its cookie first comes back (before that request is answered; a client that sends Basic credentials with every call and
 * never returns the cookie costs no write), then at most once a minute while it is used, each time
 * with a lease a minute longer than the idle lifetime, so the store forgets it by itself. A token
 * this Prism does not know is looked up in the store. The store holds a SHA-256 of the token, never
 * the token. Logout and a password change delete the session(s) there too.
 */
import { createHash } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { errorMessage } from '../../shared/errors.ts';
import { SessionStore, type Session } from '../core/auth.ts';
import { PRISM_SESSIONS_PREFIX } from '../protocol/prism.ts';

/** How often a session in use is written again. */
const REFRESH_MS = 60_000;

interface Stored {
  user: string;
  createdAt: number;
  lastUsedAt: number;
}

export class SharedSessions {
  private readonly local: SessionStore;
  /** When each token's session was last written to the store. */
  private readonly written = new Map<string, number>();

  constructor(
    private readonly etcd: Etcd3,
    private readonly ttlMs: number,
    newToken: () => string,
    private readonly log: (m: string) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.local = new SessionStore(now, ttlMs, newToken);
  }

  private key(token: string): string {
    return PRISM_SESSIONS_PREFIX + createHash('sha256').update(token).digest('hex');
  }

  /** A session for a user who just logged in (kept here until its cookie comes back). */
  open(user: string): Session {
    return this.local.open(user);
  }

  /** The live session of a cookie's token, from this Prism or the store; undefined when unknown or expired. */
  async use(token: string): Promise<Session | undefined> {
    let s = this.local.use(token);
    if (!s) {
      const raw = await this.etcd.get(this.key(token)).string().catch((e: unknown) => {
        this.log(`sessions: cannot read the store: ${errorMessage(e)}`);
        return null;
      });
      const stored = raw ? (JSON.parse(raw) as Stored) : null;
      if (!stored || !this.local.adopt({ token, ...stored })) return undefined;
      this.written.set(token, this.now());
      s = this.local.use(token);
      if (!s) return undefined;
    }
    // the first write is awaited (once a cookie has worked, a failover keeps it working); refreshes are not
    const last = this.written.get(token);
    if (last === undefined) {
      this.written.set(token, this.now());
      await this.write(token, s);
    } else if (this.now() - last >= REFRESH_MS) {
      this.written.set(token, this.now());
      void this.write(token, s);
    }
    return s;
  }

  private async write(token: string, s: Session): Promise<void> {
    const lease = this.etcd.lease(Math.ceil((this.ttlMs + REFRESH_MS) / 1000), { autoKeepAlive: false });
    try {
      const stored: Stored = { user: s.user, createdAt: s.createdAt, lastUsedAt: s.lastUsedAt };
      await lease.put(this.key(token)).value(JSON.stringify(stored));
    } catch (e) {
      this.written.delete(token);
      this.log(`sessions: cannot record a session of ${s.user}: ${errorMessage(e)}`);
    } finally {
      lease.release();
    }
  }

  /** Logout: the session ends here and in the store. */
  async close(token: string): Promise<void> {
    this.local.close(token);
    this.written.delete(token);
    await this.etcd.delete().key(this.key(token));
  }

  /** Every session of a user ends, here and in the store (after a password change). */
  async closeAllOf(user: string): Promise<void> {
    for (const token of this.local.tokensOf(user)) this.written.delete(token);
    this.local.closeAllOf(user);
    const all = await this.etcd.getAll().prefix(PRISM_SESSIONS_PREFIX).strings();
    await Promise.all(Object.entries(all)
      .filter(([, v]) => (JSON.parse(v) as Stored).user === user)
      .map(([k]) => this.etcd.delete().key(k)));
  }
}
