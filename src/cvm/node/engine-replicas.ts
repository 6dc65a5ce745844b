/**
 * @module
 * The ReplicaIo port of storage engine v2 (core/engine/ports.ts, ADR 015) for the real CVM:
 * replicas on this CVM's disks go through the extent store (LocalReplicas), the others through
 * the binary replication protocol, version 2 (core/replication-codec.ts). The semantics are those
 * of the reference model (core/engine/replica-model.ts):
 *  - an extent group position (egroup, extent) is the extent store's block
 *    egroup × EGROUP_EXTENTS + extent of the vdisk;
 *  - per extent group and disk, an epoch floor, durable before a frame that raised it is applied
 *    (`floors/<vdisk>/<egroup>` on the disk: u64 epoch, u32 CRC32C); a frame below it is refused
 *    with StaleEpochError; every frame and EXTENT_GENS raise it;
 *  - per extent, its version (epoch, generation) is the extent header's: a write not above it is
 *    refused with StaleGenerationError; a copy (writeExtent) replaces it, version included;
 *  - page checksums are the ones the frame carries (stored as sent, verified on every read);
 *  - fencing is atomic as in the model: once EXTENT_GENS has raised the floor, it waits for the
 *    writes that passed the old floor to land before it lists the versions, so no write of an
 *    older owner lands after a newer owner read the versions.
 * One LocalReplicas per CVM (its floors are cached): the replication server and the CVM's own
 * EngineReplicaIo share it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { crc32c } from '@node-rs/crc32';
import type { DiskVolume } from '../../shared/disk-volume.ts';
import { NotFoundError } from '../../shared/errors.ts';
import { KeyedLock } from '../../shared/keyed-lock.ts';
import { EGROUP_EXTENTS, EXTENT_BYTES, PAGE_BYTES, PAGES_PER_EXTENT, type ReplicaLocation } from '../core/engine/layout.ts';
import { CorruptPageError, StaleEpochError, StaleGenerationError } from '../core/engine/ports.ts';
import type { ExtentImage, ExtentVersion, ReadRequest, ReadResult, ReplicaIo, WriteFrame } from '../core/engine/ports.ts';
import { versionAbove } from '../core/engine/replica-model.ts';
import * as R from '../core/replication-codec.ts';
import { ChecksumError, EpochError, ZERO_PAGE_CRC, type ExtentRef, type ExtentStore } from './extent-store.ts';
import type { EngineReplicas, ReplicationClient } from './replication.ts';

const run = promisify(execFile);
const ZEROS = Buffer.alloc(EXTENT_BYTES);
const FLOOR_BYTES = 12;

export const blockOf = (egroup: number, extent: number): number => egroup * EGROUP_EXTENTS + extent;

/** Store errors as the port names them. */
function portError(disk: string, e: unknown): unknown {
  if (e instanceof EpochError) return new StaleEpochError(e.stored, e.epoch);
  if (e instanceof ChecksumError) return new CorruptPageError(disk, []);
  return e;
}

/** The replica side on this CVM's disks (also what the replication server serves v2 ops with). */
export class LocalReplicas implements EngineReplicas {
  private readonly locks = new KeyedLock();
  private readonly floors = new Map<string, number>();
  /** Frames that passed the floor and are being applied, by disk/vdisk/egroup. */
  private readonly inflight = new Map<string, Set<Promise<void>>>();

  constructor(private readonly store: ExtentStore, private readonly vols: ReadonlyMap<string, DiskVolume>) {}

  private vol(disk: string): DiskVolume {
    const v = this.vols.get(disk);
    if (!v) throw new NotFoundError('disk on this CVM', disk);
    return v;
  }

  private static floorFile(vdisk: string, egroup: number): string {
    return `floors/${vdisk}/${egroup}`;
  }

  private async floorOf(v: DiskVolume, disk: string, vdisk: string, egroup: number): Promise<number> {
    const k = `${disk}/${vdisk}/${egroup}`;
    const cached = this.floors.get(k);
    if (cached !== undefined) return cached;
    const b = await v.readAt(LocalReplicas.floorFile(vdisk, egroup), FLOOR_BYTES, 0);
    // a floor file that does not check (never written, torn) counts as 0: the extent headers' epochs still fence
    const floor = b && b.length === FLOOR_BYTES && crc32c(b.subarray(0, 8)) === b.readUInt32BE(8) ? Number(b.readBigUInt64BE(0)) : 0;
    this.floors.set(k, floor);
    return floor;
  }

