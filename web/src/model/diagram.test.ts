import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyChanges, changesOfEvent, changesOfProgress, emptyDeployment, type DeploymentState } from './deployment.ts';
import { diagramOf, summaryOf, type Box, type Diagram } from './diagram.ts';
import { CRASHED, EVENTS, PROGRESS_FINAL, SERIALS, STOPPED_SEQ } from './fixtures/recorded.ts';
import type { ClusterCheck, ClusterStage, FoundationEvent, ProgressResponse } from '../../../src/foundation/protocol/deploy.ts';

const at = (seq: number, p: ProgressResponse = PROGRESS_FINAL): DeploymentState =>
  applyChanges(applyChanges(emptyDeployment(p.session_id), changesOfProgress(p)), EVENTS.filter((e) => e.seq <= seq).flatMap(changesOfEvent));
const timeOf = (seq: number): number => Date.parse(EVENTS[seq - 1]!.time);
const draw = (seq: number): Diagram => diagramOf(at(seq), timeOf(seq));
const lane = (d: Diagram, id: string): Box[] => d.boxes.filter((b) => b.lane === id);
const states = (d: Diagram, id: string): string[] => lane(d, id).map((b) => b.state);
const edge = (d: Diagram, id: string): string => d.edges.find((e) => e.id === id)?.state ?? 'missing';
const node = (s: string): string => `node:${s}`;
const firstSeq = (f: (e: FoundationEvent) => boolean): number => EVENTS.find(f)!.seq;

test('a lane per node and one for the cluster, a box per stage, the cluster\'s Prism box, and the edges between', () => {
  const d = draw(1);
  assert.deepEqual(d.columns.map((c) => c.title), ['1 Foundation', '2 Imaging', '3 Bootstrap', '4 Activation']);
  assert.deepEqual(d.lanes.map((l) => l.id), [...SERIALS.map(node), 'cluster:lab']);
  assert.equal(d.boxes.length, 4 * 4 + 1);
  assert.equal(d.edges.length, 4 * 3 + 3 + 1, '3 along each lane, 3 joins, 1 to Prism');
  assert.deepEqual(d.boxes.map((b) => b.state).filter((x) => x !== 'pending'), [], 'nothing has started');
  // what flows along the edges is said once
  assert.deepEqual(d.edges.filter((e) => e.label).map((e) => e.label), ['Redfish → BMC', 'installer → hypervisor', 'hypervisor ↔ CVM', 'CVM → cluster', 'cluster → Prism']);
});

test('imaging: the running box carries its step, its share of the stage and its time; the edge into it is active', () => {
  const seq = firstSeq((e) => e.serial === SERIALS[0] && e.stage === 'installing' && (e.percent ?? 0) >= 40);
  const d = draw(seq + 1);
  const [f, i, b] = lane(d, node(SERIALS[0]!));
  assert.equal(f?.state, 'done');
  assert.match(f?.message ?? '', /^BMC \S+ · host 127\.87\.0\.1 · CVM 127\.87\.1\.1$/);
  assert.equal(i?.state, 'running');
  assert.equal(i?.percent, Math.round(((EVENTS[seq - 1]!.percent! - 4) / 84) * 100));
  assert.equal(i?.message, EVENTS[seq - 1]!.message);
  assert.equal(i?.elapsedMs, timeOf(seq + 1) - Date.parse(EVENTS.find((e) => e.serial === SERIALS[0] && e.stage === 'media')!.time));
  assert.equal(b?.state, 'pending');
  assert.equal(edge(d, `${node(SERIALS[0]!)}/0→1`), 'active');
  assert.equal(edge(d, `${node(SERIALS[0]!)}/1→2`), 'idle');
});

