/**
 * @module
 * Foundation's cluster stage, as I/O: wait for the members' CVMs, ask one of them to create the
 * cluster (its API, as `converge cluster create` does), wait for the services, then validate:
 *
 *   host-cvm-link   every host reaches its CVM over the internal link
 *   store-quorum    the configuration store has a quorum with a leader
 *   cvm-services    every CVM's services are up
 *   storage-pool    the pool holds every member's data disks, all healthy, at the expected capacity
 *   data-path       a test vdisk written through one CVM reads back identical through another, and
 *                   every block has the container's RF replicas on distinct nodes
 *
 * A failed check throws ClusterCheckFailed with the check's name and evidence.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../shared/clock.ts';
import { errorMessage, TimeoutError } from '../../shared/errors.ts';
import { NbdClient } from '../../shared/nbd/client.ts';
import { NBD_CMD_FLUSH, NBD_CMD_READ, NBD_CMD_WRITE } from '../../shared/nbd/constants.ts';
import { CVM_API_PORT, NBD_PORT, type ClusterInfo, type CvmStatus, type PoolView, type ReplicaMap, type StoreHealth } from '../../cvm/protocol/cluster.ts';
import { HOST_AGENT_PORT } from '../../hypervisor/protocol/node-config.ts';
import type { ClusterCheck, ClusterEntry } from '../core/cluster-stage.ts';

export class ClusterCheckFailed extends Error {
  constructor(readonly check: ClusterCheck) {
    super(`${check.name}: ${check.evidence}`);
  }
}

export interface ClusterFlowDeps {
  clock: Clock;
  /** Reports progress: percent of the cluster entry, and what is happening. */
  report: (percent: number, message: string) => void;
  /** The check results so far (the record keeps them). */
  checked: (c: ClusterCheck) => void;
  /** How long to wait for CVMs and services. */
  waitMs: number;
  /** A name that makes the test vdisk unique. */
  tag: string;
}

async function cvm<T>(ip: string, path: string, init?: { method?: string; body?: unknown; timeoutMs?: number }): Promise<T> {
  const r = await fetch(`http://${ip}:${CVM_API_PORT}${path}`, {
    method: init?.method ?? (init?.body === undefined ? 'GET' : 'POST'),
    headers: init?.body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: init?.body === undefined ? null : JSON.stringify(init.body),
    signal: AbortSignal.timeout(init?.timeoutMs ?? 15_000),
  });
  const j = (await r.json()) as T & { error?: { message: string } };
  if (!r.ok) throw new Error(j.error?.message ?? `HTTP ${r.status}`);
  return j;
}

const gib = (b: number): string => `${(b / 1024 ** 3).toFixed(1)} GiB`;

