/**
 * @module
 * Name-based UUIDs: the same name gives the same UUID on every CVM and after every restart, for
 * entities that have no stored id of their own (a host's, an LCM step's).
 */
import { createHash } from 'node:crypto';

/** A name-based UUID (RFC 4122 version 5 layout) of `name` within `namespace`. */
export function nameUuid(namespace: string, name: string): string {
  const h = createHash('sha1').update(`${namespace}\0${name}`).digest();
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x50;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
