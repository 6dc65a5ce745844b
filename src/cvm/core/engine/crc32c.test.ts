import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { crc32c as native } from '@node-rs/crc32';
import { crc32c } from './crc32c.ts';

test('the simulator\'s CRC32C is the native one the CVM uses: the check value, and random pages chained', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(native(Buffer.from('123456789')), 0xe3069283);
  for (const n of [0, 1, 511, 4096, 65_537]) {
    const b = randomBytes(n);
    assert.equal(crc32c(b), native(b), `${n} bytes`);
    assert.equal(crc32c(b, 0x1234), native(b, 0x1234), `${n} bytes, seeded`);
  }
});