  /**
   * Runs `apply` if `epoch` is not below the extent group's floor (else StaleEpochError), after
   * raising the floor to it, durably. `apply` is tracked from the moment the floor admitted it.
   */
  private async fenced<T>(disk: string, vdisk: string, egroup: number, epoch: number, apply: () => Promise<T>): Promise<T> {
    const k = `${disk}/${vdisk}/${egroup}`;
    let done!: () => void;
    const landed = new Promise<void>((r) => (done = r));
    await this.fence(disk, vdisk, egroup, epoch, () => {
      let s = this.inflight.get(k);
      if (!s) this.inflight.set(k, (s = new Set()));
      s.add(landed);
    });
    try {
      return await apply();
    } finally {
      done();
      const s = this.inflight.get(k);
      s?.delete(landed);
      if (s?.size === 0) this.inflight.delete(k);
    }
  }

  /** Refuses an epoch below the extent group's floor; raises the floor to it, durably, first; then `admitted()` (under the lock). */
  private fence(disk: string, vdisk: string, egroup: number, epoch: number, admitted: () => void = () => undefined): Promise<void> {
    const v = this.vol(disk);
    return this.locks.run(`floor/${disk}/${vdisk}/${egroup}`, async () => {
      const floor = await this.floorOf(v, disk, vdisk, egroup);
      if (epoch < floor) throw new StaleEpochError(floor, epoch);
      if (epoch === floor) return admitted();
      const b = Buffer.alloc(FLOOR_BYTES);
      b.writeBigUInt64BE(BigInt(epoch), 0);
      b.writeUInt32BE(crc32c(b.subarray(0, 8)), 8);
      await v.pwritev(LocalReplicas.floorFile(vdisk, egroup), [b], 0, true);
      this.floors.set(`${disk}/${vdisk}/${egroup}`, epoch);
      admitted();
    });
  }

  private ref(disk: string, vdisk: string, egroup: number, extent: number): ExtentRef {
    return { disk, vdisk, block: blockOf(egroup, extent) };
  }

  write(disk: string, f: WriteFrame): Promise<void> {
    const r = this.ref(disk, f.vdisk, f.egroup, f.extent);
    return this.fenced(disk, f.vdisk, f.egroup, f.epoch, () => this.locks.run(`x/${disk}/${f.vdisk}/${r.block}`, async () => {
      try {
        const m = await this.store.meta(r);
        if (m.exists && !versionAbove({ epoch: f.epoch, gen: f.gen }, { epoch: m.epoch, gen: m.generation })) {
          throw new StaleGenerationError(`extent ${f.vdisk}/${f.egroup}/${f.extent} is at ${m.epoch}:${m.generation}, frame ${f.epoch}:${f.gen}`);
        }
        const data = f.zero ? ZEROS.subarray(0, f.length) : f.data!;
        const crcs = f.zero ? new Uint32Array(f.length / PAGE_BYTES).fill(ZERO_PAGE_CRC) : Uint32Array.from(f.crcs);
        await this.store.write(r, f.inner, data, { epoch: f.epoch, generation: f.gen, crcs });
      } catch (e) {
        throw portError(disk, e);
      }
    }));
  }

  async read(disk: string, q: ReadRequest): Promise<ReadResult> {
    try {
      // the store verified every page against its stored checksums (ChecksumError otherwise)
      return { data: await this.store.read(this.ref(disk, q.vdisk, q.egroup, q.extent), q.inner, q.length) };
    } catch (e) {
      throw portError(disk, e);
    }
  }

  async extentGens(disk: string, vdisk: string, egroup: number, epoch: number): Promise<Map<number, ExtentVersion>> {
    await this.fence(disk, vdisk, egroup, epoch);
    // the frames the old floor admitted land first (later ones are refused now)
    await Promise.all([...(this.inflight.get(`${disk}/${vdisk}/${egroup}`) ?? [])]);
    const got = await this.store.extentGens(disk, vdisk, blockOf(egroup, 0), EGROUP_EXTENTS);
    const out = new Map<number, ExtentVersion>();
    for (const [block, m] of got) out.set(block - blockOf(egroup, 0), { epoch: m.epoch, gen: m.generation });
    return out;
  }

