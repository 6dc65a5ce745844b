/**
 * @module
 * Foundation's bundle repository: verified release bundles kept in the data dir. An upload is
 * streamed to a temporary file beside the repository (never held whole in a request buffer),
 * then checked (manifest, every file's sha256, its own compatibility) before it is kept; a
 * corrupt, incompatible or too large bundle is refused with the reason and leaves nothing behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { InputError, NotFoundError } from '../../shared/errors.ts';
import { openBundle, type Bundle } from '../../shared/bundle/archive.ts';
import { selfCompatible, bundleFileName } from '../../shared/bundle/manifest.ts';
import { compareVersions } from '../../shared/versions.ts';
import { PayloadTooLargeError } from './errors.ts';

/** The largest bundle Foundation takes by default (it verifies a bundle in memory). */
export const MAX_BUNDLE_BYTES = 1024 ** 3;

export interface StoredBundle {
  file: string;
  path: string;
  bundle: Bundle;
}

const FILE_NAME = /^[\w.-]{1,128}$/;

export class BundleRepo {
  private cache = new Map<string, StoredBundle>();

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    // uploads a stopped Foundation left half-written
    for (const f of readdirSync(dir)) if (f.startsWith('.') && f.endsWith('.upload')) rmSync(join(dir, f), { force: true });
  }

  list(): string[] {
    return readdirSync(this.dir).filter((f) => f.endsWith('.tar.gz') && !f.startsWith('.')).sort();
  }

  async get(file: string): Promise<StoredBundle> {
    const cached = this.cache.get(file);
    if (cached) return cached;
    if (!FILE_NAME.test(file) || !file.endsWith('.tar.gz') || !existsSync(join(this.dir, file))) throw new NotFoundError('bundle', file);
    const path = join(this.dir, file);
    const bundle = await openBundle(readFileSync(path), file);
    const s = { file, path, bundle };
    this.cache.set(file, s);
    return s;
  }

  /** The bundle with the highest version (manifest.version), or undefined when there is none. */
  async newest(): Promise<StoredBundle | undefined> {
    let best: StoredBundle | undefined;
    for (const f of this.list()) {
      const b = await this.get(f).catch(() => undefined);
      if (b && (!best || compareVersions(b.bundle.manifest.version, best.bundle.manifest.version) > 0)) best = b;
    }
    return best;
  }

  /** A stored bundle's bytes, streamed. */
  stream(file: string): Readable {
    if (!this.list().includes(file)) throw new NotFoundError('bundle', file);
    return createReadStream(join(this.dir, file));
  }

  /**
   * Verifies and stores a bundle, from memory or streamed (an upload): the bytes go to a temporary
   * file first, at most `maxBytes` of them (PayloadTooLargeError past that); returns its name and
   * md5 (the upload reply's shape).
   */
  async add(filename: string, data: Buffer | Readable, maxBytes = MAX_BUNDLE_BYTES): Promise<{ name: string; md5sum: string; bundle: Bundle }> {
    if (!FILE_NAME.test(filename)) throw new InputError('filename', 'letters, digits, dot, dash and underscore only (at most 128)');
    const tmp = join(this.dir, `.${randomBytes(6).toString('hex')}.upload`);
    try {
      const md5 = createHash('md5');
      await receive(Buffer.isBuffer(data) ? Readable.from([data]) : data, tmp, maxBytes, (c) => md5.update(c));
      const bundle = await openBundle(readFileSync(tmp), filename);
      if (!selfCompatible(bundle.manifest)) {
        const m = bundle.manifest;
        throw new InputError(filename, `incompatible bundle: storage OS ${m.components.cvm.version} does not support hypervisor ${m.components.hypervisor.version}`);
      }
      const name = filename.endsWith('.tar.gz') ? filename : bundleFileName(bundle.manifest.version);
      renameSync(tmp, join(this.dir, name));
      this.cache.delete(name);
      return { name, md5sum: md5.digest('hex'), bundle };
    } finally {
      rmSync(tmp, { force: true });
    }
  }
}

/**
 * Copies a stream into a new file (0600), at most `maxBytes`: past that it stops reading (the
 * rest of an HTTP request is left to the server to discard) and rejects with PayloadTooLargeError.
 */
function receive(source: Readable, file: string, maxBytes: number, seen: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(file, { mode: 0o600 });
    let size = 0;
    let failed = false;
    const fail = (e: unknown): void => {
      if (failed) return;
      failed = true;
      source.off('data', onData);
      source.pause();
      // settled once the file is closed (an open still pending would create it after its removal)
      out.once('close', () => reject(e instanceof Error ? e : new Error(String(e))));
      out.destroy();
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        fail(new PayloadTooLargeError('body', maxBytes));
        return;
      }
      seen(chunk);
      if (!out.write(chunk)) {
        source.pause();
        out.once('drain', () => source.resume());
      }
    };
    source.on('data', onData);
    let ended = false;
    source.once('end', () => {
      ended = true;
      out.end();
    });
    source.once('error', fail);
    source.once('close', () => {
      if (!ended) fail(new InputError('body', 'the upload was cut off before its end'));
    });
    out.once('error', fail);
    out.once('finish', () => {
      if (!failed) resolve();
    });
  });
}
