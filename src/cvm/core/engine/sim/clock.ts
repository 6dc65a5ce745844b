/**
 * @module
 * The simulator's clock and event queue: a Clock (src/shared/clock.ts) whose timers are events of
 * a binary heap ordered by (time, sequence). Nothing runs until `step()` is called.
 */
import type { Clock, Disposable } from '../../../../shared/clock.ts';

interface Ev {
  at: number;
  seq: number;
  fn: () => void;
  live: boolean;
}

export class SimClock implements Clock {
  private t = 0;
  private seq = 0;
  private heap: Ev[] = [];
  steps = 0;

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): Disposable {
    const ev: Ev = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, live: true };
    this.push(ev);
    return { dispose: () => { ev.live = false; } };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }

  /** The time of the next live event (Infinity: none). */
  peek(): number {
    while (this.heap.length && !this.heap[0]!.live) this.pop();
    return this.heap.length ? this.heap[0]!.at : Infinity;
  }

  /** Runs the next event; false when there is none. */
  step(): boolean {
    for (;;) {
      const ev = this.pop();
      if (!ev) return false;
      if (!ev.live) continue;
      this.t = ev.at;
      this.steps++;
      ev.fn();
      return true;
    }
  }

  private less(a: Ev, b: Ev): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(ev: Ev): void {
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): Ev | undefined {
    const h = this.heap;
    if (!h.length) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
