/**
 * @module
 * A performance answer (`GET /api/converge/v1/stats`: samples only where there was I/O, 5 s apart
 * within the last hour and a minute apart before) as the columns a chart draws (pure): one point
 * per step from the start of the window to now, zero where nothing was sampled, finer samples
 * averaged into a coarser step (a missing finer sample counts as no I/O), latencies weighted by
 * their I/Os.
 */
import type { IoSample } from '../../../../src/cvm/protocol/stats.ts';

export interface ChartColumns {
  /** Seconds since the epoch (uPlot's x). */
  t: number[];
  readIops: number[];
  writeIops: number[];
  readBps: number[];
  writeBps: number[];
  /** µs; null where there was no I/O of that kind (a gap, not a zero latency). */
  readLatUs: (number | null)[];
  writeLatUs: (number | null)[];
}

/** The columns for the `minutes` before `now` (ms), at the answer's step. */
export function chartColumns(points: readonly IoSample[], stepMs: number, now: number, minutes: number): ChartColumns {
  const step = stepMs > 0 ? stepMs : 5000;
  const end = Math.floor(now / step) * step;
  const start = end - Math.ceil((minutes * 60_000) / step) * step;
  const n = (end - start) / step + 1;
  const slots: IoSample[][] = Array.from({ length: n }, () => []);
  for (const p of points) {
    const i = Math.floor((p.t - start) / step);
    if (i >= 0 && i < n) slots[i]?.push(p);
  }
  const c: ChartColumns = { t: [], readIops: [], writeIops: [], readBps: [], writeBps: [], readLatUs: [], writeLatUs: [] };
  slots.forEach((xs, i) => {
    // samples finer than the step: each stands for its own spacing; the slot's rate is their mean over the whole step
    const ts = xs.map((x) => x.t).sort((a, b) => a - b);
    let spacing = step;
    for (let k = 1; k < ts.length; k++) spacing = Math.min(spacing, (ts[k] ?? 0) - (ts[k - 1] ?? 0));
    const share = xs.length > 1 ? spacing / step : 1;
    const sum = (f: (x: IoSample) => number): number => xs.reduce((a, x) => a + f(x), 0) * share;
    const reads = xs.reduce((a, x) => a + x.readIops, 0);
    const writes = xs.reduce((a, x) => a + x.writeIops, 0);
    c.t.push((start + i * step) / 1000);
    c.readIops.push(sum((x) => x.readIops));
    c.writeIops.push(sum((x) => x.writeIops));
    c.readBps.push(sum((x) => x.readBps));
    c.writeBps.push(sum((x) => x.writeBps));
    c.readLatUs.push(reads > 0 ? xs.reduce((a, x) => a + x.readLatUs * x.readIops, 0) / reads : null);
    c.writeLatUs.push(writes > 0 ? xs.reduce((a, x) => a + x.writeLatUs * x.writeIops, 0) / writes : null);
  });
  return c;
}

/** The largest value of a column (0 when empty). */
export const peak = (xs: readonly (number | null)[]): number => xs.reduce<number>((m, x) => (x !== null && x > m ? x : m), 0);
