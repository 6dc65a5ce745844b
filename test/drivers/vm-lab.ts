/**
 * @module
 * A 3-node lab deployed through Foundation, with the guest image built, for the VM tests and
 * benchmarks, and the `converge` command as a user runs it against the lab (`--json`, the
 * deployment's operator certificate, a CVM of the cluster).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { Agent, fetch as ufetch } from 'undici';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestFoundation } from './foundation-driver.ts';
import { cvg } from './cli.ts';
import { buildTestGuest } from './guest-vm.ts';
import type { Vm } from '../../src/cvm/protocol/vms.ts';
import type { ConsoleChunk } from '../../src/hypervisor/protocol/vms.ts';
import { cvmCall } from '../../src/cvm/protocol/client.ts';
import { lcmCall } from '../../src/lcm/protocol/client.ts';
import type { UpgradeRecord } from '../../src/lcm/protocol/lcm.ts';
import { DeploymentPki, type Identity } from '../../src/shared/identity.ts';

export class VmLab {
  /** The CVM the commands go to (a test that powers a host off moves it). */
  cvmIp: string;
  private identity: Identity | undefined;

  private prismAgent: Agent | undefined;

  private constructor(readonly t: TestFoundation, readonly guestImage: string, readonly hosts: string[], readonly cvms: string[], readonly vip: string, private readonly prismCa: string) {
    this.cvmIp = cvms[0] ?? '';
  }

  /** Prism's admin password in the lab. */
  static readonly PRISM_PASSWORD = 'lab-secret-1';

  /** Deploys 3 nodes (hosts `<net>.0.x`, CVMs `<net>.1.x`, Prism on `<net>.2.1`) in cluster `lab` at RF2, and builds the guest image meanwhile. */
  static async start(rackNet: string, port: number, net: string): Promise<VmLab> {
    const cvms = [1, 2, 3].map((i) => `${net}.1.${i}`);
    const dir = mkdtempSync(join(tmpdir(), 'cvg-vm-lab-'));
    const [t, guest] = await Promise.all([TestFoundation.start(rackNet, port, 3), buildTestGuest(join(dir, 'guest.img'))]);
    await t.upload();
    const r = await t.call('POST', '/foundation/image_nodes', t.imageBody(net, [0, 1, 2], {
      clusters: [{
        cluster_name: 'lab', cluster_members: cvms, cluster_init_now: true, redundancy_factor: 2, cvm_dns_servers: '127.0.0.53', cvm_ntp_servers: '127.0.0.123',
        cluster_external_ip: `${net}.2.1`, admin_password: VmLab.PRISM_PASSWORD,
      }],
    }));
    assert.equal(r.status, 200, r.text);
    const p = await t.waitStopped(r.json.session_id as string, 240_000);
    assert.equal(p.aggregate_percent_complete, 100, JSON.stringify(p.clusters));
    const ca = readFileSync((p.clusters as { prism: { ca_file: string } }[])[0]?.prism.ca_file ?? '', 'utf8');
    return new VmLab(t, guest.file, [1, 2, 3].map((i) => `${net}.0.${i}`), cvms, `${net}.2.1`, ca);
  }

  /** Prism's API on the cluster's virtual IP as admin (HTTP Basic; the cluster CA trusted): status and parsed body. */
  async prism(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> {
    this.prismAgent ??= new Agent({ connect: { ca: this.prismCa } });
    const r = await ufetch(`https://${this.vip}:9440${path}`, {
      dispatcher: this.prismAgent, method, redirect: 'manual',
      headers: { Authorization: `Basic ${Buffer.from(`admin:${VmLab.PRISM_PASSWORD}`).toString('base64')}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await r.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: r.status, json, headers: r.headers as unknown as Headers };
  }

  /** `converge <args> --cvm-ip … --data-dir … --json`, its output parsed. */
  async cli<T>(...args: string[]): Promise<{ code: number; out: T; stderr: string; stdout: string }> {
    const r = await cvg(...args, '--cvm-ip', this.cvmIp, '--data-dir', this.t.dir, '--json');
    let out: unknown;
    try {
      out = JSON.parse(r.stdout);
    } catch {
      out = undefined;
    }
    return { code: r.code, out: out as T, stderr: r.stderr, stdout: r.stdout };
  }

  /** `cli`, asserting it succeeded. */
  async ok<T>(...args: string[]): Promise<T> {
    const r = await this.cli<T>(...args);
    assert.equal(r.code, 0, `converge ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.out;
  }

  /**
   * The CVM API called in this process as the operator: what the tests poll goes this way (a
   * `converge` process costs a second of CPU, and TCG guests share the cores); the actions go
   * through the command.
   */
  api<T>(path: string): Promise<T> {
    return cvmCall<T>(this.cvmIp, path, { identity: this.operator, timeoutMs: 30_000 });
  }

  /** The deployment's operator identity, read once (one identity: one pool of TLS connections for every poll). */
  get operator(): Identity {
    this.identity ??= DeploymentPki.operatorOf(this.t.dir);
    assert.ok(this.identity, 'the deployment has an operator certificate');
    return this.identity;
  }

  /** The first answer of `call` asked of each CVM in turn (the one asked first may be restarting, as in an upgrade). */
  async fromAnyCvm<T>(what: string, call: (cvmIp: string) => Promise<T>): Promise<T> {
    for (const ip of this.cvms) {
      const r = await call(ip).then((x) => ({ x }), () => null);
      if (r) return r.x;
    }
    throw new Error(`no CVM answers ${what} (${this.cvms.join(', ')})`);
  }

  /** The LCM upgrade's record from whichever CVM answers. */
  upgradeRecord(): Promise<UpgradeRecord> {
    return this.fromAnyCvm('for LCM', (ip) => lcmCall<UpgradeRecord>(ip, '/lcm/upgrade', { identity: this.operator, timeoutMs: 5000 }));
  }

  /** A VM by name (`converge vm get` reads the same record). */
  async vm(name: string): Promise<Vm> {
    const v = (await this.api<Vm[]>('/vms')).find((x) => x.name === name);
    assert.ok(v, `no VM ${name}`);
    return v;
  }

  /** A VM's whole console log, chunk by chunk (as `converge vm console` reads it). */
  async console(name: string): Promise<string> {
    const { uuid } = await this.vm(name);
    let text = '';
    for (let offset = 0; ;) {
      const c = await this.api<ConsoleChunk>(`/vms/${uuid}/console?offset=${offset}`);
      if (c.text === '') return text;
      text += c.text;
      offset = c.next;
    }
  }

  /** Waits until the console (from byte `from`) matches `re`, failing at once on a guest ERROR line; the text after `from`. */
  async waitConsole(name: string, re: RegExp, from = 0, timeoutMs = 180_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let text = '';
    while (Date.now() < deadline) {
      text = (await this.console(name).catch(() => '')).slice(from);
      assert.doesNotMatch(text, /converge-guest: ERROR/, `the guest reported an error:\n${text.slice(-2000)}`);
      if (re.test(text)) return text;
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.fail(`console of ${name} never matched ${re}; it ends with:\n${text.slice(-2000)}`);
  }

  /** Types a line on a VM's console and waits for what follows to match `re`. */
  async run(name: string, line: string, re: RegExp, timeoutMs = 60_000): Promise<string> {
    const mark = (await this.console(name)).length;
    await this.ok('vm', 'console', name, '--send', line);
    return this.waitConsole(name, re, mark, timeoutMs);
  }

  async stop(): Promise<void> {
    await this.prismAgent?.close();
    await this.t.stop();
  }
}
