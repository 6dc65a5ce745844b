/**
 * @module
 * The storage records of a cluster as the CVM API answers them (GET /storage/pool, /containers,
 * /vdisks) and as the configuration store keeps them. Rules about them: core/storage.ts.
 */

export interface PoolDisk {
  serial: string;
  node: string;
  cvmIp: string;
  mediaType: string;
  capacityBytes: number;
}

export interface Pool {
  name: string;
  disks: PoolDisk[];
  capacityBytes: number;
}

export interface Container {
  name: string;
  replicationFactor: 1 | 2 | 3;
  createdAt: string;
}

export interface Vdisk {
  name: string;
  container: string;
  sizeBytes: number;
  uuid: string;
  createdAt: string;
}