test('a node fails: its box says why and offers Retry; the others go on; the cluster shows who failed and waits', () => {
  const d = draw(STOPPED_SEQ);
  assert.deepEqual(states(d, node(CRASHED)), ['done', 'failed', 'pending', 'pending']);
  const failed = lane(d, node(CRASHED))[1]!;
  assert.match(failed.reason ?? '', /^the installer crashed: /);
  assert.equal(failed.retry, CRASHED);
  const lastStep = EVENTS.filter((e) => e.serial === CRASHED && e.stage === 'installing' && e.seq < STOPPED_SEQ).at(-1)!;
  assert.equal(failed.message, lastStep.message, 'the step it was on');
  for (const s of SERIALS.filter((x) => x !== CRASHED)) {
    assert.deepEqual(states(d, node(s)), ['done', 'done', 'pending', 'pending']);
    assert.match(lane(d, node(s))[2]!.message, /^CVM up: .*; the cluster waits for a failed member to be retried$/);
    assert.equal(edge(d, `${node(s)}→cluster:lab`), 'idle', 'nothing flows into a blocked cluster');
  }
  assert.deepEqual(states(d, 'cluster:lab'), ['done', 'failed', 'pending', 'pending', 'pending']);
  const summary = lane(d, 'cluster:lab')[1]!;
  assert.equal(summary.message, `2/3 nodes imaged; failed: ${CRASHED}`);
  assert.equal(summary.retry, null, 'the cluster itself is not retried');
  assert.equal(lane(d, 'cluster:lab')[2]!.message, 'waiting: a member node failed imaging (retry it)');
  assert.deepEqual(d.edges.filter((e) => e.state === 'failed').map((e) => e.id).sort(), ['cluster:lab/0→1', `${node(CRASHED)}/0→1`]);
  assert.deepEqual(summaryOf(d), { nodes: 3, done: 0, failed: 1, running: 0 });
});

test('the cluster forms in stage 3 (nodes wait in it) and is validated in stage 4, check by check', () => {
  const creating = draw(firstSeq((e) => e.cluster === 'lab' && (e.percent ?? 0) >= 10));
  for (const s of SERIALS) {
    assert.deepEqual(states(creating, node(s)), ['done', 'done', 'running', 'pending']);
    assert.equal(edge(creating, `${node(s)}→cluster:lab`), 'active');
  }
  assert.deepEqual(states(creating, 'cluster:lab'), ['done', 'done', 'running', 'pending', 'pending']);
  assert.match(lane(creating, 'cluster:lab')[2]!.message, /^creating cluster lab through CVM 127\.87\.1\.1$/);
  const seq = firstSeq((e) => e.message.includes('PASS storage-pool'));
  const validating = draw(seq);
  for (const s of SERIALS) assert.deepEqual(states(validating, node(s)), ['done', 'done', 'done', 'running']);
  const v = lane(validating, 'cluster:lab')[3]!;
  assert.equal(v.state, 'running');
  assert.deepEqual(v.checks.map((k) => k.name), ['host-cvm-link', 'store-quorum', 'cvm-services', 'storage-pool']);
  assert.equal(v.percent, (EVENTS[seq - 1]!.percent! - 50) * 2);
  assert.equal(edge(validating, 'cluster:lab/2→3'), 'active');
  assert.equal(lane(validating, 'cluster:lab')[2]!.endedAt, Date.parse(EVENTS.find((e) => e.message.includes('validating: host'))!.time));
});

test('the end: every box done with its time, Prism from its check, every edge done', () => {
  const d = draw(EVENTS.length);
  for (const l of d.lanes) assert.ok(lane(d, l.id).every((b) => b.state === 'done'), `${l.id}: ${states(d, l.id).join(',')}`);
  const prism = d.boxes.find((b) => b.column === 'prism')!;
  assert.match(prism.message, /^https:\/\/127\.87\.1\.\d:9440 /);
  assert.ok(d.edges.every((e) => e.state === 'done'));
  for (const s of SERIALS) {
    const bs = lane(d, node(s));
    assert.ok(bs.every((b) => b.elapsedMs !== null && b.elapsedMs >= 0 && b.endedAt !== null));
    assert.ok(bs.every((b, i) => i === 0 || b.startedAt! >= bs[i - 1]!.startedAt!), `${s} stages in order`);
  }
  // the retried node's times are its second attempt's
  const retried = lane(d, node(CRASHED))[0]!;
  assert.ok(retried.startedAt! >= timeOf(firstSeq((e) => e.message === 'retry requested')));
  // time passing changes no finished box
  assert.deepEqual(diagramOf(at(EVENTS.length), timeOf(EVENTS.length) + 60_000).boxes, d.boxes);
  assert.deepEqual(summaryOf(d), { nodes: 3, done: 3, failed: 0, running: 0 });
});

