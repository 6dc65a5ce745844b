/**
 * @module
 * The Foundation service's logic behind its API: discovery (rack lists, SSDP, address ranges),
 * hardware validation, plan checks, the bundle repository, imaging sessions, and what the nodes
 * call back (installer configuration and reports, CVM announcements). Transport-free: api.ts maps
 * HTTP onto it.
 */
import { newClusterEntry } from '../core/cluster-stage.ts';
import { mapLimit } from '../../shared/async.ts';
import { parseCreateRequest } from '../../cvm/protocol/create-request.ts';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import type { Readable } from 'node:stream';
import { create } from 'tar';
import type { Clock } from '../../shared/clock.ts';
import { ConflictError, InputError, NotFoundError, errorMessage } from '../../shared/errors.ts';
import { readJson, writeJson } from '../../shared/json-file.ts';
import { RackClient } from '../../rack/protocol/client.ts';
import type { RackEndpoint } from '../../rack/protocol/access.ts';
import { ssdpSearch } from '../../rack/protocol/ssdp.ts';
import type { CvmAnnounce, InstallConfig, InstallerReport } from '../protocol/installer.ts';
import { cvmAnnounceSchema, type ImageNodesRequest, type IpmiConfigRequest } from '../protocol/api.ts';
import type { DiscoveredNode, Profile, ValidationReport, PlanInput } from '../core/types.ts';
import { validateHardware } from '../core/validation.ts';
import { makePlan, parseIpv4, formatIpv4, type PlanResult } from '../core/ip-plan.ts';
import { initialImagingState } from '../core/imaging.ts';
import { Bmc, type BmcCredentials } from './bmc.ts';
import type { DeploymentPki } from '../../shared/identity.ts';
import { BundleRepo } from './bundles.ts';
import { NodeCredentials } from './credentials.ts';
import { FieldConflictError } from './errors.ts';
import { FoundationLayout } from './layout.ts';
import { Session, type SessionNode, type SessionRecord } from './session.ts';

export const FOUNDATION_VERSION = '0.1.0';

export interface FoundationDeps {
  dataDir: string;
  clock: Clock;
  /** Foundation's own base URL as nodes reach it, e.g. http://127.0.0.1:8000. */
  url: string;
  /** Default BMC credentials and CA (a request's ipmi_user/ipmi_password override them). */
  creds: BmcCredentials;
  bmcPort: number;
  /** Rack control APIs to list BMCs from (lab): URL and bearer token of each. */
  racks: RackEndpoint[];
  /** Where to send Redfish SSDP searches; 0 = no SSDP search. */
  ssdpPort: number;
  profile: Profile;
  timeouts?: { bootMs: number; installSilenceMs: number; cvmMs: number };
  /** The deployment's PKI: issues each imaged node its identity (ADR 013). */
  pki: DeploymentPki;
  log: (m: string) => void;
}

/** Most CVMs Foundation remembers (each one a node it imaged: only those may announce). */
export const MAX_ANNOUNCED = 4096;

const DEFAULT_TIMEOUTS = { bootMs: 5 * 60_000, installSilenceMs: 10 * 60_000, cvmMs: 10 * 60_000 };

/** Whether something listens on any of these ports at addr (an address "already answering"). */
function answers(addr: string, ports: readonly number[], timeoutMs = 300): Promise<boolean> {
  return Promise.all(ports.map((port) => new Promise<boolean>((resolve) => {
    const s = connect({ host: addr, port, timeout: timeoutMs });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
    s.once('timeout', () => { s.destroy(); resolve(false); });
  }))).then((r) => r.some(Boolean));
}

export class Foundation {
  readonly layout: FoundationLayout;
  readonly bundles: BundleRepo;
  readonly credentials: NodeCredentials;
  private sessions = new Map<string, Session>();
  private discovered = new Map<string, DiscoveredNode>();
  private announced: Record<string, CvmAnnounce & { lastSeen: string }>;
  private installerImages = new Map<string, Buffer>();

