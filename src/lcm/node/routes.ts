/**
 * @module
 * LCM's routes on the CVM's API (mutual TLS; ADR 018): the operator (the CLI) and the cluster's
 * members (Prism, a peer fetching a bundle) call them. Every CVM answers; the record and the
 * repository's index are in etcd.
 *
 *   GET  /lcm/inventory                 what runs on each node (hypervisor, storage OS, BMC and BIOS firmware)
 *   GET  /lcm/bundles                   the repository
 *   PUT  /lcm/bundles                   a bundle uploaded (application/octet-stream), verified, kept
 *   GET  /lcm/bundles/:version/file     a bundle's bytes (a peer that needs a copy)
 *   GET  /lcm/plan?to=V                 { plan, refusals }
 *   GET  /lcm/precheck?to=V             the pre-checks' results
 *   POST /lcm/upgrade {to}              starts the rolling upgrade (refused with the reason: nothing changes)
 *   GET  /lcm/upgrade                   the record of the current (or last) upgrade
 *   POST /lcm/upgrade/{pause,resume,abort}
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Role } from '../../shared/identity.ts';
import { ConflictError, InputError } from '../../shared/errors.ts';
import { parseWith } from '../../shared/schema.ts';
import { BUNDLE_LIMIT } from './repository.ts';
import { REPLICA_HEADER, type LcmService } from './service.ts';

const toQuery = z.object({ to: z.string().min(1).max(64) }).strict();
const versionParam = z.object({ version: z.string().regex(/^\d+\.\d+\.\d+$/, 'must be a release version (1.2.3)') });

export function registerLcmRoutes(app: FastifyInstance, service: () => LcmService): void {
  const cfg = { config: { roles: ['operator', 'cvm'] as readonly Role[] } };
  app.get('/lcm/inventory', cfg, () => service().inventory());
  app.get('/lcm/bundles', cfg, () => service().repository.list());
  app.put('/lcm/bundles', { config: { roles: ['operator', 'cvm'] as readonly Role[], longBody: true }, bodyLimit: BUNDLE_LIMIT }, async (req, reply) => {
    if (!Buffer.isBuffer(req.body)) throw new InputError('body', 'must be a release bundle (Content-Type: application/octet-stream)');
    const fromPeer = req.peer?.role === 'cvm' && req.headers[REPLICA_HEADER] === '1';
    return reply.status(201).send(await service().addBundle(req.body, fromPeer));
  });
  app.get('/lcm/bundles/:version/file', cfg, async (req, reply) => {
    const { version } = parseWith(versionParam, req.params);
    const s = service();
    const buf = s.repository.local(await s.repository.get(version));
    if (!buf) throw new ConflictError(`this CVM holds no good copy of bundle ${version}`);
    return reply.type('application/octet-stream').send(buf);
  });
  app.get('/lcm/plan', cfg, async (req) => {
    const { plan, refusals } = await service().plan(parseWith(toQuery, req.query).to);
    return { plan, refusals };
  });
  app.get('/lcm/precheck', cfg, (req) => service().precheck(parseWith(toQuery, req.query).to));
  app.post('/lcm/upgrade', cfg, async (req, reply) => reply.status(202).send(await service().upgrade(req.body)));
  app.get('/lcm/upgrade', cfg, () => service().status());
  app.get('/lcm/tasks', cfg, () => service().tasks());
  app.post('/lcm/upgrade/pause', cfg, () => service().pause());
  app.post('/lcm/upgrade/resume', cfg, () => service().resume());
  app.post('/lcm/upgrade/abort', cfg, () => service().abort());
}
