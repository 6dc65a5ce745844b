import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateRequest } from './validate.ts';
import * as C from './constants.ts';

const req = (type: number, offset: bigint, length: number, flags = 0) => ({ magic: C.NBD_REQUEST_MAGIC, type, offset, length, flags, handle: 1n });
const SIZE = 1n << 20n;

test('in-range reads and writes pass', () => {
  assert.equal(validateRequest(req(C.NBD_CMD_READ, 0n, 4096), SIZE, false, false), null);
  assert.equal(validateRequest(req(C.NBD_CMD_WRITE, SIZE - 1n, 1, C.NBD_CMD_FLAG_FUA), SIZE, false, false), null);
});

test('out of range: reads EINVAL, writes ENOSPC; zero length EINVAL; oversized payloads refused', () => {
  assert.equal(validateRequest(req(C.NBD_CMD_READ, SIZE, 1), SIZE, false, false)?.error, C.NBD_EINVAL);
  assert.equal(validateRequest(req(C.NBD_CMD_WRITE, SIZE - 1n, 2), SIZE, false, false)?.error, C.NBD_ENOSPC);
  assert.equal(validateRequest(req(C.NBD_CMD_READ, 0n, 0), SIZE, false, false)?.error, C.NBD_EINVAL);
  assert.equal(validateRequest(req(C.NBD_CMD_READ, 0n, C.MAX_PAYLOAD + 1), 1n << 40n, false, false)?.error, C.NBD_EINVAL);
  assert.equal(validateRequest(req(C.NBD_CMD_WRITE, 0n, C.MAX_PAYLOAD + 1), 1n << 40n, false, false)?.error, C.NBD_EOVERFLOW);
  assert.equal(validateRequest(req(C.NBD_CMD_READ, (1n << 64n) - 1n, 4096), SIZE, false, false)?.error, C.NBD_EINVAL, 'offset near 2^64');
});

test('unknown commands and flags, read-only exports, DF without structured replies', () => {
  assert.equal(validateRequest(req(99, 0n, 1), SIZE, false, false)?.error, C.NBD_EINVAL);
  assert.equal(validateRequest(req(C.NBD_CMD_READ, 0n, 1, C.NBD_CMD_FLAG_FUA), SIZE, false, false)?.error, C.NBD_EINVAL);
  assert.equal(validateRequest(req(C.NBD_CMD_WRITE, 0n, 1), SIZE, true, false)?.error, C.NBD_EPERM);
  assert.equal(validateRequest(req(C.NBD_CMD_WRITE_ZEROES, 0n, 1), SIZE, true, false)?.error, C.NBD_EPERM);
  assert.equal(validateRequest(req(C.NBD_CMD_READ, 0n, 1, C.NBD_CMD_FLAG_DF), SIZE, false, false)?.error, C.NBD_EINVAL);
  assert.equal(validateRequest(req(C.NBD_CMD_READ, 0n, 1, C.NBD_CMD_FLAG_DF), SIZE, false, true), null);
  assert.equal(validateRequest(req(C.NBD_CMD_FLUSH, 5n, 0), SIZE, false, false)?.error, C.NBD_EINVAL);
});
