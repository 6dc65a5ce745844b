/**
 * bench/upgrade: LCM's rolling upgrade (issue 14) on a 3-node lab deployed by Foundation at 1.0.0,
 * one VM per host running the guest's write-and-verify loop on a vdisk at RF2, to a freshly built
 * 1.1.0 (`converge lcm` as a user runs it). Prints:
 *
 *  - the time of each node's upgrade (from its taking the shutdown token to its release) and of the
 *    whole upgrade (the command to the record's end), from the record's events;
 *  - the guests' longest I/O stall: the longest gap between two `verify pass N` lines of a guest
 *    (timestamped as they appear in its console log, read from the rack's files every 200 ms), less
 *    that guest's median gap before the upgrade (a pass's own time), and what the upgrade was doing
 *    meanwhile (its events);
 *  - the time the cluster spent below full RF (GET /storage/resiliency polled every second);
 *
 * each beside the reference measured in the same run: one host's maintenance round trip (enter,
 * its VM moved live, exit, moved back) with no upgrade — the part of a node's upgrade that is moving
 * its VMs — and the longest stall the guests saw during it.
 *
 * Addresses: BMCs on 127.146.0.x, hosts 127.147.0.x, CVMs 127.147.1.x; Foundation 18146.
 * Usage: node --import tsx bench/upgrade.ts   (about 6–8 minutes here: the lab, the guests' boots, the upgrade)
 *
 * One run on this machine (2 cores, load average 1–4, TCG guests): nodes 16.2–16.5 s (2.4x the
 * maintenance round trip of 6.8 s: a node's restart and rejoin come on top of moving its VMs), the
 * cluster 53.2 s; longest guest I/O stall 3.4 s (the round trip's 1.8 s: 1.89x; 2.2 s in the run
 * before), each guest's longest gap around its own live migration; below full RF 10.3 s (19 % of
 * the upgrade). Earlier versions read the consoles and the resiliency through the first CVM only:
 * its restart counted as an 8–11 s stall of every guest, and its downtime was left out of the time
 * below RF. Rerun before believing a change.
 */
import { closeSync, existsSync, mkdtempSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmLab } from '../test/drivers/vm-lab.ts';
import { buildBundle } from '../src/cli/bundle-build.ts';
import { cvmCall } from '../src/cvm/protocol/client.ts';
import type { ResiliencyReport } from '../src/cvm/protocol/cluster.ts';
import type { VmHost } from '../src/cvm/protocol/vms.ts';
import type { UpgradeRecord } from '../src/lcm/protocol/lcm.ts';
import { machineContext } from './machine.ts';

