/**
 * @module
 * The VM service's routes on the CVM API (protocol/vms.ts). Reads are answered from the store by
 * any CVM (the host inventory by the leader); a mutation sent to a follower is passed on to the
 * leader's CVM API with this CVM's member certificate (role `cvm`) and FORWARDED_HEADER, and answered
 * as the leader answered. A forwarded call that reaches a CVM that no longer leads is refused (503),
 * not passed on again; a `cvm` caller without the header (Prism) is passed on like the operator. Roles: the operator; `cvm` for forwarded calls and Prism's (console input included: Prism types for the users it authenticates).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import type { Role } from '../../shared/identity.ts';
import { parseWith } from '../../shared/schema.ts';
import { FORWARDED_HEADER, type Accepted } from '../protocol/vms.ts';
import type { VmService } from './acropolis.ts';

const ROLES: readonly Role[] = ['operator', 'cvm'];
const uuidParam = z.object({ uuid: z.string().min(1).max(64) });
const idParam = z.object({ id: z.string().min(1).max(64) });
const consoleQuery = z.object({ offset: z.coerce.number().int().min(0).default(0) });
const tasksQuery = z.object({ entity: z.string().max(64).optional() });

export interface VmServiceRouteOptions {
  /** The largest image upload (default 8 GiB); streamed to a file, never held in memory. */
  uploadLimitBytes?: number;
}

/** The VM service behind `service()` (undefined while this CVM is in no cluster: 409 then). */
export function registerVmServiceRoutes(app: FastifyInstance, service: () => VmService, o: VmServiceRouteOptions = {}): void {
  const cfg = { config: { roles: ROLES } };
  const uuid = (req: FastifyRequest): string => parseWith(uuidParam, req.params).uuid;
  /** Runs `local` on the leader; elsewhere passes the request on to it (a cvm caller is already a forward). */
  const mutate = async <T>(req: FastifyRequest, local: (s: VmService) => Promise<T>): Promise<T> => {
    const s = service();
    if (s.isLeader || (req.peer?.role === 'cvm' && req.headers[FORWARDED_HEADER] === '1')) return local(s);
    return s.forward<T>(req.method, req.url, req.body ?? undefined);
  };

  app.get('/vms', cfg, () => service().listVms());
  app.get('/vms/:uuid', cfg, (req) => service().getVm(uuid(req)));
  app.post('/vms', cfg, async (req, reply) => reply.status(202).send(await mutate(req, (s) => s.createVm(req.body))));
  app.put('/vms/:uuid', cfg, async (req, reply) => reply.status(202).send(await mutate(req, (s) => s.updateVm(uuid(req), req.body))));
  app.delete('/vms/:uuid', cfg, async (req, reply) => reply.status(202).send(await mutate(req, (s) => s.deleteVm(uuid(req)))));
  app.post('/vms/:uuid/power', cfg, async (req, reply) => reply.status(202).send(await mutate(req, (s) => s.powerVm(uuid(req), req.body))));
  app.post('/vms/:uuid/clone', cfg, async (req, reply) => reply.status(202).send(await mutate(req, (s) => s.cloneVm(uuid(req), req.body))));
  app.post('/vms/:uuid/migrate', cfg, async (req, reply) => reply.status(202).send(await mutate(req, (s) => s.migrateVm(uuid(req), req.body))));
  app.get('/vms/:uuid/console', cfg, (req) => service().console(uuid(req), parseWith(consoleQuery, req.query).offset));
  // typed on the guest's console: the operator, or Prism for a user it authenticated (its browser
  // console; role cvm), relayed by whichever CVM is asked (nothing stored)
  app.post('/vms/:uuid/console/input', { config: { roles: ['operator', 'cvm'] }, bodyLimit: 16 << 10 }, (req) => service().consoleInput(uuid(req), req.body));

  app.get('/images', cfg, () => service().listImages());
  app.post('/images', cfg, async (req, reply) => reply.status(202).send(await mutate(req, (s) => s.createImage(req.body))));
  app.delete('/images/:uuid', cfg, (req) => mutate(req, (s) => s.deleteImage(uuid(req))));
  // the upload's body is a stream handed on as it arrives (to a file on the leader), never buffered;
  // it may take as long as it keeps arriving (longBody: on an API made with longBodyIdleMs)
  void app.register((sub, _opts, done) => {
    sub.removeContentTypeParser('application/octet-stream');
    sub.addContentTypeParser('application/octet-stream', (_req, payload, next) => next(null, payload));
    sub.put('/images/upload', { config: { roles: ROLES, longBody: true }, bodyLimit: o.uploadLimitBytes ?? 8 * 1024 ** 3 }, async (req, reply) => {
      const s = service();
      const body = req.body as Readable;
      const answer = s.isLeader || (req.peer?.role === 'cvm' && req.headers[FORWARDED_HEADER] === '1')
        ? await s.uploadImage(req.query, body)
        : await s.forwardUpload<Accepted>(req.url, body, { 'content-type': 'application/octet-stream', ...(req.headers['content-length'] ? { 'content-length': req.headers['content-length'] } : {}) });
      return reply.status(202).send(answer);
    });
    done();
  });

  app.get('/subnets', cfg, () => service().listSubnets());
  app.post('/subnets', cfg, async (req, reply) => reply.status(201).send(await mutate(req, (s) => s.createSubnet(req.body))));
  app.delete('/subnets/:uuid', cfg, (req) => mutate(req, (s) => s.deleteSubnet(uuid(req))));

  app.get('/tasks', cfg, (req) => service().listTasks(parseWith(tasksQuery, req.query).entity));
  app.get('/tasks/:uuid', cfg, (req) => service().getTask(uuid(req)));

  // the leader's view of the hosts: asked of a follower, passed on like a mutation (Prism, beside any
  // CVM, calls without the forwarded header; a forwarded call reaching a follower is answered 503)
  app.get('/hosts', cfg, (req) => {
    const s = service();
    return s.isLeader || (req.peer?.role === 'cvm' && req.headers[FORWARDED_HEADER] === '1') ? s.hosts() : s.forward('GET', req.url);
  });
  app.post('/hosts/:id/maintenance', cfg, async (req, reply) => reply.status(202).send(await mutate(req, (s) => s.setMaintenance(parseWith(idParam, req.params).id, req.body))));
  app.post('/hosts/:id/power-on', cfg, async (req, reply) => reply.status(202).send(await mutate(req, (s) => s.powerOnHost(parseWith(idParam, req.params).id))));
}
