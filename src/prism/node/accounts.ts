/**
 * @module
 * Prism's local accounts and tasks, kept in the configuration store so every Prism (and so the
 * next leader) sees the same. Passwords are stored as scrypt hashes only; a password that checked
 * out is remembered (as a SHA-256 of user and password, in memory, for a minute) so an API client
 * sending Basic credentials with every call does not pay scrypt every time. Any change to the
 * accounts in the store — a password changed through another Prism — forgets what was remembered.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Etcd3, Watcher } from 'etcd3';
import { hashPassword, verifyPassword } from '../../shared/passwords.ts';
import { InputError, NotFoundError, errorMessage } from '../../shared/errors.ts';
import { PASSWORD_RULE, PRISM_USERS_PREFIX, TASKS_PREFIX, type PrismTask, type PrismUser } from '../protocol/prism.ts';
import { rangeStrings } from '../../shared/etcd-range.ts';

export function checkNewPassword(field: string, v: unknown): string {
  if (typeof v !== 'string' || v.length < PASSWORD_RULE.min || v.length > PASSWORD_RULE.max) throw new InputError(field, `must be ${PASSWORD_RULE.min} to ${PASSWORD_RULE.max} characters`);
  return v;
}

export class Accounts {
  private verified = new Map<string, number>();

  private watcher: Watcher | undefined;
  /** Whether changes are seen as they happen; until then nothing is remembered. */
  private following = false;
  /** Counts changes seen, so a check that read the account before a change does not remember it. */
  private generation = 0;

  constructor(private readonly etcd: Etcd3, private readonly now: () => number = Date.now) {}

  /**
   * Follows the accounts in the store: a change anywhere forgets the passwords remembered here.
   * A watch the store ends is made again (remembering nothing meanwhile).
   */
  async follow(log: (m: string) => void = () => undefined): Promise<void> {
    const w = await this.etcd.watch().prefix(PRISM_USERS_PREFIX).create();
    this.watcher = w;
    this.following = true;
    const forget = (): void => {
      this.generation++;
      this.verified.clear();
    };
    w.on('put', forget).on('delete', forget).on('connected', forget);
    w.on('error', (e: unknown) => {
      this.following = false;
      forget();
      log(`accounts: the watch of the store ended (${errorMessage(e)}); watching again`);
      void w.cancel().catch(() => undefined);
      setTimeout(() => void this.follow(log).catch((err: unknown) => log(`accounts: cannot watch the store: ${errorMessage(err)}`)), 1000).unref();
    });
  }

  async stop(): Promise<void> {
    this.following = false;
    await this.watcher?.cancel();
  }

  private async user(name: string): Promise<PrismUser | null> {
    const raw = await this.etcd.get(PRISM_USERS_PREFIX + name).string();
    return raw ? (JSON.parse(raw) as PrismUser) : null;
  }

  private key(user: string, password: string): string {
    return createHash('sha256').update(`${user}\0${password}`).digest('hex');
  }

  /** Whether the password is the user's (false for an unknown user, after the same work). */
  async check(user: string, password: string): Promise<boolean> {
    const k = this.key(user, password);
    const until = this.verified.get(k);
    if (until !== undefined && until > this.now()) return true;
    const generation = this.generation;
    const u = await this.user(user);
    const ok = await verifyPassword(password, u?.passwordHash ?? 'scrypt$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
    if (ok && u) {
      if (this.following && generation === this.generation) this.verified.set(k, this.now() + 60_000);
      return true;
    }
    return false;
  }

  async changePassword(user: string, oldPassword: string, newPassword: unknown): Promise<void> {
    const next = checkNewPassword('newPassword', newPassword);
    if (next === oldPassword) throw new InputError('newPassword', 'must differ from the current password');
    const u = await this.user(user);
    if (!u) throw new NotFoundError('user', user);
    const updated: PrismUser = { ...u, passwordHash: hashPassword(next), initial: false, updatedAt: new Date(this.now()).toISOString() };
    await this.etcd.put(PRISM_USERS_PREFIX + user).value(JSON.stringify(updated));
    this.verified.clear();
  }
}

/** Long operations started through Prism, recorded in the store: QUEUED → RUNNING → SUCCEEDED | FAILED. */
export class Tasks {
  constructor(private readonly etcd: Etcd3, private readonly log: (m: string) => void) {}

  async get(uuid: string): Promise<PrismTask> {
    const raw = await this.etcd.get(TASKS_PREFIX + uuid).string();
    if (!raw) throw new NotFoundError('task', uuid);
    return JSON.parse(raw) as PrismTask;
  }

  /** Every task started through Prism (newest first). */
  async list(): Promise<PrismTask[]> {
    const all = await rangeStrings(this.etcd, TASKS_PREFIX);
    return Object.values(all).map((v) => JSON.parse(v) as PrismTask).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  private async put(t: PrismTask): Promise<void> {
    await this.etcd.put(TASKS_PREFIX + t.uuid).value(JSON.stringify(t));
  }

  /** Records a task and runs `work` in the background; answers the task's uuid once recorded. */
  async start(operationType: string, entities: PrismTask['entities'], work: (progress: (percent: number, message: string) => Promise<void>) => Promise<PrismTask['entities'] | void>): Promise<string> {
    const t: PrismTask = { uuid: randomUUID(), operationType, status: 'QUEUED', percentage: 0, message: 'queued', entities, error: null, createdAt: new Date().toISOString(), startedAt: null, completedAt: null };
    await this.put(t);
    void (async () => {
      t.status = 'RUNNING';
      t.startedAt = new Date().toISOString();
      t.message = 'running';
      await this.put(t);
      try {
        const more = await work(async (percent, message) => {
          t.percentage = percent;
          t.message = message;
          await this.put(t);
        });
        if (more) t.entities = more;
        t.status = 'SUCCEEDED';
        t.percentage = 100;
        t.message = 'done';
      } catch (e) {
        t.status = 'FAILED';
        t.error = errorMessage(e);
        t.message = 'failed';
      }
      t.completedAt = new Date().toISOString();
      await this.put(t).catch((e: unknown) => this.log(`task ${t.uuid}: cannot record the end: ${errorMessage(e)}`));
    })();
    return t.uuid;
  }
}
