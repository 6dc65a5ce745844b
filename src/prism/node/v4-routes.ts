/**
 * @module
 * Prism's v4 routes (core/v4.ts; docs/prism.md "v4"): version negotiation, clustermgmt clusters
 * and hosts, vmm AHV VMs (list, get, create, delete, power actions) and images, networking
 * subnets, prism tasks, host maintenance (`$actions/enter-host-maintenance`, `exit-host-maintenance`);
 * any v4.x version segment. Mutations answer 202 with a task reference;
 * `NTNX-Request-Id` makes a retried mutation answer what the first did without doing it twice;
 * PUT (a VM's name and size), DELETE and `$actions` need `If-Match` with the entity's ETag (428
 * without, 412 when stale).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConflictError, InputError, NotFoundError, PreconditionError } from '../../shared/errors.ts';
import type { Accepted, Image, Subnet, Task, Vm, VmHost } from '../../cvm/protocol/vms.ts';
import type { PrismTask } from '../protocol/prism.ts';
import type { ClusterSnapshot } from '../core/snapshot.ts';
import type { V3VmContext } from '../core/v3-vms.ts';
import {
  V4_NAMESPACES, V4_POWER_ACTIONS, V4_VERSION, isV4Version, parseV4ImageCreate, parseV4Query, parseV4SubnetCreate, parseV4VmCreate, parseV4VmUpdate, taskUuidOf,
  v4Accepted, v4Cluster, v4Host, v4Image, v4List, v4One, v4Subnet, v4TaskOfPrism, v4TaskOfVm, v4Vm, vmEtag,
} from '../core/v4.ts';
import type { CvmCaller } from './server.ts';
import type { VmListView } from './vm-view.ts';
import { byUuid, fieldAs, vmOf } from './vm-service.ts';

/** An `If-Match` missing (428) or not the entity's ETag (412). */
export class IfMatchError extends PreconditionError {
  constructor(readonly httpStatus: 412 | 428, message: string) {
    super(message);
  }
}

export interface V4Deps {
  source: { get(): Promise<ClusterSnapshot> };
  tasks: { get(uuid: string): Promise<PrismTask>; list(): Promise<PrismTask[]>; start(op: string, entities: PrismTask['entities'], work: () => Promise<PrismTask['entities'] | void>): Promise<string> };
  cvm: CvmCaller;
  vmContext: () => Promise<V3VmContext>;
  /** The read model lists come from (node/vm-view.ts); mutations here invalidate it. */
  vmView: VmListView;
  /** The tasks that are not Prism's own: the VM service's and the LCM upgrade's. */
  serviceTasks: () => Promise<Task[]>;
  /** One of them by uuid; NotFoundError naming `shown`. */
  serviceTask: (uuid: string, shown?: string) => Promise<Task>;
}

/** The VM service's fields of a VM update as v4 names them. */
const V4_VM_FIELDS: Record<string, string> = { name: 'name', vcpus: 'numSockets', memoryMiB: 'memorySizeBytes', specVersion: 'If-Match' };

/** Answers remembered by NTNX-Request-Id, for an hour, at most this many. */
const REQUEST_IDS = 10_000;
const REQUEST_ID_TTL_MS = 3_600_000;