const VMS = ['u1', 'u2', 'u3'];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
/** Bytes [from, to) of a file (a console log's new part, not the whole log at every look). */
function readSpan(file: string, from: number, to: number): Buffer {
  const buf = Buffer.alloc(to - from);
  const fd = openSync(file, 'r');
  try {
    return buf.subarray(0, readSync(fd, buf, 0, buf.length, from));
  } finally {
    closeSync(fd);
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/**
 * Each guest's `verify pass N` lines, timestamped as they appear in its console log on the host's
 * boot disk (read from the rack's files every 200 ms, not through a CVM: a CVM that stops for its
 * upgrade must not look like a guest that stalls). A VM that moved writes a new log on its new host;
 * the pass numbers go on, so a pass counts once whichever log shows it.
 */
class PassWatch {
  private readonly seen = new Map<string, { last: number; at: number[] }>();
  private readonly read = new Map<string, number>();
  private stop = false;
  private loop: Promise<void> | undefined;
  constructor(private readonly nodesDir: string, private readonly uuids: ReadonlyMap<string, string>) {}
  start(): void {
    this.loop = (async () => {
      while (!this.stop) {
        for (const [name, uuid] of this.uuids) this.look(name, uuid);
        await sleep(200);
      }
    })();
  }
  private look(name: string, uuid: string): void {
    const s = this.seen.get(name) ?? { last: -1, at: [] };
    this.seen.set(name, s);
    for (const node of readdirSync(this.nodesDir)) {
      const file = join(this.nodesDir, node, 'boot/data/vms', uuid, 'console.log');
      if (!existsSync(file)) continue;
      const size = statSync(file).size;
      // a log started anew (the VM came back to this host) is read from its start
      const from = size < (this.read.get(file) ?? 0) ? 0 : this.read.get(file) ?? 0;
      if (size === from) continue;
      const fresh = readSpan(file, from, size).toString('latin1');
      // an unfinished last line waits for the next look
      const end = fresh.lastIndexOf('\n') + 1;
      this.read.set(file, from + end);
      const text = fresh.slice(0, end);
      if (/converge-guest: ERROR/.test(text)) throw new Error(`${name}: ${text.slice(-500)}`);
      for (const m of text.matchAll(/verify pass (\d+) ok/g)) {
        const n = Number(m[1]);
        if (n > s.last) {
          s.last = n;
          s.at.push(Date.now());
        }
      }
    }
  }
  async end(): Promise<void> {
    this.stop = true;
    await this.loop;
  }
  /** Per guest: the median gap between passes before `t0`, and the longest gap within [t0, t1] (with when it began and ended). */
  gaps(t0: number, t1: number): { name: string; typical: number; longest: number; from: number; to: number }[] {
    return VMS.map((name) => {
      const at = this.seen.get(name)?.at ?? [];
      const spans = (from: number, to: number): (readonly [number, number])[] => at.slice(1).map((t, i) => [at[i] ?? 0, t] as const).filter(([a, b]) => b >= from && a <= to);
      const worst = spans(t0, t1).reduce<readonly [number, number]>((w, s) => (s[1] - s[0] > w[1] - w[0] ? s : w), [t0, t0]);
      return { name, typical: median(spans(0, t0).map(([a, b]) => b - a)), longest: worst[1] - worst[0], from: worst[0], to: worst[1] };
    });
  }
}

/** Time below full RF between now and `until()`, polling every second whichever CVM answers (not only the first: it restarts in its turn, when the cluster is surely below RF). */
async function belowRf(lab: VmLab, until: () => boolean): Promise<number> {
  let below = 0;
  let last = Date.now();
  while (!until()) {
    const r = await lab.fromAnyCvm('for resiliency', (ip) => cvmCall<ResiliencyReport>(ip, '/storage/resiliency', { identity: lab.operator, timeoutMs: 10_000 })).catch(() => null);
    const now = Date.now();
    if (r && !r.ok) below += now - last;
    last = now;
    await sleep(1000);
  }
  return below;
}

async function main(): Promise<void> {
  process.stdout.write(`${machineContext()}\n`);
  const dir = mkdtempSync(join(tmpdir(), 'cvg-bench-upgrade-'));
  const t0 = Date.now();
  const [lab] = await Promise.all([VmLab.start('127.146', 18146, '127.147'), buildBundle({ version: '1.1.0', out: dir, minBmc: '3.0.0' })]);
  try {
    lab.cvmIp = lab.cvms[0] ?? '';
    process.stdout.write(`lab deployed and 1.1.0 built in ${secs(Date.now() - t0)}\n`);
    await lab.ok('image', 'create', '--name', 'guest', '--file', lab.guestImage);
    await lab.ok('subnet', 'create', '--name', 'red', '--vlan', '10', '--cidr', '10.10.0.0/24', '--gateway', '10.10.0.1');
    const hosts = await lab.api<VmHost[]>('/hosts');
    for (const [i, name] of VMS.entries()) {
      await lab.ok('vm', 'create', '--name', name, '--memory', '192M', '--image', 'guest', '--disk', '32M', '--nic', 'red', '--power-on');
      const want = hosts[i]?.serial ?? '';
      if ((await lab.vm(name)).host?.serial !== want) await lab.ok('vm', 'migrate', name, '--host', want);
    }
    for (const name of VMS) await lab.waitConsole(name, /verify pass 3 ok/, 0, 300_000);
    const uuids = new Map(await Promise.all(VMS.map(async (name) => [name, (await lab.vm(name)).uuid] as const)));
    const watch = new PassWatch(join(lab.t.tr.dataDir, 'rack/nodes'), uuids);
    watch.start();
    await sleep(15_000);

    // the reference: one host's maintenance round trip, no upgrade
    const m0 = Date.now();
    const h = hosts[0]?.serial ?? '';
    await lab.ok('host', 'enter-maintenance', h);
    await lab.ok('host', 'exit-maintenance', h);
    const m1 = Date.now();
    await sleep(10_000);

    // the upgrade
    await lab.ok('lcm', 'bundle', 'upload', join(dir, 'converge-1.1.0.tar.gz'));
    const u0 = Date.now();
    await lab.ok('lcm', 'upgrade', '--to', '1.1.0');
    let rec: UpgradeRecord | null = null;
    const done = (): boolean => rec !== null && rec.state !== 'running';
    const [below] = await Promise.all([belowRf(lab, done), (async () => {
      for (const deadline = Date.now() + 1_800_000; !done(); await sleep(1000)) {
        rec = await lab.upgradeRecord().catch(() => rec);
        if (Date.now() > deadline) throw new Error('the upgrade did not end within 30 minutes');
      }
    })()]);
    const u1 = Date.now();
    await sleep(10_000);
    await watch.end();
    const r = rec as UpgradeRecord | null;
    if (!r || r.state !== 'succeeded') throw new Error(`the upgrade ended ${r?.state ?? '?'}: ${r?.error ?? ''}`);

    // what the upgrade was doing while a guest waited: the step under way when the gap began, and those during it
    const during = (from: number, to: number): string => {
      const ev = r.events.map((e) => ({ ...e, t: Date.parse(e.at) })).sort((a, b) => a.t - b.t);
      const before = ev.filter((e) => e.t <= from).pop();
      const within = ev.filter((e) => e.t > from && e.t <= to);
      const what = [...(before ? [before] : []), ...within].map((e) => `${secs(e.t - from)} ${e.message}`).join('; ') || 'no upgrade event';
      return `from ${new Date(from).toISOString().slice(11, 23)}: ${what}`;
    };
    const at = (node: string, re: RegExp): number => Date.parse(r.events.find((e) => e.node === node && re.test(e.message))?.at ?? '');
    const perNode = r.plan.nodes.map((n) => ({ name: n.hostname, ms: at(n.serial, /released the shutdown token/) - at(n.serial, /took the shutdown token/) }));
    const ref = watch.gaps(m0, m1);
    const up = watch.gaps(u0, u1);
    const stall = (g: { typical: number; longest: number }[]): number => Math.max(0, ...g.map((x) => x.longest - x.typical));
    const roundTrip = m1 - m0;
    process.stdout.write([
      '',
      'Rolling upgrade 1.0.0 → 1.1.0, 3 nodes, a guest per host writing and verifying (RF2):',
      ...perNode.map((n) => `  ${n.name}: ${secs(n.ms)}   (${(n.ms / roundTrip).toFixed(2)}x the maintenance round trip)`),
      `  cluster: ${secs(u1 - u0)} from the command to the end (record: ${secs(Date.parse(r.finishedAt ?? '') - Date.parse(r.startedAt))})`,
      `  longest guest I/O stall: ${secs(stall(up))}   (reference, the maintenance round trip: ${secs(stall(ref))}; ratio ${(stall(up) / Math.max(1, stall(ref))).toFixed(2)})`,
      ...up.map((g, i) => `    ${g.name}: longest gap ${secs(g.longest)}, a pass takes ${secs(g.typical)} (during the round trip: ${secs(ref[i]?.longest ?? 0)})\n      while: ${during(g.from, g.to)}`),
      `  time below full RF: ${secs(below)}   (${((100 * below) / (u1 - u0)).toFixed(0)} % of the upgrade)`,
      `  reference: one host's maintenance round trip (enter, its VM moved live, exit, moved back): ${secs(roundTrip)}`,
      `  guests: no I/O error, no verify failure (the watch fails on a guest ERROR line)`,
      '',
      machineContext(),
    ].join('\n'));
  } finally {
    await lab.stop();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/upgrade: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
