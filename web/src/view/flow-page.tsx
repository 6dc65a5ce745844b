/**
 * @module
 * A deployment session's page (`#/session/<id>`): its header (overall percent, state, Abort), the
 * live flow diagram, and the log of the box the user clicked. The model comes from SessionFeed;
 * this page only renders it and sends the user's Retry and Abort.
 */
import { useCallback, useEffect, useMemo, useState, useSyncExternalStore, type ReactElement } from 'react';
import type { FoundationClient } from '../../../src/foundation/protocol/client.ts';
import { SessionFeed, type Connection } from '../live/session-feed.ts';
import { aggregatePercent, isStopped } from '../model/deployment.ts';
import { diagramOf, summaryOf, type Box } from '../model/diagram.ts';
import { messageOf } from '../model/format.ts';
import { FlowDiagram } from './flow-diagram.tsx';
import { FlowActionsContext, type FlowActions } from './flow-nodes.tsx';
import { LogPanel } from './log-panel.tsx';

const CONNECTION_TEXT: Record<Connection, string> = {
  loading: 'loading…', replaying: 'replaying the log…', live: 'live', reconnecting: 'reconnecting…', failed: 'disconnected',
};

export function FlowPage({ client, sessionId }: { client: FoundationClient; sessionId: string }): ReactElement {
  const feed = useMemo(() => new SessionFeed(client, sessionId), [client, sessionId]);
  useEffect(() => {
    void feed.start();
    return () => feed.dispose();
  }, [feed]);
  const { state, connection, error } = useSyncExternalStore(feed.subscribe, feed.getSnapshot);
  const [now, setNow] = useState(() => Date.now());
  const [selected, setSelected] = useState<Box | null>(null);
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<string | null>(null);

  const diagram = useMemo(() => diagramOf(state, now), [state, now]);
  const running = diagram.boxes.some((b) => b.state === 'running');
  // elapsed times of running boxes tick once a second (a redraw, not a request)
  useEffect(() => {
    if (!running) return undefined;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [running]);

  const act = useCallback(async (what: () => Promise<void>): Promise<void> => {
    setBusy(true);
    setActionError(null);
    try {
      await what();
    } catch (e) {
      setActionError(messageOf(e));
    } finally {
      setBusy(false);
    }
  }, []);
  const actions: FlowActions = useMemo(() => ({
    openLog: (b) => setSelected(b),
    retry: (serial) => void act(() => client.retryNode(sessionId, serial)),
    abort: () => void act(() => client.abortSession(sessionId)),
    canAbort: !state.aborted,
    busy,
  }), [act, client, sessionId, state.aborted, busy]);

  const stopped = isStopped(state);
  const percent = aggregatePercent(state);
  const sum = summaryOf(diagram);
  const verdict = !state.loaded ? '' : state.aborted ? 'aborted' : stopped ? (percent === 100 ? 'succeeded' : 'stopped') : 'running';
  const current = selected ? diagram.boxes.find((b) => b.id === selected.id) ?? selected : null;
  const lane = current ? diagram.lanes.find((l) => l.id === current.lane) : undefined;

  return (
    <FlowActionsContext.Provider value={actions}>
      <div className="flow-page">
        <div className="flow-header">
          <div className="flow-title">
            <a href="#/" className="back">← Foundation</a>
            <h1>Deployment <code data-testid="session-id">{sessionId}</code></h1>
          </div>
          <div className="flow-status" data-testid="session-status" data-verdict={verdict} data-percent={percent}>
            <div className="overall-bar"><div className={`fill fill-${verdict}`} style={{ width: `${percent}%` }} /></div>
            <span className="overall-text">{percent}% · {verdict || '…'} · {sum.done}/{sum.nodes} nodes done{sum.failed ? ` · ${sum.failed} failed` : ''}</span>
            <span className={`connection connection-${connection}`} data-testid="connection" data-connection={connection}>{CONNECTION_TEXT[connection]}</span>
            {!stopped && !state.aborted && state.loaded ? (
              <button type="button" className="btn ghost" disabled={busy} onClick={() => actions.abort()} data-testid="abort-session">Abort</button>
            ) : null}
          </div>
        </div>
        {error ? <div className="banner error" role="alert">Session {sessionId}: {error}</div> : null}
        {actionError ? <div className="banner error" role="alert" data-testid="action-error">{actionError}</div> : null}
        {state.aborted ? <div className="banner warn" data-testid="aborted-banner">This session was aborted: pending nodes will not start. Retry a node to go on.</div> : null}
        <div className="flow-body">
          {state.loaded ? <FlowDiagram diagram={diagram} selected={current?.id ?? null} /> : <div className="flow-empty">{error ? '' : 'Loading the session…'}</div>}
          {current && lane ? (
            <LogPanel client={client} sessionId={sessionId} box={current} lane={lane} version={state.lastSeq} onClose={() => setSelected(null)} />
          ) : null}
        </div>
      </div>
    </FlowActionsContext.Provider>
  );
}
