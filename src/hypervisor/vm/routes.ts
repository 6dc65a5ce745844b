/**
 * @module
 * The host agent's VM routes (protocol/vms.ts) over a VmRuntime. Changes are for the VM service's
 * leader (a CVM) and the operator; reads of state and resources also for the cluster's hosts (not
 * the console: what a guest prints is its own). Bodies and parameters are
 * checked with zod (an InputError names the field). PUT /network belongs to the virtual switch and
 * is registered with it, not here.
 */
import type { FastifyInstance } from 'fastify';
import type { PassThrough } from 'node:stream';
import type { Role } from '../../shared/identity.ts';
import { parseWith } from '../../shared/schema.ts';
import type { VmRuntime } from './runtime.ts';
import { consoleInputSchema, hostVmSpecSchema, migrateSchema, offsetQuery, powerSchema, uuidParams } from './spec.ts';
import { InputError } from '../../shared/errors.ts';
import type { HostVmSpec } from '../protocol/vms.ts';

const WRITE: { config: { roles: readonly Role[] } } = { config: { roles: ['cvm', 'operator'] } };
const READ: { config: { roles: readonly Role[] } } = { config: { roles: ['cvm', 'operator', 'host'] } };

/** The spec of PUT /vms/:uuid and /incoming: its uuid is the path's. */
function specOf(params: unknown, body: unknown): HostVmSpec {
  const { uuid } = parseWith(uuidParams, params);
  const spec = parseWith(hostVmSpecSchema, body) as HostVmSpec;
  if (spec.uuid.toLowerCase() !== uuid.toLowerCase()) throw new InputError('uuid', `is ${spec.uuid}, the path names ${uuid}`);
  return spec;
}

export function registerVmRoutes(app: FastifyInstance, rt: VmRuntime): void {
  const uuidOf = (params: unknown): string => parseWith(uuidParams, params).uuid;

  app.get('/resources', READ, () => rt.resources());
  app.get('/vms', READ, () => rt.list());
  app.get('/vms/:uuid', READ, (req) => rt.get(uuidOf(req.params)));
  app.put('/vms/:uuid', WRITE, async (req, reply) => reply.status(201).send(await rt.start(specOf(req.params, req.body))));
  app.post('/vms/:uuid/power', WRITE, (req) => rt.power(uuidOf(req.params), parseWith(powerSchema, req.body).action));
  app.delete('/vms/:uuid', WRITE, async (req) => {
    const uuid = uuidOf(req.params);
    await rt.delete(uuid);
    return { deleted: uuid };
  });
  app.get('/vms/:uuid/console', WRITE, (req) => rt.console(uuidOf(req.params), parseWith(offsetQuery, req.query).offset ?? 0));
  // live console streams never end on their own: closing the API ends them (else close would wait for them)
  const streams = new Set<PassThrough>();
  app.addHook('preClose', (done) => {
    for (const s of streams) s.end();
    done();
  });
  app.get('/vms/:uuid/console/stream', WRITE, (req, reply) => {
    const stream = rt.consoleStream(uuidOf(req.params));
    streams.add(stream);
    stream.once('close', () => streams.delete(stream));
    // the answer is over or the reader went away: stop feeding it (the response's close, not the request's:
    // a request's close may come as soon as its body is read)
    reply.raw.on('close', () => stream.destroy());
    // the headers at once (Node holds them for the first chunk, and a quiet console may have none for long)
    reply.raw.once('pipe', () => reply.raw.flushHeaders());
    return reply.type('text/plain; charset=utf-8').header('Cache-Control', 'no-store').send(stream);
  });
  app.post('/vms/:uuid/console/input', { ...WRITE, bodyLimit: 16 << 10 }, async (req) => {
    await rt.consoleInput(uuidOf(req.params), parseWith(consoleInputSchema, req.body).data);
    return { ok: true };
  });
  app.put('/vms/:uuid/incoming', WRITE, async (req, reply) => reply.status(201).send(await rt.incoming(specOf(req.params, req.body))));
  app.post('/vms/:uuid/migrate', WRITE, (req) => {
    const b = parseWith(migrateSchema, req.body);
    return rt.migrate(uuidOf(req.params), b.targetHostIp, b.port);
  });
}
