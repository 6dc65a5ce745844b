/**
 * The bundle repository against a real etcd on 127.142.0.1:23790: a bundle verified and indexed, the
 * same one again changing nothing, another bundle under a taken version refused, a broken one
 * refused naming the body; a CVM without a copy fetching one from a holder, checked against the
 * index's sha256 (a holder with a bad copy skipped).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdFixture } from '../../../test/drivers/etcd.ts';
import { writeBundle, sha256Of } from '../../shared/bundle/archive.ts';
import { parseManifest } from '../../shared/bundle/manifest.ts';
import { ConflictError, InputError, UnavailableError } from '../../shared/errors.ts';
import { BundleRepository } from './repository.ts';

const etcd = etcdFixture('127.142.0.1', 'lcm-repository');

async function bundle(dir: string, version: string, body = 'console.log(1)'): Promise<Buffer> {
  const file = Buffer.from(body);
  const manifest = parseManifest({
    format: 1, name: 'converge', version, builtAt: '2026-12-05T00:00:00Z',
    components: { hypervisor: { name: 'h', version, entry: 'hypervisor/hypervisor.mjs' }, cvm: { name: 'c', version, entry: 'cvm/cvm.mjs' }, installer: { name: 'i', version, entry: 'installer/installer.mjs' } },
    files: { 'hypervisor/hypervisor.mjs': sha256Of(file), 'cvm/cvm.mjs': sha256Of(file), 'installer/installer.mjs': sha256Of(file) },
    minFirmware: {}, compatibility: { [version]: [version] },
  });
  const out = join(dir, `converge-${version}-${sha256Of(Buffer.from(body)).slice(0, 6)}.tar.gz`);
  await writeBundle(out, manifest, new Map([['hypervisor/hypervisor.mjs', file], ['cvm/cvm.mjs', file], ['installer/installer.mjs', file]]));
  return readFileSync(out);
}

test('bundles kept, indexed and copied between CVMs, each checked', etcd.opts, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-repo-'));
  const c = etcd.client();
  const repos = new Map<string, BundleRepository>();
  const served = new Map<string, (v: string) => Buffer>();
  const make = (self: string): BundleRepository => {
    const r: BundleRepository = new BundleRepository({
      etcd: c, dir: join(dir, self), self, log: () => undefined,
      fetch: async (holder, version): Promise<Buffer> => {
        const serve = served.get(holder);
        if (serve) return serve(version);
        const buf: Buffer | null | undefined = repos.get(holder)?.local(await r.get(version));
        if (!buf) throw new UnavailableError(`${holder} has no copy`);
        return buf;
      },
    });
    repos.set(self, r);
    return r;
  };
  const a = make('10.0.1.1');
  const b = make('10.0.1.2');
  const v1 = await bundle(dir, '1.1.0');
  const added = await a.add(v1);
  assert.deepEqual([added.offer.version, added.size, added.holders, added.file], ['1.1.0', v1.length, ['10.0.1.1'], 'converge-1.1.0.tar.gz']);
  assert.equal(added.offer.sha256, sha256Of(v1));
  const again = await a.add(v1);
  assert.equal(again.uploadedAt, added.uploadedAt, 'the same bundle again changes nothing');

  await assert.rejects(a.add(await bundle(dir, '1.1.0', 'other code')), (e: unknown) => e instanceof ConflictError && /another bundle 1\.1\.0/.test(e.message));
  await assert.rejects(a.add(Buffer.from('not a bundle')), (e: unknown) => e instanceof InputError && e.field === 'body');
  const broken = Buffer.from(v1);
  broken[broken.length - 10] = (broken[broken.length - 10] ?? 0) ^ 0xff;
  await assert.rejects(a.add(broken), (e: unknown) => e instanceof InputError && e.field === 'body');
  await a.add(await bundle(dir, '1.0.2'));
  assert.deepEqual((await b.list()).map((x) => x.offer.version), ['1.1.0', '1.0.2'], 'newest first, seen from any CVM');

  // B has no copy: a holder with a bad copy is skipped; the good one kept and B indexed as a holder
  const c3 = make('10.0.1.3');
  await c.put('/converge/lcm/bundles/1.1.0').value(JSON.stringify({ ...added, holders: ['10.0.1.3', '10.0.1.1'] }));
  served.set('10.0.1.3', () => Buffer.from('tampered'));
  void c3;
  const got = await b.bytes('1.1.0');
  assert.equal(sha256Of(got), added.offer.sha256);
  assert.deepEqual((await b.get('1.1.0')).holders, ['10.0.1.3', '10.0.1.1', '10.0.1.2']);
  assert.ok(b.local(await b.get('1.1.0')), 'kept on B');
  // no good copy anywhere: said, with each holder's reason
  writeFileSync(join(dir, '10.0.1.1', 'converge-1.0.2.tar.gz'), 'gone bad');
  await assert.rejects(b.bytes('1.0.2'), (e: unknown) => e instanceof UnavailableError && /no CVM holding bundle 1\.0\.2 gave a good copy \(10\.0\.1\.1: .*no copy/.test(e.message));
  await assert.rejects(b.bytes('9.9.9'), /bundle not found: 9\.9\.9/);
});
