/**
 * @module
 * The machine a bench's figures come from, printed by every bench: on a shared machine the load
 * says how far to trust a figure.
 */
import { cpus, freemem, loadavg, totalmem } from 'node:os';

/** Cores, load average (1/5/15 min), free memory, time. */
export function machineContext(): string {
  const c = cpus();
  const l = loadavg().map((x) => x.toFixed(2)).join(' ');
  return `machine: ${c.length} cores (${c[0]?.model.trim() ?? '?'}), load average ${l}, memory ${(freemem() / 2 ** 30).toFixed(1)} of ${(totalmem() / 2 ** 30).toFixed(1)} GiB free, ${new Date().toISOString()}`;
}
