/**
 * @module
 * What a host accepts as a VM spec (protocol/vms.ts HostVmSpec), checked once at the edge: every
 * string that reaches QEMU's command line or a file path is held to a narrow alphabet here, so a
 * bad spec is an InputError naming its field and never a strange QEMU option.
 */
import { z } from 'zod';
import { parseWith } from '../../shared/schema.ts';
import type { HostVmSpec, PowerAction } from '../protocol/vms.ts';

export const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** A vdisk's name as it reaches QEMU (an NBD export): no commas, slashes, spaces or control characters. */
export const VDISK_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:@+-]{0,254}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/** A unicast MAC (the group bit of the first octet clear), colon-separated. */
const MAC_RE = /^[0-9a-fA-F][02468aceACE](:[0-9a-fA-F]{2}){5}$/;

/** Most vCPUs and memory a VM may ask for (QEMU's q35 limits are higher; these catch mistakes). */
export const MAX_VCPUS = 64;
export const MAX_MEMORY_MIB = 1 << 20;
export const MAX_DISKS = 16;
export const MAX_NICS = 8;
export const MAX_CDROMS = 4;

export const hostVmDiskSchema = z.object({
  vdisk: z.string().regex(VDISK_RE, 'a vdisk name: letters, digits and _ . : @ + - (no commas, slashes or spaces), at most 255'),
  bus: z.enum(['virtio-blk', 'virtio-scsi', 'cdrom']),
  bootIndex: z.number().int().min(1).max(99).optional(),
}).strict();

export const hostVmNicSchema = z.object({
  mac: z.string().regex(MAC_RE, 'a unicast MAC address like 52:54:00:12:34:56'),
  subnetUuid: z.string().regex(UUID_RE, 'a UUID'),
  ip: z.string().regex(IPV4, 'a dotted IPv4 address').nullable(),
}).strict();

export const hostVmSpecSchema = z.object({
  uuid: z.string().regex(UUID_RE, 'a UUID'),
  // eslint-disable-next-line no-control-regex
  name: z.string().min(1).max(255).regex(/^[^\x00-\x1f\x7f]*$/, 'no control characters'),
  vcpus: z.number().int().min(1).max(MAX_VCPUS),
  memoryMiB: z.number().int().min(16, 'at least 16').max(MAX_MEMORY_MIB),
  disks: z.array(hostVmDiskSchema).max(MAX_DISKS),
  nics: z.array(hostVmNicSchema).max(MAX_NICS),
  epoch: z.number().int().min(0),
}).strict().superRefine((s, ctx) => {
  const boots = new Map<number, number>();
  s.disks.forEach((d, i) => {
    if (d.bootIndex === undefined) return;
    if (boots.has(d.bootIndex)) ctx.addIssue({ code: 'custom', path: ['disks', i, 'bootIndex'], message: `boot index ${d.bootIndex} is also disk ${boots.get(d.bootIndex)}'s` });
    boots.set(d.bootIndex, i);
  });
  const cdroms = s.disks.filter((d) => d.bus === 'cdrom').length;
  if (cdroms > MAX_CDROMS) ctx.addIssue({ code: 'custom', path: ['disks'], message: `at most ${MAX_CDROMS} CD-ROMs (IDE)` });
  const macs = new Set<string>();
  s.nics.forEach((n, i) => {
    const mac = n.mac.toLowerCase();
    if (macs.has(mac)) ctx.addIssue({ code: 'custom', path: ['nics', i, 'mac'], message: 'another NIC of this VM has this MAC' });
    macs.add(mac);
  });
});

/** A HostVmSpec, checked (InputError naming the field, prefixed `spec.` unless told otherwise). */
export function checkSpec(input: unknown, prefix = ''): HostVmSpec {
  // zod types an absent bootIndex as `?: number | undefined`; it leaves the key out
  return parseWith(hostVmSpecSchema, input, prefix) as HostVmSpec;
}

export const POWER_ACTIONS: readonly PowerAction[] = ['shutdown', 'off', 'reset', 'pause', 'resume'];
export const powerSchema = z.object({ action: z.enum(['shutdown', 'off', 'reset', 'pause', 'resume']) }).strict();
export const consoleInputSchema = z.object({ data: z.string().min(1).max(4096) }).strict();
export const migrateSchema = z.object({ targetHostIp: z.string().regex(IPV4, 'a dotted IPv4 address'), port: z.number().int().min(1024).max(65535) }).strict();
export const uuidParams = z.object({ uuid: z.string().regex(UUID_RE, 'a UUID') });
export const offsetQuery = z.object({ offset: z.coerce.number().int().min(0).optional() });
export { IPV4 };
