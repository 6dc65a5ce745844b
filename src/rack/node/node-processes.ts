/**
 * @module
 * The processes a node runs, found as a cgroup would find them. A node's program may start
 * processes outside its own process group (the hypervisor runs the CVM in a group of its own, as
 * a VM, and the CVM its services), and those outlive a kill of the program's group. Every process
 * started on a node carries the node's hardware file in its environment (HARDWARE_ENV, inherited
 * whatever group or session a process moves to), and that is how the rack finds them all when the
 * node loses power.
 *
 * Reads /proc (Linux). Where there is none, nothing is found: a kill of the program's group is all
 * that power off does there.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Pids of the processes (other than this one) whose environment holds `key=value`. */
export function processesWithEnv(key: string, value: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const needle = Buffer.from(`\0${key}=${value}\0`);
  const out: number[] = [];
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    let env: Buffer;
    try {
      env = readFileSync(`/proc/${name}/environ`);
    } catch {
      continue; // gone meanwhile, or another user's
    }
    // each entry ends with NUL; a leading NUL lets the first one match too
    if (Buffer.concat([Buffer.from([0]), env]).includes(needle)) out.push(pid);
  }
  return out;
}

/** Sends SIGKILL to each pid; a process already gone is no error. */
export function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
