/**
 * @module
 * Small pieces every page uses: a link inside the console, a state badge, an error banner, a
 * progress bar, an upload's progress, a capacity bar and a page header.
 */
import type { MouseEvent, ReactElement, ReactNode } from 'react';
import { go } from './hooks.ts';
import { bytes, percent } from '../model/format.ts';

/** A link to another page of the console, without reloading it. */
export function Link({ to, children, className }: { to: string; children: ReactNode; className?: string }): ReactElement {
  const click = (e: MouseEvent): void => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
    e.preventDefault();
    go(to);
  };
  return <a href={to} onClick={click} className={className}>{children}</a>;
}

const TONE: Record<string, string> = {
  ON: 'ok', OK: 'ok', UP: 'ok', COMPLETE: 'ok', SUCCEEDED: 'ok', NORMAL: 'ok', PASS: 'ok', up: 'ok',
  OFF: 'idle', QUEUED: 'idle', PENDING: 'run', RUNNING: 'run', ENTERING_MAINTENANCE_MODE: 'run', IN_MAINTENANCE_MODE: 'warn',
  WARNING: 'warn', WARN: 'warn', warning: 'warn', kWarning: 'warn', PAUSED: 'warn',
  CRITICAL: 'bad', FAIL: 'bad', FAILED: 'bad', ABORTED: 'bad', ERROR: 'bad', DOWN: 'bad', critical: 'bad', kCritical: 'bad', down: 'bad',
};
export function Badge({ state, label }: { state: string; label?: string }): ReactElement {
  return <span className={`badge ${TONE[state] ?? 'idle'}`}>{label ?? state.replace(/_/g, ' ').toLowerCase()}</span>;
}

export function ErrorBanner({ error }: { error: string | undefined }): ReactElement | null {
  return error ? <div className="banner error" role="alert">{error}</div> : null;
}

export function Progress({ percent, state }: { percent: number; state?: string }): ReactElement {
  return (
    <div className={`progress ${state ? (TONE[state] ?? '') : ''}`} role="progressbar" aria-valuenow={Math.round(percent)} aria-valuemin={0} aria-valuemax={100}>
      <div style={{ width: `${Math.max(0, Math.min(100, percent))}%` }} />
    </div>
  );
}

/** An upload under way: bytes sent of the total, a bar, and Cancel. */
export function UploadProgress({ testId, label, sent, total, onCancel }: { testId: string; label?: string; sent: number; total: number; onCancel: () => void }): ReactElement {
  return (
    <div data-testid={testId}>
      <div className="muted">{label ? `${label}: ` : ''}{bytes(sent)} of {bytes(total)} ({percent(sent, total)})</div>
      <Progress percent={total ? (100 * sent) / total : 0} state="RUNNING" />
      <button type="button" className="btn small ghost" onClick={onCancel}>Cancel</button>
    </div>
  );
}

/** Used of a capacity, as a bar with a warning past 75 % and an alarm past 90 % (the pool alerts' thresholds). */
export function Capacity({ used, total }: { used: number; total: number }): ReactElement {
  const p = total > 0 ? (100 * used) / total : 0;
  return <div className={`capacity ${p > 90 ? 'bad' : p > 75 ? 'warn' : ''}`}><div style={{ width: `${p}%` }} /></div>;
}

export function PageHead({ title, children }: { title: string; children?: ReactNode }): ReactElement {
  return (
    <div className="page-head">
      <h1>{title}</h1>
      <div className="actions">{children}</div>
    </div>
  );
}

/** A panel with a title. */
export function Panel({ title, children, className }: { title?: string; children: ReactNode; className?: string }): ReactElement {
  return (
    <section className={`panel ${className ?? ''}`}>
      {title ? <h2>{title}</h2> : null}
      {children}
    </section>
  );
}
