import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  aggregatePercent, applyChanges, changesOfEvent, changesOfProgress, clusterBlocked, emptyDeployment, isStopped,
  type DeploymentState,
} from './deployment.ts';
import { CRASHED, EVENTS, PROGRESS_FAILED, PROGRESS_FINAL, SERIALS, STOPPED_SEQ } from './fixtures/recorded.ts';
import type { FoundationEvent } from '../../../src/foundation/protocol/deploy.ts';

const loaded = (p = PROGRESS_FINAL): DeploymentState => applyChanges(emptyDeployment(p.session_id), changesOfProgress(p));
const replay = (s: DeploymentState, events: readonly FoundationEvent[]): DeploymentState => applyChanges(s, events.flatMap(changesOfEvent));
const upTo = (seq: number): FoundationEvent[] => EVENTS.filter((e) => e.seq <= seq);

test('the recorded log rebuilds the whole deployment: every node done, the cluster done with its six checks', () => {
  const s = replay(loaded(), EVENTS);
  assert.equal(s.lastSeq, EVENTS.length);
  assert.deepEqual(s.nodes.map((n) => n.stage), ['done', 'done', 'done']);
  assert.deepEqual(s.nodes.map((n) => n.serial), SERIALS);
  const c = s.clusters[0]!;
  assert.equal(c.stage, 'done');
  assert.deepEqual(c.checks.map((k) => `${k.name}:${k.ok}`), ['host-cvm-link:true', 'store-quorum:true', 'cvm-services:true', 'storage-pool:true', 'data-path:true', 'prism:true']);
  assert.equal(c.clusterId, PROGRESS_FINAL.clusters[0]?.cluster_id);
  assert.ok(c.createdAt !== null && c.validatingAt !== null && c.endedAt !== null && c.createdAt <= c.validatingAt && c.validatingAt <= c.endedAt);
  assert.equal(isStopped(s), true);
  assert.equal(aggregatePercent(s), PROGRESS_FINAL.aggregate_percent_complete);
  const crashed = s.nodes.find((n) => n.serial === CRASHED)!;
  assert.equal(crashed.retries, 1);
  // every stage of every node has its time, in order
  for (const n of s.nodes) {
    for (let k = 0; k < 3; k++) assert.ok(n.start[k] !== null, `${n.serial} column ${k} started`);
    assert.ok(n.start[0]! <= n.start[1]! && n.start[1]! <= n.start[2]! && n.start[2]! <= n.doneAt!, `${n.serial}: ${n.start.join(',')}`);
    assert.equal(n.end[1], n.start[2], 'imaging ends when the reboot begins');
  }
});

test('a log written before cluster events carried cluster_stage and check replays to the same deployment', () => {
  const legacy = EVENTS.map((e) => {
    const { cluster_stage: _stage, check: _check, ...rest } = e;
    return rest;
  });
  assert.ok(EVENTS.some((e) => e.cluster_stage !== undefined) && legacy.every((e) => !('cluster_stage' in e)));
  const now = replay(loaded(), EVENTS);
  const then = replay(loaded(), legacy);
  assert.deepEqual(then.clusters, now.clusters);
  // and half-way: the same stage at every step
  for (let i = 1; i <= EVENTS.length; i++) assert.equal(replay(loaded(), legacy.slice(0, i)).clusters[0]?.stage, replay(loaded(), EVENTS.slice(0, i)).clusters[0]?.stage, `after seq ${i}`);
});

test('at every "imaging stopped: N%" the model agrees with Foundation: stopped, and the same aggregate percent', () => {
  const marks = EVENTS.filter((e) => e.message.startsWith('imaging stopped'));
  assert.equal(marks.length, 2);
  for (const m of marks) {
    const s = replay(loaded(), upTo(m.seq));
    assert.equal(isStopped(s), true, `stopped at seq ${m.seq}`);
    assert.equal(`imaging stopped: ${aggregatePercent(s)}%`, m.message);
  }
  // and never stopped in between (the retried node is running)
  assert.equal(isStopped(replay(loaded(), upTo(STOPPED_SEQ + 5))), false);
});

test('the failure: the crashed node failed in imaging with its reason, the others done, the cluster blocked', () => {
  const s = replay(loaded(), upTo(STOPPED_SEQ));
  const crashed = s.nodes.find((n) => n.serial === CRASHED)!;
  assert.equal(crashed.stage, 'failed');
  assert.equal(crashed.stoppedIn, 1, 'it failed while installing');
  assert.match(crashed.message, /^fatal: the installer crashed/);
  assert.equal(crashed.end[1], Date.parse(EVENTS.find((e) => e.serial === CRASHED && e.stage === 'failed')!.time));
  assert.deepEqual(s.nodes.filter((n) => n !== crashed).map((n) => n.stage), ['done', 'done']);
  const c = s.clusters[0]!;
  assert.equal(c.stage, 'waiting');
  assert.equal(c.status, 'waiting: a member node failed imaging (retry it)');
  assert.equal(clusterBlocked(s, c), true);
});

