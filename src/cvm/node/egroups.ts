/**
 * @module
 * Extent groups on this CVM's disks, and the peer protocol that lets other CVMs read and write
 * them. In this first cut an extent group holds one 1 MiB block of one vdisk, in the file
 * `egroups/<vdisk uuid>/<block>` of a DiskVolume (so capacity and disk failures apply).
 *
 * Peers reach these extent groups over the replication protocol (node/replication.ts, binary, on
 * cvmIp:2009); a FLUSH's batch of syncs goes over HTTP on cvmIp:2100:
 *   POST /egroup/sync-many   body = JSON [{ disk, vdisk, block }, ...]   → 204
 */
import { crc32 } from 'node:zlib';
import { Pool } from 'undici';
import { DiskVolume, isDiskFailed } from '../../shared/disk-volume.ts';
import { KeyedLock } from '../../shared/keyed-lock.ts';
import { mapLimit } from '../../shared/async.ts';
import { InputError, NotFoundError, errorMessage, DiskIoError, UnavailableError } from '../../shared/errors.ts';
import { BLOCK_BYTES } from '../core/storage.ts';
import { CVM_API_PORT } from '../protocol/cluster.ts';
import { ReplicationClient, type MemberTls } from './replication.ts';
import type { Identity } from '../../shared/identity.ts';
import { validateRequest, OP_SYNC } from '../core/replication-codec.ts';

export interface EgroupRef {
  disk: string;
  vdisk: string;
  block: number;
}

const fileOf = (r: EgroupRef): string => `egroups/${r.vdisk}/${r.block}`;
/** The checksums of an extent group: one CRC32 per 4 KiB page (0 = never written). */
const crcOf = (r: EgroupRef): string => `${fileOf(r)}.crc`;
const PAGE = 4096;
const CRC_CACHE = 4096;
const stored = (b: Buffer): number => {
  const c = crc32(b);
  return c === 0 ? 1 : c; // 0 is kept for "never written"
};

/** A replica whose data does not match its checksums: read another, then repair this one. */
export class ChecksumError extends DiskIoError {}

/**
 * The extent groups on this CVM's own disks, with a CRC32 per 4 KiB page written beside the data
 * and verified on every read.
 *
 * Invariant: data and checksums of one extent group change together: writes and reads of an
 * extent group are serialized, so a reader never sees data without its checksums.
 */
export class LocalEgroups {
  private vols = new Map<string, DiskVolume>();
  private locks = new KeyedLock();
  /** Checksums of recently used extent groups (1 KiB each), so a read needs no second file read. */
  private crcs = new Map<string, Buffer>();

  private async crcTable(v: DiskVolume, r: EgroupRef): Promise<Buffer> {
    const k = `${r.disk}/${fileOf(r)}`;
    let t = this.crcs.get(k);
    if (t) {
      this.crcs.delete(k);
    } else {
      t = await this.raw(v, crcOf(r), 0, (BLOCK_BYTES / PAGE) * 4);
      if (this.crcs.size >= CRC_CACHE) {
        const oldest = this.crcs.keys().next().value;
        if (oldest !== undefined) this.crcs.delete(oldest);
      }
    }
    this.crcs.set(k, t);
    return t;
  }

  /** Claims the disks (the passed-through HBA): no other process may open them while this CVM runs. */
  constructor(disks: readonly { serial: string; path: string }[], owner = 'the CVM') {
    for (const d of disks) {
      try {
        this.vols.set(d.serial, DiskVolume.claim(d.path, owner));
      } catch {
        // a disk that cannot be opened is not offered (its status says so)
      }
    }
  }

  /** Gives back the leases on this CVM's disks (at shutdown). */
  release(): void {
    for (const v of this.vols.values()) {
      v.close();
      v.unclaim();
    }
  }

  has(disk: string): boolean {
    return this.vols.has(disk);
  }

  private vol(disk: string): DiskVolume {
    const v = this.vols.get(disk);
    if (!v) throw new NotFoundError('disk on this CVM', disk);
    return v;
  }