  constructor(private readonly deps: FoundationDeps) {
    this.layout = new FoundationLayout(deps.dataDir);
    this.bundles = new BundleRepo(this.layout.bundles);
    this.credentials = new NodeCredentials(this.layout.credentials);
    this.announced = this.loadAnnounced();
    for (const id of (() => { try { return readdirSync(this.layout.sessions); } catch { return []; } })()) {
      try {
        this.sessions.set(id, Session.load(id, this.sessionDeps(deps.creds)));
      } catch (e) {
        deps.log(`session ${id} not restored: ${errorMessage(e)}`);
      }
    }
  }

  private sessionDeps(creds: BmcCredentials): ConstructorParameters<typeof Session>[1] {
    return {
      clock: this.deps.clock, layout: this.layout, creds, foundationUrl: this.deps.url, log: this.deps.log, hostOf: (serial) => this.announced[serial]?.hostIp,
      nodeIdentity: (serial, ips) => this.deps.pki.nodeIdentity(serial, ips),
      mediaUrl: (sessionId, serial) => `${this.mediaBase(sessionId, serial, this.credentials.issue(sessionId, serial))}/installer.tar`,
    };
  }

  private mediaBase(sessionId: string, serial: string, mediaToken: string): string {
    return `${this.deps.url}/foundation/media/${sessionId}/${serial}/${mediaToken}`;
  }

  /** announced.json as it was kept: entries of nodes with a credential that still parse, nothing else. */
  private loadAnnounced(): Record<string, CvmAnnounce & { lastSeen: string }> {
    const out: Record<string, CvmAnnounce & { lastSeen: string }> = {};
    let raw: Record<string, unknown> | undefined;
    try {
      raw = readJson<Record<string, unknown>>(this.layout.announced);
    } catch (e) {
      this.deps.log(`announced.json not read (${errorMessage(e)}); the nodes announce again within a minute`);
    }
    for (const [serial, v] of Object.entries(raw ?? {})) {
      const a = cvmAnnounceSchema.safeParse(v);
      const lastSeen = (v as { lastSeen?: unknown } | null)?.lastSeen;
      if (a.success && a.data.serial === serial && this.credentials.knows(serial) && Object.keys(out).length < MAX_ANNOUNCED) {
        out[serial] = { ...a.data, lastSeen: typeof lastSeen === 'string' ? lastSeen.slice(0, 40) : '' };
      }
    }
    return out;
  }

  get url(): string {
    return this.deps.url;
  }

  // ---- discovery -------------------------------------------------------------------------

  /** BMC service-root URLs from the rack lists, SSDP and the given ranges ("a.b.c.d-a.b.c.e"). */
  async findBmcs(ranges: readonly string[] = []): Promise<string[]> {
    const urls = new Set<string>();
    const base = (u: string): string => new URL(u).origin;
    for (const r of this.deps.racks) {
      try {
        for (const b of (await new RackClient(r, 5000).bmcs()).bmcs) urls.add(base(b.url));
      } catch (e) {
        this.deps.log(`rack list ${r.url}: ${errorMessage(e)}`);
      }
    }
    if (this.deps.ssdpPort > 0) for (const a of await ssdpSearch({ port: this.deps.ssdpPort, timeoutMs: 500 }).catch(() => [])) urls.add(base(a.url));
    for (const r of ranges) {
      const [a, b] = r.split('-');
      const lo = parseIpv4(a ?? '');
      const hi = b === undefined ? lo : parseIpv4(b);
      if (lo === null || hi === null || hi < lo || hi - lo > 1024) throw new InputError('range', `"${r}" is not an address range like 127.10.0.1-127.10.0.32 (at most 1024 addresses)`);
      const ips = Array.from({ length: hi - lo + 1 }, (_x, i) => formatIpv4(lo + i));
      const found = await mapLimit(ips, 32, async (ip) => ((await answers(ip, [this.deps.bmcPort])) ? `https://${ip}:${this.deps.bmcPort}` : null));
      for (const f of found) if (f) urls.add(f);
    }
    return [...urls].sort((x, y) => x.localeCompare(y, undefined, { numeric: true }));
  }

