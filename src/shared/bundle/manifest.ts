/**
 * @module
 * The release bundle's manifest: one versioned archive holds the hypervisor, the CVM software (the
 * storage OS) and the installer, with the sha256 of every file, the minimum firmware it needs and
 * which hypervisor versions each storage-OS version supports, which bundles it upgrades from and the
 * CVM protocol it speaks (mixed versions during an upgrade, ADR 018). Foundation, the installer and
 * LCM all read it through this module. Pure.
 *
 * Archive layout (`converge-<version>.tar.gz`):
 * ```
 *   manifest.json
 *   hypervisor/hypervisor.mjs     the host agent a node boots into
 *   cvm/cvm.mjs                   the Controller VM's software
 *   installer/installer.mjs       what a node boots from Foundation's virtual media
 *   firmware/bmc-<v>.json         BMC and BIOS firmware images LCM flashes through each BMC (optional)
 * ```
 */
import { z } from 'zod';
import { InputError } from '../errors.ts';

const version = z.string().regex(/^\d+\.\d+\.\d+([-.][0-9A-Za-z.-]+)?$/, 'a version like 1.2.3');
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 in hex');

export const manifestSchema = z.object({
  format: z.literal(1),
  name: z.literal('converge'),
  version,
  builtAt: z.string(),
  components: z.object({
    hypervisor: z.object({ name: z.string(), version, entry: z.string() }),
    cvm: z.object({ name: z.string(), version, entry: z.string() }),
    installer: z.object({ name: z.string(), version, entry: z.string() }),
  }),
  /** Relative path → sha256 of every file in the archive but the manifest. */
  files: z.record(z.string(), sha256),
  minFirmware: z.object({ bios: z.string().optional(), bmc: z.string().optional() }),
  /** Storage-OS version → hypervisor versions it supports. */
  compatibility: z.record(z.string(), z.array(z.string()).min(1)),
  /** Bundle versions a cluster may upgrade from to this one (LCM); absent: any older one. */
  upgradeFrom: z.array(version).min(1).optional(),
  /**
   * The CVM protocol this bundle's CVMs speak, and the oldest they work beside: during a rolling
   * upgrade a CVM of this bundle runs beside CVMs of the one before (LCM refuses a plan otherwise).
   * Absent: protocol 1, beside 1.
   */
  cvmProtocol: z.object({ version: z.number().int().min(1), compatibleFrom: z.number().int().min(1) })
    .refine((p) => p.compatibleFrom <= p.version, 'compatibleFrom must not be above version').optional(),
  /** Firmware images in the bundle (files listed in `files`): LCM updates a node below minFirmware to them, through its BMC. */
  firmwareImages: z.object({
    bmc: z.object({ version: z.string().min(1).max(64), file: z.string().regex(/^firmware\/[A-Za-z0-9._-]+$/) }).optional(),
    bios: z.object({ version: z.string().min(1).max(64), file: z.string().regex(/^firmware\/[A-Za-z0-9._-]+$/) }).optional(),
  }).optional(),
});

export type BundleManifest = z.infer<typeof manifestSchema>;

export const MANIFEST_FILE = 'manifest.json';

export function parseManifest(input: unknown): BundleManifest {
  const r = manifestSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new InputError(`manifest.${issue?.path.join('.') ?? ''}`, issue?.message ?? 'invalid');
  }
  return r.data;
}

/** The bundle's own pairing: its storage OS supports its hypervisor. */
export function selfCompatible(m: BundleManifest): boolean {
  return m.compatibility[m.components.cvm.version]?.includes(m.components.hypervisor.version) ?? false;
}

/**
 * Checks file digests against the manifest: every listed file present with its digest, no
 * unlisted file. Returns the problems (empty = good).
 */
export function verifyDigests(m: BundleManifest, actual: ReadonlyMap<string, string>): string[] {
  const problems: string[] = [];
  for (const [path, want] of Object.entries(m.files)) {
    const got = actual.get(path);
    if (got === undefined) problems.push(`${path}: missing`);
    else if (got !== want) problems.push(`${path}: sha256 ${got.slice(0, 12)}… does not match the manifest's ${want.slice(0, 12)}…`);
  }
  for (const path of actual.keys()) if (!(path in m.files) && path !== MANIFEST_FILE) problems.push(`${path}: not in the manifest`);
  for (const c of Object.values(m.components)) if (!(c.entry in m.files)) problems.push(`${c.entry}: component entry not in the manifest`);
  return problems;
}

export function bundleFileName(v: string): string {
  return `converge-${v}.tar.gz`;
}