  /** Each local disk's space and health, read now (a disk can fail while the CVM runs). */
  space(): { serial: string; freeBytes: number; usedBytes: number; ok: boolean }[] {
    return [...this.vols.values()].map((v) => ({ serial: v.serial, freeBytes: v.free(), usedBytes: v.used(), ok: !isDiskFailed(v.dir) }));
  }

  async write(r: EgroupRef, offset: number, data: Uint8Array, sync: boolean): Promise<void> {
    if (offset < 0 || offset + data.byteLength > BLOCK_BYTES) throw new InputError('offset', `a write must stay inside its ${BLOCK_BYTES}-byte extent group`);
    const v = this.vol(r.disk);
    const file = fileOf(r);
    await this.locks.run(file, async () => {
      await v.pwrite(file, data, offset, false);
      const first = Math.floor(offset / PAGE);
      const last = Math.floor((offset + data.byteLength - 1) / PAGE);
      const aligned = offset % PAGE === 0 && data.byteLength % PAGE === 0;
      const pages = aligned ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : await this.raw(v, file, first * PAGE, (last - first + 1) * PAGE);
      const table = await this.crcTable(v, r);
      for (let i = 0; i <= last - first; i++) table.writeUInt32BE(stored(pages.subarray(i * PAGE, (i + 1) * PAGE)), (first + i) * 4);
      await v.pwrite(crcOf(r), table.subarray(first * 4, (last + 1) * 4), first * 4, false);
      if (sync) await Promise.all([v.sync(file), v.sync(crcOf(r))]);
    });
  }

  /** Bytes of a file, zero-filled past its end or where it does not exist. */
  private async raw(v: DiskVolume, file: string, offset: number, length: number): Promise<Buffer> {
    let got: Buffer;
    try {
      got = await v.pread(file, length, offset);
    } catch (e) {
      if (!(e instanceof Error && 'code' in e && e.code === 'ENOENT')) throw e;
      return Buffer.alloc(length);
    }
    if (got.length === length) return got;
    const out = Buffer.alloc(length); // past the end of the file: zeros
    got.copy(out);
    return out;
  }

  async read(r: EgroupRef, offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || offset + length > BLOCK_BYTES) throw new InputError('offset', `a read must stay inside its ${BLOCK_BYTES}-byte extent group`);
    if (length === 0) return Buffer.alloc(0);
    const v = this.vol(r.disk);
    const file = fileOf(r);
    return this.locks.run(file, async () => {
      const first = Math.floor(offset / PAGE);
      const last = Math.floor((offset + length - 1) / PAGE);
      const [pages, table] = await Promise.all([this.raw(v, file, first * PAGE, (last - first + 1) * PAGE), this.crcTable(v, r)]);
      const crcs = table.subarray(first * 4, (last + 1) * 4);
      for (let i = 0; i <= last - first; i++) {
        const want = crcs.readUInt32BE(i * 4);
        if (want === 0) continue; // never written: zeros
        if (stored(pages.subarray(i * PAGE, (i + 1) * PAGE)) !== want) {
          throw new ChecksumError(r.disk, `checksum mismatch in extent group ${r.vdisk}/${r.block} at page ${first + i}`);
        }
      }
      return pages.subarray(offset - first * PAGE, offset - first * PAGE + length);
    });
  }

  /** Every extent-group replica file on this CVM's healthy disks, by disk and vdisk. */
  async inventory(): Promise<{ disk: string; vdisk: string; blocks: { block: number; mtimeMs: number }[] }[]> {
    const out: { disk: string; vdisk: string; blocks: { block: number; mtimeMs: number }[] }[] = [];
    for (const v of this.vols.values()) {
      if (isDiskFailed(v.dir)) continue;
      for (const vdisk of await v.list('egroups')) {
        const blocks: { block: number; mtimeMs: number }[] = [];
        for (const name of await v.list(`egroups/${vdisk}`)) {
          if (!/^\d+$/.test(name)) continue;
          const st = await v.stat(`egroups/${vdisk}/${name}`);
          if (st) blocks.push({ block: Number(name), mtimeMs: st.mtimeMs });
        }
        out.push({ disk: v.serial, vdisk, blocks });
      }
    }
    return out;
  }

  /** Removes a replica (data and checksums): one no record points at any more. */
  async drop(r: EgroupRef): Promise<void> {
    const v = this.vol(r.disk);
    await this.locks.run(fileOf(r), async () => {
      this.crcs.delete(`${r.disk}/${fileOf(r)}`);
      await v.remove(fileOf(r));
      await v.remove(crcOf(r));
    });
  }

  async sync(r: EgroupRef): Promise<void> {
    const v = this.vol(r.disk);
    await Promise.all([v.sync(fileOf(r)), v.sync(crcOf(r))]);
  }

  /** Makes many extent groups durable, a few at a time (a FLUSH after a large copy names thousands). */
  async syncMany(refs: readonly EgroupRef[], parallel = 16): Promise<void> {
    await mapLimit(refs, parallel, (r) => this.sync(r));
  }
}

