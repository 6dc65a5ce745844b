/**
 * @module
 * An imaging session: the nodes of one image_nodes request, each driven by the pure imaging
 * machine (core/imaging.ts). This class is the machine's executor: it performs Redfish operations
 * through Bmc, runs timers on the injected clock, watches nodes while they install, appends every
 * event to the session's log (events.jsonl) and persists the session after each change.
 *
 * Invariants:
 *  1. At most `maxParallel` nodes are between start and a final stage at once.
 *  2. Events for a node in a final stage change nothing (the machine ignores them).
 *  3. After a restart of Foundation, nodes that were mid-flight are failed with that reason (they
 *     can be retried: a retry, as every imaging, starts by powering the node off and waiting until
 *     its BMC reports Off); nothing stays running forever.
 */
import { within } from '../../shared/async.ts';
import type { FoundationEvent } from '../protocol/deploy.ts';
import { appendFileSync, mkdirSync, readFileSync, existsSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import type { Clock, Disposable } from '../../shared/clock.ts';
import { errorMessage, ConflictError, NotFoundError, TimeoutError } from '../../shared/errors.ts';
import { writeJson, readJson } from '../../shared/json-file.ts';
import {
  initialImagingState, stepImaging, isFinal, statusText,
  type ImagingCommand, type ImagingEvent, type NodeImagingState, type RedfishOp, type Stage,
} from '../core/imaging.ts';
import { Bmc, type BmcCredentials } from './bmc.ts';
import type { FoundationLayout } from './layout.ts';
import { clusterReadiness, clusterSettled, type ClusterCheck, type ClusterEntry } from '../core/cluster-stage.ts';
import { createAndValidate, ClusterCheckFailed } from './cluster-flow.ts';
import { HOST_AGENT_PORT } from '../../hypervisor/protocol/node-config.ts';
import { hostCall } from '../../hypervisor/protocol/client.ts';
import { cvmCall } from '../../cvm/protocol/client.ts';
import type { Identity } from '../../shared/identity.ts';

/** How long imaging waits for a node's BMC to report it Off after ForceOff (each attempt). */
export const POWER_OFF_WAIT_MS = 60_000;

export interface SessionNode {
  serial: string;
  blockId: string;
  position: string;
  /** Where the BMC answers now (changes after ipmi_config). */
  bmcUrl: string;
  ipmiIp: string;
  hostIp: string;
  cvmIp: string;
  hostname: string;
  cvm: { vcpus: number; ramGiB: number };
  hbaPciAddress: string;
  imaging: NodeImagingState;
}

export interface SessionNetwork {
  hostNetmask: string;
  hostGateway: string;
  cvmNetmask: string;
  cvmGateway: string;
  ipmiNetmask: string;
  ipmiGateway: string;
  dns: string[];
  ntp: string[];
}

export interface SessionRecord {
  id: string;
  createdAt: number;
  bundleFile: string;
  bundleSha256: string;
  expect: { hypervisor: string; nos: string } | null;
  network: SessionNetwork;
  nodes: SessionNode[];
  clusters: ClusterEntry[];
  aborted: boolean;
  maxParallel: number;
  timeouts: { bootMs: number; installSilenceMs: number; cvmMs: number };
}

/** One event of the session's log: the shape the event stream serves (protocol/deploy.ts). */
export type SessionEvent = FoundationEvent;

export interface SessionDeps {
  clock: Clock;
  layout: FoundationLayout;
  creds: BmcCredentials;
  foundationUrl: string;
  /** Issues a node's identity for its addresses (the deployment CA, ADR 013). */
  nodeIdentity: (serial: string, ips: readonly string[]) => Promise<Identity>;
  log: (m: string) => void;
  /** Where a pre-imaged node's hypervisor answers now (from its CVM's announcements). */
  hostOf: (serial: string) => string | undefined;
  /** The URL of a node's installation media, with new credentials for the node (node/credentials.ts). */
  mediaUrl: (sessionId: string, serial: string) => string;
}

export class Session extends EventEmitter {
  private seq = 0;
  private timers = new Map<string, Disposable>();
  private watchers = new Map<string, Disposable>();
  private bmcs = new Map<string, Bmc>();
  private queue: Promise<void> = Promise.resolve();
  /** Foundation is stopping: running cluster flows give up and leave their entries to load(). */
  private readonly closing = new AbortController();
  private readonly clusterFlows = new Set<Promise<void>>();

  constructor(readonly record: SessionRecord, private readonly deps: SessionDeps, private readonly secrets: ReadonlyMap<string, string> = new Map()) {
    super();
    this.setMaxListeners(100);
    mkdirSync(deps.layout.session(record.id).dir, { recursive: true });
    const ev = deps.layout.session(record.id).events;
    if (existsSync(ev)) this.seq = readFileSync(ev, 'utf8').split('\n').filter(Boolean).length;
  }

  get id(): string {
    return this.record.id;
  }

  /** Loads a session after a restart; nodes that were mid-flight fail (invariant 3). */
  static load(id: string, deps: SessionDeps): Session {
    const rec = readJson<SessionRecord>(deps.layout.session(id).state);
    if (!rec) throw new NotFoundError('session', id);
    const s = new Session(rec, deps);
    for (const n of rec.nodes) {
      if (!isFinal(n.imaging.stage) && n.imaging.stage !== 'pending') {
        n.imaging = { ...n.imaging, stage: 'failed', error: 'Foundation restarted while this node was being imaged; retry the node', message: 'fatal: Foundation restarted', endedAt: deps.clock.now() };
        s.event(n.serial, n.imaging, `fatal: ${n.imaging.error ?? ''}`);
      } else if (n.imaging.stage === 'pending' && rec.aborted) {
        n.imaging = { ...n.imaging, stage: 'aborted', error: 'aborted by the user', message: 'aborted' };
      }
    }
    for (const c of rec.clusters) {
      if (c.stage === 'creating' || c.stage === 'validating') {
        Object.assign(c, { stage: 'failed', status: 'fatal: Foundation restarted while creating the cluster; destroy it (converge cluster destroy) and create it again', endedAt: deps.clock.now() });
        s.clusterEvent(c, c.status);
      }
    }
    s.persist();
    return s;
  }

  persist(): void {
    writeJson(this.deps.layout.session(this.id).state, this.record);
  }

  private event(serial: string | null, st: NodeImagingState | null, message: string): void {
    this.append({ serial, stage: st?.stage ?? null, percent: st?.percent ?? null, message });
  }

  /** Appends one event to the session's log and tells the listeners (the event stream). */
  private append(fields: Omit<SessionEvent, 'seq' | 'time'>): void {
    const e: SessionEvent = { seq: ++this.seq, time: new Date(this.deps.clock.now()).toISOString(), ...fields };
    appendFileSync(this.deps.layout.session(this.id).events, JSON.stringify(e) + '\n');
    this.emit('event', e);
  }

  events(after = 0): SessionEvent[] {
    const f = this.deps.layout.session(this.id).events;
    if (!existsSync(f)) return [];
    return readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as SessionEvent).filter((e) => e.seq > after);
  }

  node(serial: string): SessionNode {
    const n = this.record.nodes.find((x) => x.serial === serial);
    if (!n) throw new NotFoundError('node in session', serial);
    return n;
  }

  /** Starts pending nodes up to the parallel limit. */
  pump(): void {
    if (this.record.aborted) return;
    const active = this.record.nodes.filter((n) => n.imaging.stage !== 'pending' && !isFinal(n.imaging.stage)).length;
    let slots = this.record.maxParallel - active;
    for (const n of this.record.nodes) {
      if (slots <= 0) break;
      if (n.imaging.stage === 'pending') {
        slots--;
        this.feed(n.serial, { kind: 'start' });
      }
    }
  }

  start(): void {
    this.event(null, null, `session started: ${this.record.nodes.length} node(s), bundle ${this.record.bundleFile}`);
    this.pump();
    this.clusterStep();
  }

  // ---- stages 3-4: create and validate each clusters[] entry with cluster_init_now ----------

  private memberStage(cvmIp: string): Stage | undefined {
    return this.record.nodes.find((n) => n.cvmIp === cvmIp)?.imaging.stage;
  }

  private clusterEvent(c: ClusterEntry, message: string, check?: ClusterCheck): void {
    this.append({
      serial: null, stage: 'cluster', percent: c.percent_complete, message: `cluster ${c.cluster_name}: ${message}`,
      cluster: c.cluster_name, cluster_stage: c.stage, ...(check ? { check } : {}),
    });
  }

  /** Starts every waiting cluster whose members are all imaged. */
  private clusterStep(): void {
    if (this.record.aborted || this.closing.signal.aborted) return;
    for (const c of this.record.clusters) {
      if (c.stage !== 'waiting') continue;
      const r = clusterReadiness(c, (ip) => this.memberStage(ip));
      if (r === 'blocked') {
        const status = 'waiting: a member node failed imaging (retry it)';
        if (c.status !== status) {
          c.status = status;
          this.clusterEvent(c, status);
          this.persist();
        }
        continue;
      }
      if (r === 'start') {
        const flow = this.runCluster(c).finally(() => this.clusterFlows.delete(flow));
        this.clusterFlows.add(flow);
      }
    }
  }

  private async runCluster(c: ClusterEntry): Promise<void> {
    Object.assign(c, { stage: 'creating', startedAt: this.deps.clock.now(), checks: [], status: 'creating the cluster', percent_complete: 1 });
    this.persist();
    const hosts = new Map(this.record.nodes.map((n) => [n.cvmIp, n.hostIp]));
    try {
      const info = await createAndValidate(c, hosts, {
        clock: this.deps.clock,
        waitMs: this.record.timeouts.cvmMs,
        tag: this.id.toLowerCase(),
        adminPassword: this.secrets.get(c.cluster_name) ?? null,
        // each member's BMC as Foundation reached it, for the cluster's fencing (HA)
        bmcs: this.record.nodes.filter((n) => c.cluster_members.includes(n.cvmIp)).map((n) => ({ cvmIp: n.cvmIp, address: n.bmcUrl, user: this.deps.creds.user, password: this.deps.creds.password, ca: this.deps.creds.ca ?? null })),
        dir: this.deps.layout.session(this.id).dir,
        signal: this.closing.signal,
        report: (percent, message) => {
          if (percent >= 50) c.stage = 'validating';
          c.percent_complete = percent;
          c.status = message;
          this.persist();
          this.clusterEvent(c, message);
        },
        checked: (k) => {
          c.checks.push(k);
          this.persist();
          this.clusterEvent(c, `${k.ok ? 'PASS' : 'FAIL'} ${k.name}: ${k.evidence}`, k);
        },
      });
      if (this.closing.signal.aborted) return;
      Object.assign(c, { stage: 'done', cluster_id: info.clusterId, percent_complete: 100, endedAt: this.deps.clock.now(), status: `cluster ${info.name} created and validated (${c.checks.length} checks passed)` });
      this.clusterEvent(c, c.status);
    } catch (e) {
      // stopped with Foundation: the entry stays as it was; a restart fails it (load)
      if (this.closing.signal.aborted) return;
      const why = e instanceof ClusterCheckFailed ? `${e.check.name} failed: ${e.check.evidence}` : errorMessage(e);
      Object.assign(c, { stage: 'failed', endedAt: this.deps.clock.now(), status: `fatal: ${why}` });
      this.clusterEvent(c, c.status);
    }
    this.persist();
    if (this.stopped) this.event(null, null, `imaging stopped: ${this.aggregatePercent()}%`);
  }

  /** Feeds one event to a node's machine and runs the commands it returns. */
  feed(serial: string, e: ImagingEvent): void {
    const n = this.record.nodes.find((x) => x.serial === serial);
    if (!n) return;
    const before = n.imaging.stage;
    const { state, commands } = stepImaging(n.imaging, e, { now: this.deps.clock.now(), timeouts: this.record.timeouts, expect: this.record.expect });
    n.imaging = state;
    this.persist();
    for (const c of commands) this.run(n, c);
    if (isFinal(state.stage) && !isFinal(before)) {
      this.stopWatching(serial);
      this.stopWatching(`${serial}:cvm`);
      const t = this.timers.get(serial);
      t?.dispose();
      this.timers.delete(serial);
      this.pump();
      this.clusterStep();
      if (this.stopped) this.event(null, null, `imaging stopped: ${this.aggregatePercent()}%`);
    }
  }

  private run(n: SessionNode, c: ImagingCommand): void {
    switch (c.kind) {
      case 'log':
        this.event(n.serial, n.imaging, c.message);
        return;
      case 'timer': {
        this.timers.get(n.serial)?.dispose();
        this.timers.set(n.serial, this.deps.clock.setTimeout(() => this.feed(n.serial, { kind: 'timer', name: c.name, epoch: c.epoch }), c.ms));
        return;
      }
      case 'watchNode':
        if (c.on) this.watch(n);
        else this.stopWatching(n.serial);
        return;
      case 'watchCvm':
        if (c.on) this.watchCvm(n);
        else this.stopWatching(`${n.serial}:cvm`);
        return;
      case 'configureHost':
        void this.configureHost(n);
        return;
      case 'redfish':
        this.queue = this.queue.then(() => this.redfish(n, c.op));
        return;
    }
  }

  private bmc(n: SessionNode): Bmc {
    let b = this.bmcs.get(n.serial);
    if (!b || b.url !== n.bmcUrl) {
      void b?.close();
      b = new Bmc(n.bmcUrl, this.deps.creds);
      this.bmcs.set(n.serial, b);
    }
    return b;
  }

  private async redfish(n: SessionNode, op: RedfishOp): Promise<void> {
    if (isFinal(n.imaging.stage)) return;
    const attempt = async (): Promise<void> => {
      const b = this.bmc(n);
      switch (op) {
        case 'configureBmc': {
          await b.configureNetwork(n.ipmiIp, this.record.network.ipmiNetmask, this.record.network.ipmiGateway);
          const port = new URL(n.bmcUrl).port;
          n.bmcUrl = `https://${n.ipmiIp}:${port || '443'}`;
          // the BMC moves to its new address: wait until it answers there
          for (let i = 0; ; i++) {
            try {
              await this.bmc(n).resolve();
              break;
            } catch (e) {
              if (i >= 30) throw e;
              await this.deps.clock.sleep(500);
            }
          }
          return;
        }
        case 'powerOff': {
          // what the node runs now (an earlier installer, hypervisor and CVM) is gone before its media is touched
          await b.forceOff();
          const deadline = this.deps.clock.now() + POWER_OFF_WAIT_MS;
          for (;;) {
            const state = await b.powerState();
            if (state === 'Off') return;
            if (this.deps.clock.now() >= deadline) throw new TimeoutError(`the BMC still reports PowerState ${state || '(none)'} ${POWER_OFF_WAIT_MS / 1000} s after ForceOff`);
            await this.deps.clock.sleep(500);
          }
        }
        case 'insertMedia':
          return b.insertMedia(this.deps.mediaUrl(this.id, n.serial));
        case 'bootOnceCd':
          return b.bootOnceCd();
        case 'powerOnOrRestart':
          await b.powerOnOrRestart();
          return;
        case 'ejectMedia':
          return b.ejectMedia();
      }
    };
    let lastError: unknown;
    for (let i = 0; i < 3; i++) {
      try {
        await attempt();
        this.feed(n.serial, { kind: 'redfishDone', op });
        return;
      } catch (e) {
        lastError = e;
        if (i < 2) await this.deps.clock.sleep(1000 * (i + 1));
      }
    }
    this.feed(n.serial, { kind: 'redfishFailed', op, reason: `${n.bmcUrl}: ${errorMessage(lastError)}` });
  }

  private watch(n: SessionNode): void {
    this.stopWatching(n.serial);
    const tick = (): void => {
      this.watchers.set(n.serial, this.deps.clock.setTimeout(() => {
        void this.bmc(n).halted().then((reason) => {
          if (!this.watchers.has(n.serial)) return;
          if (reason) this.feed(n.serial, { kind: 'nodeHalted', reason });
          else tick();
        }, () => tick());
      }, 1000));
    };
    tick();
  }

  /** Polls the CVM's status endpoint at its planned address until it answers (or the node ends). */
  private watchCvm(n: SessionNode): void {
    const key = `${n.serial}:cvm`;
    this.stopWatching(key);
    const tick = (): void => {
      this.watchers.set(key, this.deps.clock.setTimeout(() => {
        void cvmCall<{ serial?: string; hypervisorVersion?: string; nosVersion?: string }>(n.cvmIp, '/status', { timeoutMs: 2000 })
          .catch(() => undefined)
          .then((st) => {
            if (!this.watchers.has(key)) return;
            if (st?.serial === n.serial && st.hypervisorVersion && st.nosVersion) {
              this.stopWatching(key);
              this.feed(n.serial, { kind: 'cvmAnnounced', hypervisorVersion: st.hypervisorVersion, nosVersion: st.nosVersion });
            } else tick();
          });
      }, 1000));
    };
    tick();
  }

  /** Sends a pre-imaged node's hypervisor its configuration from the plan. */
  private async configureHost(n: SessionNode): Promise<void> {
    const current = this.deps.hostOf(n.serial);
    if (!current) {
      this.feed(n.serial, { kind: 'hostConfigureFailed', reason: `no hypervisor of node ${n.serial} has announced itself; is it running Converge? (image it with image_now true)` });
      return;
    }
    const net = this.record.network;
    const body = {
      hostname: n.hostname, hostIp: n.hostIp, hostNetmask: net.hostNetmask, hostGateway: net.hostGateway,
      cvmIp: n.cvmIp, cvmNetmask: net.cvmNetmask, cvmGateway: net.cvmGateway, dns: net.dns, ntp: net.ntp,
      foundationUrl: this.deps.foundationUrl, cvm: n.cvm,
    };
    try {
      // a node that moves gets a certificate for its new addresses
      const identity = await this.deps.nodeIdentity(n.serial, [n.hostIp, n.cvmIp]);
      await hostCall(current, '/configure', { body: { ...body, identity }, timeoutMs: 15_000 });
      this.feed(n.serial, { kind: 'hostConfigured' });
    } catch (e) {
      this.feed(n.serial, { kind: 'hostConfigureFailed', reason: `${current}:${HOST_AGENT_PORT}: ${errorMessage(e)}` });
    }
  }

  private stopWatching(serial: string): void {
    this.watchers.get(serial)?.dispose();
    this.watchers.delete(serial);
  }

  installerReport(serial: string, r: { percent: number; message: string; status: 'running' | 'done' | 'failed' }): void {
    this.feed(serial, { kind: 'installerReport', percent: r.percent, message: r.message, status: r.status });
  }

  cvmAnnounced(serial: string, hypervisorVersion: string, nosVersion: string): void {
    this.feed(serial, { kind: 'cvmAnnounced', hypervisorVersion, nosVersion });
  }

  abort(): void {
    this.record.aborted = true;
    this.event(null, null, 'abort requested');
    for (const n of this.record.nodes) this.feed(n.serial, { kind: 'abort' });
    this.persist();
  }

  /** Restarts one failed (or aborted) node from the beginning. */
  retry(serial: string): void {
    const n = this.node(serial);
    if (n.imaging.stage !== 'failed' && n.imaging.stage !== 'aborted') throw new ConflictError(`node ${serial} is ${n.imaging.stage}; only a failed or aborted node can be retried`);
    this.record.aborted = false;
    n.imaging = initialImagingState(serial, n.imaging.imageNow, false);
    this.event(serial, n.imaging, 'retry requested');
    for (const c of this.record.clusters) if (c.stage === 'waiting' && c.cluster_members.includes(n.cvmIp)) c.status = 'waiting for its nodes to be imaged';
    this.persist();
    this.pump();
  }

  get stopped(): boolean {
    return this.record.nodes.every((n) => isFinal(n.imaging.stage)) && this.record.clusters.every((c) => this.record.aborted || clusterSettled(c, (ip) => this.memberStage(ip)));
  }

  /** Nodes and the clusters Foundation creates, each counted once. */
  aggregatePercent(): number {
    const parts = [...this.record.nodes.map((n) => n.imaging.percent), ...this.record.clusters.filter((c) => c.init).map((c) => c.percent_complete)];
    if (parts.length === 0) return 0;
    return Math.floor(parts.reduce((a, b) => a + b, 0) / parts.length);
  }

  /** The public progress shape (nutanix-facts.md, "progress"). */
  progress(): Record<string, unknown> {
    const now = this.deps.clock.now();
    const secs = (a: number | null, b: number | null): number => (a === null ? 0 : Math.round(((b ?? now) - a) / 1000));
    const events = this.events(); // the log is read once, not once per node
    return {
      session_id: this.id,
      action: 'image_nodes',
      imaging_stopped: this.stopped,
      abort_session: this.record.aborted,
      aggregate_percent_complete: this.aggregatePercent(),
      results: [],
      nodes: this.record.nodes.map((n) => ({
        node_serial: n.serial,
        hypervisor_ip: n.hostIp,
        cvm_ip: n.cvmIp,
        ipmi_ip: n.ipmiIp,
        status: statusText(n.imaging),
        stage: n.imaging.stage,
        messages: events.filter((e) => e.serial === n.serial).slice(-5).map((e) => e.message),
        percent_complete: n.imaging.percent,
        time_elapsed: secs(n.imaging.startedAt, n.imaging.endedAt),
        time_total: secs(n.imaging.startedAt, n.imaging.endedAt),
      })),
      clusters: this.record.clusters.map((c) => ({
        cluster_name: c.cluster_name, cluster_members: c.cluster_members, status: c.status, percent_complete: c.percent_complete,
        messages: events.filter((e) => e.cluster === c.cluster_name).slice(-5).map((e) => e.message),
        time_elapsed: secs(c.startedAt, c.endedAt), time_total: secs(c.startedAt, c.endedAt),
        stage: c.stage, cluster_id: c.cluster_id, checks: c.checks, prism: c.prism ?? null,
      })),
    };
  }

  /** A node's log: every event of that node, one per line. */
  nodeLog(serial: string): string {
    this.node(serial);
    return this.events().filter((e) => e.serial === serial).map((e) => `${e.time} [${e.stage ?? '-'} ${e.percent ?? 0}%] ${e.message}`).join('\n') + '\n';
  }

  async close(): Promise<void> {
    // nothing starts or is written from here on; a running cluster flow is given a moment to wind down
    this.closing.abort();
    for (const t of this.timers.values()) t.dispose();
    for (const w of this.watchers.values()) w.dispose();
    this.timers.clear();
    this.watchers.clear();
    await within(Promise.all(this.clusterFlows), 3000, 'the cluster flows to stop').catch(() => undefined);
    await Promise.all([...this.bmcs.values()].map((b) => b.close()));
  }
}
