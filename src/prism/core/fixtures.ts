/**
 * @module
 * A cluster snapshot to test with (pure): members with a CVM and a host each, a pool, a container
 * and a vdisk. Used by the unit tests of core/ and of the server.
 */
import type { ClusterSnapshot, MemberView } from './snapshot.ts';

export const GiB = 1024 ** 3;

export function member(i: number, o: Partial<MemberView> = {}): MemberView {
  return {
    serial: `SN${i}`, cvmIp: `10.0.1.${i}`, hostIp: `10.0.0.${i}`, hostUuid: `host-${i}`, problems: [],
    cvm: {
      serial: `SN${i}`, cvmIp: `10.0.1.${i}`, hostIp: `10.0.0.${i}`, hypervisorVersion: '1.0.0', nosVersion: '2.0.0', configured: true, clusterId: 'c1', cluster: null,
      services: [{ name: 'genesis', state: 'up', pid: 1, restarts: 0 }, { name: 'prism', state: 'up', pid: 2, restarts: 0 }],
      disks: [{ serial: `D${i}`, mediaType: 'SSD', capacityBytes: 10 * GiB, usedBytes: GiB, ok: true }],
    },
    host: {
      serial: `SN${i}`, hostname: `node-${i}`, hostIp: `10.0.0.${i}`, hypervisorVersion: '1.0.0', bundleVersion: '1.0.0', uptimeS: 5,
      cvm: { ip: `10.0.1.${i}`, state: 'running', pid: 3, restarts: 0, nosVersion: '2.0.0' }, link: { state: 'up', detail: '' }, vdiskSocket: '/run/converge/link/vdisks.sock',
      hardware: { model: 'CVG-1000', block: { serial: 'BLK1', position: 'A' }, bmcIp: `10.0.2.${i}`, cpu: { model: 'Xeon', sockets: 2, cores: 16, threads: 32, speedMHz: 2000 }, memoryMiB: 65536 },
    },
    ...o,
  };
}

export function snapshot(members: MemberView[] = [member(1), member(2), member(3)]): ClusterSnapshot {
  return {
    cluster: { clusterId: 'c1', name: 'lab', redundancyFactor: 2, vip: '10.0.9.1', members: members.map((m) => ({ serial: m.serial, cvmIp: m.cvmIp, hostIp: m.hostIp })), store: ['10.0.1.1', '10.0.1.2', '10.0.1.3'], createdAt: '2026-01-01T00:00:00.000Z', dns: ['10.0.0.53'] },
    members,
    pool: {
      pool: { name: 'default-pool', capacityBytes: 30 * GiB, disks: members.map((m) => ({ serial: `D${m.serial.slice(2)}`, node: m.serial, cvmIp: m.cvmIp, mediaType: 'SSD', capacityBytes: 10 * GiB })) },
      provisionedBytes: GiB, containers: 1, vdisks: 1,
      usage: {
        capacityBytes: 30 * GiB, usedBytes: 3 * GiB, freeBytes: 27 * GiB, healthyCapacityBytes: 30 * GiB, disks: [], nodes: [],
        containers: [{ name: 'default-container', replicationFactor: 2, vdisks: 1, provisionedBytes: GiB, logicalBytes: GiB / 2, physicalBytes: GiB }], uncountedDisks: [],
      },
    },
    containers: [{ name: 'default-container', replicationFactor: 2, createdAt: '2026-01-01T00:00:00.000Z', uuid: 'ct-1' }],
    vdisks: [{ name: 'vd1', container: 'default-container', sizeBytes: GiB, uuid: 'vd-1', createdAt: '2026-01-01T00:00:00.000Z' }],
    store: { members: [], healthy: 3, quorum: true },
    leader: '10.0.1.2',
  };
}
