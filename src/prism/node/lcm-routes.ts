/**
 * @module
 * LCM through Prism (ADR 018): the v4 lifecycle API in Nutanix's shapes (core/lcm-v4.ts) and the
 * console's own routes under /api/converge/v1/lcm, both answered by the LCM process of Prism's CVM
 * (lcm/protocol/client.ts; Prism calls it as its CVM's member).
 *
 *   GET  /api/lifecycle/{v}/resources/entities[/{extId}]     per node: hypervisor, storage OS, BMC, BIOS
 *   GET  /api/lifecycle/{v}/resources/status                 the operation under way
 *   POST /api/lifecycle/{v}/operations/$actions/inventory    a task that reads the inventory again
 *   POST /api/lifecycle/{v}/operations/$actions/prechecks    a task that runs the pre-checks ({ entityUpdateSpecs })
 *   POST /api/lifecycle/{v}/operations/$actions/upgrade      the rolling upgrade; its task is the upgrade's record
 *   GET|POST /api/converge/v1/lcm/…                          the console: inventory, bundles, plan, precheck, upgrade, pause, resume, abort
 *   PUT  /api/converge/v1/lcm/bundles                        a bundle uploaded (application/octet-stream), streamed on
 */
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ConflictError, InputError, NotFoundError } from '../../shared/errors.ts';
import type { CallOptions } from '../../shared/http-client.ts';
import type { NodeInventory, PrecheckResult, StoredBundle, UpgradeRecord } from '../../lcm/protocol/lcm.ts';
import { bundleOfSpecs, v4LcmEntities, v4LcmStatus, type LcmComponent } from '../core/lcm-v4.ts';
import type { Task } from '../../cvm/protocol/vms.ts';
import { parseV4Query, v4Accepted, v4List, v4One } from '../core/v4.ts';
import type { ClusterSnapshot } from '../core/snapshot.ts';
import type { PrismTask } from '../protocol/prism.ts';
import { octetStreamOnly, octetStreamScope } from './image-upload.ts';

/** A call of LCM on Prism's CVM. */
export type LcmCaller = <T>(path: string, o?: CallOptions) => Promise<T>;

export interface LcmRouteDeps {
  lcm: LcmCaller;
  source: { get(): Promise<ClusterSnapshot> };
  tasks: { start(op: string, entities: PrismTask['entities'], work: () => Promise<PrismTask['entities'] | void>): Promise<string> };
  /** A stable UUID for a name in the cluster (node/source.ts nameUuid). */
  nameUuid: (namespace: string, name: string) => string;
  /** Prism's CVM (the LCM framework's version is its storage OS's). */
  cvmIp: string;
}

/** The console's routes, each passed to LCM's own (lcm/node/routes.ts). */
const PASS_GET = ['inventory', 'bundles', 'plan', 'precheck', 'upgrade'] as const;
const PASS_POST = ['upgrade', 'upgrade/pause', 'upgrade/resume', 'upgrade/abort'] as const;
const CONSOLE = '/api/converge/v1/lcm';

