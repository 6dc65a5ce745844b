/**
 * @module
 * The rack: every node of a data dir, each with its BMC (a Redfish service over HTTPS on the
 * node's own loopback address), SSDP discovery, and the rack's control API (listing BMCs, racking
 * nodes, injecting faults). One process hosts the whole rack; what each node runs is a child
 * process of it.
 *
 * Lifecycle: `Rack.open()` loads or creates rack.json → `start()` binds every BMC, restores
 * power → `addNodes()` any time → `stop()` stops programs and listeners, leaving the data dir as
 * it is, so the next `open()` + `start()` finds the same rack.
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { createSocket, type Socket as UdpSocket, type RemoteInfo } from 'node:dgram';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Clock } from '../../shared/clock.ts';
import type { Random } from '../../shared/random.ts';
import { ConflictError, InputError, NotFoundError, errorMessage, isConvergeError } from '../../shared/errors.ts';
import { readJson, writeJson } from '../../shared/json-file.ts';
import { generatePassword, hashPassword } from '../../shared/passwords.ts';
import { ensureCa, ensureServerCert, type Pem } from '../../shared/tls.ts';
import { BUILTIN_MODELS, DEFAULT_BMC_NETWORK, DEFAULT_MODEL, findModel, rackNewNodes, type HardwareModel, type NodeIdentity } from '../core/models.ts';
import { SSDP_ADDRESS, SSDP_ST, message } from '../protocol/redfish.ts';
import { faultPatchSchema, parseControlBody, type FaultPatch, type RackBmc, type RackNodeSummary, type RackStatus } from '../protocol/control.ts';
import { readControlToken } from '../protocol/access.ts';
import { createControlApi, writeControlToken, type ControlTarget } from './control-api.ts';
import { RackLayout } from './layout.ts';
import { NodeRuntime, NO_FAULTS, type NodeFaults } from './node-runtime.ts';
import { BmcMemory } from './redfish/bmc-state.ts';
import { RedfishError, redfishParseError, toRedfish } from './redfish/http-error.ts';
import { RedfishRouter } from './redfish/router.ts';
import { redfishRoutes, type BmcHost } from './redfish/resources.ts';
import { readBody, hasBody, clientErrorStatus, splitTarget, writeRawResponse } from './http-util.ts';

export interface RackConfig {
  version: 1;
  createdAt: string;
  pace: number;
  network: { bmcNetwork: string; bmcPort: number; controlPort: number; ssdpPort: number };
  bmc: { userName: string; password: string };
  /** Models defined by the user (JSON files given to rack up/add --model-file). */
  models: HardwareModel[];
  nodes: NodeIdentity[];
}

export interface RackOptions {
  dataDir: string;
  clock: Clock;
  random: Random;
  log: (msg: string) => void;
}

export interface CreateOptions {
  nodes: number;
  model?: string;
  modelFile?: HardwareModel;
  bmcUser?: string;
  bmcPassword?: string;
  pace?: number;
  bmcNetwork?: string;
  bmcPort?: number;
  controlPort?: number;
  ssdpPort?: number;
}

/** One HTTPS listener of a BMC, on one address, with the connections it accepted. */
interface Listener {
  server: HttpsServer;
  ip: string;
  /** Every TCP connection (destroyed when the listener closes). */
  raw: Set<Socket>;
  /** Connections past the TLS handshake. */
  tls: Set<TLSSocket>;
  /** Connections with a request being answered. */
  busy: Set<TLSSocket>;
  /** Connections to close as soon as their answer is sent (BMC reboot, move). */
  doomed: Set<TLSSocket>;
}

interface Bmc {
  node: NodeRuntime;
  mem: BmcMemory;
  l: Listener;
  listening: boolean;
}

export const DEFAULT_PACE = 0.02;

/**
 * Response headers, with Connection: close when the request's body was not read to its end (an
 * answer before the body: 401, 403, 404, 413): the connection cannot carry another request.
 */
function closeIfBodyLeft(req: IncomingMessage, headers: Record<string, string>): Record<string, string> {
  return hasBody(req) && !req.complete ? { ...headers, Connection: 'close' } : headers;
}

