/**
 * @module
 * The live flow diagram in React Flow: the model's boxes and edges placed by the pure layout;
 * edges coloured by state and animated while work flows along them. The first view fits the
 * width and starts at the top; the user pans (scroll) and zooms (controls, pinch, Ctrl+scroll).
 */
import { useMemo, useState, type ReactElement } from 'react';
import { Background, Controls, MarkerType, ReactFlow, type Node as FlowNode } from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import type { Box, Diagram, EdgeState } from '../model/diagram.ts';
import { initialViewport, layoutDiagram } from '../model/layout.ts';
import { Unchanged } from '../model/unchanged.ts';
import { EDGE_TYPES, NODE_TYPES, type ColumnNode, type FlowEdge, type LaneNode, type StageNode } from './flow-nodes.tsx';

const EDGE_COLOUR: Record<EdgeState, string> = { idle: '#c3c9d4', active: '#2563eb', done: '#16a34a', failed: '#dc2626' };

/** The list with the objects of elements unchanged since the last draw (see model/unchanged.ts). */
function useUnchanged<T extends { id: string }>(items: T[]): T[] {
  const [memory] = useState(() => new Unchanged<T>());
  return useMemo(() => memory.keep(items), [memory, items]);
}

export function FlowDiagram({ diagram, selected }: { diagram: Diagram; selected: string | null }): ReactElement {
  const layout = useMemo(() => layoutDiagram(diagram), [diagram]);
  // a new object only for what changed: React Flow then redraws only the boxes an event touched
  const nodes = useUnchanged(useMemo((): FlowNode[] => {
    const stageTitle = (b: Box): string => (b.column === 'prism' ? 'Prism' : diagram.columns[b.column]?.title ?? '');
    const out: (StageNode | LaneNode | ColumnNode)[] = [];
    diagram.columns.forEach((c, i) => {
      const r = layout.columns[i];
      if (r) out.push({ id: `column/${i}`, type: 'column', position: { x: r.x, y: r.y }, data: c, draggable: false, selectable: false, style: { width: r.width } });
    });
    for (const l of diagram.lanes) {
      const r = layout.lanes.get(l.id);
      if (r) out.push({ id: `lane/${l.id}`, type: 'lane', position: { x: r.x, y: r.y }, data: { lane: l, compact: layout.compact }, draggable: false, selectable: false, style: { width: r.width, height: r.height } });
    }
    for (const b of diagram.boxes) {
      const r = layout.boxes.get(b.id);
      const lane = diagram.lanes.find((l) => l.id === b.lane);
      if (!r || !lane) continue;
      out.push({
        id: b.id, type: 'stage', position: { x: r.x, y: r.y }, draggable: false, selectable: false, connectable: false,
        data: { box: b, lane, stageTitle: stageTitle(b), compact: layout.compact, selected: selected === b.id },
        // React Flow lets nodes that are neither draggable nor selectable ignore the pointer: boxes are clickable
        style: { width: r.width, height: r.height, pointerEvents: 'all' },
      });
    }
    return out;
  }, [diagram, layout, selected]));
  const edges = useUnchanged(useMemo((): FlowEdge[] => diagram.edges.map((e) => ({
    id: e.id, source: e.source, target: e.target, type: 'flow',
    sourceHandle: e.kind === 'join' ? 'down' : 'out', targetHandle: e.kind === 'join' ? 'up' : 'in',
    animated: e.state === 'active', className: `edge-${e.state} edge-${e.kind}`,
    data: { label: layout.compact ? '' : e.label, kind: e.kind },
    style: { stroke: EDGE_COLOUR[e.state], strokeWidth: e.state === 'idle' ? 1.2 : 2 },
    markerEnd: { type: MarkerType.ArrowClosed, color: EDGE_COLOUR[e.state], width: 14, height: 14 },
    zIndex: e.kind === 'join' ? 0 : 1,
    focusable: false, selectable: false,
  })), [diagram, layout.compact]));
  return (
    <div className="flow" data-testid="flow" data-compact={layout.compact ? 'true' : 'false'}>
      <ReactFlow
        nodes={nodes} edges={edges} nodeTypes={NODE_TYPES} edgeTypes={EDGE_TYPES}
        onInit={(rf) => {
          const el = document.querySelector('.flow');
          void rf.setViewport(initialViewport(layout, { width: el?.clientWidth ?? window.innerWidth, height: el?.clientHeight ?? window.innerHeight }));
        }}
        minZoom={0.2} maxZoom={2} panOnScroll zoomOnScroll={false} zoomOnPinch zoomOnDoubleClick={false}
        nodesDraggable={false} nodesConnectable={false} elementsSelectable={false} proOptions={{ hideAttribution: true }}
      >
        <Background gap={24} color="#eef0f4" />
        <Controls showInteractive={false} position="bottom-left" />
      </ReactFlow>
    </div>
  );
}
