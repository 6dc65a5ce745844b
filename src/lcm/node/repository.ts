/**
 * @module
 * The cluster's bundle repository (ADR 018): release bundles uploaded to any CVM, verified (every
 * file's checksum against the manifest), kept as files in the CVMs' state and indexed in etcd
 * (`/converge/lcm/bundles/<version>`: the offer LCM weighs, the size, which CVMs hold a copy). A CVM
 * that needs a bundle it does not hold fetches it from a holder and checks the archive's sha256
 * against the index before it keeps it.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { openBundle, sha256Of } from '../../shared/bundle/archive.ts';
import { bundleFileName } from '../../shared/bundle/manifest.ts';
import { ConflictError, InputError, NotFoundError, UnavailableError, errorMessage } from '../../shared/errors.ts';
import { compareVersions } from '../../shared/versions.ts';
import { offerOf } from '../core/inventory.ts';
import { LCM_BUNDLES_PREFIX, type StoredBundle } from '../protocol/lcm.ts';

/** The largest bundle the repository takes (a bundle is ~10 MB; it is held in memory while verified). */
export const BUNDLE_LIMIT = 256 << 20;

export interface RepositoryDeps {
  etcd: Etcd3;
  /** Where this CVM keeps its copies. */
  dir: string;
  /** This CVM's address (a holder's name). */
  self: string;
  /** A bundle's bytes from another CVM that holds it. */
  fetch: (holder: string, version: string) => Promise<Buffer>;
  log: (m: string) => void;
}

export class BundleRepository {
  constructor(private readonly d: RepositoryDeps) {
    mkdirSync(d.dir, { recursive: true });
  }

  private path(version: string): string {
    return join(this.d.dir, bundleFileName(version));
  }

  /** Verifies a bundle and keeps it (the same bundle again: nothing changes). */
  async add(archive: Buffer): Promise<StoredBundle> {
    let b;
    try {
      b = await openBundle(archive, 'the uploaded bundle');
    } catch (e) {
      throw new InputError('body', errorMessage(e));
    }
    const version = b.manifest.version;
    const known = await this.find(version);
    if (known && known.offer.sha256 !== b.sha256) {
      throw new ConflictError(`the repository holds another bundle ${version} (sha256 ${known.offer.sha256.slice(0, 12)}…, this one ${b.sha256.slice(0, 12)}…); a version names one bundle`);
    }
    this.keep(version, archive);
    const entry: StoredBundle = {
      offer: offerOf(b.manifest, b.sha256), size: archive.length, file: bundleFileName(version),
      uploadedAt: known?.uploadedAt ?? new Date().toISOString(), holders: [...new Set([...(known?.holders ?? []), this.d.self])],
    };
    await this.d.etcd.put(LCM_BUNDLES_PREFIX + version).value(JSON.stringify(entry));
    if (!known) this.d.log(`bundle ${version} added to the repository (${archive.length} bytes, sha256 ${b.sha256.slice(0, 12)}…)`);
    return entry;
  }

  private keep(version: string, archive: Buffer): void {
    const tmp = `${this.path(version)}.part`;
    writeFileSync(tmp, archive);
    renameSync(tmp, this.path(version));
  }

  /** Every bundle in the repository, newest first. */
  async list(): Promise<StoredBundle[]> {
    const all = await this.d.etcd.getAll().prefix(LCM_BUNDLES_PREFIX).strings();
    return Object.values(all).map((v) => JSON.parse(v) as StoredBundle).sort((a, b) => compareVersions(b.offer.version, a.offer.version));
  }

  async find(version: string): Promise<StoredBundle | null> {
    const raw = await this.d.etcd.get(LCM_BUNDLES_PREFIX + version).string();
    return raw ? (JSON.parse(raw) as StoredBundle) : null;
  }

  async get(version: string): Promise<StoredBundle> {
    const b = await this.find(version);
    if (!b) throw new NotFoundError('bundle', `${version} (upload it: converge lcm bundle upload FILE)`);
    return b;
  }

  /** This CVM's copy, if it holds a good one. */
  local(entry: StoredBundle): Buffer | null {
    const p = this.path(entry.offer.version);
    if (!existsSync(p)) return null;
    const buf = readFileSync(p);
    return sha256Of(buf) === entry.offer.sha256 ? buf : null;
  }

  /** A bundle's bytes: this CVM's copy, or one fetched from a holder (then kept here too). */
  async bytes(version: string): Promise<Buffer> {
    const entry = await this.get(version);
    const mine = this.local(entry);
    if (mine) return mine;
    const problems: string[] = [];
    for (const holder of entry.holders.filter((h) => h !== this.d.self)) {
      try {
        const buf = await this.d.fetch(holder, version);
        if (sha256Of(buf) !== entry.offer.sha256) throw new Error('its copy does not match the repository\'s sha256');
        this.keep(version, buf);
        const now = await this.get(version);
        await this.d.etcd.put(LCM_BUNDLES_PREFIX + version).value(JSON.stringify({ ...now, holders: [...new Set([...now.holders, this.d.self])] }));
        this.d.log(`bundle ${version} copied from ${holder}`);
        return buf;
      } catch (e) {
        problems.push(`${holder}: ${errorMessage(e)}`);
      }
    }
    throw new UnavailableError(`no CVM holding bundle ${version} gave a good copy${problems.length ? ` (${problems.join('; ')})` : ''}; upload it again`);
  }
}
