/**
 * @module
 * LCM in Nutanix's v4 lifecycle shapes (pure; ADR 018), as the v4 SDKs (lifecycle-go-client, the
 * Ansible `ntnx_lcm_*_v2` modules, Terraform's `nutanix_lcm_*_v2`) parse them: one entity per node
 * and component (the hypervisor and the storage OS as SOFTWARE, the BMC and the BIOS as FIRMWARE)
 * with the versions the cluster's bundle repository offers; the upgrade's record as a v4 task; the
 * framework's status; and the update specs of prechecks and upgrade mapped to the one bundle that
 * carries them (a bundle upgrades hypervisor and storage OS together).
 */
import { InputError } from '../../shared/errors.ts';
import { compareVersions } from '../../shared/versions.ts';
import type { NodeInventory, StoredBundle, UpgradeRecord } from '../../lcm/protocol/lcm.ts';

type Obj = Record<string, unknown>;
const RESERVED = { $fv: 'v4.r0' };
const obj = (objectType: string, fields: Obj): Obj => ({ $objectType: objectType, $reserved: { ...RESERVED }, ...fields });

/** The components LCM reports per node, and how v4 names them. */
export const LCM_COMPONENTS = {
  hypervisor: { entityClass: 'Hypervisor', entityModel: 'Converge AHV', entityType: 'SOFTWARE' },
  nos: { entityClass: 'Core Cluster', entityModel: 'Converge AOS', entityType: 'SOFTWARE' },
  bmc: { entityClass: 'BMC', entityModel: 'Converge BMC', entityType: 'FIRMWARE' },
  bios: { entityClass: 'BIOS', entityModel: 'Converge BIOS', entityType: 'FIRMWARE' },
} as const;
export type LcmComponent = keyof typeof LCM_COMPONENTS;

export interface LcmEntityContext {
  clusterUuid: string;
  /** A node's host extId (clustermgmt's), by serial. */
  hostUuid: (serial: string) => string;
  /** A stable extId for a node's component (or `disk/<id>`: a drive's firmware). */
  entityUuid: (serial: string, component: LcmComponent | `disk/${string}`) => string;
}

/** What a node's component runs now. */
function versionOf(n: NodeInventory, c: LcmComponent): string | null {
  return c === 'hypervisor' ? n.hypervisor : c === 'nos' ? n.nos : n.firmware[c];
}

/** The version of a component a bundle brings (firmware: its minimum, when it has one). */
function offered(b: StoredBundle, c: LcmComponent): string | undefined {
  return c === 'hypervisor' ? b.offer.hypervisor : c === 'nos' ? b.offer.nos : b.offer.minFirmware[c];
}

/** Every node's components as v4 LCM entities, with the newer versions the repository's bundles offer. */
export function v4LcmEntities(inv: readonly NodeInventory[], bundles: readonly StoredBundle[], record: UpgradeRecord | null, ctx: LcmEntityContext): Obj[] {
  const running = record && (record.state === 'running' || record.state === 'paused' || record.state === 'failed') ? record : null;
  const targetBundle = running ? bundles.find((b) => b.offer.version === running.to) : undefined;
  const out: Obj[] = [];
  for (const n of inv) {
    for (const c of Object.keys(LCM_COMPONENTS) as LcmComponent[]) {
      const have = versionOf(n, c);
      const newer = bundles
        .filter((b) => {
          const v = offered(b, c);
          return v !== undefined && (have === null || compareVersions(v, have) > 0);
        })
        .sort((a, b) => compareVersions(b.offer.version, a.offer.version));
      const target = targetBundle && running?.nodes.some((x) => x.serial === n.serial && x.state !== 'done') ? offered(targetBundle, c) : undefined;
      out.push(obj('lifecycle.v4.resources.Entity', {
        extId: ctx.entityUuid(n.serial, c), ...LCM_COMPONENTS[c], entityVersion: have ?? '', hardwareVendor: 'Converge', hardwareFamily: 'converge-lab',
        entityDescription: `${LCM_COMPONENTS[c].entityModel} on ${n.hostname}`, deviceId: n.serial, clusterExtId: ctx.clusterUuid,
        locationInfo: { $objectType: 'lifecycle.v4.common.LocationInfo', uuid: ctx.hostUuid(n.serial), locationType: 'NODE' },
        hasPreviousInventoryFailed: have === null,
        ...(target ? { targetVersion: target } : {}),
        availableVersions: newer.map((b, i) => {
          const from = b.offer.upgradeFrom;
          const enabled = c === 'bmc' || c === 'bios' ? false : from === undefined || (n.bundle !== null && from.includes(n.bundle));
          return {
            $objectType: 'lifecycle.v4.resources.AvailableVersion', version: offered(b, c), status: i === 0 ? 'LATEST' : 'AVAILABLE', isEnabled: enabled, order: i + 1,
            releaseNotes: `release bundle ${b.offer.version}`, availableVersionUuid: `${ctx.entityUuid(n.serial, c)}:${b.offer.version}`,
            ...(enabled ? {} : { disablementReason: c === 'bmc' || c === 'bios' ? `the minimum ${LCM_COMPONENTS[c].entityClass} firmware of bundle ${b.offer.version}; no firmware image is in the repository` : `bundle ${b.offer.version} upgrades from ${from?.join(', ') ?? ''}, not from ${n.bundle ?? 'an unknown version'}` }),
            dependencies: c === 'hypervisor' || c === 'nos' ? [{ $objectType: 'lifecycle.v4.resources.DependentEntity', ...LCM_COMPONENTS[c === 'hypervisor' ? 'nos' : 'hypervisor'], dependentVersions: [{ name: 'version', value: c === 'hypervisor' ? b.offer.nos : b.offer.hypervisor }] }] : [],
          };
        }),
      }));
    }
    // each drive's firmware, as the BMC reports it: inventoried, not upgraded (no bundle carries drive firmware)
    for (const d of n.firmware.disks ?? []) {
      out.push(obj('lifecycle.v4.resources.Entity', {
        extId: ctx.entityUuid(n.serial, `disk/${d.id}`), entityClass: 'Disk', entityModel: d.model, entityType: 'FIRMWARE', entityVersion: d.version,
        hardwareVendor: d.model.split(' ')[0] ?? '', hardwareFamily: 'converge-lab', entityDescription: `${d.model} firmware (${d.id}) on ${n.hostname}`,
        deviceId: `${n.serial}/${d.id}`, clusterExtId: ctx.clusterUuid,
        locationInfo: { $objectType: 'lifecycle.v4.common.LocationInfo', uuid: ctx.hostUuid(n.serial), locationType: 'NODE' },
        hasPreviousInventoryFailed: false, availableVersions: [],
      }));
    }
  }
  return out;
}

