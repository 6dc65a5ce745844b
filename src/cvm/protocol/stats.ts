/**
 * @module
 * The CVMs' I/O statistics (core/io-stats.ts), as their API answers them:
 *
 *   GET /stats/vdisks?since=<ms since the epoch>[&vdisk=<uuid>…]   StatsAnswer
 *
 * Each CVM reports the client I/O its NBD front end served, per vdisk; a vdisk's whole I/O is the
 * sum over the CVMs (a VM's I/O enters through whichever CVM its host's redirector reaches).
 */

export interface IoSample {
  /** Start of the interval (ms since the epoch, a multiple of the step). */
  t: number;
  readIops: number;
  writeIops: number;
  /** Bytes per second. */
  readBps: number;
  writeBps: number;
  /** Mean latency of the interval's reads and writes, µs (0 when none). */
  readLatUs: number;
  writeLatUs: number;
}

export interface StatsAnswer {
  /** The samples' step: 5 s within the last hour, 60 s before. */
  stepMs: number;
  /** By vdisk uuid. */
  series: Record<string, IoSample[]>;
}
