/**
 * @module
 * Two in-memory duplex streams joined back to back (STYLE.md C9: protocol tests with no ports):
 * what one writes the other reads, a tick later (as from a socket: a peer that answered within
 * the write would run code, TLS's included, before its caller is ready); ending one ends the
 * other's readable side; destroying one closes both.
 */
import { Duplex } from 'node:stream';

export function createDuplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const make = (i: number): Duplex => new Duplex({
    read() {
      // data is pushed by the other end's writes
    },
    write(chunk: Buffer, _enc, cb) {
      process.nextTick(() => {
        const other = ends[1 - i];
        if (other && !other.destroyed) other.push(chunk);
      });
      cb();
    },
    final(cb) {
      process.nextTick(() => {
        const other = ends[1 - i];
        if (other && !other.destroyed) other.push(null);
      });
      cb();
    },
    destroy(err, cb) {
      const other = ends[1 - i];
      if (other && !other.destroyed) other.destroy();
      cb(err);
    },
  });
  ends.push(make(0), make(1));
  return [ends[0] as Duplex, ends[1] as Duplex];
}
