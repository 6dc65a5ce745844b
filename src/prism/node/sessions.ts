/**
 * @module
 * Prism's login sessions, shared through the configuration store so a new leader knows the
 * sessions the last one opened: a failover does not log anybody out.
 *
 * The leader keeps its sessions in memory (core/auth.ts SessionStore). A session is written to the
 * store when its cookie first comes back (before that request is answered; a client that sends
 * Basic credentials with every call and never returns the cookie costs no write), then at most
 * once a minute while it is used, under a lease a minute longer than the idle lifetime (kept alive
 * by those writes), so the store forgets an idle session by itself. A token this Prism does not
 * know is looked up in the store. The store holds a SHA-256 of the token, never the token.
 *
 * Logout and a password change end sessions here and in the store; a write still in flight when
 * that happens is undone when it lands. A Prism whose leadership changes forgets its own copy
 * (`forgetLocal`), so a session ended on another leader cannot come back from its memory.
 */
import { createHash } from 'node:crypto';
import type { Etcd3, Lease } from 'etcd3';
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
  /** When each token's session was last written to the store, and the lease it was written under. */
  private readonly written = new Map<string, { at: number; lease: Lease | null }>();
  /** Counts endings, so a store read that raced one is not trusted. */
  private endings = 0;

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
      const stored = await this.lookUp(token);
      if (!stored || !this.local.adopt({ token, ...stored })) return undefined;
      this.written.set(token, { at: this.now(), lease: null });
      s = this.local.use(token);
      if (!s) return undefined;
    }
    // the first write is awaited (once a cookie has worked, a failover keeps it working); refreshes are not
    const last = this.written.get(token);
    if (last === undefined) {
      this.written.set(token, { at: this.now(), lease: null });
      await this.write(token, s);
    } else if (this.now() - last.at >= REFRESH_MS) {
      last.at = this.now();
      void this.write(token, s);
    }
    return s;
  }

  /** The stored session of a token; a read that raced a logout or password change is read again. */
  private async lookUp(token: string): Promise<Stored | null> {
    for (let i = 0; i < 3; i++) {
      const before = this.endings;
      const raw = await this.etcd.get(this.key(token)).string().catch((e: unknown) => {
        this.log(`sessions: cannot read the store: ${errorMessage(e)}`);
        return null;
      });
      if (before === this.endings) return raw ? (JSON.parse(raw) as Stored) : null;
    }
    return null;
  }

  private async write(token: string, s: Session): Promise<void> {
    const entry = this.written.get(token);
    if (!entry) return;
    const stored: Stored = { user: s.user, createdAt: s.createdAt, lastUsedAt: s.lastUsedAt };
    try {
      // one lease per session, kept alive by each write; a lost one is replaced
      let lease = entry.lease;
      if (lease) await lease.keepaliveOnce().catch(() => (lease = null));
      lease ??= this.etcd.lease(Math.ceil((this.ttlMs + REFRESH_MS) / 1000), { autoKeepAlive: false });
      entry.lease = lease;
      await lease.put(this.key(token)).value(JSON.stringify(stored));
      // ended while the write was in flight: undo it
      if (!this.local.has(token)) await lease.revoke();
    } catch (e) {
      this.written.delete(token);
      this.log(`sessions: cannot record a session of ${s.user}: ${errorMessage(e)}`);
    }
    this.prune();
  }

  /** Drops the write records of sessions that have ended here. */
  private prune(): void {
    for (const [token, w] of this.written) {
      if (!this.local.has(token)) {
        w.lease?.release();
        this.written.delete(token);
      }
    }
  }

  private async end(tokens: string[]): Promise<void> {
    this.endings++;
    await Promise.all(tokens.map(async (token) => {
      const lease = this.written.get(token)?.lease;
      this.written.delete(token);
      this.local.close(token);
      await this.etcd.delete().key(this.key(token));
      if (lease) await lease.revoke().catch(() => undefined);
    }));
  }

  /** Logout: the session ends here and in the store. */
  async close(token: string): Promise<void> {
    await this.end([token]);
  }

  /** Every session of a user ends, here and in the store (after a password change). */
  async closeAllOf(user: string): Promise<void> {
    await this.end(this.local.closeAllOf(user));
    const all = await this.etcd.getAll().prefix(PRISM_SESSIONS_PREFIX).strings();
    await Promise.all(Object.entries(all)
      .filter(([, v]) => (JSON.parse(v) as Stored).user === user)
      .map(([k]) => this.etcd.delete().key(k)));
  }

  /** Leadership moved: forget this Prism's copy (the store keeps the sessions for whoever leads). */
  forgetLocal(): void {
    this.endings++;
    this.local.clear();
    for (const w of this.written.values()) w.lease?.release();
    this.written.clear();
  }
}
