import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEgroupList } from './egroups.ts';
test('a sync-many body is checked with the replication protocol\'s rules, naming the entry and field', () => {
  assert.deepEqual(parseEgroupList([{ disk: 'S1', vdisk: '0123abcd-4567-89ef-0123-456789abcdef', block: 3 }]), [{ disk: 'S1', vdisk: '0123abcd-4567-89ef-0123-456789abcdef', block: 3 }]);
  assert.throws(() => parseEgroupList(JSON.parse('[{"disk":"../x","vdisk":"0123abcd-4567-89ef-0123-456789abcdef","block":1}]')), /body\[0\]\.disk: a disk serial/);
  assert.throws(() => parseEgroupList(JSON.parse('[{"disk":"S1","vdisk":"nope","block":1}]')), /body\[0\]\.vdisk/);
  assert.throws(() => parseEgroupList(JSON.parse('[{"disk":"S1","vdisk":"nope","block":-1}]')), /body\[0\]\.block/);
});
