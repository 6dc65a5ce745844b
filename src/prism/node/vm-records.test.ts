/**
 * VmRecords against a real etcd on 127.137.0.1:23790: the VM service's records read once, then kept
 * by the watch (created, changed, deleted), in creation order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { etcdFixture } from '../../../test/drivers/etcd.ts';
import { VMS_PREFIX, VmRecords } from './vm-records.ts';

const etcd = etcdFixture('127.137.0.1', 'vm-records');

test('the records as they are, then every change after, in creation order', etcd.opts, async () => {
  const c = etcd.client();
  const put = async (uuid: string, name: string, specVersion = 1): Promise<void> => {
    await c.put(`${VMS_PREFIX}${uuid}`).value(JSON.stringify({ uuid, name, specVersion }));
  };
  await put('b-2', 'first');
  await put('a-1', 'second');
  await c.put('acropolis/images/x').value('{}'); // not a VM
  const logs: string[] = [];
  const records = new VmRecords(c, (m) => logs.push(m));
  try {
    assert.deepEqual((await records.list()).map((v) => v.name), ['first', 'second'], 'creation order, not key order');
    await put('c-3', 'third');
    await put('b-2', 'first, renamed', 2);
    await c.delete().key(`${VMS_PREFIX}a-1`);
    const until = async (want: string[]): Promise<void> => {
      for (let i = 0; i < 100; i++) {
        if (JSON.stringify((await records.list()).map((v) => v.name)) === JSON.stringify(want)) return;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.deepEqual((await records.list()).map((v) => v.name), want);
    };
    await until(['first, renamed', 'third']);
    assert.equal((await records.list())[0]?.specVersion, 2);
    assert.deepEqual(logs, []);
  } finally {
    await records.stop();
  }
});
