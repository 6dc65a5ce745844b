/**
 * @module
 * The cluster's one failure detector (pure; the clock is injected): ADR 015, "Failure detection".
 *
 *   every CVM ── puts ──► /converge/v2/alive/<node>   under its own etcd lease (TTL a few seconds)
 *   lease expires ──► etcd deletes the alive key ──► the first CVM to see it
 *                 ── create-if-absent ──► /converge/v2/down/<node> = { node, by, at }
 *   the node returns ── puts its alive key, then deletes its own down key ──► "up" everywhere
 *
 * A node is declared down once, for everyone: whoever loses the create-if-absent race changes
 * nothing. Every CVM acts on the down key, not on its own view of the alive key, so the whole
 * cluster agrees on which nodes are down (writes stop waiting, re-protection starts).
 *
 * A member whose alive key was never seen (its CVM never came up, or it went before this CVM
 * started watching) is declared down after `graceMs` of absence, as seen from here.
 *
 * This model only decides; node/liveness.ts feeds it the store's keys and carries out its actions.
 */

/** The value of `/converge/v2/alive/<node>`. */
export interface AliveRecord {
  node: string;
  cvmIp: string;
  /** When this incarnation put the key (ISO). */
  since: string;
}

/** The value of `/converge/v2/down/<node>`: who declared the node down, and when. */
export interface DownRecord {
  node: string;
  /** The node of the CVM that declared it. */
  by: string;
  /** ISO time of the declaration. */
  at: string;
  /** Why (e.g. its liveness lease expired). */
  reason: string;
}

/** What the detector asks its driver to do to the store. */
export type DetectorAction =
  | { kind: 'declare-down'; record: DownRecord }
  | { kind: 'clear-down'; node: string };

/** What the detector tells the rest of the CVM. */
export type LivenessEvent = { kind: 'down'; node: string; record: DownRecord } | { kind: 'up'; node: string };

export interface DetectorStep {
  actions: DetectorAction[];
  events: LivenessEvent[];
}

export interface DetectorOptions {
  /** This CVM's node: never declared down by itself; it clears its own down key when it is alive again. */
  self: string;
  /** How long a member never seen alive waits before it is declared down. */
  graceMs: number;
}

const empty = (): DetectorStep => ({ actions: [], events: [] });

export class FailureDetector {
  private alive = new Set<string>();
  private down = new Map<string, DownRecord>();
  /** Members not alive and not down, since when (ms) this detector has seen them so. */
  private missingSince = new Map<string, number>();
  private members: string[] = [];
  /** Declarations sent and not yet seen back (so one is sent once per absence). */
  private declared = new Set<string>();
  private cleared = false;

  constructor(private readonly o: DetectorOptions, private readonly now: () => number) {}

  isDown(node: string): boolean {
    return this.down.has(node);
  }

  isAlive(node: string): boolean {
    return this.alive.has(node);
  }

  /** The nodes declared down now, with their records. */
  downNodes(): DownRecord[] {
    return [...this.down.values()];
  }

  /** The cluster's members (from the cluster record); absent members are declared down after graceMs. */
  setMembers(nodes: readonly string[]): DetectorStep {
    this.members = [...nodes];
    for (const n of [...this.missingSince.keys()]) if (!nodes.includes(n)) this.missingSince.delete(n);
    return this.tick();
  }

  /** The store's state at the start of a watch (replaces what was known). */
  snapshot(alive: readonly string[], down: readonly DownRecord[]): DetectorStep {
    const out = empty();
    const wasDown = new Set(this.down.keys());
    this.alive = new Set(alive);
    this.down = new Map(down.map((d) => [d.node, d]));
    for (const d of down) if (!wasDown.has(d.node)) out.events.push({ kind: 'down', node: d.node, record: d });
    for (const n of wasDown) if (!this.down.has(n)) out.events.push({ kind: 'up', node: n });
    this.declared.clear();
    return merge(out, this.reconcileSelf(), this.tick());
  }

  /** An alive key was put (a CVM started or renewed its lease). */
  alivePut(node: string): DetectorStep {
    this.alive.add(node);
    this.missingSince.delete(node);
    this.declared.delete(node);
    return this.reconcileSelf();
  }

  /** An alive key disappeared: its lease expired (or its CVM stopped). The first to see it declares the node down. */
  aliveGone(node: string): DetectorStep {
    this.alive.delete(node);
    if (node === this.o.self) {
      this.cleared = false;
      return empty();
    }
    if (this.down.has(node) || this.declared.has(node)) return empty();
    this.declared.add(node);
    return { actions: [{ kind: 'declare-down', record: this.record(node, 'its liveness lease expired') }], events: [] };
  }

  /** A down key was put (by any CVM). */
  downPut(record: DownRecord): DetectorStep {
    const was = this.down.has(record.node);
    this.down.set(record.node, record);
    this.declared.delete(record.node);
    this.missingSince.delete(record.node);
    const out: DetectorStep = { actions: [], events: was ? [] : [{ kind: 'down', node: record.node, record }] };
    if (record.node === this.o.self) this.cleared = false;
    return merge(out, this.reconcileSelf());
  }

  /** A down key was deleted: the node is back. */
  downGone(node: string): DetectorStep {
    if (!this.down.delete(node)) return empty();
    if (node === this.o.self) this.cleared = false;
    return { actions: [], events: [{ kind: 'up', node }] };
  }

  /** Members absent past the grace period are declared down (call every second or so). */
  tick(): DetectorStep {
    const out = empty();
    const now = this.now();
    for (const n of this.members) {
      if (n === this.o.self || this.alive.has(n) || this.down.has(n)) {
        this.missingSince.delete(n);
        continue;
      }
      const since = this.missingSince.get(n);
      if (since === undefined) this.missingSince.set(n, now);
      else if (now - since >= this.o.graceMs && !this.declared.has(n)) {
        this.declared.add(n);
        out.actions.push({ kind: 'declare-down', record: this.record(n, `no liveness key for ${Math.round((now - since) / 1000)} s`) });
      }
    }
    return out;
  }

  /** This CVM is alive and still declared down: it clears its own declaration (once per time it sees it). */
  private reconcileSelf(): DetectorStep {
    const self = this.o.self;
    if (!this.alive.has(self) || !this.down.has(self) || this.cleared) return empty();
    this.cleared = true;
    return { actions: [{ kind: 'clear-down', node: self }], events: [] };
  }

  private record(node: string, reason: string): DownRecord {
    return { node, by: this.o.self, at: new Date(this.now()).toISOString(), reason };
  }
}

function merge(...steps: DetectorStep[]): DetectorStep {
  return { actions: steps.flatMap((s) => s.actions), events: steps.flatMap((s) => s.events) };
}
