/**
 * @module
 * Foundation's bundle repository: verified release bundles kept in the data dir. An upload is
 * checked (manifest, every file's sha256, its own compatibility) before it is kept; a corrupt or
 * incompatible bundle is refused with the reason and leaves nothing behind.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, NotFoundError } from '../../shared/errors.ts';
import { openBundle, type Bundle } from '../../shared/bundle/archive.ts';
import { selfCompatible, bundleFileName } from '../../shared/bundle/manifest.ts';

export interface StoredBundle {
  file: string;
  path: string;
  bundle: Bundle;
}

export class BundleRepo {
  private cache = new Map<string, StoredBundle>();

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  list(): string[] {
    return readdirSync(this.dir).filter((f) => f.endsWith('.tar.gz')).sort();
  }

  async get(file: string): Promise<StoredBundle> {
    const cached = this.cache.get(file);
    if (cached) return cached;
    if (!/^[\w.-]+\.tar\.gz$/.test(file) || !existsSync(join(this.dir, file))) throw new NotFoundError('bundle', file);
    const path = join(this.dir, file);
    const bundle = await openBundle(readFileSync(path), file);
    const s = { file, path, bundle };
    this.cache.set(file, s);
    return s;
  }

  /** Verifies and stores an uploaded bundle; returns its name and md5 (the upload reply's shape). */
  async add(filename: string, data: Buffer): Promise<{ name: string; md5sum: string; bundle: Bundle }> {
    if (!/^[\w.-]+$/.test(filename)) throw new InputError('filename', 'letters, digits, dot, dash and underscore only');
    const bundle = await openBundle(data, filename);
    if (!selfCompatible(bundle.manifest)) {
      const m = bundle.manifest;
      throw new InputError(filename, `incompatible bundle: storage OS ${m.components.cvm.version} does not support hypervisor ${m.components.hypervisor.version}`);
    }
    const name = filename.endsWith('.tar.gz') ? filename : bundleFileName(bundle.manifest.version);
    const tmp = join(this.dir, `.${name}.upload`);
    writeFileSync(tmp, data);
    renameSync(tmp, join(this.dir, name));
    this.cache.delete(name);
    return { name, md5sum: createHash('md5').update(data).digest('hex'), bundle };
  }
}
