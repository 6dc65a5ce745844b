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
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { Clock } from '../../shared/clock.ts';
import type { Random } from '../../shared/random.ts';
import { ConflictError, InputError, NotFoundError, errorMessage, isConvergeError } from '../../shared/errors.ts';
import { readJson, writeJson } from '../../shared/json-file.ts';
import { generatePassword, hashPassword } from '../../shared/passwords.ts';
import { ensureCa, ensureServerCert, type Pem } from '../../shared/tls.ts';
import { BUILTIN_MODELS, DEFAULT_BMC_NETWORK, DEFAULT_MODEL, findModel, parseHardwareModel, rackNewNodes, type HardwareModel, type NodeIdentity } from '../core/models.ts';
import { SSDP_ADDRESS, SSDP_ST } from '../protocol/redfish.ts';
import type { RackNodeSummary, RackStatus, FaultPatch } from '../protocol/control.ts';
import { RackLayout } from './layout.ts';
import { NodeRuntime, NO_FAULTS, type NodeFaults } from './node-runtime.ts';
import { BmcMemory } from './redfish/bmc-state.ts';
import { RedfishRouter } from './redfish/router.ts';
import { redfishRoutes, type BmcHost } from './redfish/resources.ts';
import { readBody, BodyTooLarge } from './http-util.ts';

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
  ssdpPort?: number;
}

interface Bmc {
  node: NodeRuntime;
  mem: BmcMemory;
  server: HttpsServer;
  sockets: Set<Socket>;
  ip: string;
  listening: boolean;
}

export const DEFAULT_PACE = 0.02;

export class Rack {
  readonly layout: RackLayout;
  private bmcs = new Map<string, Bmc>();
  private byIp = new Map<string, Bmc>();
  private router: RedfishRouter;
  private ca: Pem | undefined;
  private control: HttpServer | undefined;
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
      rebind: (node, ip) => {
        const b = this.bmcs.get(node.serial);
        if (b) setTimeout(() => void this.rebind(b, ip).catch((e: unknown) => this.opts.log(`rebind ${node.serial}: ${errorMessage(e)}`)), 50);
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
    const models = c.modelFile ? [c.modelFile] : [];
    const model = c.modelFile ?? findModel(BUILTIN_MODELS, c.model ?? DEFAULT_MODEL);
    const network = c.bmcNetwork ?? DEFAULT_BMC_NETWORK;
    const cfg: RackConfig = {
      version: 1,
      createdAt: new Date(opts.clock.now()).toISOString(),
      pace,
      network: { bmcNetwork: network, bmcPort: c.bmcPort ?? 8443, controlPort: 8080, ssdpPort: c.ssdpPort ?? 1900 },
      bmc: { userName: user, password: c.bmcPassword ?? generatePassword() },
      models,
      nodes: rackNewNodes([], model, c.nodes, () => randomUUID(), network),
    };
    writeJson(layout.rackJson, cfg, 0o600);
    return new Rack(cfg, opts);
  }

