/**
 * rangeAll against a real etcd on 127.136.0.1:23790: more records than one gRPC answer may hold
 * (4 MiB) are all read, in pages, at one revision.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { etcdFixture } from '../../test/drivers/etcd.ts';
import { rangeAll, rangeStrings } from './etcd-range.ts';

const etcd = etcdFixture('127.136.0.1', 'etcd-range');

test('every key under a prefix, past the 4 MiB a single answer may hold; not the neighbours; one revision', etcd.opts, async () => {
  const c = etcd.client();
  const value = 'x'.repeat(1000);
  const n = 5000; // 5 MB of values: one range answer would be refused (RESOURCE_EXHAUSTED)
  for (let i = 0; i < n; i += 250) {
    await Promise.all(Array.from({ length: 250 }, (_, j) => c.put(`/p/vms/${String(i + j).padStart(5, '0')}`).value(value)));
  }
  await c.put('/p/vmsx').value('neighbour');
  await c.put('/p/vm').value('neighbour');
  // one answer is too large (on a client of its own: the refusal opens that client's circuit breaker)
  await assert.rejects(etcd.client().getAll().prefix('/p/vms/').strings(), /RESOURCE_EXHAUSTED|larger than max/);
  const all = await rangeAll(c, '/p/vms/', 700);
  assert.equal(all.length, n);
  assert.deepEqual(all.map((kv) => kv.key.toString()), Array.from({ length: n }, (_, i) => `/p/vms/${String(i).padStart(5, '0')}`));
  // a key written after the first page is not seen: every page is read at the first page's revision
  let pages = 0;
  const spy = {
    getAll: () => {
      const b = c.getAll();
      const exec = b.exec.bind(b);
      b.exec = async () => {
        const r = await exec();
        if (pages++ === 0) await c.put('/p/vms/99999').value(value);
        return r;
      };
      return b;
    },
  } as unknown as Etcd3;
  assert.equal((await rangeAll(spy, '/p/vms/', 100)).length, n);
  assert.equal(pages, n / 100);
  assert.equal(Object.keys(await rangeStrings(c, '/p/vms/')).length, n + 1);
  assert.deepEqual(await rangeAll(c, '/p/none/'), []);
});