  async readExtent(disk: string, vdisk: string, egroup: number, extent: number): Promise<ExtentImage | null> {
    const r = this.ref(disk, vdisk, egroup, extent);
    return this.locks.run(`x/${disk}/${vdisk}/${r.block}`, async () => {
      try {
        const m = await this.store.meta(r);
        if (!m.exists) return null;
        const data = await this.store.read(r, 0, EXTENT_BYTES);
        const pages = new Map<number, { data: Uint8Array; crc: number }>();
        for (let p = 0; p < PAGES_PER_EXTENT; p++) {
          const page = data.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES);
          const crc = crc32c(page);
          // a zero page is carried as absent (the copy reads it as zeros), as in the model
          if (crc !== ZERO_PAGE_CRC || !page.equals(ZEROS.subarray(0, PAGE_BYTES))) pages.set(p, { data: page, crc });
        }
        return { version: { epoch: m.epoch, gen: m.generation }, pages };
      } catch (e) {
        throw portError(disk, e);
      }
    });
  }

  writeExtent(disk: string, vdisk: string, egroup: number, extent: number, epoch: number, image: ExtentImage | null): Promise<void> {
    return this.fenced(disk, vdisk, egroup, epoch, () => this.copyIn(disk, this.ref(disk, vdisk, egroup, extent), image));
  }

  private async copyIn(disk: string, r: ExtentRef, image: ExtentImage | null): Promise<void> {
    if (!image) {
      await this.locks.run(`x/${disk}/${r.vdisk}/${r.block}`, () => this.store.drop(r));
      return;
    }
    const data = Buffer.alloc(EXTENT_BYTES);
    const crcs = new Uint32Array(PAGES_PER_EXTENT).fill(ZERO_PAGE_CRC);
    for (const [p, e] of image.pages) {
      if (!Number.isInteger(p) || p < 0 || p >= PAGES_PER_EXTENT || e.data.byteLength !== PAGE_BYTES) throw new CorruptPageError(disk, [p]);
      data.set(e.data, p * PAGE_BYTES);
      crcs[p] = e.crc;
    }
    const w = { epoch: image.version.epoch, generation: image.version.gen, crcs };
    await this.locks.run(`x/${disk}/${r.vdisk}/${r.block}`, async () => {
      try {
        await this.store.write(r, 0, data, w);
      } catch (e) {
        if (!(e instanceof EpochError)) throw portError(disk, e);
        // the copy's version is older than what the extent holds (a replica being rebuilt): replace it
        await this.store.drop(r);
        await this.store.write(r, 0, data, w);
      }
    });
  }

  syncVdisk(vdisk: string): Promise<void> {
    return this.store.syncVdisk(vdisk);
  }

  /**
   * Makes everything on this CVM's disks durable (syncfs of each, coreutils `sync -f`): a CVM that
   * restarts does so before serving, since writes it acknowledged before it died may sit in the
   * page cache with no dirty set left to name them (ADR 015, FLUSH).
   */
  async syncAll(timeoutMs = 120_000): Promise<void> {
    await Promise.all([...this.vols.values()].map((v) => run('sync', ['-f', v.dir], { timeout: timeoutMs })));
  }
}

function remoteError(loc: { disk: string }, e: unknown): unknown {
  return e instanceof ChecksumError ? new CorruptPageError(loc.disk, []) : e;
}

/**
 * ReplicaIo of the CVM of `self`: its own disks through `local`, the others' over `client`
 * (replication protocol version 2; the peer's server must have been given a LocalReplicas).
 */
export class EngineReplicaIo implements ReplicaIo {
  constructor(private readonly self: { node: string }, private readonly local: LocalReplicas, private readonly client: ReplicationClient, private readonly timeoutMs = 15_000) {}

  private isLocal(node: string): boolean {
    return node === this.self.node;
  }