  async discover(ranges: readonly string[] = [], creds = this.deps.creds): Promise<DiscoveredNode[]> {
    const urls = await this.findBmcs(ranges);
    const nodes = await mapLimit(urls, 8, async (url) => {
      const bmc = new Bmc(url, creds);
      try {
        return await bmc.inventory(new URL(url).hostname);
      } catch (e) {
        this.deps.log(`inventory of ${url}: ${errorMessage(e)}`);
        return null;
      } finally {
        await bmc.close();
      }
    });
    const out: DiscoveredNode[] = [];
    for (const n of nodes) {
      if (!n) continue;
      const a = this.announced[n.serial];
      if (a) n.software = { hypervisorVersion: a.hypervisorVersion, nosVersion: a.nosVersion, configured: a.configured, clusterId: a.clusterId, cvmIp: a.cvmIp };
      this.discovered.set(n.serial, n);
      out.push(n);
    }
    return out;
  }

  /** discover_nodes' shape: nodes grouped by block. */
  static blocks(nodes: readonly DiscoveredNode[]): Record<string, unknown>[] {
    const blocks = new Map<string, DiscoveredNode[]>();
    for (const n of nodes) blocks.set(n.blockSerial, [...(blocks.get(n.blockSerial) ?? []), n]);
    return [...blocks].map(([block, ns]) => ({
      block_id: block,
      model: ns[0]?.model ?? '',
      chassis_n: ns.length,
      nodes: ns.map((n) => ({
        node_uuid: n.uuid, node_serial: n.serial, node_position: n.position,
        ipv6_address: `fe80::${n.bmc.mac.split(':').slice(2).join('').replace(/(....)(?=.)/g, '$1:')}`,
        ipmi_mac: n.bmc.mac, ipmi_ip: n.bmc.ip,
        hypervisor: n.software ? 'kvm' : null, hypervisor_version: n.software?.hypervisorVersion ?? null,
        svm_ip: n.software?.cvmIp ?? null, nos_version: n.software?.nosVersion ?? null, cluster_id: n.software?.clusterId ?? null,
        configured: n.software?.configured ?? false, model: n.model, foundation_version: FOUNDATION_VERSION, current_cvm_vlan_tag: null,
      })),
    }));
  }

  validate(nodes: readonly DiscoveredNode[], o: { profile?: Profile; rf?: 1 | 2 | 3; cvmVcpus?: number; cvmRamGiB?: number; minFirmware?: { bios?: string; bmc?: string }; overrides?: string[] } = {}): ValidationReport {
    return validateHardware(nodes, {
      profile: o.profile ?? this.deps.profile,
      redundancyFactor: o.rf ?? 2,
      cvm: { vcpus: o.cvmVcpus ?? 8, ramGiB: o.cvmRamGiB ?? 16 },
      minFirmware: o.minFirmware ?? {},
      overrides: o.overrides ?? [],
    });
  }

  /**
   * The bundle whose minimum firmware validation applies: `nosPackage` when named (an InputError
   * when the repository lacks it), else the newest (highest manifest version); none = no minimum.
   */
  async firmwareBundle(nosPackage?: string): Promise<{ file: string | null; minFirmware: { bios?: string; bmc?: string } }> {
    const b = nosPackage
      ? await this.bundles.get(nosPackage).catch(() => {
        throw new InputError('nos_package', `no bundle "${nosPackage}" in the repository (have: ${this.bundles.list().join(', ') || 'none'}; upload one first)`);
      })
      : await this.bundles.newest();
    return { file: b?.file ?? null, minFirmware: firmwareOf(b?.bundle.manifest.minFirmware) };
  }

