/**
 * @module
 * Storage metadata rules (pure): the storage pool made of every data disk of the cluster,
 * containers (a namespace with a replication factor), vdisks (a block device of a size in a
 * container). Names, sizes and RFs are checked here; the records live in the cluster's
 * configuration store (node/storage-meta.ts).
 */
import { InputError } from '../../shared/errors.ts';

export type { PoolDisk, Pool, Container, Vdisk } from '../protocol/storage.ts';
import type { PoolDisk, Pool } from '../protocol/storage.ts';

export const DEFAULT_POOL = 'default-pool';
export const DEFAULT_CONTAINER = 'default-container';
/** vdisks are cut into 1 MiB blocks (extents); sizes are whole blocks. */
export const BLOCK_BYTES = 1 << 20;
export const MAX_VDISK_BYTES = 64 * 1024 ** 4;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/;

export function checkName(field: string, v: unknown): string {
  if (typeof v !== 'string' || !NAME.test(v)) throw new InputError(field, 'letters, digits, . _ -, starting with a letter or digit; at most 80', undefined, v);
  return v;
}

/** "10G", "512M", "1T", "4096" (bytes), as a whole number of 1 MiB blocks. */
export function parseSize(field: string, v: unknown): number {
  const m = typeof v === 'number' ? [String(v), String(v), ''] : typeof v === 'string' ? /^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?$/i.exec(v.trim()) : null;
  if (!m) throw new InputError(field, 'a size like 10G, 512M or a number of bytes', undefined, v);
  const unit = (m[2] ?? '').toUpperCase().replace(/I?B$/, '');
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[unit] ?? NaN;
  const bytes = Math.round(Number(m[1]) * mult);
  if (!Number.isFinite(bytes) || bytes <= 0) throw new InputError(field, 'must be a positive size', undefined, v);
  if (bytes % BLOCK_BYTES !== 0) throw new InputError(field, `must be a whole number of MiB (vdisks are cut into 1 MiB blocks)`, undefined, v);
  if (bytes > MAX_VDISK_BYTES) throw new InputError(field, 'at most 64 TiB', undefined, v);
  return bytes;
}

/** A container's RF may not exceed the cluster's (replicas must land on distinct nodes). */
export function checkRf(v: unknown, clusterRf: 1 | 2 | 3): 1 | 2 | 3 {
  if (v !== 1 && v !== 2 && v !== 3) throw new InputError('replicationFactor', 'must be 1, 2 or 3', ['1', '2', '3'], v);
  if (v > clusterRf) throw new InputError('replicationFactor', `RF${v} is more than this cluster tolerates (RF${clusterRf})`, undefined, v);
  return v;
}

export function poolOf(disks: readonly PoolDisk[]): Pool {
  return { name: DEFAULT_POOL, disks: [...disks], capacityBytes: disks.reduce((a, d) => a + d.capacityBytes, 0) };
}
