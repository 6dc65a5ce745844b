/**
 * @module
 * Reading and writing release bundles (tar.gz): a bundle is read whole into memory (a few hundred
 * KiB), its manifest parsed and every file's sha256 checked. A corrupt or tampered bundle is an
 * InputError that says which file is wrong.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Parser, create, type ReadEntry } from 'tar';
import { InputError, errorMessage } from '../errors.ts';
import { MANIFEST_FILE, parseManifest, verifyDigests, type BundleManifest } from './manifest.ts';

export interface Bundle {
  manifest: BundleManifest;
  files: Map<string, Buffer>;
  /** sha256 of the archive itself. */
  sha256: string;
}

export function sha256Of(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Lists the entries of a tar(.gz) held in memory. */
export function untar(archive: Buffer): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    const files = new Map<string, Buffer>();
    const p = new Parser({ strict: true });
    p.on('entry', (e: ReadEntry) => {
      const chunks: Buffer[] = [];
      e.on('data', (c: Buffer) => chunks.push(c));
      e.on('end', () => {
        if (e.type === 'File') files.set(e.path.replace(/^\.\//, ''), Buffer.concat(chunks));
      });
    });
    p.on('error', reject);
    p.on('end', () => resolve(files));
    p.end(archive);
  });
}

/** Parses and verifies a bundle archive. */
export async function openBundle(archive: Buffer, name = 'bundle'): Promise<Bundle> {
  let files: Map<string, Buffer>;
  try {
    files = await untar(archive);
  } catch (e) {
    throw new InputError(name, `not a readable tar.gz archive (${errorMessage(e)})`);
  }
  const raw = files.get(MANIFEST_FILE);
  if (!raw) throw new InputError(name, `no ${MANIFEST_FILE} in the archive: not a Converge release bundle`);
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new InputError(`${name}: ${MANIFEST_FILE}`, 'is not valid JSON');
  }
  const manifest = parseManifest(json);
  const digests = new Map([...files].filter(([p]) => p !== MANIFEST_FILE).map(([p, b]) => [p, sha256Of(b)]));
  const problems = verifyDigests(manifest, digests);
  if (problems.length > 0) throw new InputError(name, `corrupt bundle: ${problems.join('; ')}`);
  return { manifest, files, sha256: sha256Of(archive) };
}

/** Writes a bundle archive from its manifest and files (paths relative to the archive root). */
export async function writeBundle(out: string, manifest: BundleManifest, files: ReadonlyMap<string, Buffer>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-bundle-'));
  try {
    for (const [p, b] of files) {
      mkdirSync(dirname(join(dir, p)), { recursive: true });
      writeFileSync(join(dir, p), b);
    }
    writeFileSync(join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
    mkdirSync(dirname(out), { recursive: true });
    await create({ gzip: true, file: out, cwd: dir, portable: true, noMtime: true }, [MANIFEST_FILE, ...[...files.keys()].sort()]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
