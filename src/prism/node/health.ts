/**
 * @module
 * Health checks and alerts at run time (core/health.ts decides): the checks over a fresh snapshot,
 * the replicas' resiliency, the VM service's VMs and the Prism certificate; alerts kept in the
 * configuration store (`/converge/prism/alerts/<id>`) so that a new Prism leader carries them on.
 * The leading Prism runs the checks every HEALTH_INTERVAL_MS and reconciles the alerts.
 */
import { X509Certificate } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { errorMessage, NotFoundError } from '../../shared/errors.ts';
import type { ResiliencyReport } from '../../cvm/protocol/cluster.ts';
import type { Vm } from '../../cvm/protocol/vms.ts';
import { changeAlert, reconcile, runChecks, type Alert, type CheckResult } from '../core/health.ts';
import type { ClusterSnapshot } from '../core/snapshot.ts';
import type { CvmCaller } from './server.ts';
import { rangeStrings } from '../../shared/etcd-range.ts';

export const ALERTS_PREFIX = '/converge/prism/alerts/';
export const HEALTH_INTERVAL_MS = 30_000;
/** Resolved alerts kept (the newest); older ones are deleted. */
const KEEP_RESOLVED = 500;

/** What the API asks of health (fakes in tests). */
export interface HealthPort {
  /** Runs every check now (and reconciles the alerts). */
  run(): Promise<CheckResult[]>;
  alerts(): Promise<Alert[]>;
  /** Marks alerts acknowledged or resolved by `user`; answers which ids were found. */
  update(ids: readonly string[], change: 'acknowledge' | 'resolve', user: string): Promise<{ done: string[]; missing: string[] }>;
}

export class Health implements HealthPort {
  private running: Promise<CheckResult[]> | undefined;

  constructor(
    private readonly etcd: Etcd3,
    private readonly source: { get(): Promise<ClusterSnapshot>; invalidate(): void },
    private readonly cvm: CvmCaller,
    private readonly certificate: string,
    private readonly log: (m: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  run(): Promise<CheckResult[]> {
    // one run at a time: a second caller shares it
    this.running ??= this.runOnce().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async runOnce(): Promise<CheckResult[]> {
    this.source.invalidate();
    const [snapshot, resiliency, vms] = await Promise.all([
      this.source.get(),
      this.cvm<ResiliencyReport>('/storage/resiliency', { timeoutMs: 10_000 }).catch(() => null),
      this.cvm<Vm[]>('/vms', { timeoutMs: 10_000 }).catch(() => null),
    ]);
    let days: number | null = null;
    try {
      days = (Date.parse(new X509Certificate(this.certificate).validTo) - this.now()) / 86_400_000;
    } catch {
      days = null;
    }
    const results = runChecks({ snapshot, resiliency, vms, certificateDaysLeft: days, now: this.now() });
    const before = await this.alerts();
    const changed = reconcile(before, results, this.now());
    for (const a of changed) {
      await this.etcd.put(ALERTS_PREFIX + a.id).value(JSON.stringify(a));
      if (!a.resolved && a.createdAt === a.lastSeenAt) this.log(`alert raised: ${a.severity} ${a.check}: ${a.entity.name}: ${a.message}`);
      else if (a.resolved && a.resolvedBy === 'auto') this.log(`alert resolved: ${a.check}: ${a.entity.name}`);
    }
    const byId = new Map(before.map((a) => [a.id, a]));
    for (const a of changed) byId.set(a.id, a);
    await this.prune([...byId.values()]);
    return results;
  }

  async alerts(): Promise<Alert[]> {
    const all = await rangeStrings(this.etcd, ALERTS_PREFIX);
    return Object.values(all).map((v) => JSON.parse(v) as Alert).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  async update(ids: readonly string[], change: 'acknowledge' | 'resolve', user: string): Promise<{ done: string[]; missing: string[] }> {
    const done: string[] = [];
    const missing: string[] = [];
    const at = new Date(this.now()).toISOString();
    for (const id of ids) {
      const raw = await this.etcd.get(ALERTS_PREFIX + id).string();
      if (!raw) {
        missing.push(id);
        continue;
      }
      await this.etcd.put(ALERTS_PREFIX + id).value(JSON.stringify(changeAlert(JSON.parse(raw) as Alert, change, user, at)));
      done.push(id);
    }
    return { done, missing };
  }

  /** Keeps the newest KEEP_RESOLVED resolved alerts of `all` (every alert as this run left them). */
  private async prune(all: readonly Alert[]): Promise<void> {
    const resolved = [...all].filter((a) => a.resolved).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    for (const a of resolved.slice(KEEP_RESOLVED)) await this.etcd.delete().key(ALERTS_PREFIX + a.id);
  }

  /** Runs the checks every HEALTH_INTERVAL_MS while `leading()`; answers a stop. */
  loop(leading: () => boolean): () => void {
    let timer: NodeJS.Timeout | undefined;
    const tick = (): void => {
      timer = setTimeout(() => {
        if (!leading()) return tick();
        this.run().catch((e: unknown) => this.log(`health checks: ${errorMessage(e)}`)).finally(tick);
      }, HEALTH_INTERVAL_MS);
    };
    tick();
    return () => clearTimeout(timer);
  }
}

/** An alert by id, for the API. */
export async function alertById(h: HealthPort, id: string): Promise<Alert> {
  const a = (await h.alerts()).find((x) => x.id === id);
  if (!a) throw new NotFoundError('alert', id);
  return a;
}
