/**
 * @module
 * Time as a service (STYLE.md C4). Components take a Clock; tests use VirtualClock and step it.
 */

export interface Disposable {
  dispose(): void;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): Disposable;
  /** Resolves after ms (immediately on a virtual clock once advanced). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export class SystemClock implements Clock {
  now(): number {
    return Date.now();
  }

  setTimeout(fn: () => void, ms: number): Disposable {
    const t = setTimeout(fn, ms);
    return { dispose: () => clearTimeout(t) };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }
}

function sleepOn(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      timer.dispose();
      reject(signal?.reason as Error);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
}

/** A clock that moves only when told to. runUntilIdle has a runaway guard. */
export class VirtualClock implements Clock {
  private t: number;
  private seq = 0;
  private queue: Pending[] = [];

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): Disposable {
    const p: Pending = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.queue.push(p);
    this.queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
    return { dispose: () => { this.queue = this.queue.filter((q) => q !== p); } };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Runs every timer due within ms, in order, then sets the time to now + ms. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const next = this.queue[0];
      if (!next || next.at > end) break;
      this.queue.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }

  /** Runs timers until none is left; throws if more than maxTasks run (a timer loop). */
  runUntilIdle(maxTasks = 10_000): void {
    let n = 0;
    for (;;) {
      const next = this.queue.shift();
      if (!next) return;
      if (++n > maxTasks) throw new Error(`VirtualClock: more than ${maxTasks} timers ran; a timer reschedules itself forever`);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
  }
}