  /** The validation report of the discovered nodes, with the minimum firmware of a bundle (see firmwareBundle). */
  async validateDiscovered(o: { profile?: Profile; rf: 1 | 2 | 3; overrides: string[]; nosPackage?: string }): Promise<ValidationReport> {
    const fw = await this.firmwareBundle(o.nosPackage);
    const nodes = await this.discover();
    return { ...this.validate(nodes, { rf: o.rf, overrides: o.overrides, minFirmware: fw.minFirmware, ...(o.profile ? { profile: o.profile } : {}) }), bundle: fw.file };
  }

  /**
   * Plans addresses and checks the plan, including "no address already answering": every
   * address the plan would use is probed, and answering ones are skipped (assigned) or refused
   * (explicit), re-planning until the plan is stable.
   */
  async planCheck(input: PlanInput): Promise<PlanResult> {
    const inUse = new Set<string>();
    let result = makePlan(input, inUse);
    for (let round = 0; round < 4 && result.plan; round++) {
      const p = result.plan;
      const candidates = [...p.nodes.flatMap((n) => [n.hostIp, n.cvmIp]), ...(p.clusterVip ? [p.clusterVip] : [])].filter((a) => !inUse.has(a));
      const busy = (await mapLimit(candidates, 32, async (a) => ((await answers(a, [22, 8100, 2100, 9440])) ? a : null))).filter((a): a is string => a !== null);
      if (busy.length === 0) break;
      for (const a of busy) inUse.add(a);
      result = makePlan(input, inUse);
    }
    return result;
  }

  // ---- imaging ---------------------------------------------------------------------------

  session(id: string): Session {
    const s = this.sessions.get(id);
    if (!s) throw new NotFoundError('session', id);
    return s;
  }

  listSessions(): { session_id: string; created: string; imaging_stopped: boolean; aggregate_percent_complete: number }[] {
    return [...this.sessions.values()].map((s) => ({ session_id: s.id, created: new Date(s.record.createdAt).toISOString(), imaging_stopped: s.stopped, aggregate_percent_complete: s.aggregatePercent() }));
  }

