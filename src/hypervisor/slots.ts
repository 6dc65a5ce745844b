/**
 * @module
 * A new release staged on the boot disk beside the running one, and the switch to it at the next
 * start (LCM's install step, ADR 018). The boot disk keeps what belongs to the node across
 * releases — config/ (its addresses and identity) and cvm-state/ (its CVM's etcd and data) — and
 * the software of each release in a slot of its own:
 * ```
 *   slots/<version>/hypervisor/hypervisor.mjs, cvm/…, proto/…, manifest.json
 *   slots/<version>/READY      written last: the slot is whole
 *   boot.json                  its entry names the slot the node boots (switched in one write)
 * ```
 * The installer's layout (the software at the disk's root) is the first release; a slot's software
 * finds its CVM beside itself. Staging verifies the bundle (every file's sha256) before a byte is
 * written; a slot without READY is never switched to; switching updates config/node.json's versions
 * and boot.json last, so a node that dies halfway boots the release it ran before.
 */
import { openBundle } from '../shared/bundle/archive.ts';
import { ConflictError, InputError, NotFoundError } from '../shared/errors.ts';
import type { DiskVolume } from '../shared/disk-volume.ts';
import { BOOT_MANIFEST, type BootManifest } from '../rack/protocol/hardware.ts';
import { HYPERVISOR_ENTRY, NODE_CONFIG_PATH, type NodeConfig } from './protocol/node-config.ts';

const SLOTS = 'slots';
const READY = 'READY';
const VERSION = /^\d+\.\d+\.\d+([-.][0-9A-Za-z.-]+)?$/;

const slot = (version: string): string => `${SLOTS}/${version}`;

/** What a stage wrote. */
export interface Staged {
  version: string;
  hypervisor: string;
  nos: string;
  files: number;
  bytes: number;
}

/**
 * Verifies a bundle archive and writes its software (not its installer) into its slot; READY last.
 * Staging the version already staged writes it again; staging the running version is refused.
 */
export async function stageBundle(boot: DiskVolume, archive: Buffer, running: string): Promise<Staged> {
  const b = await openBundle(archive, 'bundle');
  const m = b.manifest;
  if (!VERSION.test(m.version)) throw new InputError('bundle', `version ${JSON.stringify(m.version)} is not a version like 1.2.3`);
  if (m.version === running) throw new ConflictError(`bundle ${m.version} is the release this node runs`);
  const dir = slot(m.version);
  await boot.remove(`${dir}/${READY}`).catch(() => undefined);
  let bytes = 0;
  let files = 0;
  for (const [path, data] of b.files) {
    if (path.startsWith('installer/')) continue;
    await boot.writeFile(`${dir}/${path}`, data);
    bytes += data.length;
    files++;
  }
  await boot.writeFile(`${dir}/${READY}`, JSON.stringify({ version: m.version, sha256: b.sha256, hypervisor: m.components.hypervisor.version, nos: m.components.cvm.version }));
  return { version: m.version, hypervisor: m.components.hypervisor.version, nos: m.components.cvm.version, files, bytes };
}

/** The releases staged whole (READY), newest last. */
export async function stagedVersions(boot: DiskVolume): Promise<string[]> {
  if (!(await boot.exists(SLOTS))) return [];
  const out: string[] = [];
  for (const v of await boot.list(SLOTS)) if (VERSION.test(v) && (await boot.exists(`${slot(v)}/${READY}`))) out.push(v);
  return out.sort();
}

/**
 * Makes the node boot `version` at its next start: its versions in config/node.json, then
 * boot.json's entry (the one write that switches). Returns the new node configuration.
 */
export async function switchTo(boot: DiskVolume, version: string, cfg: NodeConfig): Promise<NodeConfig> {
  if (!VERSION.test(version)) throw new InputError('version', 'must be a version like 1.2.3');
  if (!(await boot.exists(`${slot(version)}/${READY}`))) throw new NotFoundError('staged release', version);
  const ready = JSON.parse((await boot.readFile(`${slot(version)}/${READY}`)).toString('utf8')) as { hypervisor: string; nos: string };
  const next: NodeConfig = { ...cfg, versions: { hypervisor: ready.hypervisor, nos: ready.nos, bundle: version } };
  await boot.writeFile(NODE_CONFIG_PATH, JSON.stringify(next, null, 2));
  const manifest: BootManifest = { name: 'converge-hypervisor', version: ready.hypervisor, entry: `${slot(version)}/${HYPERVISOR_ENTRY}` };
  await boot.writeFile(BOOT_MANIFEST, JSON.stringify(manifest));
  return next;
}