test('the progress snapshot alone gives the same states as the log (what a reload draws before the replay)', () => {
  const fromSnapshot = loaded(PROGRESS_FAILED);
  const fromLog = replay(loaded(PROGRESS_FAILED), upTo(STOPPED_SEQ));
  const states = (s: DeploymentState): unknown => ({
    nodes: s.nodes.map((n) => [n.serial, n.stage, n.percent, n.stoppedIn, n.message]),
    clusters: s.clusters.map((c) => [c.name, c.stage, c.percent, c.status]),
    stopped: isStopped(s), percent: aggregatePercent(s),
  });
  assert.deepEqual(states(fromSnapshot), states(fromLog));
});

test('a replay from seq 1 over any state rebuilds the same model; events already applied change nothing', () => {
  const once = replay(loaded(), EVENTS);
  // the snapshot says "done" everywhere, the log starts from pending: seq 1 resets the lanes
  const overFinal = replay(loaded(PROGRESS_FINAL), EVENTS);
  assert.deepEqual(overFinal, once);
  assert.deepEqual(replay(once, EVENTS), once, 'a second replay is ignored');
  // a reconnect resumes after Last-Event-ID, but a server may resend a few: the result is the same
  const resumed = replay(replay(loaded(), upTo(50)), EVENTS.filter((e) => e.seq >= 40));
  assert.deepEqual(resumed, once);
  // the past is rebuilt from pending: what the (later) snapshot knew does not leak into it
  const past = replay(loaded(PROGRESS_FINAL), upTo(STOPPED_SEQ));
  assert.deepEqual(past.clusters[0]?.checks, []);
  assert.equal(past.clusters[0]?.clusterId, null);
});

test('a retry starts the node over: its old timings go, and a blocked cluster waits for it again', () => {
  const retrySeq = EVENTS.find((e) => e.message === 'retry requested')!.seq;
  const before = replay(loaded(), upTo(retrySeq - 1));
  const after = replay(before, upTo(retrySeq));
  const n = after.nodes.find((x) => x.serial === CRASHED)!;
  assert.equal(n.stage, 'pending');
  assert.equal(n.stoppedIn, null);
  assert.deepEqual(n.start, [null, null, null, null]);
  const c = after.clusters[0];
  assert.ok(c);
  assert.equal(c.status, 'waiting for its nodes to be imaged');
  assert.equal(clusterBlocked(after, c), false);
});

test('abort and retry: an abort marks the session, a retry clears it (as Foundation does)', () => {
  const s = replay(loaded(), upTo(STOPPED_SEQ));
  const t = new Date(Date.parse(EVENTS[STOPPED_SEQ - 1]!.time) + 1).toISOString();
  const aborted = replay(s, [{ seq: STOPPED_SEQ + 1, time: t, serial: null, stage: null, percent: null, message: 'abort requested' }]);
  assert.equal(aborted.aborted, true);
  assert.equal(isStopped(aborted), true);
  const retried = replay(aborted, [{ seq: STOPPED_SEQ + 2, time: t, serial: CRASHED, stage: 'pending', percent: 0, message: 'retry requested' }]);
  assert.equal(retried.aborted, false);
  assert.equal(isStopped(retried), false);
});

test('events of an unknown shape, and events before the lanes are known, change nothing', () => {
  const s = loaded();
  const bad: FoundationEvent[] = [
    { seq: 1, time: 'not a time', serial: null, stage: null, percent: null, message: 'session started' },
    { seq: 2, time: EVENTS[0]!.time, serial: SERIALS[0]!, stage: 'warp_drive', percent: 50, message: '?' },
  ];
  assert.deepEqual(bad.flatMap(changesOfEvent), []);
  const stranger = replay(s, [{ seq: 1, time: EVENTS[0]!.time, serial: 'NOT-IN-SESSION', stage: 'media', percent: 4, message: 'x' }]);
  assert.deepEqual(stranger.nodes, replay(s, [EVENTS[0]!]).nodes);
  // without a snapshot there are no lanes: the events wait (lastSeq does not move)
  assert.equal(replay(emptyDeployment('x'), EVENTS).lastSeq, 0);
});