export async function createAndValidate(entry: ClusterEntry, hosts: ReadonlyMap<string, string>, d: ClusterFlowDeps): Promise<ClusterInfo> {
  const ips = entry.cluster_members;
  const until = async <T>(what: string, f: () => Promise<T | undefined>): Promise<T> => {
    const deadline = d.clock.now() + d.waitMs;
    let last = '';
    for (;;) {
      try {
        const v = await f();
        if (v !== undefined) return v;
      } catch (e) {
        last = errorMessage(e);
      }
      if (d.clock.now() > deadline) throw new TimeoutError(`${what} did not happen within ${Math.round(d.waitMs / 1000)} s${last ? ` (last: ${last})` : ''}`);
      await d.clock.sleep(500);
    }
  };

  d.report(5, `waiting for the CVMs of ${ips.length} node(s)`);
  const statuses = await until('every member CVM answering', async () => {
    const all = await Promise.all(ips.map((ip) => cvm<CvmStatus>(ip, '/status', { timeoutMs: 3000 })));
    return all;
  });
  const taken = statuses.find((s) => s.configured);
  if (taken) throw new ClusterCheckFailed({ name: 'members', ok: false, evidence: `CVM ${taken.cvmIp} (${taken.serial}) is already part of a cluster (${taken.cluster?.name ?? ''})` });

  d.report(10, `creating cluster ${entry.cluster_name} through CVM ${ips[0] ?? ''}`);
  const body: Record<string, unknown> = { name: entry.cluster_name, cvmIps: ips, redundancyFactor: entry.redundancy_factor, dns: entry.dns, ntp: entry.ntp };
  if (entry.vip) body['vip'] = entry.vip;
  const info = await cvm<ClusterInfo>(ips[0] ?? '', '/cluster/create', { body, timeoutMs: 180_000 });
  d.report(40, `cluster ${info.name} (${info.clusterId}) created; configuration store on ${info.store.join(', ')}; waiting for the services`);

  const up = await until('every CVM\'s services up', async () => {
    const all = await Promise.all(ips.map((ip) => cvm<CvmStatus>(ip, '/status', { timeoutMs: 3000 })));
    const ready = all.every((s) => s.configured && s.services.some((x) => x.name === 'stargate' && x.state === 'up') && s.services.every((x) => x.state === 'up'));
    return ready ? all : undefined;
  });

  const check = (name: string, ok: boolean, evidence: string): void => {
    const c = { name, ok, evidence };
    d.checked(c);
    if (!ok) throw new ClusterCheckFailed(c);
  };

  d.report(50, 'validating: host↔CVM link on every node');
  const links = await Promise.all(ips.map(async (ip) => {
    const host = hosts.get(ip) ?? '';
    try {
      const r = await fetch(`http://${host}:${HOST_AGENT_PORT}/status`, { signal: AbortSignal.timeout(5000) });
      const j = (await r.json()) as { link?: { state: string; detail: string } };
      return { host, ok: j.link?.state === 'up', detail: j.link?.detail ?? 'no link reported' };
    } catch (e) {
      return { host, ok: false, detail: errorMessage(e) };
    }
  }));
  const badLink = links.find((l) => !l.ok);
  check('host-cvm-link', !badLink, badLink ? `host ${badLink.host}: link down (${badLink.detail})` : `link up on ${links.length}/${links.length} hosts`);

  d.report(58, 'validating: configuration store quorum');
  const health = await cvm<StoreHealth>(ips[0] ?? '', '/cluster/health');
  const sick = health.members.filter((m) => !m.healthy || !m.leader);
  check('store-quorum', health.quorum && sick.length === 0, `${health.healthy}/${health.members.length} store members healthy with a leader${sick.length ? `; ${sick.map((m) => `${m.cvmIp}: ${m.detail}`).join('; ')}` : ''}`);

  d.report(66, 'validating: every CVM\'s services');
  const down = up.flatMap((s) => s.services.filter((x) => x.state !== 'up').map((x) => `${s.cvmIp} ${x.name} ${x.state}`));
  check('cvm-services', down.length === 0, down.length ? down.join(', ') : up.map((s) => `${s.cvmIp}: ${s.services.map((x) => x.name).join(' ')}`).join('; '));

  d.report(74, 'validating: storage pool');
  const pv = await cvm<PoolView>(ips[0] ?? '', '/storage/pool');
  const expected = up.reduce((a, s) => a + s.disks.reduce((b, x) => b + x.capacityBytes, 0), 0);
  const disks = up.reduce((a, s) => a + s.disks.length, 0);
  const failed = pv.usage.disks.filter((x) => !x.ok);
  check('storage-pool', pv.pool.capacityBytes === expected && pv.pool.disks.length === disks && failed.length === 0,
    `${gib(pv.pool.capacityBytes)} on ${pv.pool.disks.length} disks (expected ${gib(expected)} on ${disks})${failed.length ? `; failed: ${failed.map((x) => `${x.node}/${x.serial}`).join(', ')}` : ''}`);

  d.report(82, 'validating: a test vdisk written and read back at the container\'s RF');
  const name = `foundation-check-${d.tag}`;
  const MiB = 1024 * 1024;
  const data = randomBytes(8 * MiB);
  const writer = ips[0] ?? '';
  const reader = ips[1] ?? writer;
  await cvm(writer, '/storage/vdisks', { body: { name, size: '16M' } });
  try {
    const w = await NbdClient.connect(writer, NBD_PORT, name);
    try {
      await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => w.request(NBD_CMD_WRITE, BigInt(i * MiB), MiB, data.subarray(i * MiB, (i + 1) * MiB))));
      await w.request(NBD_CMD_FLUSH, 0n, 0);
    } finally {
      w.close();
    }
    const r = await NbdClient.connect(reader, NBD_PORT, name);
    let same: boolean;
    try {
      same = (await r.request(NBD_CMD_READ, 0n, 8 * MiB))?.equals(data) ?? false;
    } finally {
      r.close();
    }
    const map = await cvm<ReplicaMap>(writer, `/storage/vdisks/${name}/replicas`);
    const wrong = map.blocks.filter((b) => b.replicas.length !== map.replicationFactor || new Set(b.replicas.map((x) => x.node)).size !== b.replicas.length);
    check('data-path', same && map.blocks.length === 8 && wrong.length === 0,
      `8 MiB written through ${writer}, read back ${same ? 'identical' : 'DIFFERENT'} through ${reader}; ${map.blocks.length} blocks, ${map.blocks.length - wrong.length} at RF${map.replicationFactor} on distinct nodes${wrong.length ? `; block ${wrong[0]?.block ?? 0} has ${wrong[0]?.replicas.map((x) => x.node).join(', ') ?? ''}` : ''}`);
  } finally {
    await cvm(writer, `/storage/vdisks/${name}`, { method: 'DELETE' }).catch(() => undefined);
  }
  return info;
}
