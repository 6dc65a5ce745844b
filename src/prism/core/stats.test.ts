import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../../shared/errors.ts';
import type { Vm } from '../../cvm/protocol/vms.ts';
import { parseStatsEntity, seriesOf, sumSeries, vdisksOf } from './stats.ts';

const s = (t: number, writeIops: number, writeLatUs: number): { t: number; readIops: number; writeIops: number; readBps: number; writeBps: number; readLatUs: number; writeLatUs: number } => ({ t, readIops: 0, writeIops, readBps: 0, writeBps: writeIops * 4096, readLatUs: 0, writeLatUs });

test('series of several CVMs summed per time: rates added, latency weighted by the I/Os', () => {
  assert.deepEqual(sumSeries([[s(0, 10, 100), s(5, 0, 0)], [s(0, 30, 300)]]), [
    { t: 0, readIops: 0, writeIops: 40, readBps: 0, writeBps: 40 * 4096, readLatUs: 0, writeLatUs: 250 },
    { t: 5, readIops: 0, writeIops: 0, readBps: 0, writeBps: 0, readLatUs: 0, writeLatUs: 0 },
  ]);
});

test('the vdisks of a VM, of a host (its VMs) and of the cluster; entities parsed or refused by name', () => {
  const vms = [
    { uuid: 'v1', host: { serial: 'S1', hostIp: '' }, disks: [{ vdisk: 'vm-v1-0' }, { vdisk: 'image-x' }] },
    { uuid: 'v2', host: { serial: 'S2', hostIp: '' }, disks: [{ vdisk: 'vm-v2-0' }] },
    { uuid: 'v3', host: null, disks: [{ vdisk: 'vm-v3-0' }] },
  ] as unknown as Vm[];
  const uuidOf = (n: string): string => `u-${n}`;
  assert.deepEqual(vdisksOf({ kind: 'vm', uuid: 'v1' }, vms, () => undefined, uuidOf), ['u-vm-v1-0', 'u-image-x']);
  assert.deepEqual(vdisksOf({ kind: 'host', uuid: 'h2' }, vms, (h) => (h === 'h2' ? 'S2' : undefined), uuidOf), ['u-vm-v2-0']);
  assert.equal(vdisksOf({ kind: 'cluster' }, vms, () => undefined, uuidOf), null);
  assert.deepEqual(parseStatsEntity('vm:abc-1'), { kind: 'vm', uuid: 'abc-1' });
  assert.deepEqual(parseStatsEntity(undefined), { kind: 'cluster' });
  assert.throws(() => parseStatsEntity('vm:../x'), (e: unknown) => e instanceof InputError && e.field === 'entity');
  const q = seriesOf([{ stepMs: 5000, series: { a: [s(0, 1, 1)], b: [s(0, 2, 2)] } }, { stepMs: 5000, series: { a: [s(0, 3, 3)] } }], ['a']);
  assert.deepEqual([q.stepMs, q.points[0]?.writeIops], [5000, 4]);
});
