/**
 * @module
 * Reading every key under a prefix of the configuration store in pages. One range answer from
 * etcd must fit the client's gRPC message limit (4 MiB): 10,000 VM records or a few TiB's worth of
 * extent-group records do not. Pages of PAGE keys, by key order, all read at the first page's
 * revision (one consistent view, as a single range would be).
 */
import { Range, type Etcd3, type IKeyValue, type Namespace } from 'etcd3';

/** Keys per page: records here are at most a few KiB, so a page stays well under 4 MiB. */
export const PAGE = 500;

/** Every key-value under `prefix`, in key order, read page by page at one revision. */
export async function rangeAll(etcd: Etcd3 | Namespace, prefix: string, page = PAGE): Promise<IKeyValue[]> {
  return (await rangeAt(etcd, prefix, page)).kvs;
}

/** `rangeAll`, with the revision it was read at (a watch from the next one misses nothing). */
export async function rangeAt(etcd: Etcd3 | Namespace, prefix: string, page = PAGE): Promise<{ kvs: IKeyValue[]; revision: string }> {
  const { start: first, end } = Range.prefix(prefix);
  const kvs: IKeyValue[] = [];
  let start = first;
  let revision: string | undefined;
  for (;;) {
    const b = etcd.getAll().inRange(new Range(start, end)).sort('Key', 'Ascend').limit(page);
    const r = await (revision === undefined ? b : b.revision(revision)).exec();
    revision ??= r.header.revision;
    kvs.push(...r.kvs);
    const last = r.kvs[r.kvs.length - 1];
    if (!r.more || !last) return { kvs, revision };
    start = Buffer.concat([last.key, Buffer.from([0])]);
  }
}

/** `rangeAll` as `{ key: value }` strings (what `getAll().prefix(p).strings()` answers). */
export async function rangeStrings(etcd: Etcd3 | Namespace, prefix: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const kv of await rangeAll(etcd, prefix)) out[kv.key.toString()] = kv.value.toString();
  return out;
}