  private call(l: ReplicaLocation, op: number, vdisk: string, block: number, offset: number, length: number, payload: readonly Uint8Array[] = []): Promise<Buffer> {
    return this.client.request(l.cvmIp, op, { disk: l.disk, vdisk, block }, offset, length, payload, this.timeoutMs).catch((e: unknown) => {
      throw remoteError(l, e);
    });
  }

  async write(l: ReplicaLocation, f: WriteFrame): Promise<void> {
    if (this.isLocal(l.node)) return this.local.write(l.disk, f);
    const v = R.encodeVersion(f.epoch, f.gen);
    const block = blockOf(f.egroup, f.extent);
    if (f.zero) await this.call(l, R.OP_ZERO_V2, f.vdisk, block, f.inner, f.length, [v]);
    else await this.call(l, R.OP_WRITE_V2, f.vdisk, block, f.inner, f.length, [v, R.encodeCrcs(Uint32Array.from(f.crcs)), f.data!]);
  }

  async read(l: ReplicaLocation, q: ReadRequest): Promise<ReadResult> {
    if (this.isLocal(l.node)) return this.local.read(l.disk, q);
    const data = await this.call(l, R.OP_READ, q.vdisk, blockOf(q.egroup, q.extent), q.inner, q.length);
    if (data.length !== q.length) throw new CorruptPageError(l.disk, []);
    // verified by the replica against its stored checksums; TLS's MAC covered the way here
    return { data };
  }

  async extentGens(l: ReplicaLocation, vdisk: string, egroup: number, epoch: number): Promise<Map<number, ExtentVersion>> {
    if (this.isLocal(l.node)) return this.local.extentGens(l.disk, vdisk, egroup, epoch);
    return R.decodeGens(await this.call(l, R.OP_EXTENT_GENS, vdisk, egroup, 0, 8, [R.encodeU64(epoch)]));
  }

  async readExtent(l: ReplicaLocation, vdisk: string, egroup: number, extent: number): Promise<ExtentImage | null> {
    if (this.isLocal(l.node)) return this.local.readExtent(l.disk, vdisk, egroup, extent);
    const b = await this.call(l, R.OP_READ_EXTENT, vdisk, blockOf(egroup, extent), 0, 0);
    if (b.length === 0) return null;
    const img = R.decodeImage(b);
    const bad = [...img.pages].filter(([, p]) => crc32c(p.data) !== p.crc).map(([i]) => i);
    if (bad.length) throw new CorruptPageError(l.disk, bad); // damaged on the way
    return img;
  }

  async writeExtent(l: ReplicaLocation, vdisk: string, egroup: number, extent: number, epoch: number, image: ExtentImage | null): Promise<void> {
    if (this.isLocal(l.node)) return this.local.writeExtent(l.disk, vdisk, egroup, extent, epoch, image);
    const body = [R.encodeU64(epoch), ...(image ? R.encodeImage(image) : [])];
    const length = body.reduce((n, b) => n + b.byteLength, 0);
    await this.call(l, R.OP_WRITE_EXTENT, vdisk, blockOf(egroup, extent), 0, length, body);
  }

  async sync(cvm: { node: string; cvmIp: string }, vdisk: string): Promise<void> {
    if (this.isLocal(cvm.node)) return this.local.syncVdisk(vdisk);
    await this.call({ node: cvm.node, cvmIp: cvm.cvmIp, disk: '-' }, R.OP_SYNC_VDISK, vdisk, 0, 0, 0);
  }
}

/**
 * ReplicaIo straight onto one LocalReplicas whatever node a location names (its disk decides):
 * for benchmarks and tests that run an owner over real extent files without a network, e.g. RF2
 * on two local disks standing for two nodes.
 */
export function localOnlyIo(reps: LocalReplicas): ReplicaIo {
  return {
    write: (l, f) => reps.write(l.disk, f),
    read: (l, r) => reps.read(l.disk, r),
    extentGens: (l, v, e, ep) => reps.extentGens(l.disk, v, e, ep),
    readExtent: (l, v, e, x) => reps.readExtent(l.disk, v, e, x),
    writeExtent: (l, v, e, x, ep, img) => reps.writeExtent(l.disk, v, e, x, ep, img),
    sync: (_c, v) => reps.syncVdisk(v),
  };
}
