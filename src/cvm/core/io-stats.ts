/**
 * @module
 * Per-vdisk I/O statistics of one CVM's NBD front end (pure; the clock injected): every client
 * read and write is recorded with its bytes and latency; every `stepMs` (5 s) a sample of the
 * rates since the last one is kept per vdisk — the last hour at that step, the last day at one
 * minute (averages of the fine samples). Memory is bounded: at most FINE + COARSE samples per
 * vdisk, and vdisks idle for a day are forgotten. Prism sums the CVMs' samples per VM, host and
 * cluster (a VM's I/O enters through whichever CVM its host's redirector reaches).
 */
import type { IoSample, StatsAnswer } from '../protocol/stats.ts';

export type { IoSample };
export const STEP_MS = 5_000;
export const COARSE_STEP_MS = 60_000;
/** An hour of 5 s samples, a day of one-minute samples. */
export const FINE = 720;
export const COARSE = 1440;

interface Counters {
  reads: number;
  writes: number;
  readBytes: number;
  writeBytes: number;
  readUs: number;
  writeUs: number;
}

interface VdiskSeries {
  now: Counters;
  fine: IoSample[];
  coarse: IoSample[];
  lastIoAt: number;
}

const zero = (): Counters => ({ reads: 0, writes: 0, readBytes: 0, writeBytes: 0, readUs: 0, writeUs: 0 });

/** Bounded ring: append, dropping the oldest past `max`. */
function push(ring: IoSample[], s: IoSample, max: number): void {
  ring.push(s);
  if (ring.length > max) ring.splice(0, ring.length - max);
}

export class IoStats {
  private readonly vdisks = new Map<string, VdiskSeries>();
  private lastSample: number;

  constructor(private readonly now: () => number, private readonly stepMs = STEP_MS) {
    this.lastSample = Math.floor(now() / stepMs) * stepMs;
  }

  private series(vdisk: string): VdiskSeries {
    let s = this.vdisks.get(vdisk);
    if (!s) this.vdisks.set(vdisk, (s = { now: zero(), fine: [], coarse: [], lastIoAt: this.now() }));
    return s;
  }

  /** One client I/O, done. */
  record(vdisk: string, op: 'read' | 'write', bytes: number, latencyUs: number): void {
    const s = this.series(vdisk);
    const c = s.now;
    if (op === 'read') {
      c.reads++;
      c.readBytes += bytes;
      c.readUs += latencyUs;
    } else {
      c.writes++;
      c.writeBytes += bytes;
      c.writeUs += latencyUs;
    }
    s.lastIoAt = this.now();
  }

  /**
   * Closes the interval: a sample per vdisk (idle ones too, as zeros, so charts show the drop),
   * and every minute the minute's average. Called every step by the CVM; a late call covers the
   * time since the last one.
   */
  sample(): void {
    const now = this.now();
    const t = Math.floor(now / this.stepMs) * this.stepMs;
    const secs = Math.max(1, t - this.lastSample) / 1000;
    if (t <= this.lastSample) return;
    for (const [vdisk, s] of this.vdisks) {
      const c = s.now;
      push(s.fine, {
        t: this.lastSample, readIops: c.reads / secs, writeIops: c.writes / secs, readBps: c.readBytes / secs, writeBps: c.writeBytes / secs,
        readLatUs: c.reads ? c.readUs / c.reads : 0, writeLatUs: c.writes ? c.writeUs / c.writes : 0,
      }, FINE);
      s.now = zero();
      const minute = Math.floor(this.lastSample / COARSE_STEP_MS) * COARSE_STEP_MS;
      if (Math.floor(t / COARSE_STEP_MS) * COARSE_STEP_MS > minute) push(s.coarse, average(s.fine.filter((x) => x.t >= minute && x.t < minute + COARSE_STEP_MS), minute), COARSE);
      if (now - s.lastIoAt > COARSE * COARSE_STEP_MS) this.vdisks.delete(vdisk);
    }
    this.lastSample = t;
  }

  /** The samples of every vdisk (or those named) since `since`: 5 s ones within the last hour, else one-minute ones. */
  query(since: number, vdisks?: readonly string[]): StatsAnswer {
    const fine = this.now() - since <= FINE * this.stepMs;
    const series: Record<string, IoSample[]> = {};
    for (const [vdisk, s] of this.vdisks) {
      if (vdisks && !vdisks.includes(vdisk)) continue;
      series[vdisk] = (fine ? s.fine : s.coarse).filter((x) => x.t >= since);
    }
    return { stepMs: fine ? this.stepMs : COARSE_STEP_MS, series };
  }
}

/** The mean of samples as one sample at `t` (rates averaged over time, latencies weighted by their I/Os). */
export function average(xs: readonly IoSample[], t: number): IoSample {
  const n = Math.max(1, xs.length);
  const sum = (f: (x: IoSample) => number): number => xs.reduce((a, x) => a + f(x), 0);
  const reads = sum((x) => x.readIops);
  const writes = sum((x) => x.writeIops);
  return {
    t, readIops: reads / n, writeIops: writes / n, readBps: sum((x) => x.readBps) / n, writeBps: sum((x) => x.writeBps) / n,
    readLatUs: reads ? sum((x) => x.readLatUs * x.readIops) / reads : 0, writeLatUs: writes ? sum((x) => x.writeLatUs * x.writeIops) / writes : 0,
  };
}
