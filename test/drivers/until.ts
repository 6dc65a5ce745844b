/**
 * @module
 * Waiting in tests: for a condition, and for a VM service task to end.
 */
import type { Task } from '../../src/cvm/protocol/vms.ts';

/** Polls `f` every 100 ms until it gives something other than undefined or false. */
export async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A task once it has ended (succeeded, failed or aborted), read with `get`. */
export function taskEnded(get: (path: string) => Promise<Task>, taskUuid: string, ms = 30_000): Promise<Task> {
  return until(`task ${taskUuid}`, async () => {
    const t = await get(`/tasks/${taskUuid}`);
    return ['succeeded', 'failed', 'aborted'].includes(t.state) ? t : undefined;
  }, ms);
}
