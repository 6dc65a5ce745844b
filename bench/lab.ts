/**
 * @module
 * What the storage benches share: a 3-node lab cluster deployed by Foundation on loopback (this
 * process is Foundation, so it holds the operator's certificate, ADR 013).
 *
 * Addresses: the rack's BMCs on 127.122.0.x, hosts on 127.123.20.x, CVMs on 127.123.21.x,
 * Foundation on port 18122. Benches using it run one at a time.
 */
import { dirname, join } from 'node:path';
import { TestFoundation } from '../test/drivers/foundation-driver.ts';
import { cvmCall } from '../src/cvm/protocol/client.ts';
import { hostCall } from '../src/hypervisor/protocol/client.ts';

export { machineContext } from './machine.ts';

export const HOST = (i: number): string => `127.123.20.${i + 1}`;
export const CVM = (i: number): string => `127.123.21.${i + 1}`;
/** A spare address of the hosts' network for the bench's own servers (nbdkit, etcd). */
export const SPARE_IP = '127.123.20.250';

export interface BenchLab {
  t: TestFoundation;
  hosts: string[];
  cvms: string[];
  /** Host 0's redirector (plain NBD, this host's processes only): the path a VM uses. */
  vdiskSocket: string;
  /** Host 0's link to its CVM's NBD socket (what the redirector forwards to). */
  linkSocket: string;
  stop(): Promise<void>;
}

/** A 3-node cluster (RF2 default container, and an `rf1` container); Prism's admin password as given (else generated and not kept). */
export async function startBenchLab(name = 'bench', o: { adminPassword?: string } = {}): Promise<BenchLab> {
  const t = await TestFoundation.start('127.122', 18122, 3);
  try {
    await t.upload();
    const body = t.imageBody('127.123', [0, 1, 2]) as { blocks: { nodes: { hypervisor_ip: string; cvm_ip: string }[] }[] };
    body.blocks.flatMap((b) => b.nodes).forEach((n, i) => Object.assign(n, { hypervisor_ip: HOST(i), cvm_ip: CVM(i) }));
    const r = await t.call('POST', '/foundation/image_nodes', body);
    if (r.status !== 200) throw new Error(`image_nodes: ${r.text}`);
    const p = await t.waitStopped(r.json.session_id as string, 180_000);
    if (p.aggregate_percent_complete !== 100) throw new Error('imaging failed');
    const cvms = [0, 1, 2].map(CVM);
    await cvmCall(CVM(0), '/cluster/create', { body: { name, cvmIps: cvms, redundancyFactor: 2, ...(o.adminPassword ? { adminPassword: o.adminPassword } : {}) }, timeoutMs: 120_000 });
    await cvmCall(CVM(0), '/storage/containers', { body: { name: 'rf1', replicationFactor: 1 } });
    const { vdiskSocket } = await hostCall<{ vdiskSocket: string }>(HOST(0), '/status');
    return { t, hosts: [0, 1, 2].map(HOST), cvms, vdiskSocket, linkSocket: join(dirname(vdiskSocket), 'cvm-nbd.sock'), stop: () => t.stop() };
  } catch (e) {
    await t.stop().catch(() => undefined);
    throw e;
  }
}

/** Creates a vdisk of `sizeMiB` in `container` and returns its NBD URI through host 0's redirector. */
export async function benchVdisk(lab: BenchLab, name: string, sizeMiB: number, container: string): Promise<string> {
  await cvmCall(CVM(0), '/storage/vdisks', { body: { name, size: `${sizeMiB}M`, container } });
  return `nbd+unix:///${name}?socket=${lab.vdiskSocket}`;
}
