/**
 * @module
 * Text for the UI (pure): elapsed times, state names, and what a failure says.
 */
import type { BoxState } from './diagram.ts';

/** 0 s … 59 s, then m:ss, then h:mm:ss. */
export function formatElapsed(ms: number | null): string {
  if (ms === null) return '';
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
  if (m > 0) return `${m}:${String(s).padStart(2, '0')}`;
  return `${s} s`;
}

export const STATE_LABEL: Record<BoxState, string> = {
  pending: 'pending', running: 'running', done: 'done', failed: 'failed', aborted: 'aborted', skipped: 'skipped',
};

export const STATE_ICON: Record<BoxState, string> = {
  pending: '○', running: '●', done: '✔', failed: '✖', aborted: '■', skipped: '–',
};

/** What a failure says, for a banner (FoundationApiError's message names the field). */
export const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));
