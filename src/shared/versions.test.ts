import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareVersions } from './versions.ts';

test('compareVersions compares numeric parts, ignoring prefixes', () => {
  assert.equal(compareVersions('3.10.2', '3.9.9'), 1);
  assert.equal(compareVersions('2.8.0', '3.10.2'), -1);
  assert.equal(compareVersions('CVGB-2.4.1', '2.4.1'), 0);
  assert.equal(compareVersions('CVGB-2.4.1', 'CVGB-2.5.0'), -1);
  assert.equal(compareVersions('CVGF-1.8.0', 'CVGB-2.4.1'), -1);
  assert.equal(compareVersions('2.4', '2.4.0'), 0);
  assert.equal(compareVersions('2.4.0.1', '2.4'), 1);
  assert.equal(compareVersions('v1.2.3-rc4', '1.2.3'), 0);
  assert.equal(compareVersions('X9-2.4', '2.4'), 0);
  assert.equal(compareVersions('10', '9'), 1);
  assert.equal(compareVersions('unknown', '0.0.1'), -1);
});
