/**
 * @module
 * The log of the box the user clicked: its state, step and reason, the cluster's checks with their
 * evidence, and the lane's log from Foundation (node_log for a node, cluster_log for a cluster),
 * fetched when opened and again when new events arrive for the session.
 */
import { useEffect, useRef, useState, type ReactElement } from 'react';
import type { FoundationClient } from '../../../src/foundation/protocol/client.ts';
import { STAGES } from '../model/deployment.ts';
import type { Box, Lane } from '../model/diagram.ts';
import { formatElapsed, messageOf, STATE_LABEL } from '../model/format.ts';

interface Props {
  client: FoundationClient;
  sessionId: string;
  box: Box;
  lane: Lane;
  /** The last event seq: a new one fetches the log again. */
  version: number;
  onClose: () => void;
}

export function LogPanel({ client, sessionId, box, lane, version, onClose }: Props): ReactElement {
  const [log, setLog] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const pre = useRef<HTMLPreElement>(null);
  const serial = lane.kind === 'node' ? lane.id.slice('node:'.length) : null;
  useEffect(() => {
    let gone = false;
    // several events in a burst fetch the log once
    const t = setTimeout(() => {
      (serial !== null ? client.nodeLog(sessionId, serial) : client.clusterLog(sessionId)).then(
        (text) => {
          if (gone) return;
          setLog(text);
          setError(null);
        },
        (e: unknown) => !gone && setError(messageOf(e)),
      );
    }, 250);
    return () => {
      gone = true;
      clearTimeout(t);
    };
  }, [client, sessionId, serial, version]);
  useEffect(() => {
    const el = pre.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [log]);
  const title = box.column === 'prism' ? 'Prism' : STAGES[box.column].title;
  return (
    <aside className="log-panel" data-testid="log-panel" aria-label={`log of ${lane.title}`}>
      <div className="log-head">
        <div>
          <div className="log-title">{lane.title} · {title}</div>
          <div className="log-sub">{lane.subtitle}</div>
        </div>
        <button type="button" className="btn ghost small" onClick={onClose} aria-label="close the log">✕</button>
      </div>
      <dl className="log-facts">
        <dt>state</dt><dd className={`state-${box.state}`} data-testid="log-state">{STATE_LABEL[box.state]} {box.state === 'running' || box.state === 'failed' ? `${box.percent}%` : ''}</dd>
        <dt>step</dt><dd>{box.message || '—'}</dd>
        {box.reason ? <><dt>reason</dt><dd className="state-failed" data-testid="log-reason">{box.reason}</dd></> : null}
        <dt>elapsed</dt><dd>{formatElapsed(box.elapsedMs) || '—'}</dd>
      </dl>
      {box.checks.length ? (
        <ul className="log-checks">{box.checks.map((k) => <li key={k.name} className={k.ok ? 'ok' : 'bad'}><b>{k.ok ? 'PASS' : 'FAIL'} {k.name}</b> {k.evidence}</li>)}</ul>
      ) : null}
      <div className="log-label">{serial !== null ? `node_log?serial=${serial}` : 'cluster_log'}</div>
      {error ? <div className="banner error">{error}</div> : null}
      <pre ref={pre} className="log-text" data-testid="log-text">{log ?? 'loading…'}</pre>
    </aside>
  );
}
