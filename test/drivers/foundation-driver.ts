/**
 * @module
 * Scenario driver for Foundation: a real rack, a real release bundle and Foundation on loopback,
 * and a small client of its API.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBundle } from '../../src/cli/bundle-build.ts';
import { startFoundation, type RunningFoundation } from '../../src/foundation/main.ts';
import { Agent, fetch as ufetch } from 'undici';
import { TestRack, PASSWORD } from './rack-driver.ts';
import { cvg } from './cli.ts';
import type { CreateOptions } from '../../src/rack/node/rack.ts';
import { DiskVolume } from '../../src/shared/disk-volume.ts';
import { MEMBER_IDENTITIES_FILE } from '../../src/cvm/protocol/cluster.ts';
import { storeClient, type StoreTls } from '../../src/cvm/protocol/store.ts';
import { DeploymentPki, type MemberIdentities } from '../../src/shared/identity.ts';
import type { NbdClientTls } from '../../src/shared/nbd/starttls.ts';
import type { Etcd3 } from 'etcd3';

let bundleCache: Promise<{ file: string; dir: string }> | undefined;

/** One bundle per test process (building takes ~0.5 s). */
export function testBundle(): Promise<{ file: string; dir: string }> {
  bundleCache ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cvg-bundles-'));
    const r = await buildBundle({ version: '1.0.0', out: dir, minBmc: '3.0.0' });
    return { file: r.file, dir };
  })();
  return bundleCache;
}

export class TestFoundation {
  private constructor(readonly tr: TestRack, public fd: RunningFoundation, readonly dir: string, readonly net: string, private readonly opts: Parameters<typeof startFoundation>[0]) {}

  /** Connections to Foundation; replaced on restart so no request rides a closed keep-alive socket. */
  private agent = new Agent();

  /** Stops Foundation and starts it again on the same data dir and port. */
  async restart(): Promise<void> {
    await this.fd.close();
    await this.agent.close();
    this.agent = new Agent();
    this.fd = await startFoundation(this.opts);
  }

  /** `rack`: more of the rack's options (e.g. a `modelFile` with small disks). */
  static async start(rackNet: string, port: number, nodes = 4, timeouts?: { bootMs: number; installSilenceMs: number; cvmMs: number }, rack: Partial<CreateOptions> = {}): Promise<TestFoundation> {
    const tr = await TestRack.start(rackNet, { nodes, ...rack });
    const dir = mkdtempSync(join(tmpdir(), 'cvg-fdn-'));
    const opts: Parameters<typeof startFoundation>[0] = {
      dataDir: dir, port, bmcUser: 'admin', bmcPassword: PASSWORD, bmcCa: tr.rack.layout.caCert, bmcPort: 8443,
      racks: [tr.endpoint()], ssdpPort: tr.rack.config.network.ssdpPort, profile: 'lab', log: () => undefined,
      ...(timeouts ? { timeouts } : {}),
    };
    return new TestFoundation(tr, await startFoundation(opts), dir, rackNet, opts);
  }

  /**
   * A rack of `nodes` nodes imaged by Foundation (CVMs at `<net>.1.<i+1>`) and a cluster `name` created
   * on all of them with the CLI; CONVERGE_DATA_DIR is set so the CLI presents this deployment's operator.
   */
  static async withCluster(o: { rackNet: string; port: number; net: string; name: string; nodes?: number; rack?: Partial<CreateOptions> }): Promise<TestFoundation> {
    const n = o.nodes ?? 3;
    const t = await TestFoundation.start(o.rackNet, o.port, n, undefined, o.rack ?? {});
    process.env['CONVERGE_DATA_DIR'] = t.dir;
    await t.upload();
    const all = Array.from({ length: n }, (_x, i) => i);
    const r = await t.call('POST', '/foundation/image_nodes', t.imageBody(o.net, all));
    if (r.status !== 200) throw new Error(`image_nodes: ${r.status} ${r.text}`);
    const p = await t.waitStopped(r.json.session_id, 120_000);
    if (p.aggregate_percent_complete !== 100) throw new Error(`imaging stopped at ${p.aggregate_percent_complete} %`);
    const c = await cvg('cluster', 'create', '--cvm-ips', all.map((i) => `${o.net}.1.${i + 1}`).join(','), '--name', o.name, '--json');
    if (c.code !== 0) throw new Error(`cluster create: ${c.stderr}${c.stdout}`);
    return t;
  }

