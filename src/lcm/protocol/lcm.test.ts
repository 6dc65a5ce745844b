import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diskFirmwareText } from './lcm.ts';

test('a node\'s drive firmware in a line: each model and version with its count; not read is ?', () => {
  const d = (slot: number, model: string, version: string): { id: string; model: string; version: string } => ({ id: `Disk.Bay.${slot}`, model, version });
  assert.equal(diskFirmwareText([d(0, 'PM893', 'JXTC104Q'), d(1, 'PM893', 'JXTC104Q'), d(2, 'Exos', 'E004'), d(3, 'PM893', 'JXTC105Q')]), 'PM893 JXTC104Q ×2, Exos E004 ×1, PM893 JXTC105Q ×1');
  assert.equal(diskFirmwareText(undefined), '?');
  assert.equal(diskFirmwareText([]), 'none');
});
