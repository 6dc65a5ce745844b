/**
 * @module
 * Whether a process is alive, as the holder of a lease or a machine's power sees it; and how a
 * service process ends on a signal.
 *
 * `kill(pid, 0)` alone answers "alive" for a zombie: a process that has exited but that its parent
 * has not reaped yet. A process whose parent died first (the CVM when its node loses power: the
 * hypervisor dies with it) is adopted by init, which reaps on its own schedule: about every 1-2 s
 * on the lab machines, never in a container whose PID 1 does not reap. A zombie runs nothing and
 * holds nothing, so where /proc exists (Linux) its state decides.
 */
import { readFileSync } from 'node:fs';

/** The one-letter state of a process in /proc/<pid>/stat (R, S, D, Z, X, ...), or undefined. */
export function processState(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "<pid> (<comm>) <state> ...": the command name may itself hold ") "
  const close = stat.lastIndexOf(')');
  return close < 0 ? undefined : stat.slice(close + 2, close + 3) || undefined;
}

/** Whether `pid` names a running process (not one that has exited, reaped or not). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const state = processState(pid);
  return state !== 'Z' && state !== 'X';
}

/**
 * A service process's end: on SIGTERM or SIGINT (the first one), `stop()` then exit 0 (1 when it
 * failed); after `graceMs` the process exits 0 whatever `stop()` is waiting for.
 */
export function exitOnSignals(stop: () => Promise<void>, graceMs: number): void {
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(0), graceMs).unref();
    stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}
