/**
 * @module
 * Two small helpers for promises: run work over a list a few at a time, and bound a wait.
 */
import { TimeoutError } from './errors.ts';

/** Maps items through f with at most `limit` calls in flight; results keep the items' order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, f: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let i = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (i < items.length) {
      const k = i++;
      out[k] = await f(items[k] as T);
    }
  }));
  return out;
}

/** Resolves as p does, or rejects with TimeoutError naming `what` after ms. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_r, reject) => (t = setTimeout(() => reject(new TimeoutError(`${what}: no answer in ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}
