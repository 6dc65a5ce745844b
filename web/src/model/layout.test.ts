import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyChanges, changesOfEvent, changesOfProgress, emptyDeployment } from './deployment.ts';
import { diagramOf, type Diagram } from './diagram.ts';
import { COMPACT_ABOVE, GEOMETRY, initialViewport, layoutDiagram } from './layout.ts';
import { EVENTS, PROGRESS_FINAL } from './fixtures/recorded.ts';
import type { ProgressResponse } from '../../../src/foundation/protocol/deploy.ts';

const diagram = (p: ProgressResponse): Diagram => diagramOf(applyChanges(applyChanges(emptyDeployment(p.session_id), changesOfProgress(p)), EVENTS.flatMap(changesOfEvent)), 0);

/** The recorded session widened to n nodes (all in the cluster). */
function withNodes(n: number): ProgressResponse {
  const nodes = Array.from({ length: n }, (_x, i) => ({ ...PROGRESS_FINAL.nodes[0]!, node_serial: `N${String(i).padStart(2, '0')}`, cvm_ip: `127.87.1.${i + 1}` }));
  return { ...PROGRESS_FINAL, nodes, clusters: PROGRESS_FINAL.clusters.map((c) => ({ ...c, cluster_members: nodes.map((x) => x.cvm_ip) })) };
}

test('columns left to right, lanes top to bottom with the cluster last and apart, Prism after activation', () => {
  const d = diagram(PROGRESS_FINAL);
  const l = layoutDiagram(d);
  const g = GEOMETRY.normal;
  assert.equal(l.compact, false);
  assert.deepEqual(l.columns.map((c) => c.x), [0, 1, 2, 3].map((k) => g.labelWidth + k * (g.boxWidth + g.columnGap)));
  const ys = d.lanes.map((x) => l.lanes.get(x.id)!.y);
  assert.deepEqual(ys, [g.headerHeight, g.headerHeight + g.boxHeight + g.laneGap, g.headerHeight + 2 * (g.boxHeight + g.laneGap), g.headerHeight + 3 * (g.boxHeight + g.laneGap) + g.clusterGap]);
  for (const b of d.boxes) {
    const r = l.boxes.get(b.id)!;
    assert.equal(r.y, l.lanes.get(b.lane)!.y, `${b.id} in its lane`);
    if (b.column !== 'prism') assert.equal(r.x, l.columns[b.column]!.x, `${b.id} in its column`);
  }
  const prism = l.boxes.get('cluster:lab/prism')!;
  assert.equal(prism.x, g.labelWidth + 4 * (g.boxWidth + g.columnGap));
  assert.equal(l.width, prism.x + g.prismWidth);
  assert.equal(l.height, ys[3]! + g.boxHeight);
  // no two boxes overlap
  const rs = [...l.boxes.values()];
  for (const a of rs) for (const b of rs) if (a !== b) assert.ok(a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y);
});

test(`past ${COMPACT_ABOVE} nodes the lanes go compact: 32 nodes fit a laptop's width and scroll down`, () => {
  assert.equal(layoutDiagram(diagram(withNodes(COMPACT_ABOVE))).compact, false);
  const l = layoutDiagram(diagram(withNodes(32)));
  assert.equal(l.compact, true);
  assert.equal(l.lanes.size, 33);
  const g = GEOMETRY.compact;
  assert.ok(g.boxHeight < GEOMETRY.normal.boxHeight / 1.5);
  assert.equal(l.height, g.headerHeight + 33 * g.boxHeight + 32 * g.laneGap + g.clusterGap);
  const v = initialViewport(l, { width: 1500, height: 900 });
  assert.ok(v.zoom >= 0.75 && v.zoom <= 1, `zoom ${v.zoom}: text stays readable`);
  assert.ok(l.width * v.zoom <= 1500, 'the four stages fit the width');
  assert.ok(l.height * v.zoom > 900, 'the lanes scroll');
  assert.equal(v.y, 16, 'the first lanes at the top');
});

test('the first view: width fitted but never above 100 % or below the minimum, centred when narrower', () => {
  assert.deepEqual(initialViewport({ width: 1000, height: 500 }, { width: 2032, height: 900 }), { x: 516, y: 16, zoom: 1 });
  assert.deepEqual(initialViewport({ width: 2000, height: 500 }, { width: 1032, height: 900 }), { x: 16, y: 16, zoom: 0.5 });
  assert.equal(initialViewport({ width: 10_000, height: 500 }, { width: 1000, height: 900 }, { minZoom: 0.4 }).zoom, 0.4);
});
