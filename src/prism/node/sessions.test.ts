import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { SharedSessions } from './sessions.ts';
import { PRISM_SESSIONS_PREFIX } from '../protocol/prism.ts';

/** The part of etcd3's client the sessions use, over a Map; leases own keys as etcd's do. */
class FakeStore {
  readonly kv = new Map<string, string>();
  private readonly owner = new Map<string, object>();
  /** When set, puts wait for it (to land a write after something else). */
  gate: Promise<void> | null = null;

  get(key: string): { string: () => Promise<string | null> } {
    return { string: () => Promise.resolve(this.kv.get(key) ?? null) };
  }

  delete(): { key: (k: string) => Promise<void> } {
    return { key: (k) => { this.kv.delete(k); this.owner.delete(k); return Promise.resolve(); } };
  }

  getAll(): { prefix: (p: string) => { strings: () => Promise<Record<string, string>> } } {
    return { prefix: (p) => ({ strings: () => Promise.resolve(Object.fromEntries([...this.kv].filter(([k]) => k.startsWith(p)))) }) };
  }

  lease(): object {
    const lease = {
      put: (key: string) => ({
        value: async (v: string) => {
          if (this.gate) await this.gate;
          this.kv.set(key, v);
          this.owner.set(key, lease);
        },
      }),
      keepaliveOnce: () => Promise.resolve({}),
      revoke: () => {
        for (const [k, o] of this.owner) if (o === lease) this.delete().key(k);
        return Promise.resolve();
      },
      release: () => undefined,
    };
    return lease;
  }
}

function prisms(): { store: FakeStore; a: SharedSessions; b: SharedSessions; tokens: string[] } {
  const store = new FakeStore();
  let n = 0;
  const tokens: string[] = [];
  const token = (): string => {
    const t = `token-${++n}`;
    tokens.push(t);
    return t;
  };
  const etcd = store as unknown as Etcd3;
  return { store, a: new SharedSessions(etcd, 900_000, token, () => undefined), b: new SharedSessions(etcd, 900_000, token, () => undefined), tokens };
}

test('a session reaches the store when its cookie first comes back, under a hash of the token; another Prism adopts it', async () => {
  const { store, a, b } = prisms();
  const s = a.open('admin');
  assert.equal(store.kv.size, 0, 'a login whose cookie never comes back costs no write');
  assert.equal((await a.use(s.token))?.user, 'admin');
  assert.equal(store.kv.size, 1);
  const [key, value] = [...store.kv][0] ?? ['', ''];
  assert.match(key, new RegExp(`^${PRISM_SESSIONS_PREFIX}[0-9a-f]{64}$`));
  assert.ok(!key.includes(s.token) && !value.includes(s.token), 'the store never holds the token');
  assert.equal((await b.use(s.token))?.user, 'admin', 'the next leader knows it');
  assert.equal(await b.use('forged'), undefined);
});

test('a session ended under another leader does not come back from a former leader\'s memory', async () => {
  const { a, b } = prisms();
  const s = a.open('admin');
  await a.use(s.token);
  a.forgetLocal(); // a lost the leadership
  await b.use(s.token);
  await b.close(s.token); // logout on b
  assert.equal(await b.use(s.token), undefined);
  assert.equal(await a.use(s.token), undefined, 'a leads again: the session stays ended');
  // a password change ends every session of the user, wherever it was opened
  const t1 = a.open('admin');
  await a.use(t1.token);
  const t2 = b.open('admin');
  await b.use(t2.token);
  const other = b.open('ops');
  await b.use(other.token);
  a.forgetLocal();
  await b.closeAllOf('admin');
  assert.equal(await b.use(t2.token), undefined);
  assert.equal(await b.use(t1.token), undefined);
  assert.equal(await a.use(t1.token), undefined);
  assert.equal((await a.use(other.token))?.user, 'ops', 'another user\'s session goes on');
});

test('a write that lands after the logout is undone', async () => {
  const { store, a } = prisms();
  const s = a.open('admin');
  let open = (): void => undefined;
  store.gate = new Promise<void>((r) => (open = r));
  const using = a.use(s.token); // its first write waits at the gate
  await a.close(s.token);
  open();
  await using;
  assert.equal(store.kv.size, 0, 'the late write was revoked with its lease');
  assert.equal(await a.use(s.token), undefined);
});
