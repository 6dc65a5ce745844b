/**
 * @module
 * Where the diagram's parts go (pure geometry): stage columns left to right, a lane per node top
 * to bottom with the cluster lanes last, a label at the start of each lane, and the cluster's
 * Prism box after its activation. Past 8 nodes the lanes go compact (low boxes, tight gaps), so 32
 * nodes stay readable; the first view fits the diagram's width and starts at the top, and the user
 * scrolls or zooms from there.
 */
import type { Column } from './deployment.ts';
import type { Diagram } from './diagram.ts';

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Geometry {
  labelWidth: number;
  boxWidth: number;
  boxHeight: number;
  prismWidth: number;
  columnGap: number;
  laneGap: number;
  headerHeight: number;
  /** Extra space above the cluster lanes. */
  clusterGap: number;
}

export const GEOMETRY: Record<'normal' | 'compact', Geometry> = {
  normal: { labelWidth: 190, boxWidth: 230, boxHeight: 96, prismWidth: 150, columnGap: 70, laneGap: 18, headerHeight: 70, clusterGap: 30 },
  compact: { labelWidth: 170, boxWidth: 210, boxHeight: 50, prismWidth: 130, columnGap: 50, laneGap: 8, headerHeight: 62, clusterGap: 22 },
};

/** Lanes of nodes above which the diagram goes compact. */
export const COMPACT_ABOVE = 8;

export interface Layout {
  compact: boolean;
  geometry: Geometry;
  columns: Rect[];
  lanes: Map<string, Rect>;
  boxes: Map<string, Rect>;
  width: number;
  height: number;
}

export function layoutDiagram(d: Diagram): Layout {
  const compact = d.lanes.filter((l) => l.kind === 'node').length > COMPACT_ABOVE;
  const g = GEOMETRY[compact ? 'compact' : 'normal'];
  const colX = (k: Column | 'prism'): number => g.labelWidth + (k === 'prism' ? 4 : k) * (g.boxWidth + g.columnGap);
  const columns = ([0, 1, 2, 3] as const).map((k) => ({ x: colX(k), y: 0, width: g.boxWidth, height: g.headerHeight - 14 }));
  const lanes = new Map<string, Rect>();
  let y = g.headerHeight;
  let seenCluster = false;
  for (const l of d.lanes) {
    if (l.kind === 'cluster' && !seenCluster) {
      y += g.clusterGap;
      seenCluster = true;
    }
    lanes.set(l.id, { x: 0, y, width: g.labelWidth - 16, height: g.boxHeight });
    y += g.boxHeight + g.laneGap;
  }
  const boxes = new Map<string, Rect>();
  for (const b of d.boxes) {
    const lane = lanes.get(b.lane);
    if (!lane) continue;
    boxes.set(b.id, { x: colX(b.column), y: lane.y, width: b.column === 'prism' ? g.prismWidth : g.boxWidth, height: g.boxHeight });
  }
  const hasPrism = d.boxes.some((b) => b.column === 'prism');
  const width = colX(3) + g.boxWidth + (hasPrism ? g.columnGap + g.prismWidth : 0);
  const height = Math.max(g.headerHeight, y - g.laneGap);
  return { compact, geometry: g, columns, lanes, boxes, width, height };
}

/**
 * The first view of a diagram of `size` in a viewport of `view`: its width fitted (never above
 * 100 %, never below `minZoom`), centred when narrower, its top at the top.
 */
export function initialViewport(size: { width: number; height: number }, view: { width: number; height: number }, o: { padding?: number; minZoom?: number; maxZoom?: number } = {}): { x: number; y: number; zoom: number } {
  const pad = o.padding ?? 16;
  const zoom = Math.max(o.minZoom ?? 0.4, Math.min(o.maxZoom ?? 1, (view.width - 2 * pad) / size.width));
  const x = Math.max(pad, (view.width - size.width * zoom) / 2);
  return { x, y: pad, zoom };
}