  get controlUrl(): string {
    return `http://${this.config.network.bmcNetwork}.255.254:${this.config.network.controlPort}`;
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

  get nodes(): NodeRuntime[] {
    return [...this.bmcs.values()].map((b) => b.node);
  }

  async start(): Promise<void> {
    this.ca = await ensureCa(this.layout.caCert, this.layout.caKey, `Converge Rack CA (${this.opts.dataDir})`);
    await Promise.all(this.config.nodes.map((id) => this.startNode(id)));
    for (const b of this.bmcs.values()) b.node.restore();
    await this.startControl();
    this.startSsdp();
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
    const b: Bmc = { node, mem, server: undefined as unknown as HttpsServer, sockets: new Set(), ip, listening: false };
    await this.bind(b, ip);
    this.bmcs.set(id.serial, b);
  }

  private async bind(b: Bmc, ip: string): Promise<void> {
    if (!this.ca) throw new Error('rack not started');
    const pem = await ensureServerCert(this.ca, `${b.node.layout.tlsCert}.${ip}`, `${b.node.layout.tlsKey}.${ip}`, [ip], [b.node.state.bmcNetwork.hostName]);
    const server = createHttpsServer({ cert: pem.cert, key: pem.key, minVersion: 'TLSv1.2' }, (req, res) => void this.serve(b, req, res));
    server.on('connection', (s: Socket) => {
      if (b.mem.rebootingUntil > this.opts.clock.now()) {
        s.destroy();
        return;
      }
      b.sockets.add(s);
      s.on('close', () => b.sockets.delete(s));
    });
    server.on('tlsClientError', () => undefined);
    b.server = server;
    b.ip = ip;
    this.byIp.set(ip, b);
    if (!b.node.state.faults.bmcUnreachable) await this.listen(b);
  }

  private listen(b: Bmc): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(new Error(`BMC of ${b.node.serial} cannot listen on ${b.ip}:${this.config.network.bmcPort}: ${e.message}`));
      b.server.once('error', onError);
      b.server.listen(this.config.network.bmcPort, b.ip, () => {
        b.server.off('error', onError);
        b.listening = true;
        resolve();
      });
    });
  }

  private async unlisten(b: Bmc): Promise<void> {
    if (!b.listening) return;
    b.listening = false;
    await new Promise<void>((resolve) => {
      b.server.close(() => resolve());
      for (const s of b.sockets) s.destroy();
    });
  }

  private async rebind(b: Bmc, ip: string): Promise<void> {
    if (this.byIp.has(ip) && this.byIp.get(ip) !== b) throw new ConflictError(`address ${ip} is in use by another BMC`);
    await this.unlisten(b);
    this.byIp.delete(b.ip);
    await this.bind(b, ip);
    this.opts.log(`BMC of ${b.node.serial} moved to ${ip}`);
  }

  private async serve(b: Bmc, req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const slow = b.node.state.faults.bmcSlowMs;
      if (slow > 0) await this.opts.clock.sleep(slow);
      const raw = await readBody(req);
      const url = new URL(req.url ?? '/', 'https://bmc');
      const r = await this.router.handle({ method: req.method ?? 'GET', path: url.pathname, query: url.search.slice(1), headers: req.headers, rawBody: raw }, b.node, b.mem);
      res.writeHead(r.status, r.headers);
      res.end(r.body);
    } catch (e) {
      const status = e instanceof BodyTooLarge ? 413 : 500;
      if (!res.headersSent) res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'Base.1.24.0.GeneralError', message: errorMessage(e), '@Message.ExtendedInfo': [] } }));
    }
  }

  /** Racks `count` new nodes of a model, as a user would rack new servers, and starts them. */
  async addNodes(count: number, modelName?: string, modelFile?: HardwareModel): Promise<RackNodeSummary[]> {
    if (!Number.isInteger(count) || count < 1 || count > 1000) throw new InputError('count', 'must be a whole number from 1 to 1000', undefined, count);
    let model: HardwareModel;
    if (modelFile) {
      if (!this.allModels.some((m) => m.name === modelFile.name)) this.config.models.push(modelFile);
      model = modelFile;
    } else {
      model = findModel(this.allModels, modelName ?? this.config.nodes[this.config.nodes.length - 1]?.model ?? DEFAULT_MODEL);
    }
    const added = rackNewNodes(this.config.nodes, model, count, () => randomUUID(), this.config.network.bmcNetwork);
    this.config.nodes.push(...added);
    writeJson(this.layout.rackJson, this.config, 0o600);
    await Promise.all(added.map((id) => this.startNode(id)));
    return added.map((id) => this.summary(this.node(id.serial)));
  }

  summary(n: NodeRuntime): RackNodeSummary {
    const b = this.bmcs.get(n.serial);
    const s: RackNodeSummary = {
      serial: n.identity.serial,
      uuid: n.identity.uuid,
      model: n.model.name,
      block: n.identity.blockSerial,
      position: n.identity.position,
      bmc: { url: this.bmcUrl(b?.ip ?? n.identity.bmcIp), ip: b?.ip ?? n.identity.bmcIp, mac: n.inventory.bmcMac, reachable: b?.listening ?? false },
      power: n.state.power.power,
      bootProgress: n.state.power.bootProgress.oemLastState ?? n.state.power.bootProgress.lastState,
      faults: n.state.faults,
    };
    if (n.state.power.running) s.running = n.state.power.running;
    return s;
  }

  status(): RackStatus {
    return {
      dataDir: this.opts.dataDir,
      controlUrl: this.controlUrl,
      caCert: this.layout.caCert,
      pace: this.config.pace,
      bmcUser: this.config.bmc.userName,
      ssdp: this.ssdpActive,
      pid: process.pid,
      nodes: this.config.nodes.map((id) => this.summary(this.node(id.serial))),
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

  private async startControl(): Promise<void> {
    const server = createHttpServer((req, res) => void this.serveControl(req, res));
    this.control = server;
    const host = `${this.config.network.bmcNetwork}.255.254`;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new Error(`rack control API cannot listen on ${host}:${this.config.network.controlPort}: ${e.message}`)));
      server.listen(this.config.network.controlPort, host, resolve);
    });
  }

  /** Set by the daemon: what POST /rack/shutdown does. */
  onShutdownRequest: () => void = () => undefined;

  private async serveControl(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      const url = new URL(req.url ?? '/', this.controlUrl);
      const raw = await readBody(req);
      let body: Record<string, unknown> = {};
      if (raw.trim()) {
        try {
          body = JSON.parse(raw) as Record<string, unknown>;
        } catch {
          throw new InputError('body', 'malformed JSON');
        }
      }
      const parts = url.pathname.split('/').filter(Boolean);
      const m = `${req.method ?? 'GET'} /${parts.map((p, i) => (i === 2 && parts[1] === 'nodes' ? ':serial' : p)).join('/')}`;
      switch (m) {
        case 'GET /rack':
          return send(200, this.status());
        case 'GET /rack/bmcs':
          return send(200, { bmcs: this.nodes.map((n) => this.summary(n)).filter((s) => s.bmc.reachable).map((s) => ({ serial: s.serial, uuid: s.uuid, model: s.model, url: `${s.bmc.url}/redfish/v1/`, mac: s.bmc.mac })) });
        case 'POST /rack/nodes': {
          const count = body['count'] ?? 1;
          if (typeof count !== 'number') throw new InputError('count', 'must be a number', undefined, count);
          const modelFile = body['modelFile'] === undefined ? undefined : parseHardwareModel(body['modelFile']);
          return send(201, { nodes: await this.addNodes(count, typeof body['model'] === 'string' ? body['model'] : undefined, modelFile) });
        }
        case 'GET /rack/nodes/:serial':
          return send(200, this.summary(this.node(parts[2] ?? '')));
        case 'PATCH /rack/nodes/:serial/faults':
          return send(200, { faults: await this.setFaults(parts[2] ?? '', body) });
        case 'DELETE /rack/nodes/:serial/faults':
          return send(200, { faults: await this.clearFaults(parts[2] ?? '') });
        case 'POST /rack/shutdown':
          send(202, { stopping: true });
          this.onShutdownRequest();
          return;
        default:
          throw new NotFoundError('control endpoint', `${req.method ?? ''} ${url.pathname}`);
      }
    } catch (e) {
      const status = e instanceof InputError ? 400 : e instanceof NotFoundError ? 404 : e instanceof ConflictError ? 409 : 500;
      const err: Record<string, unknown> = { code: isConvergeError(e) ? e.code : 'CVG_ERR_INTERNAL', message: errorMessage(e) };
      if (e instanceof InputError) {
        err['field'] = e.field;
        if (e.allowed) err['allowed'] = e.allowed;
      }
      send(status, { error: err });
    }
  }

  /** Answers Redfish SSDP M-SEARCH (DSP0266 "Discovery") for every reachable BMC. */
  private startSsdp(): void {
    const sock = createSocket({ type: 'udp4', reuseAddr: true });
    sock.on('error', (e) => {
      this.opts.log(`SSDP disabled: ${e.message}`);
      this.ssdpActive = false;
      sock.close();
    });
    sock.on('message', (msg, rinfo) => {
      const text = msg.toString('latin1');
      if (!text.startsWith('M-SEARCH')) return;
      const st = /^ST:\s*(.+)$/im.exec(text)?.[1]?.trim() ?? '';
      if (st !== 'ssdp:all' && !st.startsWith(SSDP_ST) && st !== 'upnp:rootdevice') return;
      for (const b of this.bmcs.values()) {
        if (!b.listening) continue;
        const reply = [
          'HTTP/1.1 200 OK',
          'CACHE-CONTROL: max-age=1800',
          `ST: ${SSDP_ST}:17`,
          `USN: uuid:${b.node.identity.uuid}::${SSDP_ST}:17`,
          `AL: ${this.bmcUrl(b.ip)}/redfish/v1/`,
          'EXT:',
          'SERVER: Converge-Rack/1.0 UPnP/1.1 Redfish/1.17',
          '', '',
        ].join('\r\n');
        sock.send(reply, rinfo.port, rinfo.address);
      }
    });
    sock.bind(this.config.network.ssdpPort, () => {
      this.ssdpActive = true;
      try {
        sock.addMembership(SSDP_ADDRESS);
      } catch (e) {
        this.opts.log(`SSDP: multicast unavailable (${errorMessage(e)}); unicast M-SEARCH still answered`);
      }
    });
    this.ssdp = sock;
  }

  /** Stops everything; the data dir keeps the rack as it was. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all([...this.bmcs.values()].map(async (b) => {
      await b.node.settled();
      await b.node.shutdown();
      await this.unlisten(b);
    }));
    if (this.ssdp) {
      try {
        this.ssdp.close();
      } catch {
        // already closed
      }
    }
    await new Promise<void>((r) => (this.control ? this.control.close(() => r()) : r()));
    this.control?.closeAllConnections();
  }

  /** Removes the rack's data dir entirely (rack destroy). */
  static destroy(dataDir: string): void {
    rmSync(new RackLayout(dataDir).root, { recursive: true, force: true });
  }
}

