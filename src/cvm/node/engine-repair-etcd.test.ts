/**
 * The v2 repair loop (engine-repair.ts) against a real etcd on 127.130.0.1:23790 (peer 23791):
 * three CVMs with their own EtcdMetaStore (own lease), VdiskOwners over it, replicas in memory
 * (ReplicaModels) and liveness as a set. A vdisk nobody owns loses a node: only the leader takes it
 * (through the real owner key), restores it (compare-and-swap in etcd) and gives it back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { etcdFixture } from '../../../test/drivers/etcd.ts';
import { SystemClock } from '../../shared/clock.ts';
import { ConflictError, UnavailableError } from '../../shared/errors.ts';
import { crc32c } from '../core/engine/crc32c.ts';
import { EXTENT_BYTES, KEYS, type EgroupRecord } from '../core/engine/layout.ts';
import { VdiskOwner } from '../core/engine/owner.ts';
import type { ReplicaIo } from '../core/engine/ports.ts';
import { ReplicaModel } from '../core/engine/replica-model.ts';
import type { LivenessEvent } from '../core/failure-detector.ts';
import { EtcdMetaStore } from './engine-meta.ts';
import { CopyBudget, EngineRepairer } from './engine-repair.ts';
import type { HeldOwners } from './owners.ts';

const IP = '127.130.0.1';
const fixture = etcdFixture(IP, 'engine-repair');
const clock = new SystemClock();

const until = async (what: string, fn: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> => {
  const end = Date.now() + ms;
  for (;;) {
    if (await Promise.resolve().then(fn).catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

const client = (): Etcd3 => fixture.client();

const opts = fixture.opts;

test('an unowned vdisk that lost a node is restored by the leader alone, through the real owner key and records', opts, async () => {
  const names = ['a', 'b', 'c'];
  const nodes = new Map(names.map((n) => [n, new ReplicaModel(n, [{ serial: `${n}-ssd`, media: 'ssd' }], crc32c)]));
  const down = new Set<string>();
  const subs = new Set<(e: LivenessEvent) => void>();
  const io: ReplicaIo = (() => {
    const at = (node: string): ReplicaModel => {
      if (down.has(node)) throw new UnavailableError(`${node} is down`);
      return nodes.get(node)!;
    };
    const call = <T>(fn: () => T): Promise<T> => Promise.resolve().then(fn);
    return {
      write: (l, f) => call(() => at(l.node).write(l.disk, f)),
      read: (l, r) => call(() => at(l.node).read(l.disk, r)),
      extentGens: (l, v, e, epoch) => call(() => at(l.node).extentGens(l.disk, v, e, epoch)),
      readExtent: (l, v, e, x) => call(() => at(l.node).readExtent(l.disk, v, e, x)),
      writeExtent: (l, v, e, x, epoch, img) => call(() => at(l.node).writeExtent(l.disk, v, e, x, epoch, img)),
      sync: (c, v) => call(() => at(c.node).sync(v)),
    };
  })();
  const metaOf = new Map<string, EtcdMetaStore>();
  for (const n of names) {
    const s = fixture.closeAfter(new EtcdMetaStore({ etcd: client(), clock, ttlS: 5, marginMs: 300 }));
    await s.start();
    metaOf.set(n, s);
  }
  const open = (node: string, vdisk: string, budget?: CopyBudget): Promise<VdiskOwner> => VdiskOwner.open({
    vdisk, node, cvmIp: `ip-${node}`, rf: 2, io, meta: metaOf.get(node)!, clock, checksum: crc32c,
    liveness: { isDown: (n) => down.has(n), subscribe: () => () => undefined },
    space: { disks: () => names.map((n) => ({ serial: `${n}-ssd`, node: n, cvmIp: `ip-${n}`, freeBytes: 1e12, ok: true, media: 'ssd' as const })) },
    ...(budget ? { copyThrottle: budget.throttle } : {}),
  });
  // c writes the vdisk (its first replica local) and closes it: nobody owns it
  const writer = await open('c', 'u1');
  await writer.pwrite(0, new Uint8Array(2 * EXTENT_BYTES).fill(4));
  await writer.close();
  const etcd = client();
  assert.equal(await etcd.get(KEYS.owner('u1')).string(), null);
  const before = JSON.parse((await etcd.get(KEYS.egroup('u1', 0)).string())!) as EgroupRecord;
  assert.equal(before.replicas[0]!.node, 'c');

  const acquired: string[] = [];
  const registry = (node: string, budget: CopyBudget): HeldOwners => {
    const held = new Map<string, VdiskOwner>();
    return {
      async acquire(uuid) {
        try {
          const o = await open(node, uuid, budget);
          acquired.push(`${node} ${uuid}`);
          held.set(uuid, o);
          return o;
        } catch (e) {
          if (e instanceof ConflictError) return null;
          throw e;
        }
      },
      held: () => [...held.values()],
      async releaseIfIdle(uuid) {
        const o = held.get(uuid);
        held.delete(uuid);
        await o?.close();
      },
    };
  };
  const repairers = ['a', 'b'].map((n) => {
    const budget = new CopyBudget({ clock, mibPerSec: 64 });
    return new EngineRepairer({
      clock, node: n, owners: registry(n, budget), budget, log: () => undefined, intervalMs: 200,
      liveness: { isDown: (x) => down.has(x), on: (fn) => { subs.add(fn); return () => subs.delete(fn); } },
      members: () => names,
      list: (p) => client().getAll().prefix(p).strings(),
      pool: () => Promise.resolve(names.map((x) => ({ serial: `${x}-ssd`, node: x, cvmIp: `ip-${x}`, capacityBytes: 100 * 2 ** 30, media: 'ssd' as const }))),
      vdisks: () => Promise.resolve([{ uuid: 'u1', rf: 2 }]),
    });
  });
  for (const r of repairers) r.start();
  await until('a first pass', () => repairers.every((r) => r.stats.passes > 0));
  assert.equal(repairers[0]!.stats.pending, 0);
  // c goes: its lease with it, and it is declared down
  down.add('c');
  await metaOf.get('c')!.close();
  for (const f of subs) f({ kind: 'down', node: 'c', record: { node: 'c', by: 'test', at: new Date().toISOString(), reason: 'test' } });
  const t0 = Date.now();
  await until('u1 restored and given back', async () => {
    const r = JSON.parse((await etcd.get(KEYS.egroup('u1', 0)).string())!) as EgroupRecord;
    return r.replicas.length === 2 && r.stale.length === 0 && r.replicas.every((l) => l.node !== 'c') && (await etcd.get(KEYS.owner('u1')).string()) === null;
  });
  console.log(`# restored through etcd in ${Date.now() - t0} ms`);
  assert.deepEqual(acquired, ['a u1'], 'only the leader (a) took it');
  assert.equal(repairers[0]!.stats.restored, 1);
  assert.equal(repairers[0]!.stats.leader, true);
  assert.equal(repairers[1]!.stats.leader, false);
  const rec = JSON.parse((await etcd.get(KEYS.egroup('u1', 0)).string())!) as EgroupRecord;
  const [x, y] = rec.replicas;
  assert.equal(nodes.get(x!.node)!.digest(x!.disk, 'u1', 0), nodes.get(y!.node)!.digest(y!.disk, 'u1', 0));
  for (const r of repairers) await r.stop();
});
