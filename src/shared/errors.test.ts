import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ALL_ERROR_CODES } from './errors.ts';

test('every error code is documented in docs/errors.md, and nothing documented is missing from the code', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = [...doc.matchAll(/`(CVG_ERR_[A-Z_]+)`/g)].map((m) => m[1]);
  assert.deepEqual([...new Set(documented)].sort(), [...ALL_ERROR_CODES].sort());
});