/** Reads and writes extent groups on other CVMs: the replication protocol, and HTTP for a FLUSH's batch. */
export class PeerEgroups {
  private pools = new Map<string, Pool>();
  private link: ReplicationClient;

  /**
   * `tls`: this member's `cvm` certificate and the cluster CA (replication); `api`: the identity
   * it presents to a peer's API (a FLUSH's batch).
   */
  constructor(tls: () => MemberTls | undefined, private readonly api: () => Identity | undefined) {
    this.link = new ReplicationClient(tls);
  }

  write(ip: string, r: EgroupRef, offset: number, data: Uint8Array, sync: boolean): Promise<void> {
    return this.link.write(ip, r, offset, data, sync);
  }

  read(ip: string, r: EgroupRef, offset: number, length: number): Promise<Buffer> {
    return this.link.read(ip, r, offset, length);
  }

  sync(ip: string, r: EgroupRef): Promise<void> {
    return this.link.sync(ip, r);
  }

  /** Makes many extent groups on one peer durable, in one request per 4096. */
  async syncMany(ip: string, refs: readonly EgroupRef[]): Promise<void> {
    let p = this.pools.get(ip);
    if (!p) {
      const id = this.api();
      if (!id) throw new UnavailableError(`no identity to reach CVM ${ip} with`);
      this.pools.set(ip, (p = new Pool(`https://${ip}:${CVM_API_PORT}`, { connections: 2, keepAliveTimeout: 30_000, connect: { ca: id.ca, cert: id.cert, key: id.key } })));
    }
    for (let i = 0; i < refs.length; i += 4096) {
      let res;
      try {
        res = await p.request({ method: 'POST', path: '/egroup/sync-many', body: JSON.stringify(refs.slice(i, i + 4096)), headers: { 'content-type': 'application/json' }, headersTimeout: 120_000, bodyTimeout: 120_000 });
      } catch (e) {
        throw new UnavailableError(`CVM ${ip} does not answer (${errorMessage(e)})`);
      }
      const text = await res.body.text();
      if (res.statusCode >= 400) throw new DiskIoError(ip, `peer ${ip}: ${text}`);
    }
  }

  async close(): Promise<void> {
    this.link.close();
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    this.pools.clear();
  }
}

/** Checks a sync-many body (parsed JSON): a list of extent groups; every field is checked. */
export function parseEgroupList(list: unknown): EgroupRef[] {
  if (!Array.isArray(list)) throw new InputError('body', 'a JSON list of { disk, vdisk, block }');
  return list.map((x: unknown, i) => {
    const { disk, vdisk, block } = (x ?? {}) as Record<string, unknown>;
    if (typeof block !== 'number' || !Number.isInteger(block) || block < 0 || block > 0xffffffff) throw new InputError(`body[${i}].block`, 'a whole number');
    const ref = { disk: typeof disk === 'string' ? disk : '', vdisk: typeof vdisk === 'string' ? vdisk : '', block };
    try {
      validateRequest({ op: OP_SYNC, id: 0, ...ref, offset: 0, length: 0 }); // the replication protocol's rules for an extent group
    } catch (e) {
      throw e instanceof InputError ? new InputError(`body[${i}].${e.field}`, e.reason) : e;
    }
    return ref;
  });
}
