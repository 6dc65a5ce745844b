/**
 * @module
 * The console's data hooks: a call polled every few seconds (the page shows the cluster live),
 * the time now (for "5 s ago"), and navigation inside the single-page app.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { pageOf, type Page } from '../model/route.ts';

export interface Polled<T> {
  data: T | undefined;
  error: string | undefined;
  /** Fetch again now (after a change made from the page). */
  refresh: () => void;
}

/** `load` now and every `everyMs` while the page shows; the last answer stays while the next one comes. */
export function usePoll<T>(load: () => Promise<T>, everyMs: number, deps: readonly unknown[] = []): Polled<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let live = true;
    let timer: number | undefined;
    const run = (): void => {
      loadRef.current().then((d) => {
        if (!live) return;
        setData(d);
        setError(undefined);
      }, (e: unknown) => {
        if (live) setError(e instanceof Error ? e.message : String(e));
      }).finally(() => {
        if (live) timer = window.setTimeout(run, everyMs);
      });
    };
    run();
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [everyMs, tick, ...deps]);
  const refresh = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, refresh };
}

/** The time now, ticking every second. */
export function useNow(): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(t);
  }, []);
  return now;
}

const listeners = new Set<() => void>();
/** Shows another page of the console (history.pushState; the back button works). */
export function go(path: string): void {
  window.history.pushState(null, '', path);
  for (const l of listeners) l();
}

/** The page the address bar says. */
export function usePage(): Page {
  const [page, setPage] = useState(() => pageOf(window.location.pathname, window.location.search));
  useEffect(() => {
    const on = (): void => setPage(pageOf(window.location.pathname, window.location.search));
    listeners.add(on);
    window.addEventListener('popstate', on);
    return () => {
      listeners.delete(on);
      window.removeEventListener('popstate', on);
    };
  }, []);
  return page;
}