export function registerLcmRoutes(app: FastifyInstance, d: LcmRouteDeps): void {
  const LC = '/api/lifecycle/:version';
  const entities = async (): Promise<{ all: Record<string, unknown>[]; bundles: StoredBundle[]; record: UpgradeRecord | null; cluster: string }> => {
    const [s, inv, bundles, record] = await Promise.all([
      d.source.get(), d.lcm<NodeInventory[]>('/lcm/inventory', { timeoutMs: 30_000 }), d.lcm<StoredBundle[]>('/lcm/bundles'),
      lastUpgrade(d.lcm),
    ]);
    const cluster = s.cluster.clusterId;
    const hostUuid = (serial: string): string => s.members.find((m) => m.serial === serial)?.hostUuid ?? d.nameUuid(cluster, `host/${serial}`);
    const entityUuid = (serial: string, c: LcmComponent | `disk/${string}`): string => d.nameUuid(cluster, `lcm/${serial}/${c}`);
    return { all: v4LcmEntities(inv, bundles, record, { clusterUuid: cluster, hostUuid, entityUuid }), bundles, record, cluster };
  };
  const param = (req: FastifyRequest, name: string): string => (req.params as Record<string, string>)[name] ?? '';

  app.get(`${LC}/resources/entities`, async (req) => v4List('lifecycle.v4.resources.ListEntitiesApiResponse', (await entities()).all, parseV4Query((req.query ?? {}) as Record<string, unknown>), req.url));
  app.get(`${LC}/resources/entities/:extId`, async (req) => {
    const e = (await entities()).all.find((x) => x['extId'] === param(req, 'extId'));
    if (!e) throw new NotFoundError('LCM entity', param(req, 'extId'));
    return v4One('lifecycle.v4.resources.GetEntityByIdApiResponse', e);
  });
  app.get(`${LC}/resources/status`, async () => {
    const [s, r] = await Promise.all([d.source.get(), lastUpgrade(d.lcm)]);
    return v4One('lifecycle.v4.resources.GetStatusApiResponse', v4LcmStatus(r, s.members.find((m) => m.cvmIp === d.cvmIp)?.cvm?.nosVersion ?? ''));
  });
  app.post(`${LC}/operations/$actions/inventory`, async (_req, reply) => {
    const task = await d.tasks.start('LcmInventory', [], async () => {
      await d.lcm('/lcm/inventory', { timeoutMs: 60_000 });
    });
    return reply.status(202).send(v4Accepted('lifecycle.v4.operations.InventoryApiResponse', task));
  });
  app.post(`${LC}/operations/$actions/prechecks`, async (req, reply) => {
    const e = await entities();
    const to = bundleOfSpecs(req.body, e.all, e.bundles);
    const task = await d.tasks.start('LcmPrechecks', [], async () => {
      const results = await d.lcm<PrecheckResult[]>(`/lcm/precheck?to=${encodeURIComponent(to)}`, { timeoutMs: 120_000 });
      const failed = results.filter((r) => r.status === 'FAIL');
      if (failed.length > 0) throw new ConflictError(`pre-checks failed: ${failed.map((r) => `${r.id}: ${r.detail}`).join('; ')}`);
    });
    return reply.status(202).send(v4Accepted('lifecycle.v4.operations.PrechecksApiResponse', task));
  });
  app.post(`${LC}/operations/$actions/upgrade`, async (req, reply) => {
    const e = await entities();
    const to = bundleOfSpecs(req.body, e.all, e.bundles);
    const r = await d.lcm<UpgradeRecord>('/lcm/upgrade', { body: { to }, timeoutMs: 180_000 });
    return reply.status(202).send(v4Accepted('lifecycle.v4.operations.UpgradeApiResponse', r.id));
  });

  // ---- the console's routes ----
  for (const p of PASS_GET) {
    app.get(`${CONSOLE}/${p}`, (req) => {
      const q = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
      return d.lcm(`/lcm/${p}${q}`, { timeoutMs: 120_000 });
    });
  }
  for (const p of PASS_POST) app.post(`${CONSOLE}/${p}`, (req) => d.lcm(`/lcm/${p}`, { body: req.body ?? {}, timeoutMs: 180_000 }));
  // a bundle: the only octet-stream route here, streamed on as it arrives (never parsed, never buffered in Prism)
  void app.register((scope, _opts, done) => {
    octetStreamScope(scope);
    scope.put(`${CONSOLE}/bundles`, {
      config: { longBody: true },
      // after the app's authentication (its onRequest hook), before the body is read
      onRequest: (req, _reply, next) => {
        try {
          octetStreamOnly(req.headers, 'the release bundle');
          next();
        } catch (e) {
          next(e as Error);
        }
      },
    }, async (req, reply) => {
      if (!req.body) throw new InputError('body', 'must be a release bundle (Content-Type: application/octet-stream)');
      const stored = await d.lcm<StoredBundle>('/lcm/bundles', { method: 'PUT', stream: req.body as Readable, timeoutMs: 600_000, ...(req.headers['content-length'] ? { headers: { 'content-length': req.headers['content-length'] } } : {}) });
      return reply.status(201).send(stored);
    });
    done();
  });
}

/** The record of the current or last upgrade (null: none has run). */
async function lastUpgrade(lcm: LcmCaller): Promise<UpgradeRecord | null> {
  try {
    return await lcm<UpgradeRecord>('/lcm/upgrade');
  } catch (e) {
    if (e instanceof NotFoundError) return null;
    throw e;
  }
}

/**
 * The current (or last) upgrade as tasks (LCM's GET /lcm/tasks: the upgrade and each step reached),
 * for the task lists and GETs of v2, v3, v4 and the console; none when LCM does not answer (a task
 * list does not fail for it).
 */
export function upgradeTasks(lcm: LcmCaller): Promise<Task[]> {
  return lcm<Task[]>('/lcm/tasks').catch(() => []);
}