  async call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any; text: string }> {
    const init: Parameters<typeof ufetch>[1] = { method, dispatcher: this.agent };
    if (Buffer.isBuffer(body)) {
      init.body = body;
      init.headers = { 'Content-Type': 'application/octet-stream' };
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    const r = await ufetch(`${this.fd.url}${path}`, init);
    const text = await r.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: r.status, json, text };
  }

  async upload(): Promise<string> {
    const { file } = await testBundle();
    const r = await this.call('POST', '/foundation/upload?installer_type=nos&filename=converge-1.0.0.tar.gz', readFileSync(file));
    if (r.status !== 200) throw new Error(`upload: ${r.text}`);
    return r.json.name as string;
  }

  /** An image_nodes body shaped like the public clients', for nodes [from, to) of the rack. */
  imageBody(hostNet: string, indexes: number[], extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      nos_package: 'converge-1.0.0.tar.gz',
      hypervisor_iso: {},
      cvm_netmask: '255.255.0.0', cvm_gateway: `${hostNet}.255.254`,
      hypervisor_netmask: '255.255.0.0', hypervisor_gateway: `${hostNet}.255.254`, hypervisor_nameserver: '127.0.0.53',
      ipmi_netmask: '255.255.0.0', ipmi_gateway: `${this.net}.255.254`, ipmi_user: 'admin', ipmi_password: PASSWORD,
      blocks: [{
        block_id: this.tr.node(indexes[0]).identity.blockSerial,
        nodes: indexes.map((i) => ({
          node_position: this.tr.node(i).identity.position, hypervisor: 'kvm', image_now: true, ipmi_configure_now: false,
          ipmi_ip: this.tr.node(i).identity.bmcIp, hypervisor_ip: `${hostNet}.0.${i + 1}`, cvm_ip: `${hostNet}.1.${i + 1}`,
          hypervisor_hostname: `lab-${i + 1}`, cvm_gb_ram: 16, cvm_num_vcpus: 8,
        })),
      }],
      clusters: [],
      tests: { run_ncc: false, run_syscheck: false },
      ...extra,
    };
  }

  async waitStopped(sessionId: string, timeoutMs = 60_000): Promise<any> {
    return this.tr.until(async () => {
      const p = await this.call('GET', `/foundation/progress?session_id=${sessionId}`);
      return p.json?.imaging_stopped === true ? p.json : undefined;
    }, timeoutMs, 'imaging to stop');
  }

  /** The cluster certificate of node i's CVM, read off its boot disk (as root on the node could). */
  memberTls(i: number): StoreTls {
    const root = DiskVolume.open(this.tr.node(i).hardware('Hdd').bootDevice.path).root;
    const m = JSON.parse(readFileSync(join(root, 'cvm-state', MEMBER_IDENTITIES_FILE), 'utf8')) as MemberIdentities;
    return { ca: m.ca, cert: m.cvm.cert, key: m.cvm.key };
  }

  /** NBD over TLS to a CVM's stargate as the operator: its certificate, the cluster CA to check the CVM's. */
  nbdTls(): NbdClientTls {
    const op = DeploymentPki.operatorOf(this.dir);
    if (!op) throw new Error('no operator certificate');
    return { cert: op.cert, key: op.key, ca: [this.memberTls(0).ca, ...op.ca] };
  }

  /** The same as a folder libnbd (`nbds://…?tls-certificates=DIR`) and QEMU (`tls-creds-x509,dir=DIR`) read. */
  nbdCertDir(): string {
    const tls = this.nbdTls();
    const d = join(this.dir, 'nbd-certs');
    mkdirSync(d, { recursive: true, mode: 0o700 });
    // both CAs: the cluster's (the CVMs' certificates) and the deployment's (QEMU checks its own certificate too)
    writeFileSync(join(d, 'ca-cert.pem'), [tls.ca].flat().join(''), { mode: 0o600 });
    writeFileSync(join(d, 'client-cert.pem'), tls.cert, { mode: 0o600 });
    writeFileSync(join(d, 'client-key.pem'), tls.key, { mode: 0o600 });
    return d;
  }

  /** A client of the cluster's configuration store with node i's CVM certificate. */
  store(ips: readonly string[], i = 0): Etcd3 {
    return storeClient(ips, this.memberTls(i));
  }

  /** A vdisk made with the CLI through `cvmIp` (`size` as the CLI takes it), and a client of the store on `storeIps`. */
  async vdiskWithStore(name: string, size: string, cvmIp: string, storeIps: readonly string[]): Promise<{ uuid: string; etcd: Etcd3 }> {
    const v = await cvg('vdisk', 'create', '--name', name, '--size', size, '--cvm-ip', cvmIp, '--json');
    if (v.code !== 0) throw new Error(`vdisk create: ${v.stderr}${v.stdout}`);
    return { uuid: (JSON.parse(v.stdout) as { uuid: string }).uuid, etcd: this.store(storeIps) };
  }

  /** Stops everything; with CONVERGE_KEEP_LAB set, keeps the rack's and Foundation's folders (node console logs) and says where. */
  async stop(): Promise<void> {
    const keep = process.env['CONVERGE_KEEP_LAB'] !== undefined;
    await this.fd.close();
    await this.agent.close();
    await this.tr.stop(keep);
    if (keep) console.log(`# CONVERGE_KEEP_LAB: kept ${this.dir} and ${this.tr.dataDir}`);
    else rmSync(this.dir, { recursive: true, force: true });
  }
}