export function registerV4Routes(app: FastifyInstance, d: V4Deps): void {
  const param = (req: FastifyRequest, name: string): string => (req.params as Record<string, string>)[name] ?? '';
  const query = (req: FastifyRequest): ReturnType<typeof parseV4Query> => parseV4Query((req.query ?? {}) as Record<string, unknown>);
  const seen = new Map<string, { key: string; at: number; answer: Promise<{ status: number; body: unknown }> }>();

  /** A mutation run once per NTNX-Request-Id: a retry with the same id gets the first answer. */
  const once = async (req: FastifyRequest, reply: FastifyReply, run: () => Promise<{ status: number; body: unknown }>): Promise<FastifyReply> => {
    const raw = req.headers['ntnx-request-id'];
    const id = typeof raw === 'string' && raw.length > 0 && raw.length <= 128 ? raw : undefined;
    const key = `${req.method} ${req.url}`;
    const now = Date.now();
    for (const [k, v] of seen) {
      if (seen.size <= REQUEST_IDS && now - v.at < REQUEST_ID_TTL_MS) break;
      seen.delete(k);
    }
    let entry = id ? seen.get(id) : undefined;
    if (entry && entry.key !== key) throw new ConflictError(`NTNX-Request-Id ${id ?? ''} was used for another request (${entry.key})`);
    if (!entry) {
      entry = { key, at: now, answer: run() };
      if (id) {
        seen.set(id, entry);
        entry.answer.catch(() => seen.delete(id)); // a refused request may be sent again with the same id
      }
    }
    const a = await entry.answer;
    return reply.status(a.status).send(a.body);
  };

  // every v4 path: a version the SDKs use
  app.addHook('preHandler', (req, _reply, done) => {
    const v = (req.params as Record<string, string> | undefined)?.['version'];
    done(v !== undefined && req.url.startsWith('/api/') && !isV4Version(v) ? new NotFoundError('v4 API version', `${v} (v4.0 to v4.3 are served)`) : undefined);
  });

  app.options('/api/:namespace/unversioned/info', (req) => {
    const ns = param(req, 'namespace');
    if (!(V4_NAMESPACES as readonly string[]).includes(ns)) throw new NotFoundError('v4 API namespace', `${ns} (this Prism serves ${V4_NAMESPACES.join(', ')})`);
    return { data: V4_VERSION };
  });

  // ---- clustermgmt ----
  const CM = '/api/clustermgmt/:version/config';
  const clusterOf = async (extId: string): Promise<ClusterSnapshot> => {
    const s = await d.source.get();
    if (extId !== s.cluster.clusterId) throw new NotFoundError('cluster', extId);
    return s;
  };
  const hostsOf = async (s: ClusterSnapshot): Promise<Record<string, unknown>[]> => {
    const [vms, hosts] = await Promise.all([d.cvm<Vm[]>('/vms').catch(() => [] as Vm[]), d.cvm<VmHost[]>('/hosts').catch(() => [] as VmHost[])]);
    return s.members.map((m) => v4Host(m, s, vms.filter((v) => v.host?.serial === m.serial).length, hosts.find((h) => h.serial === m.serial)?.state));
  };
  app.get(`${CM}/clusters`, async (req) => v4List('clustermgmt.v4.config.ListClustersApiResponse', [v4Cluster(await d.source.get())], query(req), req.url));
  app.get(`${CM}/clusters/:extId`, async (req) => v4One('clustermgmt.v4.config.GetClusterApiResponse', v4Cluster(await clusterOf(param(req, 'extId')))));
  app.get(`${CM}/hosts`, async (req) => v4List('clustermgmt.v4.config.ListHostsApiResponse', await hostsOf(await d.source.get()), query(req), req.url));
  app.get(`${CM}/clusters/:cluster/hosts`, async (req) => v4List('clustermgmt.v4.config.ListHostsApiResponse', await hostsOf(await clusterOf(param(req, 'cluster'))), query(req), req.url));
  app.get(`${CM}/clusters/:cluster/hosts/:extId`, async (req) => {
    const h = (await hostsOf(await clusterOf(param(req, 'cluster')))).find((x) => x['extId'] === param(req, 'extId'));
    if (!h) throw new NotFoundError('host', param(req, 'extId'));
    return v4One('clustermgmt.v4.config.GetHostApiResponse', h);
  });

  // a host in or out of maintenance mode: the VM service moves its VMs away (and back on exit) as a task
  app.post('/api/clustermgmt/:version/operations/clusters/:cluster/hosts/:extId/$actions/:action', (req, reply) => once(req, reply, async () => {
    const action = param(req, 'action');
    if (action !== 'enter-host-maintenance' && action !== 'exit-host-maintenance') throw new NotFoundError('host action', `${action} (enter-host-maintenance or exit-host-maintenance)`);
    const b = req.body ?? {};
    if (typeof b !== 'object' || Array.isArray(b)) throw new InputError('body', 'must be a JSON object');
    const timeout = (b as Record<string, unknown>)['timeoutSeconds'];
    if (timeout !== undefined && (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1)) throw new InputError('timeoutSeconds', 'must be a whole number of seconds above 0');
    const s = await clusterOf(param(req, 'cluster'));
    const m = s.members.find((x) => x.hostUuid === param(req, 'extId'));
    if (!m) throw new NotFoundError('host', param(req, 'extId'));
    const a = await d.cvm<Accepted>(`/hosts/${encodeURIComponent(m.serial)}/maintenance`, { body: { enter: action === 'enter-host-maintenance' } });
    const op = action === 'enter-host-maintenance' ? 'EnterHostMaintenance' : 'ExitHostMaintenance';
    return { status: 202, body: v4Accepted(`clustermgmt.v4.config.${op}ApiResponse`, a.taskUuid) };
  }));

  // ---- vmm: VMs ----
  const VMS = '/api/vmm/:version/ahv/config/vms';
  const getVm = (uuid: string): Promise<Vm> => vmOf(d.cvm, uuid, 'VM');
  /** The VM, if the request's If-Match is its ETag. */
  const matching = async (req: FastifyRequest): Promise<Vm> => {
    const vm = await getVm(param(req, 'extId'));
    const want = req.headers['if-match'];
    if (want === undefined) throw new IfMatchError(428, `If-Match: required: the VM's ETag, from GET ${req.url.split('/$actions')[0] ?? ''}`);
    if (want !== vmEtag(vm) && want !== '*') throw new IfMatchError(412, `If-Match: ${want} is not the VM's ETag (${vmEtag(vm)}): it changed; GET it again`);
    return vm;
  };
  app.get(VMS, async (req) => {
    const q = query(req);
    const v = await d.vmView.get();
    return v4List('vmm.v4.ahv.config.ListVmsApiResponse', d.vmView.shapes(v, 'v4', v4Vm), q, req.url);
  });
  app.get(`${VMS}/:extId`, async (req, reply) => {
    const [vm, ctx] = await Promise.all([getVm(param(req, 'extId')), d.vmContext()]);
    return reply.header('ETag', vmEtag(vm)).send(v4One('vmm.v4.ahv.config.GetVmApiResponse', v4Vm(vm, ctx)));
  });
  app.post(VMS, (req, reply) => once(req, reply, async () => {
    const request = parseV4VmCreate(req.body, await d.vmContext());
    const a = await d.cvm<Accepted>('/vms', { body: request });
    d.vmView.invalidate();
    return { status: 202, body: v4Accepted('vmm.v4.ahv.config.CreateVmApiResponse', a.taskUuid) };
  }));
  app.put(`${VMS}/:extId`, (req, reply) => once(req, reply, async () => {
    const vm = await matching(req);
    const update = parseV4VmUpdate(req.body, vm);
    const task = update
      ? (await d.cvm<Accepted>(`/vms/${encodeURIComponent(vm.uuid)}`, { method: 'PUT', body: update }).catch(fieldAs((f) => V4_VM_FIELDS[f] ?? f))).taskUuid
      : await d.tasks.start('VmUpdate', [{ kind: 'vm', uuid: vm.uuid, name: vm.name }], () => Promise.resolve());
    d.vmView.invalidate();
    return { status: 202, body: v4Accepted('vmm.v4.ahv.config.UpdateVmApiResponse', task) };
  }));
  app.delete(`${VMS}/:extId`, (req, reply) => once(req, reply, async () => {
    const vm = await matching(req);
    const a = await d.cvm<Accepted>(`/vms/${encodeURIComponent(vm.uuid)}`, { method: 'DELETE' });
    d.vmView.invalidate();
    return { status: 202, body: v4Accepted('vmm.v4.ahv.config.DeleteVmApiResponse', a.taskUuid) };
  }));
  app.post(`${VMS}/:extId/$actions/:action`, (req, reply) => once(req, reply, async () => {
    const name = param(req, 'action');
    const action = V4_POWER_ACTIONS[name];
    if (!action) throw new NotFoundError('VM action', `${name} (one of ${Object.keys(V4_POWER_ACTIONS).join(', ')})`);
    const vm = await matching(req);
    const a = await d.cvm<Accepted>(`/vms/${encodeURIComponent(vm.uuid)}/power`, { body: { action } });
    d.vmView.invalidate();
    const op = name.replace(/(^|-)([a-z])/g, (_m, _d: string, c: string) => c.toUpperCase());
    return { status: 202, body: v4Accepted(`vmm.v4.ahv.config.${op}VmApiResponse`, a.taskUuid) };
  }));

  // ---- vmm: images ----
  const IMAGES = '/api/vmm/:version/content/images';
  const getImage = async (uuid: string): Promise<Image> => byUuid(await d.cvm<Image[]>('/images'), uuid, 'image');
  app.get(IMAGES, async (req) => {
    const ctx = await d.vmContext();
    return v4List('vmm.v4.content.ListImagesApiResponse', ctx.images.map((i) => v4Image(i, ctx)), query(req), req.url);
  });
  app.get(`${IMAGES}/:extId`, async (req) => {
    const ctx = await d.vmContext(); // it holds the images: one read
    return v4One('vmm.v4.content.GetImageApiResponse', v4Image(byUuid(ctx.images, param(req, 'extId'), 'image'), ctx));
  });
  app.post(IMAGES, (req, reply) => once(req, reply, async () => {
    const a = await d.cvm<Accepted>('/images', { body: parseV4ImageCreate(req.body) }).catch(fieldAs((f) => (f === 'url' ? 'source.url' : f)));
    return { status: 202, body: v4Accepted('vmm.v4.content.CreateImageApiResponse', a.taskUuid) };
  }));
  app.delete(`${IMAGES}/:extId`, (req, reply) => once(req, reply, async () => {
    const img = await getImage(param(req, 'extId'));
    await d.cvm(`/images/${encodeURIComponent(img.uuid)}`, { method: 'DELETE' });
    const task = await d.tasks.start('ImageDelete', [{ kind: 'image', uuid: img.uuid, name: img.name }], () => Promise.resolve());
    return { status: 202, body: v4Accepted('vmm.v4.content.DeleteImageApiResponse', task) };
  }));

  // ---- networking: subnets ----
  const SUBNETS = '/api/networking/:version/config/subnets';
  const getSubnet = async (uuid: string): Promise<Subnet> => byUuid(await d.cvm<Subnet[]>('/subnets'), uuid, 'subnet');
  app.get(SUBNETS, async (req) => {
    const ctx = await d.vmContext();
    return v4List('networking.v4.config.ListSubnetsApiResponse', ctx.subnets.map((s) => v4Subnet(s, ctx)), query(req), req.url);
  });
  app.get(`${SUBNETS}/:extId`, async (req) => {
    const ctx = await d.vmContext(); // it holds the subnets: one read
    return v4One('networking.v4.config.GetSubnetApiResponse', v4Subnet(byUuid(ctx.subnets, param(req, 'extId'), 'subnet'), ctx));
  });
  app.post(SUBNETS, (req, reply) => once(req, reply, async () => {
    const subnet = await d.cvm<Subnet>('/subnets', { body: parseV4SubnetCreate(req.body, await d.vmContext()) });
    const task = await d.tasks.start('SubnetCreate', [{ kind: 'subnet', uuid: subnet.uuid, name: subnet.name }], () => Promise.resolve());
    return { status: 202, body: v4Accepted('networking.v4.config.CreateSubnetApiResponse', task) };
  }));
  app.delete(`${SUBNETS}/:extId`, (req, reply) => once(req, reply, async () => {
    const subnet = await getSubnet(param(req, 'extId'));
    await d.cvm(`/subnets/${encodeURIComponent(subnet.uuid)}`, { method: 'DELETE' });
    const task = await d.tasks.start('SubnetDelete', [{ kind: 'subnet', uuid: subnet.uuid, name: subnet.name }], () => Promise.resolve());
    return { status: 202, body: v4Accepted('networking.v4.config.DeleteSubnetApiResponse', task) };
  }));

  // ---- prism: tasks ----
  const TASKS = '/api/prism/:version/config/tasks';
  app.get(`${TASKS}/:extId`, async (req) => {
    const uuid = taskUuidOf(param(req, 'extId'));
    const cluster = (await d.source.get()).cluster.clusterId;
    try {
      return v4One('prism.v4.config.GetTaskApiResponse', v4TaskOfPrism(await d.tasks.get(uuid), cluster));
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
      return v4One('prism.v4.config.GetTaskApiResponse', v4TaskOfVm(await d.serviceTask(uuid, param(req, 'extId')), cluster));
    }
  });
  app.get(TASKS, async (req) => {
    const cluster = (await d.source.get()).cluster.clusterId;
    const [others, mine] = await Promise.all([d.serviceTasks(), d.tasks.list()]);
    const all = [...others.map((t) => v4TaskOfVm(t, cluster)), ...mine.map((t) => v4TaskOfPrism(t, cluster))].sort((a, b) => String(b['createdTime']).localeCompare(String(a['createdTime'])));
    return v4List('prism.v4.config.ListTasksApiResponse', all, query(req), req.url);
  });
}