  /** image_nodes (its body parsed at the edge): checks everything, then starts a session; its id. */
  async imageNodes(req: ImageNodesRequest): Promise<string> {
    const creds: BmcCredentials = { ...this.deps.creds };
    if (req.ipmi_user) creds.user = req.ipmi_user;
    if (req.ipmi_password) creds.password = req.ipmi_password;
    const entries = req.blocks.flatMap((b, bi) => b.nodes.map((n, ni) => ({ b, n, field: `blocks[${bi}].nodes[${ni}]` })));
    const imaging = entries.some((e) => e.n.image_now);
    if (imaging && !req.nos_package) throw new InputError('nos_package', 'name a bundle from enumerate_nos_packages to image nodes');
    const stored = req.nos_package ? await this.bundles.get(req.nos_package).catch(() => {
      throw new InputError('nos_package', `no bundle "${req.nos_package}" in the repository (have: ${this.bundles.list().join(', ') || 'none'}; upload one first)`);
    }) : undefined;
    const m = stored?.bundle.manifest;

    // Find every node's BMC and read its inventory.
    const known = [...this.discovered.values()];
    const needDiscovery = entries.some((e) => e.n.ipmi_configure_now || e.n.node_serial || e.n.node_uuid);
    if (needDiscovery && known.length === 0) known.push(...(await this.discover([], creds)));
    const resolved = await mapLimit(entries, 8, async ({ n, field }) => {
      const match = known.find((k) => (n.node_serial && k.serial === n.node_serial) || (n.node_uuid && k.uuid === n.node_uuid) || (n.ipmi_mac && k.bmc.mac.toLowerCase() === n.ipmi_mac.toLowerCase()));
      const url = match && (n.ipmi_configure_now || match.bmc.ip !== n.ipmi_ip) ? match.bmc.url : `https://${n.ipmi_ip}:${this.deps.bmcPort}`;
      const bmc = new Bmc(url, creds);
      try {
        return { inv: await bmc.inventory(new URL(url).hostname), url };
      } catch (e) {
        throw new InputError(`${field}.ipmi_ip`, `cannot read the node's BMC at ${url}: ${errorMessage(e)}`);
      } finally {
        await bmc.close();
      }
    });

    // A member of a running cluster (as its CVM announced) is not imaged over unless the request says so.
    resolved.forEach((r, i) => {
      const a = this.announced[r.inv.serial];
      const e = entries[i];
      if (!a?.configured || !e) return;
      const member = `node ${r.inv.serial} is a member of cluster ${a.clusterId ?? '(id unknown)'} (as its CVM ${a.cvmIp} announced at ${a.lastSeen})`;
      if (!e.n.image_now) throw new FieldConflictError(e.field, `${member}: a node in a cluster is not reconfigured; remove it from its cluster first`);
      if (!e.n.reimage) throw new FieldConflictError(e.field, `${member}: imaging it destroys its data there; remove it from its cluster first, or set reimage: true on it`);
    });

    // Hardware validation: FAIL nodes are refused unless overridden.
    const rf = (req.clusters[0]?.redundancy_factor ?? 2) as 1 | 2 | 3;
    const report = this.validate(resolved.map((r) => r.inv), {
      rf: req.clusters.length > 0 ? rf : 1,
      cvmVcpus: Math.max(...entries.map((e) => e.n.cvm_num_vcpus)),
      cvmRamGiB: Math.max(...entries.map((e) => e.n.cvm_gb_ram)),
      minFirmware: firmwareOf(m?.minFirmware),
      overrides: entries.flatMap((e, i) => (e.n.override_validation ? [resolved[i]?.inv.serial ?? ''] : [])),
    });
    const refused = report.nodes.filter((r) => r.excluded);
    if (refused.length > 0) {
      const why = refused.map((r) => `${r.serial}: ${r.checks.filter((c) => c.verdict === 'FAIL').map((c) => `${c.check} ${c.measured} (needs ${c.threshold})`).join('; ')}`).join(' | ');
      const i = resolved.findIndex((r) => r.inv.serial === refused[0]?.serial);
      throw new InputError(entries[i]?.field ?? 'blocks', `hardware validation failed: ${why}. Fix the hardware, or set override_validation on the node to image it anyway`);
    }

    // The IP plan, with every address explicit: the same rules as the plan tool.
    const inUse = new Set<string>();
    const ours = new Set(resolved.flatMap((r) => { const a = this.announced[r.inv.serial]; return a ? [a.hostIp, a.cvmIp] : []; }));
    await mapLimit(entries, 16, async ({ n }) => {
      for (const ip of [n.hypervisor_ip, n.cvm_ip]) if (!ours.has(ip) && parseIpv4(ip) !== null && (await answers(ip, [22, 8100, 2100, 9440]))) inUse.add(ip);
    });
    const dns = req.hypervisor_nameserver ?? [];
    const ntp = req.clusters[0]?.cvm_ntp_servers ?? [];
    const planInput: PlanInput = {
      clusterName: req.clusters[0]?.cluster_name ?? 'unconfigured',
      dns, ntp, hostnamePrefix: 'node',
      bmc: { netmask: req.ipmi_netmask ?? '255.255.0.0', gateway: req.ipmi_gateway ?? gatewayGuess(entries[0]?.n.ipmi_ip ?? '', req.ipmi_netmask ?? '255.255.0.0') },
      host: { netmask: req.hypervisor_netmask, gateway: req.hypervisor_gateway },
      cvm: { netmask: req.cvm_netmask, gateway: req.cvm_gateway },
      nodes: entries.map(({ n }, i) => {
        const p: PlanInput['nodes'][number] = { serial: resolved[i]?.inv.serial ?? `node${i}`, bmcIp: n.ipmi_ip, hostIp: n.hypervisor_ip, cvmIp: n.cvm_ip };
        if (n.hypervisor_hostname) p.hostname = n.hypervisor_hostname;
        return p;
      }),
      lab: this.deps.profile === 'lab',
    };
    if (req.clusters[0]?.cluster_external_ip) planInput.clusterVip = req.clusters[0].cluster_external_ip;
    const plan = makePlan(planInput, inUse);
    if (plan.errors.length > 0 || !plan.plan) {
      const e = plan.errors[0];
      const idx = e?.node ? resolved.findIndex((r) => r.inv.serial === e.node) : -1;
      const field = idx >= 0 ? `${entries[idx]?.field ?? ''}.${fieldName(e?.field ?? '')}` : (e?.field ?? 'plan');
      throw new InputError(field, `${e?.reason ?? 'invalid plan'}${plan.errors.length > 1 ? ` (and ${plan.errors.length - 1} more: ${plan.errors.slice(1, 4).map((x) => `${x.node ? `${x.node} ` : ''}${x.field}: ${x.reason}`).join('; ')})` : ''}`);
    }
    for (const r of resolved) {
      if (!r.inv.inventory.hba) throw new InputError('blocks.nodes', `node ${r.inv.serial} has no storage HBA to pass through`);
    }

    const cvmIps = new Set(plan.plan.nodes.map((n) => n.cvmIp));
    const clusterField: Record<string, string> = { name: 'cluster_name', cvmIps: 'cluster_members', redundancyFactor: 'redundancy_factor', vip: 'cluster_external_ip', dns: 'cvm_dns_servers', ntp: 'cvm_ntp_servers', adminPassword: 'admin_password' };
    req.clusters.forEach((c, ci) => {
      if (!c.cluster_init_now) return;
      const stranger = c.cluster_members.findIndex((ip) => !cvmIps.has(ip));
      if (stranger >= 0) throw new InputError(`clusters[${ci}].cluster_members[${stranger}]`, `${c.cluster_members[stranger] ?? ''} is not the cvm_ip of a node in this request`);
      try {
        // the same rules the CVM applies when it creates the cluster, checked before any node is imaged
        parseCreateRequest({ name: c.cluster_name, cvmIps: c.cluster_members, redundancyFactor: c.redundancy_factor, vip: c.cluster_external_ip ?? null, dns: c.cvm_dns_servers ?? [], ntp: c.cvm_ntp_servers ?? [], adminPassword: c.admin_password ?? null });
      } catch (e) {
        if (!(e instanceof InputError)) throw e;
        const [head = '', ...rest] = e.field.split('[');
        throw new InputError(`clusters[${ci}].${clusterField[head] ?? head}${rest.length ? `[${rest.join('[')}` : ''}`, e.reason);
      }
    });
    const id = `${new Date(this.deps.clock.now()).toISOString().replace(/[-:T]/g, '').slice(0, 14)}-${randomBytes(2).toString('hex')}`;
    const nodes: SessionNode[] = entries.map(({ b, n }, i) => {
      const inv = resolved[i]!.inv;
      const p = plan.plan!.nodes[i]!;
      return {
        serial: inv.serial, blockId: b.block_id ?? inv.blockSerial, position: n.node_position ?? inv.position,
        bmcUrl: resolved[i]!.url, ipmiIp: n.ipmi_ip, hostIp: p.hostIp, cvmIp: p.cvmIp, hostname: p.hostname,
        cvm: { vcpus: n.cvm_num_vcpus, ramGiB: n.cvm_gb_ram }, hbaPciAddress: inv.inventory.hba?.pciAddress ?? '0000:00:00.0',
        imaging: initialImagingState(inv.serial, n.image_now, n.ipmi_configure_now && resolved[i]!.url !== `https://${n.ipmi_ip}:${this.deps.bmcPort}`),
      };
    });
    const record: SessionRecord = {
      id, createdAt: this.deps.clock.now(), bundleFile: stored?.file ?? '', bundleSha256: stored?.bundle.sha256 ?? '',
      expect: m ? { hypervisor: m.components.hypervisor.version, nos: m.components.cvm.version } : null,
      network: {
        hostNetmask: req.hypervisor_netmask, hostGateway: req.hypervisor_gateway, cvmNetmask: req.cvm_netmask, cvmGateway: req.cvm_gateway,
        ipmiNetmask: planInput.bmc.netmask, ipmiGateway: planInput.bmc.gateway, dns, ntp,
      },
      nodes,
      clusters: req.clusters.map((c) => newClusterEntry(c)),
      aborted: false,
      maxParallel: req.max_parallel ?? 8,
      timeouts: this.deps.timeouts ?? DEFAULT_TIMEOUTS,
    };
    // Prism admin passwords stay in memory: never in the session's files, progress or logs
    const secrets = new Map(req.clusters.flatMap((c) => (c.admin_password ? [[c.cluster_name, c.admin_password] as const] : [])));
    const s = new Session(record, this.sessionDeps(creds), secrets);
    this.sessions.set(id, s);
    s.persist();
    s.start();
    return id;
  }

  /** ipmi_config: sets BMC addresses, found by MAC among discovered nodes. */
  async ipmiConfig(req: IpmiConfigRequest): Promise<Record<string, unknown>> {
    const creds: BmcCredentials = { ...this.deps.creds };
    if (req.ipmi_user) creds.user = req.ipmi_user;
    if (req.ipmi_password) creds.password = req.ipmi_password;
    const known = await this.discover([], creds);
    const blocks = await Promise.all(req.blocks.map(async (b) => ({
      ...b,
      nodes: await Promise.all(b.nodes.map(async (n) => {
        if (!n.ipmi_configure_now) return { ...n, ipmi_configure_successful: true, ipmi_message: 'skipped (ipmi_configure_now false)' };
        const k = known.find((x) => x.bmc.mac.toLowerCase() === n.ipmi_mac.toLowerCase());
        if (!k) return { ...n, ipmi_configure_successful: false, ipmi_message: `no BMC with MAC ${n.ipmi_mac} was discovered` };
        const bmc = new Bmc(k.bmc.url, creds);
        try {
          await bmc.configureNetwork(n.ipmi_ip, req.ipmi_netmask, req.ipmi_gateway);
          return { ...n, ipmi_configure_successful: true, ipmi_message: `BMC of ${k.serial} moved from ${k.bmc.ip} to ${n.ipmi_ip}` };
        } catch (e) {
          return { ...n, ipmi_configure_successful: false, ipmi_message: errorMessage(e) };
        } finally {
          await bmc.close();
        }
      })),
    })));
    this.discovered.clear();
    return { ...req, ipmi_password: undefined, blocks };
  }

  // ---- what nodes call ---------------------------------------------------------------------

  private sessionNode(sessionId: string, serial: string): { s: Session; n: SessionNode } {
    const s = this.session(sessionId);
    return { s, n: s.node(serial) };
  }

  /** A node's install configuration, for the holder of its media credential (node/credentials.ts): its identity and callback credential. */
  async installConfig(sessionId: string, serial: string, mediaToken: string): Promise<InstallConfig> {
    const foundationToken = this.credentials.nodeTokenForMedia(sessionId, serial, mediaToken);
    const { s, n } = this.sessionNode(sessionId, serial);
    const net = s.record.network;
    return {
      identity: await this.deps.pki.nodeIdentity(serial, [n.hostIp, n.cvmIp]),
      sessionId, serial, foundationUrl: this.deps.url, foundationToken,
      reportUrl: `${this.deps.url}/foundation/installer/${sessionId}/${serial}/report`,
      bundleUrl: `${this.mediaBase(sessionId, serial, mediaToken)}/bundle.tar.gz`, bundleSha256: s.record.bundleSha256,
      hostname: n.hostname, hostIp: n.hostIp, hostNetmask: net.hostNetmask, hostGateway: net.hostGateway,
      cvmIp: n.cvmIp, cvmNetmask: net.cvmNetmask, cvmGateway: net.cvmGateway, dns: net.dns, ntp: net.ntp,
      cvm: n.cvm, hbaPciAddress: n.hbaPciAddress,
    };
  }

  /** The session's bundle, for the holder of a node's media credential. */
  mediaBundle(sessionId: string, serial: string, mediaToken: string): Readable {
    this.credentials.nodeTokenForMedia(sessionId, serial, mediaToken);
    return this.bundles.stream(this.sessionNode(sessionId, serial).s.record.bundleFile);
  }

  /** The virtual-media image for a session: the bundle's installer as a bootable tar. */
  async installerImage(sessionId: string, serial: string, mediaToken: string): Promise<Buffer> {
    this.credentials.nodeTokenForMedia(sessionId, serial, mediaToken);
    const { s } = this.sessionNode(sessionId, serial);
    const cached = this.installerImages.get(s.record.bundleFile);
    if (cached) return cached;
    const { bundle } = await this.bundles.get(s.record.bundleFile);
    const c = bundle.manifest.components.installer;
    const code = bundle.files.get(c.entry);
    if (!code) throw new NotFoundError('installer in bundle', s.record.bundleFile);
    const dir = mkdtempSync(join(tmpdir(), 'cvg-media-'));
    try {
      writeFileSync(join(dir, 'boot.json'), JSON.stringify({ name: c.name, version: c.version, entry: 'installer.mjs' }));
      writeFileSync(join(dir, 'installer.mjs'), code);
      await create({ file: join(dir, 'image.tar'), cwd: dir, portable: true }, ['boot.json', 'installer.mjs']);
      const img = readFileSync(join(dir, 'image.tar'));
      this.installerImages.set(s.record.bundleFile, img);
      return img;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** An installer's report, sent with its node's credential (`token`). */
  installerReport(sessionId: string, serial: string, token: string, r: InstallerReport): void {
    this.credentials.verify(serial, token);
    if (r.serial !== serial) throw new InputError('serial', `is ${r.serial}, but the report is posted for node ${serial}`);
    this.sessionNode(sessionId, serial).s.installerReport(serial, { percent: r.percent, message: r.message, status: r.status });
  }

  /** A CVM's announcement, sent with its node's credential (`token`): refused, it changes nothing. */
  cvmAnnounce(token: string, ann: CvmAnnounce): void {
    this.credentials.verify(ann.serial, token);
    if (!Object.hasOwn(this.announced, ann.serial) && Object.keys(this.announced).length >= MAX_ANNOUNCED) {
      throw new ConflictError(`Foundation remembers at most ${MAX_ANNOUNCED} CVMs`);
    }
    this.announced[ann.serial] = { ...ann, lastSeen: new Date(this.deps.clock.now()).toISOString() };
    writeJson(this.layout.announced, this.announced);
    for (const s of this.sessions.values()) {
      const n = s.record.nodes.find((x) => x.serial === ann.serial);
      if (n && n.imaging.stage === 'rebooting') s.cvmAnnounced(ann.serial, ann.hypervisorVersion, ann.nosVersion);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => s.close()));
  }
}

function firmwareOf(f: { bios?: string | undefined; bmc?: string | undefined } | undefined): { bios?: string; bmc?: string } {
  const out: { bios?: string; bmc?: string } = {};
  if (f?.bios) out.bios = f.bios;
  if (f?.bmc) out.bmc = f.bmc;
  return out;
}

/** Maps a plan field to the image_nodes field name. */
function fieldName(f: string): string {
  return ({ bmcIp: 'ipmi_ip', hostIp: 'hypervisor_ip', cvmIp: 'cvm_ip', hostname: 'hypervisor_hostname' } as Record<string, string>)[f] ?? f;
}

/** The gateway a network most likely has when none is given: the last usable address. */
function gatewayGuess(ip: string, netmask: string): string {
  const a = parseIpv4(ip);
  const m = parseIpv4(netmask);
  if (a === null || m === null) return '127.0.0.1';
  return formatIpv4((((a & m) | (~m >>> 0)) >>> 0) - 1);
}
