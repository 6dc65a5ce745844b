import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chs, mbrSector, readMbr, PART_FAT16_LBA } from './mbr.ts';

test('MBR: boot code, signature, one active partition and 0x55AA round-trip', () => {
  const code = Buffer.alloc(440, 0xfa);
  const s = mbrSector(code, 0x31475643, [{ startLba: 2048, sectors: 63488, type: PART_FAT16_LBA, active: true }]);
  assert.equal(s.length, 512);
  assert.deepEqual(s.subarray(0, 440), code);
  assert.equal(s[510], 0x55);
  assert.equal(s[511], 0xaa);
  assert.equal(s[446], 0x80);
  assert.deepEqual(readMbr(s), { signature: 0x31475643, partitions: [{ active: true, type: 0x0e, startLba: 2048, sectors: 63488 }] });
});

test('MBR: CHS for a 64/32 geometry, clamped past cylinder 1023', () => {
  assert.deepEqual(chs(2048), [0, 1, 1]); // cylinder 1, head 0, sector 1
  assert.deepEqual(chs(0), [0, 1, 0]);
  assert.deepEqual(chs(64 * 32 * 2000), [254, 63 | 0xc0, 0xff]);
});

test('MBR: too much boot code or too many partitions is refused; no 0x55AA reads as no MBR', () => {
  assert.throws(() => mbrSector(Buffer.alloc(441), 0, []), /440/);
  const p = { startLba: 1, sectors: 1, type: 1, active: false };
  assert.throws(() => mbrSector(Buffer.alloc(0), 0, [p, p, p, p, p]), /4 partitions/);
  assert.equal(readMbr(Buffer.alloc(512)), undefined);
});
