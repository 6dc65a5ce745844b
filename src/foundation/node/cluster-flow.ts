/**
 * @module
 * Foundation's cluster stage, as I/O: wait for the members' CVMs, ask one of them to create the
 * cluster (its API, as `converge cluster create` does), give the services a bounded time to come
 * up, then validate:
 *
 *   host-cvm-link   every host reaches its CVM over the internal link
 *   store-quorum    the configuration store has a quorum with a leader
 *   cvm-services    every CVM is a member running its services (genesis, etcd on a store member,
 *                   prism, lcm, stargate), each up: FAIL names the CVM and each service with its state
 *   storage-pool    the pool holds every member's data disks, all healthy, at the expected capacity
 *   data-path       a test vdisk written through one CVM reads back identical through another, and
 *                   every block has the container's RF replicas on distinct nodes
 *   prism           Prism answers over HTTPS on the virtual IP (or its leader's CVM), its certificate
 *                   chaining to the cluster's CA: clusters/list and hosts/list under the admin
 *                   credentials, and a wrong password refused
 *
 * A failed check throws ClusterCheckFailed with the check's name and evidence.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import type { Clock } from '../../shared/clock.ts';
import { errorMessage, TimeoutError } from '../../shared/errors.ts';
import { within } from '../../shared/async.ts';
import { NbdClient } from '../../shared/nbd/client.ts';
import { NBD_CMD_FLUSH, NBD_CMD_READ, NBD_CMD_WRITE } from '../../shared/nbd/constants.ts';
import { NBD_PORT, type CreatedCluster, type CvmStatus, type PoolView, type ReplicaMap, type StoreHealth } from '../../cvm/protocol/cluster.ts';
import { hostCall } from '../../hypervisor/protocol/client.ts';
import type { ClusterCheck, ClusterEntry } from '../core/cluster-stage.ts';
import { evaluateServices, type CvmObservation, type ServicesVerdict } from '../core/cvm-services.ts';
import { cvmCall } from '../../cvm/protocol/client.ts';
import type { BmcEntry } from '../../cvm/protocol/create-request.ts';
import { PRISM_PORT, ADMIN_USER } from '../../prism/protocol/prism.ts';
import { currentIdentity } from '../../shared/http-client.ts';

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
  /** How long to wait for the CVMs to answer (and at most for their services). */
  waitMs: number;
  /** How long the services get to come up before cvm-services judges them (default SERVICES_WAIT_MS, at most waitMs). */
  servicesWaitMs?: number;
  /** A name that makes the test vdisk unique. */
  tag: string;
  /** Prism's admin password from the request (null: the cluster generates one). */
  adminPassword: string | null;
  /** Where to write the cluster's CA certificate and a generated admin password (0600). */
  dir: string;
  /** Aborts when Foundation stops: the flow gives up at its next wait, call or step. */
  signal: AbortSignal;
  /** The members' BMCs, sent with the create request for fencing (HA); a secret, never logged. */
  bmcs?: BmcEntry[];
}


const gib = (b: number): string => `${(b / 1024 ** 3).toFixed(1)} GiB`;

/** How long a new cluster's services get to come up (a supervised service retries 1, 2, 4, … 30 s apart) before the check judges them. */
export const SERVICES_WAIT_MS = 120_000;

/**
 * Looks at the members until the verdict is a pass or waitMs has passed, and answers what it saw
 * last with its verdict: a service that never comes up is judged (a FAIL naming it), not timed out.
 */
export async function awaitServices(observe: () => Promise<CvmObservation[]>, judge: (seen: CvmObservation[]) => ServicesVerdict, o: { clock: Clock; waitMs: number; signal: AbortSignal }): Promise<{ seen: CvmObservation[]; verdict: ServicesVerdict }> {
  const deadline = o.clock.now() + o.waitMs;
  for (;;) {
    o.signal.throwIfAborted();
    const seen = await observe();
    const verdict = judge(seen);
    if (verdict.ok || o.clock.now() >= deadline) return { seen, verdict };
    await o.clock.sleep(Math.min(500, Math.max(0, deadline - o.clock.now())), o.signal).catch(() => undefined);
  }
}

