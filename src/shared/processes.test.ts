import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { processAlive, processState } from './processes.ts';
import { zombie } from '../../test/drivers/zombie.ts';

test('a running process is alive; an exited one is not, whether or not it has been reaped', { skip: !existsSync('/proc/self/stat') && 'needs /proc' }, async () => {
  assert.equal(processAlive(process.pid), true);
  assert.equal(processState(process.pid), 'R');
  const z = await zombie();
  try {
    assert.doesNotThrow(() => process.kill(z.pid, 0), 'kill(pid, 0) still finds the zombie');
    assert.equal(processAlive(z.pid), false);
  } finally {
    z.keeper.kill('SIGKILL');
  }
  for (const bad of [0, -1, 1.5, Number.NaN]) assert.equal(processAlive(bad), false, String(bad));
  assert.equal(processState(0x7ffffffe), undefined);
});
