/**
 * @module
 * A zombie kept for a test: a process that has exited and that nobody reaps, as the CVM of a node
 * that lost power is until init gets to it (1-2 s on the lab machines; never under a PID 1 that
 * does not reap). `sleep 0.5` exits soon; its parent, the shell turned `sleep 120` by exec, never
 * reaps it. The child lives half a second, so the shell has exec'd before it exits (a shell still
 * running reaps a child that exits early: 'gone' under load). Kill the keeper when done: init then
 * reaps both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { processState } from '../../src/shared/processes.ts';

export async function zombie(): Promise<{ pid: number; keeper: ChildProcess }> {
  const keeper = spawn('sh', ['-c', 'sleep 0.5 & echo $!; exec sleep 120'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const pid = await new Promise<number>((res, rej) => {
    keeper.stdout?.once('data', (b: Buffer) => res(Number(b.toString().trim())));
    keeper.once('error', rej);
  });
  for (let i = 0; processState(pid) !== 'Z'; i++) {
    if (i > 1000) {
      keeper.kill('SIGKILL');
      throw new Error(`process ${pid} did not become a zombie (state ${processState(pid) ?? 'gone'})`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return { pid, keeper };
}