/**
 * Whether the data written at the start of a vdisk (`writtenBytes`) landed as the container's RF
 * says: every extent group it covers is recorded, with RF in-sync replicas on RF distinct nodes and
 * no stale replica (one that missed a write).
 */
export function checkPlacement(map: ReplicaMap, writtenBytes: number): { ok: boolean; detail: string } {
  const expected = Math.ceil(writtenBytes / map.egroupBytes);
  const rf = map.replicationFactor;
  const wrong = map.egroups.filter((e) => e.stale.length > 0 || e.replicas.length !== rf || new Set(e.replicas.map((x) => x.node)).size !== rf);
  const bad = wrong[0];
  const why = bad ? `; extent group ${bad.egroup} in sync on ${bad.replicas.map((x) => x.node).join(', ') || 'no node'}${bad.stale.length ? `, stale on ${bad.stale.map((x) => x.node).join(', ')}` : ''}` : '';
  return {
    ok: map.egroups.length === expected && wrong.length === 0,
    detail: `${map.egroups.length} of ${expected} extent group(s) recorded, ${map.egroups.length - wrong.length} with RF${rf} in sync on distinct nodes and none stale${why}`,
  };
}

export async function createAndValidate(entry: ClusterEntry, hosts: ReadonlyMap<string, string>, flow: ClusterFlowDeps): Promise<CreatedCluster> {
  const ips = entry.cluster_members;
  const d: ClusterFlowDeps = {
    ...flow,
    report: (percent, message) => {
      flow.signal.throwIfAborted();
      flow.report(percent, message);
    },
    checked: (c) => {
      flow.signal.throwIfAborted();
      flow.checked(c);
    },
  };
  const until = async <T>(what: string, f: () => Promise<T | undefined>): Promise<T> => {
    const deadline = d.clock.now() + d.waitMs;
    let last = '';
    for (;;) {
      d.signal.throwIfAborted();
      try {
        const v = await f();
        if (v !== undefined) return v;
      } catch (e) {
        last = errorMessage(e);
      }
      if (d.clock.now() > deadline) throw new TimeoutError(`${what} did not happen within ${Math.round(d.waitMs / 1000)} s${last ? ` (last: ${last})` : ''}`);
      await d.clock.sleep(500, d.signal).catch(() => undefined);
    }
  };

  d.report(5, `waiting for the CVMs of ${ips.length} node(s)`);
  const statuses = await until('every member CVM answering', async () => {
    const all = await Promise.all(ips.map((ip) => cvmCall<CvmStatus>(ip, '/status', { timeoutMs: 3000, signal: d.signal })));
    return all;
  });
  const taken = statuses.find((s) => s.configured);
  if (taken) throw new ClusterCheckFailed({ name: 'members', ok: false, evidence: `CVM ${taken.cvmIp} (${taken.serial}) is already part of a cluster (${taken.cluster?.name ?? ''})` });

  d.report(10, `creating cluster ${entry.cluster_name} through CVM ${ips[0] ?? ''}`);
  const body: Record<string, unknown> = { name: entry.cluster_name, cvmIps: ips, redundancyFactor: entry.redundancy_factor, dns: entry.dns, ntp: entry.ntp };
  if (entry.vip) body['vip'] = entry.vip;
  if (d.adminPassword) body['adminPassword'] = d.adminPassword;
  if (d.bmcs?.length) body['bmcs'] = d.bmcs;
  const info = await cvmCall<CreatedCluster>(ips[0] ?? '', '/cluster/create', { body, timeoutMs: 180_000, signal: d.signal });
  let password = d.adminPassword ?? '';
  let passwordFile: string | null = null;
  if (info.initialAdminPassword) {
    // generated by the cluster and answered this once: kept for its owner in a file only they can read
    password = info.initialAdminPassword;
    passwordFile = join(d.dir, `${info.name}-admin-password`);
    writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    d.report(42, `Prism's generated admin password is in ${passwordFile} (readable by this user only)`);
  }
  const servicesWaitMs = Math.min(d.waitMs, d.servicesWaitMs ?? SERVICES_WAIT_MS);
  d.report(40, `cluster ${info.name} (${info.clusterId}) created; configuration store on ${info.store.join(', ')}; waiting up to ${Math.round(servicesWaitMs / 1000)} s for the services`);

  const observe = (): Promise<CvmObservation[]> => Promise.all(ips.map(async (ip) => {
    try {
      return { cvmIp: ip, status: await cvmCall<CvmStatus>(ip, '/status', { timeoutMs: 3000, signal: d.signal }), error: null };
    } catch (e) {
      d.signal.throwIfAborted();
      return { cvmIp: ip, status: null, error: errorMessage(e) };
    }
  }));
  const services = await awaitServices(observe, (seen) => evaluateServices(info.clusterId, info.store, seen), { clock: d.clock, waitMs: servicesWaitMs, signal: d.signal });
  const up = services.seen.flatMap((o) => (o.status ? [o.status] : []));

  const check = (name: string, ok: boolean, evidence: string): void => {
    const c = { name, ok, evidence };
    d.checked(c);
    if (!ok) throw new ClusterCheckFailed(c);
  };

  d.report(50, 'validating: host↔CVM link on every node');
  const links = await Promise.all(ips.map(async (ip) => {
    const host = hosts.get(ip) ?? '';
    try {
      const j = await hostCall<{ link?: { state: string; detail: string } }>(host, '/status', { timeoutMs: 5000, signal: d.signal });
      return { host, ok: j.link?.state === 'up', detail: j.link?.detail ?? 'no link reported' };
    } catch (e) {
      return { host, ok: false, detail: errorMessage(e) };
    }
  }));
  const badLink = links.find((l) => !l.ok);
  check('host-cvm-link', !badLink, badLink ? `host ${badLink.host}: link down (${badLink.detail})` : `link up on ${links.length}/${links.length} hosts`);

  d.report(58, 'validating: configuration store quorum');
  const health = await cvmCall<StoreHealth>(ips[0] ?? '', '/cluster/health', { signal: d.signal });
  const sick = health.members.filter((m) => !m.healthy || !m.leader);
  check('store-quorum', health.quorum && sick.length === 0, `${health.healthy}/${health.members.length} store members healthy with a leader${sick.length ? `; ${sick.map((m) => `${m.cvmIp}: ${m.detail}`).join('; ')}` : ''}`);

  d.report(66, 'validating: every CVM\'s services');
  check('cvm-services', services.verdict.ok, services.verdict.ok ? services.verdict.evidence : `after ${Math.round(servicesWaitMs / 1000)} s: ${services.verdict.evidence}`);

  d.report(74, 'validating: storage pool');
  const pv = await cvmCall<PoolView>(ips[0] ?? '', '/storage/pool', { signal: d.signal });
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
  // NBD requests have no deadline of their own: the test's I/O gets one, and stops with Foundation
  const stopped = new Promise<never>((_r, reject) => d.signal.addEventListener('abort', () => reject(new Error('Foundation is stopping')), { once: true }));
  stopped.catch(() => undefined);
  const io = <T>(p: Promise<T>, what: string): Promise<T> => Promise.race([within(p, 60_000, what), stopped]);
  await cvmCall(writer, '/storage/vdisks', { body: { name, size: '16M' }, signal: d.signal });
  // vdisks over the network are NBD over TLS: the operator's certificate, the CVMs' verified against the cluster CA
  const { cert } = await cvmCall<{ cert: string }>(writer, '/cluster/ca', { signal: d.signal });
  const op = currentIdentity();
  const nbd = op ? { tls: { cert: op.cert, key: op.key, ca: cert } } : {};
  try {
    const w = await NbdClient.connect(writer, NBD_PORT, name, 5000, nbd);
    try {
      await io(Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => w.request(NBD_CMD_WRITE, BigInt(i * MiB), MiB, data.subarray(i * MiB, (i + 1) * MiB)))), `writing the test vdisk through ${writer}`);
      await io(w.request(NBD_CMD_FLUSH, 0n, 0), `flushing the test vdisk on ${writer}`);
    } finally {
      w.close();
    }
    const r = await NbdClient.connect(reader, NBD_PORT, name, 5000, nbd);
    let same: boolean;
    try {
      same = (await io(r.request(NBD_CMD_READ, 0n, 8 * MiB), `reading the test vdisk through ${reader}`))?.equals(data) ?? false;
    } finally {
      r.close();
    }
    const map = await cvmCall<ReplicaMap>(writer, `/storage/vdisks/${name}/replicas`, { signal: d.signal });
    const placed = checkPlacement(map, 8 * MiB);
    check('data-path', same && placed.ok, `8 MiB written through ${writer}, read back ${same ? 'identical' : 'DIFFERENT'} through ${reader}; ${placed.detail}`);
  } finally {
    await cvmCall(writer, `/storage/vdisks/${name}`, { method: 'DELETE' }).catch(() => undefined);
  }

  d.report(92, `validating: Prism on ${info.vip ?? 'its leader\'s CVM'}`);
  const caFile = join(d.dir, `${info.name}-ca.pem`);
  writeFileSync(caFile, cert);
  const agent = new Agent({ connect: { ca: cert } });
  try {
    const get = async (host: string, path: string, auth: string | null, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
      const r = await undiciFetch(`https://${host}:${PRISM_PORT}${path}`, {
        dispatcher: agent, method: body === undefined ? 'GET' : 'POST', redirect: 'manual', signal: AbortSignal.any([d.signal, AbortSignal.timeout(10_000)]),
        headers: { ...(auth ? { Authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {}), ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: r.status, json: (await r.json().catch(() => ({}))) as Record<string, unknown> };
    };
    // the leader, as any CVM's Prism reports it; the virtual IP when the cluster has one
    const leader = await until('a Prism leader elected', async () => {
      // any Prism names the leader; the leader (on the VIP when there is one) must say it leads
      const named = info.vip ?? (await get(writer, '/api/converge/v1/prism', null)).json['leader'];
      if (typeof named !== 'string') return undefined;
      const r = await get(named, '/api/converge/v1/prism', null);
      return r.status === 200 && r.json['isLeader'] === true ? String(r.json['leader']) : undefined;
    });
    const host = info.vip ?? leader;
    const auth = `${ADMIN_USER}:${password}`;
    const clusters = await get(host, '/api/nutanix/v3/clusters/list', auth, { kind: 'cluster' });
    const entities = (clusters.json['entities'] ?? []) as { metadata?: { uuid?: string } }[];
    const hostsList = await get(host, '/api/nutanix/v3/hosts/list', auth, { kind: 'host' });
    const hostCount = ((hostsList.json['entities'] ?? []) as unknown[]).length;
    const wrong = await get(host, '/api/nutanix/v3/clusters/list', `${ADMIN_USER}:not-${password}`, { kind: 'cluster' });
    const ok = clusters.status === 200 && entities[0]?.metadata?.uuid === info.clusterId && hostsList.status === 200 && hostCount === ips.length && wrong.status === 401;
    check('prism', ok, `https://${host}:${PRISM_PORT} (leader ${leader}, certificate from the cluster CA): clusters/list → HTTP ${clusters.status}, ${entities.length} cluster${entities[0]?.metadata?.uuid === info.clusterId ? ` ${info.name}` : ' (not this one)'}; hosts/list → HTTP ${hostsList.status}, ${hostCount} hosts; a wrong password → HTTP ${wrong.status}${wrong.status === 401 ? ' (refused)' : ''}`);
    entry.prism = { url: `https://${host}:${PRISM_PORT}`, ca_file: caFile, admin_password_file: passwordFile };
  } finally {
    await agent.close();
  }
  return info;
}
