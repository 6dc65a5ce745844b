import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskVolume, formatDisk } from '../shared/disk-volume.ts';
import { sha256Of, writeBundle } from '../shared/bundle/archive.ts';
import type { BundleManifest } from '../shared/bundle/manifest.ts';
import { ConflictError, InputError, NotFoundError } from '../shared/errors.ts';
import { stageBundle, stagedVersions, switchTo } from './slots.ts';
import { NODE_CONFIG_PATH, type NodeConfig } from './protocol/node-config.ts';

const files = new Map<string, Buffer>([
  ['hypervisor/hypervisor.mjs', Buffer.from('// hypervisor 1.1.0')],
  ['cvm/cvm.mjs', Buffer.from('// cvm 1.1.0')],
  ['cvm/console/index.html', Buffer.from('<!doctype html>')],
  ['installer/installer.mjs', Buffer.from('// installer')],
  ['proto/rpc.proto', Buffer.from('syntax = "proto3";')],
]);
const manifest = (version: string, f = files): BundleManifest => ({
  format: 1, name: 'converge', version, builtAt: '2026-12-05T00:00:00Z',
  components: { hypervisor: { name: 'h', version, entry: 'hypervisor/hypervisor.mjs' }, cvm: { name: 'c', version, entry: 'cvm/cvm.mjs' }, installer: { name: 'i', version, entry: 'installer/installer.mjs' } },
  files: Object.fromEntries([...f].map(([p, b]) => [p, sha256Of(b)])), minFirmware: {}, compatibility: { [version]: [version] },
});
const cfg = { hostname: 'n1', versions: { hypervisor: '1.0.0', nos: '1.0.0', bundle: '1.0.0' } } as NodeConfig;

async function setup(): Promise<{ dir: string; boot: DiskVolume; archive: (m: BundleManifest, f?: Map<string, Buffer>) => Promise<Buffer> }> {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-slots-'));
  formatDisk(join(dir, 'boot'), { serial: 'B1', model: 'boot', mediaType: 'SSD', capacityBytes: 64 << 20 });
  const boot = DiskVolume.open(join(dir, 'boot'));
  await boot.writeFile(NODE_CONFIG_PATH, JSON.stringify(cfg));
  let n = 0;
  return {
    dir, boot,
    archive: async (m, f = files) => {
      const out = join(dir, `b${n++}.tar.gz`);
      await writeBundle(out, m, f);
      return readFileSync(out);
    },
  };
}

test('a release staged in its slot beside the running one (its installer left out), READY last; the switch names it in boot.json and the node\'s versions', async () => {
  const { dir, boot, archive } = await setup();
  try {
    const s = await stageBundle(boot, await archive(manifest('1.1.0')), '1.0.0');
    assert.deepEqual([s.version, s.hypervisor, s.nos, s.files], ['1.1.0', '1.1.0', '1.1.0', 5], 'hypervisor, cvm, console, proto and the manifest');
    assert.equal(await boot.exists('slots/1.1.0/manifest.json'), true);
    assert.equal((await boot.readFile('slots/1.1.0/cvm/cvm.mjs')).toString(), '// cvm 1.1.0');
    assert.equal(await boot.exists('slots/1.1.0/installer/installer.mjs'), false);
    assert.deepEqual(await stagedVersions(boot), ['1.1.0']);
    const next = await switchTo(boot, '1.1.0', cfg);
    assert.deepEqual(next.versions, { hypervisor: '1.1.0', nos: '1.1.0', bundle: '1.1.0' });
    const bootJson = JSON.parse((await boot.readFile('boot.json')).toString()) as { entry: string; version: string };
    assert.deepEqual(bootJson, { name: 'converge-hypervisor', version: '1.1.0', entry: 'slots/1.1.0/hypervisor/hypervisor.mjs' });
    assert.ok(existsSync(join(boot.root, bootJson.entry)), 'the entry the rack boots exists');
    assert.equal((JSON.parse((await boot.readFile(NODE_CONFIG_PATH)).toString()) as NodeConfig).versions.bundle, '1.1.0');
  } finally {
    boot.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a corrupt bundle writes nothing; the running release is not staged; an unknown or torn slot is never switched to', async () => {
  const { dir, boot, archive } = await setup();
  try {
    const bad = new Map(files);
    bad.set('cvm/cvm.mjs', Buffer.from('// tampered'));
    const tampered = await archive(manifest('1.2.0'), bad); // the manifest's digests are of the good files
    await assert.rejects(stageBundle(boot, tampered, '1.0.0'), (e: unknown) => e instanceof InputError && /corrupt bundle: cvm\/cvm\.mjs: sha256/.test(e.message));
    assert.equal(await boot.exists('slots/1.2.0'), false, 'nothing written');
    await assert.rejects(stageBundle(boot, Buffer.from('not a bundle'), '1.0.0'), (e: unknown) => e instanceof InputError);
    await assert.rejects(stageBundle(boot, await archive(manifest('1.0.0')), '1.0.0'), (e: unknown) => e instanceof ConflictError);
    await assert.rejects(switchTo(boot, '9.9.9', cfg), (e: unknown) => e instanceof NotFoundError);
    await assert.rejects(switchTo(boot, '../../x', cfg), (e: unknown) => e instanceof InputError);
    // a stage that died before READY
    await boot.writeFile('slots/1.3.0/hypervisor/hypervisor.mjs', 'half');
    assert.deepEqual(await stagedVersions(boot), []);
    await assert.rejects(switchTo(boot, '1.3.0', cfg), (e: unknown) => e instanceof NotFoundError);
    assert.equal(await boot.exists('boot.json'), false, 'boot.json untouched by refused switches');
  } finally {
    boot.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
