import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { EVENTS_CAUGHT_UP } from '../../../src/foundation/protocol/deploy.ts';
import type { FoundationClient } from '../../../src/foundation/protocol/client.ts';
import { EVENTS, PROGRESS_FAILED } from '../model/fixtures/recorded.ts';
import { BATCH_MS, SessionFeed } from './session-feed.ts';

/** The browser's EventSource as the feed uses it: the test delivers the messages. */
class FakeEventSource {
  static last: FakeEventSource | null = null;
  static readonly CLOSED = 2;
  readyState = 1;
  private readonly handlers = new Map<string, ((m: { data: string }) => void)[]>();
  constructor(readonly url: string) {
    FakeEventSource.last = this;
  }
  addEventListener(type: string, fn: (m: { data: string }) => void): void {
    this.handlers.set(type, [...(this.handlers.get(type) ?? []), fn]);
  }
  emit(type: string, data = ''): void {
    for (const fn of this.handlers.get(type) ?? []) fn({ data });
  }
  close(): void {
    this.readyState = FakeEventSource.CLOSED;
  }
}

test('replayed events make one redraw at caught-up; live events are gathered into a redraw per batch, not one per event', async () => {
  (globalThis as { EventSource?: unknown }).EventSource = FakeEventSource;
  const client = { progress: () => Promise.resolve(PROGRESS_FAILED), eventsUrl: (id: string) => `/foundation/events?session_id=${id}` } as unknown as FoundationClient;
  const feed = new SessionFeed(client, 'sid');
  let draws = 0;
  feed.subscribe(() => draws++);
  await feed.start();
  const es = FakeEventSource.last;
  assert.ok(es);
  assert.equal(feed.getSnapshot().connection, 'replaying');
  const half = Math.floor(EVENTS.length / 2);
  draws = 0;
  for (const e of EVENTS.slice(0, half)) es.emit('progress', JSON.stringify(e));
  assert.equal(draws, 0, 'the replay is held');
  es.emit(EVENTS_CAUGHT_UP);
  assert.equal(draws, 1, 'one redraw for the whole replay');
  assert.equal(feed.getSnapshot().connection, 'live');
  const afterReplay = feed.getSnapshot().state;

  draws = 0;
  for (const e of EVENTS.slice(half)) es.emit('progress', JSON.stringify(e));
  es.emit('progress', 'not json');
  assert.equal(draws, 0, 'live events wait for the batch');
  assert.equal(feed.getSnapshot().state, afterReplay);
  await sleep(BATCH_MS * 2);
  assert.equal(draws, 1, `${EVENTS.length - half} live events, one redraw`);
  assert.notEqual(feed.getSnapshot().state, afterReplay, 'and they were applied');

  // an event after dispose changes nothing and schedules nothing
  feed.dispose();
  es.emit('progress', JSON.stringify(EVENTS[EVENTS.length - 1]));
  await sleep(BATCH_MS * 2);
  assert.equal(draws, 1);
  assert.equal(es.readyState, FakeEventSource.CLOSED);
});
