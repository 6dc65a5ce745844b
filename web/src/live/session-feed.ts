/**
 * @module
 * Keeps a deployment's model live (the I/O around model/deployment.ts): one GET of progress for
 * the lanes and their current states, then Foundation's event stream with EventSource — from seq
 * 1, so a reload rebuilds every box with its timings. Replayed events are held until the stream
 * says it has caught up and applied at once (one redraw); live events are gathered for
 * BATCH_MS and applied together (a redraw a few times a second however many nodes report).
 * EventSource reconnects by itself with Last-Event-ID and the model ignores what it already has.
 * No polling.
 */
import { EVENTS_CAUGHT_UP, type FoundationEvent } from '../../../src/foundation/protocol/deploy.ts';
import type { FoundationClient } from '../../../src/foundation/protocol/client.ts';
import {
  applyChanges, changesOfEvent, changesOfProgress, emptyDeployment,
  type DeploymentChange, type DeploymentState,
} from '../model/deployment.ts';
import { messageOf } from '../model/format.ts';

/** How long live events are gathered before one redraw. */
export const BATCH_MS = 150;

export type Connection = 'loading' | 'replaying' | 'live' | 'reconnecting' | 'failed';

export interface FeedSnapshot {
  state: DeploymentState;
  connection: Connection;
  /** Why loading failed or the stream closed. */
  error: string | null;
}

export class SessionFeed {
  private snap: FeedSnapshot;
  private readonly listeners = new Set<() => void>();
  private source: EventSource | null = null;
  private held: DeploymentChange[] = [];
  private pending: DeploymentChange[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private caughtUp = false;
  private disposed = false;

  constructor(private readonly client: FoundationClient, readonly sessionId: string) {
    this.snap = { state: emptyDeployment(sessionId), connection: 'loading', error: null };
  }

  readonly subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  readonly getSnapshot = (): FeedSnapshot => this.snap;

  private set(patch: Partial<FeedSnapshot>): void {
    this.snap = { ...this.snap, ...patch };
    for (const fn of this.listeners) fn();
  }

  private apply(changes: readonly DeploymentChange[]): void {
    if (changes.length) this.set({ state: applyChanges(this.snap.state, changes) });
  }

  async start(): Promise<void> {
    try {
      const p = await this.client.progress(this.sessionId);
      if (this.disposed) return;
      this.apply(changesOfProgress(p));
    } catch (e) {
      this.set({ connection: 'failed', error: messageOf(e) });
      return;
    }
    this.set({ connection: 'replaying' });
    const es = new EventSource(this.client.eventsUrl(this.sessionId));
    this.source = es;
    es.addEventListener('progress', (m: MessageEvent<string>) => {
      let changes: DeploymentChange[];
      try {
        changes = changesOfEvent(JSON.parse(m.data) as FoundationEvent);
      } catch {
        return; // not an event of ours
      }
      if (!this.caughtUp) {
        this.held.push(...changes);
        return;
      }
      this.pending.push(...changes);
      this.flushTimer ??= setTimeout(() => this.flush(), BATCH_MS);
    });
    es.addEventListener(EVENTS_CAUGHT_UP, () => {
      const held = this.held;
      this.held = [];
      this.caughtUp = true;
      this.snap = { ...this.snap, connection: 'live', error: null };
      if (held.length) this.apply(held);
      else this.set({});
    });
    es.addEventListener('error', () => {
      if (es.readyState === EventSource.CLOSED) this.set({ connection: 'failed', error: 'the event stream closed; reload the page' });
      else this.set({ connection: 'reconnecting' });
    });
  }

  private flush(): void {
    this.flushTimer = null;
    const changes = this.pending;
    this.pending = [];
    if (!this.disposed) this.apply(changes);
  }

  dispose(): void {
    this.disposed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    this.source?.close();
    this.source = null;
    this.listeners.clear();
  }
}
