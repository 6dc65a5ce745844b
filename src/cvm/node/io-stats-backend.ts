/**
 * @module
 * An NBD backend that records each client read and write (bytes, latency) in the CVM's I/O
 * statistics (core/io-stats.ts), for Prism's performance charts.
 */
import type { NbdBackend } from '../../shared/nbd/backend.ts';
import type { IoStats } from '../core/io-stats.ts';

export function withIoStats(b: NbdBackend, vdisk: string, stats: IoStats): NbdBackend {
  const timed = async <T>(op: 'read' | 'write', bytes: number, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const r = await f();
    stats.record(vdisk, op, bytes, (performance.now() - t0) * 1000);
    return r;
  };
  return {
    size: b.size, readOnly: b.readOnly, ...(b.multiConn !== undefined ? { multiConn: b.multiConn } : {}),
    pread: (offset, length) => timed('read', length, () => b.pread(offset, length)),
    pwrite: (offset, data, fua) => timed('write', data.length, () => b.pwrite(offset, data, fua)),
    ...(b.pwritev ? { pwritev: (offset: number, data: readonly Buffer[], fua: boolean) => timed('write', data.reduce((n, c) => n + c.length, 0), () => b.pwritev!(offset, data, fua)) } : {}),
    flush: () => b.flush(),
    trim: (offset, length, fua) => b.trim(offset, length, fua),
    zero: (offset, length, fua) => b.zero(offset, length, fua),
    close: () => b.close(),
  };
}
