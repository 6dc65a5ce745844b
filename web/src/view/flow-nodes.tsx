/**
 * @module
 * The diagram's node components for React Flow: a stage box (state colour, percent, step, elapsed
 * time; a failed box's reason with Retry and Abort), a lane label and a column header. They only
 * render their data and call the actions they are given.
 */
import { createContext, memo, useContext, type KeyboardEvent, type MouseEvent, type ReactElement } from 'react';
import { BaseEdge, EdgeLabelRenderer, Handle, Position, getSmoothStepPath, type Edge, type EdgeProps, type Node, type NodeProps } from '@xyflow/react';
import type { Box, Lane } from '../model/diagram.ts';
import { formatElapsed, STATE_ICON, STATE_LABEL } from '../model/format.ts';

export interface FlowActions {
  openLog: (box: Box) => void;
  retry: (serial: string) => void;
  abort: () => void;
  /** Whether abort makes sense now (the session is not aborted). */
  canAbort: boolean;
  /** A request in flight (buttons wait). */
  busy: boolean;
}

export const FlowActionsContext = createContext<FlowActions | null>(null);

export type StageNode = Node<{ box: Box; lane: Lane; stageTitle: string; compact: boolean; selected: boolean }, 'stage'>;
export type LaneNode = Node<{ lane: Lane; compact: boolean }, 'lane'>;
export type ColumnNode = Node<{ title: string; detail: string }, 'column'>;

const stop = (e: MouseEvent): void => e.stopPropagation();

function StageBoxView({ data }: NodeProps<StageNode>): ReactElement {
  const actions = useContext(FlowActionsContext);
  const { box, lane, stageTitle, compact, selected } = data;
  const bad = box.state === 'failed' || box.state === 'aborted';
  const open = (): void => actions?.openLog(box);
  const key = (e: KeyboardEvent): void => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      open();
    }
  };
  const label = `${lane.title} · ${stageTitle}: ${STATE_LABEL[box.state]}${box.state === 'running' || bad ? ` ${box.percent}%` : ''}${box.reason ? ` — ${box.reason}` : ''}`;
  return (
    <div
      className={`box box-${box.state}${compact ? ' compact' : ''}${selected ? ' selected' : ''}`}
      data-testid="box" data-box={box.id} data-lane={box.lane} data-column={String(box.column)} data-state={box.state}
      data-percent={box.percent} data-started-at={box.startedAt ?? ''} data-elapsed-ms={box.elapsedMs ?? ''}
      role="button" tabIndex={0} aria-label={label} title={box.reason ?? box.message} onClick={open} onKeyDown={key}
    >
      <Handle type="target" position={Position.Left} id="in" isConnectable={false} />
      <Handle type="source" position={Position.Right} id="out" isConnectable={false} />
      <Handle type="target" position={Position.Top} id="up" isConnectable={false} />
      <Handle type="source" position={Position.Bottom} id="down" isConnectable={false} />
      <div className="box-head">
        <span className="box-icon" aria-hidden>{STATE_ICON[box.state]}</span>
        {compact ? null : <span className="box-stage">{stageTitle}</span>}
        <span className="box-percent" data-testid="box-percent">{box.state === 'pending' || box.state === 'skipped' ? STATE_LABEL[box.state] : `${box.percent}%`}</span>
        <span className="box-elapsed" data-testid="box-elapsed">{formatElapsed(box.elapsedMs)}</span>
      </div>
      <div className="box-bar"><div style={{ width: `${box.state === 'done' ? 100 : box.percent}%` }} /></div>
      <div className="box-message" data-testid="box-message">{bad && box.reason ? box.reason : box.message}</div>
      {bad && actions ? (
        <div className="box-actions nodrag nopan">
          {box.retry ? <button type="button" className="btn small" disabled={actions.busy} onClick={(e) => { stop(e); actions.retry(box.retry ?? ''); }}>Retry</button> : null}
          {actions.canAbort ? <button type="button" className="btn small ghost" disabled={actions.busy} onClick={(e) => { stop(e); actions.abort(); }}>Abort</button> : null}
        </div>
      ) : null}
      {box.checks.length && !compact ? (
        <ul className="box-checks">{box.checks.map((k) => <li key={k.name} className={k.ok ? 'ok' : 'bad'} title={k.evidence}>{k.ok ? '✔' : '✖'} {k.name}</li>)}</ul>
      ) : null}
    </div>
  );
}

function LaneLabelView({ data }: NodeProps<LaneNode>): ReactElement {
  return (
    <div className={`lane-label lane-${data.lane.kind}${data.compact ? ' compact' : ''}`} data-testid="lane" data-lane={data.lane.id}>
      <div className="lane-title">{data.lane.title}</div>
      <div className="lane-subtitle">{data.lane.subtitle}</div>
    </div>
  );
}

function ColumnHeaderView({ data }: NodeProps<ColumnNode>): ReactElement {
  return (
    <div className="column-header" data-testid="column">
      <div className="column-title">{data.title}</div>
      <div className="column-detail">{data.detail}</div>
    </div>
  );
}

export type FlowEdge = Edge<{ label: string; kind: 'flow' | 'join' }, 'flow'>;

/** An edge whose label sits beside its line (above a horizontal one, right of a vertical one), never on it. */
function FlowEdgeView(p: EdgeProps<FlowEdge>): ReactElement {
  const [path, x, y] = getSmoothStepPath({ sourceX: p.sourceX, sourceY: p.sourceY, targetX: p.targetX, targetY: p.targetY, sourcePosition: p.sourcePosition, targetPosition: p.targetPosition });
  const label = p.data?.label ?? '';
  const vertical = p.data?.kind === 'join';
  return (
    <>
      <BaseEdge id={p.id} path={path} {...(p.markerEnd ? { markerEnd: p.markerEnd } : {})} {...(p.style ? { style: p.style } : {})} />
      {label ? (
        <EdgeLabelRenderer>
          <div className={`edge-label${vertical ? ' vertical' : ''}`} style={{ transform: vertical ? `translate(6px, -50%) translate(${x}px, ${y}px)` : `translate(-50%, -100%) translate(${x}px, ${y - 3}px)` }}>{label}</div>
        </EdgeLabelRenderer>
      ) : null}
    </>
  );
}

export const EDGE_TYPES = { flow: FlowEdgeView };

export const NODE_TYPES = { stage: memo(StageBoxView), lane: memo(LaneLabelView), column: memo(ColumnHeaderView) };
