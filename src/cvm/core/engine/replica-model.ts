/**
 * @module
 * The replica side of the v2 data path as a pure in-memory model: the reference semantics the real
 * extent store (extent files with checksummed headers) must match, and the fake disk of the
 * simulator. One ReplicaModel per CVM, holding its disks.
 *
 * Rules (ADR 015):
 *  - Per extent group, the highest epoch seen (the floor, kept in the extent headers) is durable at
 *    once; a frame with a lower epoch is refused (StaleEpochError): an owner cut off by a partition
 *    cannot change a replica a newer owner has touched. `extentGens` raises the floor (fencing).
 *  - Per extent, the version (epoch, generation) of the last write applied; a write whose version is
 *    not above it is refused (StaleGenerationError): a late frame never undoes a newer write.
 *    Copies (`writeExtent`: resync, repair) replace the extent, version included.
 *  - Per page, the current and the previous checksum; a page is good if its data matches either (a
 *    write torn by a crash reads as old or new data). Every read verifies; a bad page fails the read
 *    (CorruptPageError) and is never given a fresh checksum.
 *  - Writes land in the page cache (`cur`); a per-vdisk dirty set records the extents written since
 *    the last SYNC(vdisk), which makes them durable. Power loss keeps the durable state (plus any
 *    dirty extent the cache happened to write back).
 */
import { DiskIoError } from '../../../shared/errors.ts';
import { PAGE_BYTES } from './layout.ts';
import { CorruptPageError, StaleEpochError, StaleGenerationError } from './ports.ts';
import type { Checksum, ExtentImage, ExtentVersion, Media, ReadRequest, ReadResult, WriteFrame } from './ports.ts';

interface PageEntry {
  /** null: a zero page (trimmed), no data stored. */
  data: Uint8Array | null;
  crc: number;
  prev: number;
}

interface ExtentState {
  version: ExtentVersion;
  pages: ReadonlyMap<number, PageEntry>;
}

export const extentKey = (vdisk: string, egroup: number, extent: number): string => `${vdisk}/${egroup}/${extent}`;
const egroupKey = (vdisk: string, egroup: number): string => `${vdisk}/${egroup}`;
const vdiskOfKey = (key: string): string => key.slice(0, key.indexOf('/'));

export const versionAbove = (a: ExtentVersion, b: ExtentVersion): boolean => a.epoch > b.epoch || (a.epoch === b.epoch && a.gen > b.gen);

export class DiskModel {
  failed = false;
  /** What reads see (the page cache over the disk). */
  readonly cur = new Map<string, ExtentState>();
  /** What is on the platters. */
  readonly durable = new Map<string, ExtentState>();
  readonly floors = new Map<string, number>();
  /** Extents written since their vdisk's last SYNC. */
  readonly dirty = new Set<string>();

  constructor(readonly serial: string, readonly media: Media) {}

  usedPages(): number {
    let n = 0;
    for (const e of this.cur.values()) n += e.pages.size;
    return n;
  }
}

export class ReplicaModel {
  readonly disks = new Map<string, DiskModel>();
  private readonly zeroCrc: number;
  /** Page buffers are never changed in place (bit rot makes a new one), so a checksum per buffer is exact. */
  private readonly crcOf = new WeakMap<Uint8Array, number>();

  private sum(data: Uint8Array): number {
    let c = this.crcOf.get(data);
    if (c === undefined) {
      c = this.checksum(data);
      this.crcOf.set(data, c);
    }
    return c;
  }

  constructor(readonly node: string, disks: readonly { serial: string; media: Media }[], private readonly checksum: Checksum) {
    for (const d of disks) this.disks.set(d.serial, new DiskModel(d.serial, d.media));
    this.zeroCrc = checksum(new Uint8Array(PAGE_BYTES));
  }

  private disk(serial: string): DiskModel {
    const d = this.disks.get(serial);
    if (!d) throw new DiskIoError(serial, `no such disk on ${this.node}`);
    if (d.failed) throw new DiskIoError(serial, 'failed');
    return d;
  }

  private fence(d: DiskModel, vdisk: string, egroup: number, epoch: number): void {
    const k = egroupKey(vdisk, egroup);
    const floor = d.floors.get(k) ?? 0;
    if (epoch < floor) throw new StaleEpochError(floor, epoch);
    d.floors.set(k, epoch);
  }

  private put(d: DiskModel, key: string, state: ExtentState | null): void {
    if (state) d.cur.set(key, state);
    else d.cur.delete(key);
    d.dirty.add(key);
  }

  write(serial: string, f: WriteFrame): void {
    const d = this.disk(serial);
    this.fence(d, f.vdisk, f.egroup, f.epoch);
    const key = extentKey(f.vdisk, f.egroup, f.extent);
    const old = d.cur.get(key);
    const version = { epoch: f.epoch, gen: f.gen };
    if (old && !versionAbove(version, old.version)) throw new StaleGenerationError(`extent ${key} is at ${old.version.epoch}:${old.version.gen}, frame ${f.epoch}:${f.gen}`);
    const pages = new Map(old?.pages ?? []);
    const first = f.inner / PAGE_BYTES;
    for (let i = 0; i < f.length / PAGE_BYTES; i++) {
      const prev = pages.get(first + i)?.crc ?? this.zeroCrc;
      if (f.zero) pages.set(first + i, { data: null, crc: this.zeroCrc, prev });
      else pages.set(first + i, { data: f.data!.slice(i * PAGE_BYTES, (i + 1) * PAGE_BYTES), crc: f.crcs[i]!, prev });
    }
    this.put(d, key, { version, pages });
  }

