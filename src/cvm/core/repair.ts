/**
 * @module
 * Self-healing (pure): which extent groups lost a replica, which replicas are still good, and
 * which CVM restores each one to its RF.
 *
 * A replica is
 *  - **lost** when its disk failed (its CVM says so) or its node has been unreachable for longer
 *    than the grace period (a CVM restarting in a few seconds is not a lost node);
 *  - **unreachable** while its node is down but still within the grace period: neither good nor
 *    lost, so its extent group waits;
 *  - **good** otherwise.
 * One CVM restores an extent group: the CVM of its first good replica (in record order), so two
 * CVMs never copy the same extent group at once.
 *
 * An extent group whose record lists fewer replicas than its RF (a write dropped a replica that
 * failed it, e.g. on a node declared down) needs restoring too, whatever its replicas' state.
 * With the cluster's failure detector (node/liveness.ts) a node is lost once declared down: the
 * repair loop passes its declaration time and a grace of 0.
 */
import type { Replica } from './placement.ts';

export interface PeerView {
  /** Since when (ms, injected clock) each node has not answered; absent = up. */
  downSince: ReadonlyMap<string, number>;
  /** Disks reported failed by their (answering) CVMs. */
  failedDisks: ReadonlySet<string>;
}

export interface EgroupRecord {
  key: string;
  vdisk: string;
  block: number;
  replicas: Replica[];
  /** The RF of its vdisk's container, when known: fewer replicas in the record need restoring. */
  rf?: number;
}

/** Whether a record lists fewer replicas than its RF. */
export const isShort = (rec: EgroupRecord): boolean => rec.rf !== undefined && rec.replicas.length < rec.rf;

export interface RepairWork extends EgroupRecord {
  good: Replica[];
  lost: Replica[];
}

export function isNodeLost(view: PeerView, node: string, now: number, graceMs: number): boolean {
  const since = view.downSince.get(node);
  return since !== undefined && now - since >= graceMs;
}

export function classify(view: PeerView, reps: readonly Replica[], now: number, graceMs: number): { good: Replica[]; lost: Replica[]; unreachable: Replica[] } {
  const good: Replica[] = [];
  const lost: Replica[] = [];
  const unreachable: Replica[] = [];
  for (const r of reps) {
    if (view.failedDisks.has(r.disk) || isNodeLost(view, r.node, now, graceMs)) lost.push(r);
    else if (view.downSince.has(r.node)) unreachable.push(r);
    else good.push(r);
  }
  return { good, lost, unreachable };
}

export interface RepairPlan {
  /** Extent groups this CVM restores now. */
  mine: RepairWork[];
  /** Extent groups other CVMs restore. */
  others: number;
  /** Extent groups with no good replica left: their data cannot be read until a node returns. */
  stranded: EgroupRecord[];
  /** Extent groups waiting for an unreachable node (within the grace period). */
  waiting: number;
}

/** Sorts every extent group that lost a replica: mine to restore, someone else's, or stranded. */
export function planRepairs(records: readonly EgroupRecord[], view: PeerView, localNode: string, now: number, graceMs: number): RepairPlan {
  const plan: RepairPlan = { mine: [], others: 0, stranded: [], waiting: 0 };
  for (const rec of records) {
    const { good, lost, unreachable } = classify(view, rec.replicas, now, graceMs);
    if (lost.length === 0 && !isShort(rec)) {
      if (unreachable.length > 0) plan.waiting++;
      continue;
    }
    const first = good[0];
    if (!first) {
      if (unreachable.length > 0) plan.waiting++;
      else plan.stranded.push(rec);
      continue;
    }
    if (first.node === localNode) plan.mine.push({ ...rec, good, lost });
    else plan.others++;
  }
  return plan;
}

/** Whether anything at all may need repair (so a healthy cluster skips the scan). */
export function anythingLost(view: PeerView, now: number, graceMs: number): boolean {
  if (view.failedDisks.size > 0) return true;
  for (const since of view.downSince.values()) if (now - since >= graceMs) return true;
  return false;
}