/**
 * The bundle version that prechecks or upgrade `entityUpdateSpecs` ask for: every spec names an
 * entity and a version some bundle brings for it, and all name the same bundle. InputError naming
 * the spec otherwise.
 */
export function bundleOfSpecs(body: unknown, entities: readonly Obj[], bundles: readonly StoredBundle[]): string {
  const specs = (body as { entityUpdateSpecs?: unknown } | null)?.entityUpdateSpecs;
  if (!Array.isArray(specs) || specs.length === 0) throw new InputError('entityUpdateSpecs', 'must list the entities to update: [{ entityUuid, toVersion }]');
  if (specs.length > 256) throw new InputError('entityUpdateSpecs', 'lists more than 256 entities');
  const versions = new Set<string>();
  for (const [i, s] of specs.entries()) {
    const spec = s as { entityUuid?: unknown; toVersion?: unknown } | null;
    const e = entities.find((x) => x['extId'] === spec?.entityUuid);
    if (!e) throw new InputError(`entityUpdateSpecs[${i}].entityUuid`, 'is not an LCM entity of this cluster (GET /api/lifecycle/v4.0/resources/entities)');
    if (typeof spec?.toVersion !== 'string') throw new InputError(`entityUpdateSpecs[${i}].toVersion`, 'must be a version the entity lists in availableVersions');
    const c = (Object.keys(LCM_COMPONENTS) as LcmComponent[]).find((k) => LCM_COMPONENTS[k].entityClass === e['entityClass']);
    if (c === 'bmc' || c === 'bios') throw new InputError(`entityUpdateSpecs[${i}].entityUuid`, 'firmware is updated as part of a release bundle\'s upgrade (its minimum firmware), not on its own');
    const b = bundles.filter((x) => c !== undefined && offered(x, c) === spec.toVersion).sort((x, y) => compareVersions(y.offer.version, x.offer.version))[0];
    if (!b) throw new InputError(`entityUpdateSpecs[${i}].toVersion`, `no bundle in the repository brings ${String(e['entityModel'])} ${spec.toVersion}`);
    versions.add(b.offer.version);
  }
  if (versions.size > 1) throw new InputError('entityUpdateSpecs', `name versions of different bundles (${[...versions].join(', ')}): one bundle upgrades the hypervisor and the storage OS together`);
  return [...versions][0] ?? '';
}

/** GET /api/lifecycle/v4.0/resources/status: the operation under way, if any. */
export function v4LcmStatus(r: UpgradeRecord | null, frameworkVersion: string): Obj {
  const live = r && (r.state === 'running' || r.state === 'paused') ? r : null;
  return obj('lifecycle.v4.resources.StatusInfo', {
    frameworkVersion: { $objectType: 'lifecycle.v4.resources.FrameworkVersionInfo', currentVersion: frameworkVersion, availableVersion: frameworkVersion, isUpdateNeeded: false },
    inProgressOperation: live ? { $objectType: 'lifecycle.v4.resources.InProgressOpInfo', operationType: 'UPGRADE', operationId: `ZXJnb24=:${live.id}` } : { $objectType: 'lifecycle.v4.resources.InProgressOpInfo' },
    isCancelIntentSet: false,
  });
}