test('no cluster to create: a node is done after stage 3 and stage 4 is skipped, said so', () => {
  const p: ProgressResponse = { ...PROGRESS_FINAL, clusters: [] };
  const d = diagramOf(at(EVENTS.length, p), timeOf(EVENTS.length));
  assert.deepEqual(d.lanes.map((l) => l.kind), ['node', 'node', 'node']);
  assert.deepEqual(states(d, node(SERIALS[0]!)), ['done', 'done', 'done', 'skipped']);
  assert.equal(lane(d, node(SERIALS[0]!))[3]!.message, 'no cluster to create');
  assert.equal(edge(d, `${node(SERIALS[0]!)}/2→3`), 'done');
});

test('a failed check fails stage 4 of the cluster and of its nodes, with the evidence; a failed creation fails stage 3', () => {
  const base = at(firstSeq((e) => e.message.includes('PASS storage-pool')));
  const t = new Date(timeOf(EVENTS.length)).toISOString();
  // as session.ts sends them: the entry's stage after the step, and the check on a check's result
  const ev = (seq: number, percent: number, stage: ClusterStage, message: string, check?: ClusterCheck): FoundationEvent => ({
    seq, time: t, serial: null, stage: 'cluster', percent, message: `cluster lab: ${message}`, cluster: 'lab', cluster_stage: stage, ...(check ? { check } : {}),
  });
  const s = applyChanges(base, [
    ev(500, 82, 'validating', 'FAIL data-path: read back DIFFERENT', { name: 'data-path', ok: false, evidence: 'read back DIFFERENT' }),
    ev(501, 82, 'failed', 'fatal: data-path failed: read back DIFFERENT'),
  ].flatMap(changesOfEvent));
  const d = diagramOf(s, timeOf(EVENTS.length));
  assert.deepEqual(states(d, 'cluster:lab'), ['done', 'done', 'done', 'failed', 'pending']);
  assert.equal(lane(d, 'cluster:lab')[3]!.reason, 'data-path failed: read back DIFFERENT');
  assert.deepEqual(states(d, node(SERIALS[0]!)), ['done', 'done', 'done', 'failed']);
  assert.equal(lane(d, node(SERIALS[0]!))[3]!.retry, null);
  const early = at(firstSeq((e) => e.cluster === 'lab' && (e.percent ?? 0) >= 10));
  const failedEarly = applyChanges(early, changesOfEvent(ev(500, 10, 'failed', 'fatal: every member CVM answering did not happen within 600 s')));
  assert.deepEqual(states(diagramOf(failedEarly, 0), 'cluster:lab'), ['done', 'done', 'failed', 'pending', 'pending']);
});

test('a pre-imaged node (image_now false) skips imaging', () => {
  const p: ProgressResponse = { ...PROGRESS_FINAL, nodes: PROGRESS_FINAL.nodes.slice(0, 1), clusters: [] };
  const sn = SERIALS[0]!;
  const t0 = Date.parse(EVENTS[0]!.time);
  const e = (seq: number, stage: string, percent: number, message: string): FoundationEvent => ({ seq, time: new Date(t0 + seq * 1000).toISOString(), serial: seq === 1 ? null : sn, stage: seq === 1 ? null : stage, percent, message });
  const s = applyChanges(applyChanges(emptyDeployment('x'), changesOfProgress(p)), [
    e(1, '', 0, 'session started'), e(2, 'configuring', 40, 'pre-imaged node (image_now false): sending the hypervisor its configuration'),
    e(3, 'rebooting', 80, 'configuration applied: waiting for the CVM at its new address'),
  ].flatMap(changesOfEvent));
  const d = diagramOf(s, t0 + 3500);
  assert.deepEqual(states(d, node(sn)), ['done', 'skipped', 'running', 'pending']);
  assert.equal(lane(d, node(sn))[1]!.message, 'pre-imaged: not reinstalled');
  assert.equal(lane(d, node(sn))[2]!.elapsedMs, 1500);
});