/** Canonical JSON (sorted keys): two model definitions are the same when these are equal. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/**
 * The model a custom definition stands for among the known ones: the existing model of that name
 * (case-insensitive) when the definitions are identical, none when the name is new. A different
 * model under a known name is refused: on reload the name would find the other one.
 */
function existingModelFor(known: readonly HardwareModel[], def: HardwareModel): HardwareModel | undefined {
  const same = known.find((m) => m.name.toLowerCase() === def.name.toLowerCase());
  if (!same) return undefined;
  if (canonical(same) !== canonical(def)) {
    const builtin = BUILTIN_MODELS.includes(same);
    throw new InputError('model.name', `"${def.name}" is already the name of ${builtin ? 'a built-in' : 'another'} model (${same.name}) with a different definition; give the model a name of its own`, undefined, def.name);
  }
  return same;
}

function listenOn(server: HttpsServer, ip: string, port: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(new Error(`${what} cannot listen on ${ip}:${port}: ${e.message}`));
    server.once('error', onError);
    server.listen(port, ip, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

export class Rack {
  readonly layout: RackLayout;
  private bmcs = new Map<string, Bmc>();
  private byIp = new Map<string, Bmc>();
  private router: RedfishRouter;
  private ca: Pem | undefined;
  private control: FastifyInstance | undefined;
  private ssdp: UdpSocket | undefined;
  private host: BmcHost;
  private stopped = false;
  ssdpActive = false;

  private constructor(readonly config: RackConfig, private readonly opts: RackOptions) {
    this.layout = new RackLayout(opts.dataDir);
    this.host = {
      clock: opts.clock,
      random: opts.random,
      pace: config.pace,
      addressInUse: (node, ip) => this.addressInUse(node, ip),
      rebind: async (node, ip, commit) => {
        const b = this.bmcs.get(node.serial);
        if (!b) throw new NotFoundError('node', node.serial);
        await this.rebind(b, ip, commit);
      },
    };
    this.router = new RedfishRouter(redfishRoutes(this.host), () => opts.clock.now());
  }

  /** Whether a rack has been created in this data dir. */
  static exists(dataDir: string): boolean {
    return readJson(new RackLayout(dataDir).rackJson) !== undefined;
  }

  static load(opts: RackOptions): Rack {
    const cfg = readJson<RackConfig>(new RackLayout(opts.dataDir).rackJson);
    if (!cfg) throw new NotFoundError('rack', `${opts.dataDir} (no rack.json; create one with rack up --nodes N)`);
    return new Rack(cfg, opts);
  }

  /** Creates a new rack's rack.json. Refuses if one exists. */
  static create(opts: RackOptions, c: CreateOptions): Rack {
    const layout = new RackLayout(opts.dataDir);
    if (readJson(layout.rackJson)) throw new ConflictError(`a rack already exists in ${opts.dataDir}`);
    const pace = c.pace ?? DEFAULT_PACE;
    if (!Number.isFinite(pace) || pace < 0 || pace > 10) throw new InputError('pace', 'must be a number from 0 (instant) to 10', undefined, pace);
    if (!Number.isInteger(c.nodes) || c.nodes < 1 || c.nodes > 1000) throw new InputError('nodes', 'must be a whole number from 1 to 1000', undefined, c.nodes);
    const user = c.bmcUser ?? 'admin';
    if (!/^[A-Za-z][A-Za-z0-9._-]{0,31}$/.test(user)) throw new InputError('bmc-user', 'must start with a letter; letters, digits, . _ -; at most 32', undefined, user);
    if (c.bmcPassword !== undefined && (c.bmcPassword.length < 8 || c.bmcPassword.length > 64)) throw new InputError('bmc-password', 'must be 8 to 64 characters long');
    const builtin = c.modelFile ? existingModelFor(BUILTIN_MODELS, c.modelFile) : undefined;
    const models = c.modelFile && !builtin ? [c.modelFile] : [];
    const model = builtin ?? c.modelFile ?? findModel(BUILTIN_MODELS, c.model ?? DEFAULT_MODEL);
    const network = c.bmcNetwork ?? DEFAULT_BMC_NETWORK;
    const cfg: RackConfig = {
      version: 1,
      createdAt: new Date(opts.clock.now()).toISOString(),
      pace,
      network: { bmcNetwork: network, bmcPort: c.bmcPort ?? 8443, controlPort: c.controlPort ?? 8080, ssdpPort: c.ssdpPort ?? 1900 },
      bmc: { userName: user, password: c.bmcPassword ?? generatePassword() },
      models,
      nodes: rackNewNodes([], model, c.nodes, () => randomUUID(), network),
    };
    writeJson(layout.rackJson, cfg, 0o600);
    writeControlToken(layout.controlToken);
    return new Rack(cfg, opts);
  }

  get controlUrl(): string {
    return `http://${this.controlHost}:${this.config.network.controlPort}`;
  }

  private get controlHost(): string {
    return `${this.config.network.bmcNetwork}.255.254`;
  }

  get allModels(): HardwareModel[] {
    return [...BUILTIN_MODELS, ...this.config.models];
  }

  bmcUrl(ip: string): string {
    return `https://${ip}:${this.config.network.bmcPort}`;
  }

  node(serial: string): NodeRuntime {
    const b = this.bmcs.get(serial);
    if (!b) throw new NotFoundError('node', serial);
    return b.node;
  }

  /** The started BMCs in rack order (rack.json's), whatever order they finished starting in. */
  private ordered(): Bmc[] {
    const out: Bmc[] = [];
    for (const id of this.config.nodes) {
      const b = this.bmcs.get(id.serial);
      if (b) out.push(b);
    }
    return out;
  }

  /** The started nodes, in rack order. */
  get nodes(): NodeRuntime[] {
    return this.ordered().map((b) => b.node);
  }

  async start(): Promise<void> {
    this.ca = await ensureCa(this.layout.caCert, this.layout.caKey, `Converge Rack CA (${this.opts.dataDir})`);
    await Promise.all(this.config.nodes.map((id) => this.startNode(id)));
    for (const b of this.ordered()) b.node.restore();
    await this.startControl();
    await this.startSsdp();
  }

  private hash: string | undefined;
  /** One scrypt hash of the rack's BMC password serves every new node (same password, same salt). */
  private initialHash(): string {
    this.hash ??= hashPassword(this.config.bmc.password);
    return this.hash;
  }

  private modelOf(id: NodeIdentity): HardwareModel {
    return findModel(this.allModels, id.model);
  }

  /**
   * Whether a BMC other than `node`'s has (or is about to get) this address, or it is the rack's
   * control address.
   */
  private addressInUse(node: NodeRuntime, ip: string): boolean {
    if (ip === this.controlHost) return true;
    const owner = this.byIp.get(ip);
    if (owner && owner.node !== node) return true;
    // a node being started binds its own address soon
    return this.config.nodes.some((id) => id.serial !== node.serial && !this.bmcs.has(id.serial) && id.bmcIp === ip);
  }

  private async startNode(id: NodeIdentity): Promise<void> {
    const layout = this.layout.node(id.serial);
    const saved = readJson<{ bmcNetwork?: { address?: string } }>(layout.state);
    const ip = saved?.bmcNetwork?.address ?? id.bmcIp;
    const node = new NodeRuntime(id, this.modelOf(id), {
      clock: this.opts.clock,
      random: this.opts.random,
      pace: this.config.pace,
      layout,
      bmcUrl: this.bmcUrl(ip),
      initialAccount: { userName: this.config.bmc.userName, passwordHash: this.initialHash() },
      log: this.opts.log,
    });
    const mem = new BmcMemory(this.opts.clock);
    const b: Bmc = { node, mem, l: undefined as unknown as Listener, listening: false };
    mem.onReboot = () => this.dropConnections(b.l);
    try {
      await this.bind(b, ip);
    } catch (e) {
      if (ip === id.bmcIp) {
        await node.shutdown().catch(() => undefined);
        throw e;
      }
      // the address it was moved to is taken now: the BMC comes back on its factory address
      this.opts.log(`BMC of ${id.serial}: ${errorMessage(e)}; using its default address ${id.bmcIp} instead`);
      try {
        await this.bind(b, id.bmcIp);
      } catch (e2) {
        await node.shutdown().catch(() => undefined);
        throw e2;
      }
      node.state.bmcNetwork.address = id.bmcIp;
      node.persist();
      node.bmcMoved(this.bmcUrl(id.bmcIp));
    }
    this.bmcs.set(id.serial, b);
  }

  private async newListener(b: Bmc, ip: string): Promise<Listener> {
    if (!this.ca) throw new Error('rack not started');
    const pem = await ensureServerCert(this.ca, `${b.node.layout.tlsCert}.${ip}`, `${b.node.layout.tlsKey}.${ip}`, [ip], [b.node.state.bmcNetwork.hostName]);
    const server = createHttpsServer({ cert: pem.cert, key: pem.key, minVersion: 'TLSv1.2' }, (req, res) => void this.serve(b, l, req, res));
    const l: Listener = { server, ip, raw: new Set(), tls: new Set(), busy: new Set(), doomed: new Set() };
    server.on('connection', (s: Socket) => {
      if (b.mem.rebootingUntil > this.opts.clock.now()) {
        s.destroy();
        return;
      }
      l.raw.add(s);
      s.on('close', () => l.raw.delete(s));
    });
    server.on('secureConnection', (s: TLSSocket) => {
      l.tls.add(s);
      s.on('close', () => {
        l.tls.delete(s);
        l.busy.delete(s);
        l.doomed.delete(s);
      });
    });
    server.on('tlsClientError', () => undefined);
    // what Node's HTTP parser refuses (an unknown method, bad headers) still gets a Redfish answer
    server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      const status = clientErrorStatus(err, socket);
      if (status === undefined) return void socket.destroy();
      writeRawResponse(socket, status, { 'Content-Type': 'application/json; charset=utf-8', 'OData-Version': '4.0' }, JSON.stringify(redfishParseError(status, err.code)));
    });
    // CONNECT (a proxy's method) would otherwise get its connection closed unanswered
    server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      writeRawResponse(socket, 501, { 'Content-Type': 'application/json; charset=utf-8', 'OData-Version': '4.0' }, JSON.stringify(redfishParseError(501, undefined)));
    });
    // errors while listening are reported by listenOn; later ones must not take the rack down
    server.on('error', (e) => {
      if (server.listening) this.opts.log(`BMC of ${b.node.serial} on ${ip}: ${e.message}`);
    });
    return l;
  }

  /** Creates the BMC's listener on ip and listens (unless the BMC is faulted unreachable). */
  private async bind(b: Bmc, ip: string): Promise<void> {
    if (this.byIp.has(ip) && this.byIp.get(ip) !== b) throw new RedfishError(409, `address ${ip} is in use by another BMC`, [message('ResourceInUse')]);
    const l = await this.newListener(b, ip);
    if (!b.node.state.faults.bmcUnreachable) await listenOn(l.server, ip, this.config.network.bmcPort, `BMC of ${b.node.serial}`);
    b.l = l;
    b.listening = !b.node.state.faults.bmcUnreachable;
    this.byIp.set(ip, b);
  }

  private async listen(b: Bmc): Promise<void> {
    await listenOn(b.l.server, b.l.ip, this.config.network.bmcPort, `BMC of ${b.node.serial}`);
    b.listening = true;
  }

  private async unlisten(b: Bmc): Promise<void> {
    if (!b.listening) return;
    b.listening = false;
    await this.closeListener(b.l);
  }

  private closeListener(l: Listener): Promise<void> {
    return new Promise<void>((resolve) => {
      l.server.close(() => resolve());
      for (const s of l.raw) s.destroy();
    });
  }

  /** Closes a listener's connections (BMC reboot): at once when idle, else once their answer is sent. */
  private dropConnections(l: Listener): void {
    for (const s of l.tls) {
      if (l.busy.has(s)) l.doomed.add(s);
      else s.destroy();
    }
  }

  /**
   * Moves a BMC to a new address: binds the new address first, then `commit`s (persists) the
   * change, then closes the old listener. A failure anywhere leaves the BMC where it was.
   */
  private async rebind(b: Bmc, ip: string, commit: () => void): Promise<void> {
    if (ip === b.l.ip) {
      commit();
      return;
    }
    if (this.addressInUse(b.node, ip)) throw new RedfishError(409, `address ${ip} is in use by another BMC or the rack`, [message('ResourceInUse')]);
    this.byIp.set(ip, b); // reserved while binding
    let next: Listener | undefined;
    try {
      next = await this.newListener(b, ip);
      if (b.listening) await listenOn(next.server, ip, this.config.network.bmcPort, `BMC of ${b.node.serial}`);
      commit();
    } catch (e) {
      if (this.byIp.get(ip) === b) this.byIp.delete(ip);
      if (next?.server.listening) await this.closeListener(next);
      if (e instanceof RedfishError || isConvergeError(e)) throw e;
      throw new RedfishError(409, `the BMC cannot move to ${ip}: ${errorMessage(e)}; it stays at ${b.l.ip}`, [message('ResourceInUse')]);
    }
    const old = b.l;
    b.l = next;
    this.byIp.delete(old.ip);
    b.node.bmcMoved(this.bmcUrl(ip));
    this.opts.log(`BMC of ${b.node.serial} moved to ${ip}`);
    // the old address stops answering; the answer to the request that moved it still goes out
    if (old.server.listening) old.server.close();
    this.dropConnections(old);
  }

  private async serve(b: Bmc, l: Listener, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const sock = req.socket as TLSSocket;
    if (b.mem.rebootingUntil > this.opts.clock.now()) {
      sock.destroy();
      return;
    }
    l.busy.add(sock);
    const done = (): void => {
      l.busy.delete(sock);
      if (l.doomed.has(sock)) sock.destroy();
    };
    res.once('finish', done);
    res.once('close', done);
    try {
      const slow = b.node.state.faults.bmcSlowMs;
      if (slow > 0) await this.opts.clock.sleep(slow);
      const { path, query } = splitTarget(req.url ?? '/');
      // the router reads the body only once the request is authenticated and allowed
      const r = await this.router.handle({ method: req.method ?? 'GET', path, query, headers: req.headers, body: () => readBody(req) }, b.node, b.mem);
      res.writeHead(r.status, closeIfBodyLeft(req, r.headers));
      res.end(r.body);
    } catch (e) {
      const r = toRedfish(e);
      if (!res.headersSent) res.writeHead(r.status, closeIfBodyLeft(req, { 'Content-Type': 'application/json; charset=utf-8', 'OData-Version': '4.0', ...r.headers }));
      res.end(JSON.stringify(r.body));
    }
  }

  /** Racks `count` new nodes of a model, as a user would rack new servers, and starts them. */
  async addNodes(count: number, modelName?: string, modelFile?: HardwareModel): Promise<RackNodeSummary[]> {
    if (!Number.isInteger(count) || count < 1 || count > 1000) throw new InputError('count', 'must be a whole number from 1 to 1000', undefined, count);
    let model: HardwareModel;
    let newModel = false;
    if (modelFile) {
      const known = existingModelFor(this.allModels, modelFile);
      newModel = known === undefined;
      model = known ?? modelFile;
    } else {
      model = findModel(this.allModels, modelName ?? this.config.nodes[this.config.nodes.length - 1]?.model ?? DEFAULT_MODEL);
    }
    const added = rackNewNodes(this.config.nodes, model, count, () => randomUUID(), this.config.network.bmcNetwork);
    if (newModel) this.config.models.push(model);
    this.config.nodes.push(...added);
    const rollback = async (): Promise<void> => {
      const serials = new Set(added.map((id) => id.serial));
      this.config.nodes = this.config.nodes.filter((id) => !serials.has(id.serial));
      if (newModel) this.config.models = this.config.models.filter((m) => m !== model);
      await Promise.all(added.map(async (id) => {
        const b = this.bmcs.get(id.serial);
        if (!b) return;
        this.bmcs.delete(id.serial);
        if (this.byIp.get(b.l.ip) === b) this.byIp.delete(b.l.ip);
        await b.node.shutdown().catch(() => undefined);
        await this.unlisten(b);
      }));
      for (const id of added) rmSync(this.layout.node(id.serial).dir, { recursive: true, force: true });
    };
    try {
      writeJson(this.layout.rackJson, this.config, 0o600);
      const started = await Promise.allSettled(added.map((id) => this.startNode(id)));
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    } catch (e) {
      await rollback();
      try {
        writeJson(this.layout.rackJson, this.config, 0o600);
      } catch (e2) {
        this.opts.log(`rack add: cannot write rack.json back: ${errorMessage(e2)}`);
      }
      throw e;
    }
    return added.map((id) => this.summary(this.node(id.serial)));
  }

  summary(n: NodeRuntime): RackNodeSummary {
    const b = this.bmcs.get(n.serial);
    const ip = b?.l.ip ?? n.identity.bmcIp;
    const s: RackNodeSummary = {
      serial: n.identity.serial,
      uuid: n.identity.uuid,
      model: n.model.name,
      block: n.identity.blockSerial,
      position: n.identity.position,
      bmc: { url: this.bmcUrl(ip), ip, mac: n.inventory.bmcMac, reachable: b?.listening ?? false },
      power: n.state.power.power,
      bootProgress: n.state.power.bootProgress.oemLastState ?? n.state.power.bootProgress.lastState,
      faults: n.state.faults,
    };
    if (n.state.power.running) s.running = n.state.power.running;
    return s;
  }

  /** The rack's state; nodes being racked (rack add in progress) show once their BMC is up. */
  status(): RackStatus {
    return {
      dataDir: this.opts.dataDir,
      controlUrl: this.controlUrl,
      caCert: this.layout.caCert,
      pace: this.config.pace,
      bmcUser: this.config.bmc.userName,
      ssdp: this.ssdpActive,
      pid: process.pid,
      nodes: this.nodes.map((n) => this.summary(n)),
    };
  }

  /** Injects or clears faults on one node; an empty patch leaves them as they are. */
  async setFaults(serial: string, patch: FaultPatch): Promise<NodeFaults> {
    const b = this.bmcs.get(serial);
    if (!b) throw new NotFoundError('node', serial);
    const next = validateFaults(patch, b.node.state.faults);
    b.node.setFaults(next);
    if (next.bmcUnreachable && b.listening) await this.unlisten(b);
    if (!next.bmcUnreachable && !b.listening) await this.listen(b);
    return b.node.state.faults;
  }

  async clearFaults(serial: string): Promise<NodeFaults> {
    return this.setFaults(serial, { ...NO_FAULTS });
  }

  /** The control token of this rack's data dir; a rack without one (or whose file was deleted) gets a new one. */
  private controlToken(): string {
    const existing = readControlToken(this.opts.dataDir);
    if (existing !== undefined) return existing;
    const token = writeControlToken(this.layout.controlToken);
    this.opts.log(`control API token created in ${this.layout.controlToken}`);
    return token;
  }

  private async startControl(): Promise<void> {
    const t: ControlTarget = {
      status: () => this.status(),
      bmcs: () => this.bmcList(),
      addNodes: (count, model, modelFile) => this.addNodes(count, model, modelFile),
      nodeSummary: (serial) => this.summary(this.node(serial)),
      setFaults: (serial, patch) => this.setFaults(serial, patch),
      clearFaults: (serial) => this.clearFaults(serial),
      shutdown: () => this.onShutdownRequest(),
    };
    const api = createControlApi(t, this.layout.controlToken, this.controlToken());
    this.control = api;
    const host = this.controlHost;
    try {
      await api.listen({ port: this.config.network.controlPort, host });
    } catch (e) {
      throw new Error(`rack control API cannot listen on ${host}:${this.config.network.controlPort}: ${errorMessage(e)}`);
    }
    api.server.on('error', (e) => this.opts.log(`rack control API: ${e.message}`));
  }

  /** The reachable BMCs, in rack order (GET /rack/bmcs). */
  bmcList(): RackBmc[] {
    return this.nodes.map((n) => this.summary(n)).filter((s) => s.bmc.reachable).map((s) => ({ serial: s.serial, uuid: s.uuid, model: s.model, url: `${s.bmc.url}/redfish/v1/`, mac: s.bmc.mac }));
  }

  /** Set by the daemon: what POST /rack/shutdown does. */
  onShutdownRequest: () => void = () => undefined;

  /**
   * Answers Redfish SSDP M-SEARCH (DSP0266 "Discovery") for every reachable BMC. The socket binds
   * every interface (multicast needs it), but only loopback senders are answered: the BMCs live on
   * loopback, and answering the LAN would multiply a small query into many replies.
   */
  private startSsdp(): Promise<void> {
    const sock = createSocket({ type: 'udp4', reuseAddr: true });
    this.ssdp = sock;
    return new Promise<void>((resolve) => {
      sock.on('error', (e) => {
        this.opts.log(`SSDP disabled: ${e.message}`);
        this.ssdpActive = false;
        try {
          sock.close();
        } catch {
          // already closed
        }
        resolve();
      });
      sock.on('message', (msg, rinfo) => this.answerSsdp(sock, msg, rinfo));
      sock.bind(this.config.network.ssdpPort, () => {
        this.ssdpActive = true;
        try {
          sock.addMembership(SSDP_ADDRESS);
        } catch (e) {
          this.opts.log(`SSDP: multicast unavailable (${errorMessage(e)}); unicast M-SEARCH still answered`);
        }
        resolve();
      });
    });
  }

  private answerSsdp(sock: UdpSocket, msg: Buffer, rinfo: RemoteInfo): void {
    try {
      if (rinfo.family !== 'IPv4' || !rinfo.address.startsWith('127.')) return;
      if (!Number.isInteger(rinfo.port) || rinfo.port < 1 || rinfo.port > 65535) return;
      const text = msg.toString('latin1');
      if (!text.startsWith('M-SEARCH')) return;
      const st = /^ST:\s*(.+)$/im.exec(text)?.[1]?.trim() ?? '';
      if (st !== 'ssdp:all' && !st.startsWith(SSDP_ST) && st !== 'upnp:rootdevice') return;
      for (const b of this.ordered()) {
        if (!b.listening) continue;
        const reply = [
          'HTTP/1.1 200 OK',
          'CACHE-CONTROL: max-age=1800',
          `ST: ${SSDP_ST}:17`,
          `USN: uuid:${b.node.identity.uuid}::${SSDP_ST}:17`,
          `AL: ${this.bmcUrl(b.l.ip)}/redfish/v1/`,
          'EXT:',
          'SERVER: Converge-Rack/1.0 UPnP/1.1 Redfish/1.17',
          '', '',
        ].join('\r\n');
        // with a callback, a failed send is reported here instead of as a socket 'error' (which disables SSDP)
        sock.send(reply, rinfo.port, rinfo.address, (e) => {
          if (e) this.opts.log(`SSDP: cannot answer ${rinfo.address}:${rinfo.port}: ${e.message}`);
        });
      }
    } catch (e) {
      this.opts.log(`SSDP: ${errorMessage(e)}`);
    }
  }

  /** Stops everything; the data dir keeps the rack as it was. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all([...this.bmcs.values()].map(async (b) => {
      await b.node.shutdown(); // abandons a boot in progress, then drains the node's commands
      await this.unlisten(b);
    }));
    if (this.ssdp) {
      try {
        this.ssdp.close();
      } catch {
        // already closed
      }
    }
    await this.control?.close();
    this.control?.server.closeAllConnections();
  }

  /** Removes the rack's data dir entirely (rack destroy). */
  static destroy(dataDir: string): void {
    rmSync(new RackLayout(dataDir).root, { recursive: true, force: true });
  }
}

/** The faults after a patch (checked whole first, against the control API's schema). */
function validateFaults(p: FaultPatch, cur: NodeFaults): NodeFaults {
  const f = parseControlBody(faultPatchSchema, p);
  return {
    bmcUnreachable: f.bmcUnreachable ?? cur.bmcUnreachable,
    bmcSlowMs: f.bmcSlowMs ?? cur.bmcSlowMs,
    failedDisks: [...new Set(f.failedDisks ?? cur.failedDisks)],
    powerOnFailure: f.powerOnFailure ?? cur.powerOnFailure,
    bootFailure: f.bootFailure ?? cur.bootFailure,
    nicLinkDown: [...new Set(f.nicLinkDown ?? cur.nicLinkDown)],
    installerCrashAtPercent: f.installerCrashAtPercent === undefined ? cur.installerCrashAtPercent : f.installerCrashAtPercent,
  };
}