function validateFaults(p: FaultPatch, cur: NodeFaults): NodeFaults {
  const out: NodeFaults = { ...cur, failedDisks: [...cur.failedDisks], nicLinkDown: [...cur.nicLinkDown] };
  const allowed = Object.keys(NO_FAULTS);
  for (const k of Object.keys(p)) if (!allowed.includes(k)) throw new InputError(k, 'is not a fault', allowed);
  const bool = (k: 'bmcUnreachable' | 'powerOnFailure' | 'bootFailure'): void => {
    const v = p[k];
    if (v === undefined) return;
    if (typeof v !== 'boolean') throw new InputError(k, 'must be true or false', undefined, v);
    out[k] = v;
  };
  bool('bmcUnreachable');
  bool('powerOnFailure');
  bool('bootFailure');
  if (p.bmcSlowMs !== undefined) {
    if (typeof p.bmcSlowMs !== 'number' || !Number.isInteger(p.bmcSlowMs) || p.bmcSlowMs < 0 || p.bmcSlowMs > 600_000) throw new InputError('bmcSlowMs', 'must be whole milliseconds from 0 to 600000', undefined, p.bmcSlowMs);
    out.bmcSlowMs = p.bmcSlowMs;
  }
  for (const k of ['failedDisks', 'nicLinkDown'] as const) {
    const v = p[k];
    if (v === undefined) continue;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new InputError(k, 'must be a list of names', undefined, v);
    out[k] = [...new Set(v)];
  }
  if (p.installerCrashAtPercent !== undefined) {
    const v = p.installerCrashAtPercent;
    if (v !== null && (typeof v !== 'number' || v < 0 || v > 100)) throw new InputError('installerCrashAtPercent', 'must be a percent from 0 to 100, or null', undefined, v);
    out.installerCrashAtPercent = v;
  }
  return out;
}
