/**
 * @module
 * Extent groups on this CVM's disks, and the peer protocol that lets other CVMs read and write
 * them. In this first cut an extent group holds one 1 MiB block of one vdisk: an extent of the
 * extent store (node/extent-store.ts: `extents/<vdisk uuid>/<block>` on a DiskVolume, with its
 * checksummed header; capacity and disk failures apply). The files of the earlier format
 * (`egroups/<vdisk>/<block>` + `.crc`) are not read nor migrated: clusters are rebuilt.
 *
 * Peers reach these extent groups over the replication protocol (node/replication.ts, binary, on
 * cvmIp:2009), a FLUSH's batch of syncs too (SYNC_MANY). The HTTP route of the earlier cut stays
 * served for peers of that version (cvmIp:2100):
 *   POST /egroup/sync-many   body = JSON [{ disk, vdisk, block }, ...]   → 204
 *
 * Page checksums (CRC32C) are computed once per buffer handed in (crcsFor): the write path hands
 * the same buffer to every replica, local and remote; the remote ones get the checksums in the
 * write frame and store them as they are. A buffer handed to write() must not change afterwards.
 */
import { DiskVolume, isDiskFailed } from '../../shared/disk-volume.ts';
import { mapLimit } from '../../shared/async.ts';
import { InputError, NotFoundError } from '../../shared/errors.ts';
import { validateRequest, OP_SYNC } from '../core/replication-codec.ts';
import { ExtentStore, crcsFor, type ExtentStoreOptions } from './extent-store.ts';

export { ChecksumError, crcsFor } from './extent-store.ts';

export interface EgroupRef {
  disk: string;
  vdisk: string;
  block: number;
}

/**
 * The extent groups on this CVM's own disks: the v1 interface over the extent store (epoch 0:
 * unfenced; the generation counts writes).
 */
export class LocalEgroups {
  private vols = new Map<string, DiskVolume>();
  /** The extent store on these disks (v2 callers use it directly: epochs, generations, zeroing). */
  readonly store: ExtentStore;

  /** Claims the disks (the passed-through HBA): no other process may open them while this CVM runs. */
  constructor(disks: readonly { serial: string; path: string }[], owner = 'the CVM', storeOptions: ExtentStoreOptions = {}) {
    for (const d of disks) {
      try {
        this.vols.set(d.serial, DiskVolume.claim(d.path, owner));
      } catch {
        // a disk that cannot be opened is not offered (its status says so)
      }
    }
    this.store = new ExtentStore(this.vols, storeOptions);
  }

  /** The claimed disk volumes, by serial (the engine's LocalReplicas keeps its epoch floors on them). */
  get volumes(): ReadonlyMap<string, DiskVolume> {
    return this.vols;
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

  /** Each local disk's space and health, read now (a disk can fail while the CVM runs). */
  space(): { serial: string; freeBytes: number; usedBytes: number; ok: boolean }[] {
    return [...this.vols.values()].map((v) => ({ serial: v.serial, freeBytes: v.free(), usedBytes: v.used(), ok: !isDiskFailed(v.dir) }));
  }

  /** `crcs`: the CRC32C of the whole pages written, when the caller has them (a replication frame). */
  async write(r: EgroupRef, offset: number, data: Uint8Array, sync: boolean, crcs?: Uint32Array): Promise<void> {
    await this.store.write(r, offset, data, { epoch: 0, sync, crcs: crcs ?? crcsFor(data, offset) });
  }

  read(r: EgroupRef, offset: number, length: number): Promise<Buffer> {
    return this.store.read(r, offset, length);
  }

  /** Zeroes a range (pages marked, not written; a never-written extent group stays absent). */
  zero(r: EgroupRef, offset: number, length: number, sync: boolean): Promise<void> {
    return this.store.zero(r, offset, length, { epoch: 0, sync });
  }

  /** Every extent-group replica file on this CVM's healthy disks, by disk and vdisk. */
  inventory(): Promise<{ disk: string; vdisk: string; blocks: { block: number; mtimeMs: number }[] }[]> {
    return this.store.inventory();
  }

  /**
   * Per disk, the bytes of each vdisk's extents holding data (ExtentStore.vdiskBytes: extents × 1 MiB);
   * undefined until they were counted once (the first call starts the count).
   */
  vdiskBytes(): Map<string, Map<string, number>> | undefined {
    return this.store.vdiskBytes();
  }

  /**
   * Frees the files of vdisks that no longer exist: on every healthy local disk, `extents/<uuid>/`
   * and `floors/<uuid>/` of each uuid not in `known` (read from the configuration store before the
   * call). A folder changed within the last `graceMs` is kept this time: a vdisk created after
   * `known` was read may be written already. Answers the bytes freed.
   */
  async sweepVdisks(known: ReadonlySet<string>, o: { graceMs?: number; now?: number } = {}): Promise<number> {
    const graceMs = o.graceMs ?? 60_000;
    const now = o.now ?? Date.now();
    let freed = 0;
    for (const v of this.vols.values()) {
      if (isDiskFailed(v.dir)) continue;
      for (const top of ['extents', 'floors'] as const) {
        for (const uuid of await v.list(top)) {
          if (known.has(uuid)) continue;
          const st = await v.stat(`${top}/${uuid}`);
          if (!st || now - st.mtimeMs < graceMs) continue;
          freed += top === 'extents' ? await this.store.dropVdisk(v.serial, uuid) : await removeCounted(v, `${top}/${uuid}`);
        }
      }
    }
    return freed;
  }

  /**
   * Frees one extent group's files on a local disk that is no longer one of its replicas: its
   * extents and its epoch floor (`floors/<uuid>/<egroup>`). Answers the bytes freed.
   */
  async dropEgroup(disk: string, uuid: string, egroup: number): Promise<number> {
    const v = this.vols.get(disk);
    if (!v) throw new NotFoundError('disk on this CVM', disk);
    const extents = await this.store.dropEgroup(disk, uuid, egroup);
    const floor = `floors/${uuid}/${egroup}`;
    const size = (await v.stat(floor))?.size;
    await v.remove(floor);
    return extents + (size === undefined ? 0 : roundUp4k(size));
  }

  /** Removes a replica: one no record points at any more. */
  drop(r: EgroupRef): Promise<void> {
    return this.store.drop(r);
  }

  /** Makes an extent group durable (nothing to do if it was not written since its last sync). */
  sync(r: EgroupRef): Promise<void> {
    if (!this.vols.has(r.disk)) return Promise.reject(new NotFoundError('disk on this CVM', r.disk));
    return this.store.sync(r);
  }

  /** Makes many extent groups durable, a few at a time (a FLUSH after a large copy names thousands). */
  async syncMany(refs: readonly EgroupRef[], parallel = 16): Promise<void> {
    await mapLimit(refs, parallel, (r) => this.sync(r));
  }
}

/** DiskVolume charges whole 4 KiB blocks per file. */
const roundUp4k = (n: number): number => Math.ceil(n / 4096) * 4096;

/** Removes a folder of files (one level), answering the bytes they took. */
async function removeCounted(v: DiskVolume, dir: string): Promise<number> {
  let bytes = 0;
  for (const name of await v.list(dir)) bytes += roundUp4k((await v.stat(`${dir}/${name}`))?.size ?? 0);
  await v.remove(dir);
  return bytes;
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