  private verified(e: PageEntry, page: number, bad: number[]): { data: Uint8Array; crc: number } {
    if (!e.data) return { data: new Uint8Array(PAGE_BYTES), crc: this.zeroCrc };
    const c = this.sum(e.data);
    if (c !== e.crc && c !== e.prev) bad.push(page);
    return { data: e.data, crc: c };
  }

  read(serial: string, r: ReadRequest): ReadResult {
    const d = this.disk(serial);
    const ext = d.cur.get(extentKey(r.vdisk, r.egroup, r.extent));
    const data = new Uint8Array(r.length);
    const crcs: number[] = [];
    const bad: number[] = [];
    const first = r.inner / PAGE_BYTES;
    for (let i = 0; i < r.length / PAGE_BYTES; i++) {
      const e = ext?.pages.get(first + i);
      if (!e) {
        crcs.push(this.zeroCrc);
        continue;
      }
      const v = this.verified(e, first + i, bad);
      data.set(v.data, i * PAGE_BYTES);
      crcs.push(v.crc);
    }
    if (bad.length) throw new CorruptPageError(serial, bad);
    return { data, crcs };
  }

  extentGens(serial: string, vdisk: string, egroup: number, epoch: number): Map<number, ExtentVersion> {
    const d = this.disk(serial);
    this.fence(d, vdisk, egroup, epoch);
    const prefix = `${egroupKey(vdisk, egroup)}/`;
    const out = new Map<number, ExtentVersion>();
    for (const [k, e] of d.cur) if (k.startsWith(prefix)) out.set(Number(k.slice(prefix.length)), e.version);
    return out;
  }

  readExtent(serial: string, vdisk: string, egroup: number, extent: number): ExtentImage | null {
    const d = this.disk(serial);
    const ext = d.cur.get(extentKey(vdisk, egroup, extent));
    if (!ext) return null;
    const bad: number[] = [];
    const pages = new Map<number, { data: Uint8Array; crc: number }>();
    for (const [p, e] of ext.pages) {
      const v = this.verified(e, p, bad);
      if (e.data) pages.set(p, v);
    }
    if (bad.length) throw new CorruptPageError(serial, bad);
    // a zero page is carried as absent data: the copy reads it as zeros
    return { version: ext.version, pages };
  }

  writeExtent(serial: string, vdisk: string, egroup: number, extent: number, epoch: number, image: ExtentImage | null): void {
    const d = this.disk(serial);
    this.fence(d, vdisk, egroup, epoch);
    const key = extentKey(vdisk, egroup, extent);
    if (!image) {
      this.put(d, key, null);
      return;
    }
    const pages = new Map<number, PageEntry>();
    for (const [p, v] of image.pages) pages.set(p, { data: v.data, crc: v.crc, prev: v.crc });
    this.put(d, key, { version: image.version, pages });
  }

  /** SYNC(vdisk): every dirty extent of the vdisk, on every healthy disk, becomes durable. */
  sync(vdisk: string): void {
    for (const d of this.disks.values()) {
      if (d.failed) continue;
      for (const key of [...d.dirty]) {
        if (vdiskOfKey(key) !== vdisk) continue;
        const e = d.cur.get(key);
        if (e) d.durable.set(key, e);
        else d.durable.delete(key);
        d.dirty.delete(key);
      }
    }
  }

  /** A restart after a crash of the CVM alone: the page cache survived; sync all before serving. */
  syncAll(): void {
    const vdisks = new Set<string>();
    for (const d of this.disks.values()) for (const k of d.dirty) vdisks.add(vdiskOfKey(k));
    for (const v of vdisks) this.sync(v);
  }

  /** Power loss: the cache is gone; a dirty extent survives only if `writtenBack(key)` (the cache had flushed it). */
  powerLoss(writtenBack: (key: string) => boolean): void {
    for (const d of this.disks.values()) {
      for (const key of d.dirty) {
        if (writtenBack(key)) {
          const e = d.cur.get(key);
          if (e) d.durable.set(key, e);
          else d.durable.delete(key);
        } else {
          const e = d.durable.get(key);
          if (e) d.cur.set(key, e);
          else d.cur.delete(key);
        }
      }
      d.dirty.clear();
    }
  }

  /** Bit rot: one byte of a stored page flips (its checksums stay). False when the page holds no data. */
  corrupt(serial: string, key: string, page: number, at: number): boolean {
    const d = this.disks.get(serial);
    const e = d?.cur.get(key);
    const p = e?.pages.get(page);
    if (!d || !e || !p?.data) return false;
    const data = p.data.slice();
    data[at % PAGE_BYTES] = data[at % PAGE_BYTES]! ^ 0x5a;
    const next = { version: e.version, pages: new Map(e.pages).set(page, { ...p, data }) };
    if (d.durable.get(key) === e) d.durable.set(key, next);
    d.cur.set(key, next);
    return true;
  }

  /** The disk fails: every access errors; its data is gone. */
  failDisk(serial: string): void {
    const d = this.disks.get(serial);
    if (!d) return;
    d.failed = true;
    d.cur.clear();
    d.durable.clear();
    d.dirty.clear();
  }

  /** Digest of an extent group on one disk (versions and actual page data), for "replicas identical". */
  digest(serial: string, vdisk: string, egroup: number): string | null {
    const d = this.disks.get(serial);
    if (!d || d.failed) return null;
    const prefix = `${egroupKey(vdisk, egroup)}/`;
    const parts: string[] = [];
    for (const [k, e] of [...d.cur].sort(([a], [b]) => a.localeCompare(b))) {
      if (!k.startsWith(prefix)) continue;
      const pages = [...e.pages].filter(([, p]) => p.data).sort(([a], [b]) => a - b).map(([p, x]) => `${p}:${this.sum(x.data!)}`);
      parts.push(`${k}@${e.version.epoch}.${e.version.gen}[${pages.join(',')}]`);
    }
    return parts.join(';');
  }
}
