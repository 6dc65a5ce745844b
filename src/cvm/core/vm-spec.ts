/**
 * @module
 * The VM service's requests checked at the edge (protocol/vms.ts): zod schemas whose errors name
 * the field (`memoryMiB`, `disks[1].image`, `nics[0].subnet`), and the rule of which changes need
 * the VM off. Pure: no I/O.
 */
import { z } from 'zod';
import { ConflictError, InputError } from '../../shared/errors.ts';
import { parseWith } from '../../shared/schema.ts';
import type { ImageCreateRequest, SubnetCreateRequest, VmCreateRequest, VmDiskRequest, VmNicRequest, VmPowerAction, VmPowerState, VmUpdateRequest } from '../protocol/vms.ts';

const MiB = 1 << 20;
/** The largest VM the service takes (a sanity bound; placement decides what fits). */
export const MAX_VCPUS = 256;
export const MAX_MEMORY_MIB = 4 * 1024 * 1024;
export const MAX_DISKS = 16;
export const MAX_NICS = 8;

const name = z.string().trim().min(1, 'must not be empty').max(80, 'at most 80 characters').regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, 'letters, digits, space, . _ -, starting with a letter or digit');
const ref = z.string().min(1, 'must not be empty').max(80, 'at most 80 characters');
const bus = z.enum(['virtio-blk', 'virtio-scsi']);
const sizeBytes = z.number().int('must be a whole number of bytes').positive('must be positive').max(64 * 1024 ** 4, 'at most 64 TiB').refine((n) => n % MiB === 0, 'must be a whole number of MiB (vdisks are cut into 1 MiB blocks)');
const container = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/, 'a container name');
const mac = z.string().regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i, 'a MAC address like 52:54:00:12:34:56').refine((m) => (parseInt(m.slice(0, 2), 16) & 1) === 0, 'must be a unicast address (the first octet even)');
const ipv4 = z.string().regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/, 'an IPv4 address').refine((s) => s.split('.').every((o) => Number(o) <= 255), 'an IPv4 address (each part 0..255)');

/** One of four disk shapes; the keys it carries say which (checked in that order). */
const diskSchema = z.union([
  z.object({ image: ref, bus: bus.optional(), sizeBytes: sizeBytes.optional(), container: container.optional() }).strict(),
  z.object({ cdromImage: ref }).strict(),
  z.object({ vdisk: container, bus: bus.optional() }).strict(),
  z.object({ sizeBytes, bus: bus.optional(), container: container.optional() }).strict(),
]);

/** zod's union error names the union, not the member's field: pick the member by its key and parse with it. */
function diskOf(raw: unknown, field: string): VmDiskRequest {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new InputError(field, 'must be an object: { image } | { sizeBytes } | { cdromImage } | { vdisk }');
  const o = raw as Record<string, unknown>;
  const options = diskSchema.options;
  const member = 'image' in o ? options[0] : 'cdromImage' in o ? options[1] : 'vdisk' in o ? options[2] : 'sizeBytes' in o ? options[3] : undefined;
  if (!member) throw new InputError(field, 'needs one of image, sizeBytes, cdromImage or vdisk');
  return parseWith(member, raw, field) as VmDiskRequest;
}

const nicSchema = z.object({ subnet: ref, ip: ipv4.optional(), mac: mac.optional() }).strict();

const createSchema = z.object({
  name,
  vcpus: z.number().int('must be a whole number').min(1, 'at least 1').max(MAX_VCPUS, `at most ${MAX_VCPUS}`),
  memoryMiB: z.number().int('must be a whole number of MiB').min(16, 'at least 16').max(MAX_MEMORY_MIB, `at most ${MAX_MEMORY_MIB}`),
  disks: z.array(z.unknown()).max(MAX_DISKS, `at most ${MAX_DISKS}`),
  nics: z.array(nicSchema).max(MAX_NICS, `at most ${MAX_NICS}`).optional(),
  powerOn: z.boolean().optional(),
  ha: z.boolean().optional(),
}).strict();

const updateSchema = z.object({
  specVersion: z.number().int().min(0),
  name: name.optional(),
  vcpus: createSchema.shape.vcpus.optional(),
  memoryMiB: createSchema.shape.memoryMiB.optional(),
  addDisks: z.array(z.unknown()).max(MAX_DISKS, `at most ${MAX_DISKS}`).optional(),
  removeDisks: z.array(container).max(MAX_DISKS).optional(),
  addNics: z.array(nicSchema).max(MAX_NICS, `at most ${MAX_NICS}`).optional(),
  removeNics: z.array(mac).max(MAX_NICS).optional(),
}).strict();

function uniqueMacs(nics: readonly VmNicRequest[], field: string): void {
  const seen = new Set<string>();
  nics.forEach((n, i) => {
    if (!n.mac) return;
    const m = n.mac.toLowerCase();
    if (seen.has(m)) throw new InputError(`${field}[${i}].mac`, `${m} is given twice`);
    seen.add(m);
  });
}

export function parseVmCreate(body: unknown): VmCreateRequest {
  const b = parseWith(createSchema, body);
  const disks = b.disks.map((d, i) => diskOf(d, `disks[${i}]`));
  const nics = (b.nics ?? []).map((n) => ({ subnet: n.subnet, ...(n.ip ? { ip: n.ip } : {}), ...(n.mac ? { mac: n.mac.toLowerCase() } : {}) }));
  uniqueMacs(nics, 'nics');
  const vdisks = new Set<string>();
  disks.forEach((d, i) => {
    if (!('vdisk' in d)) return;
    if (vdisks.has(d.vdisk)) throw new InputError(`disks[${i}].vdisk`, `${d.vdisk} is attached twice`);
    vdisks.add(d.vdisk);
  });
  return { name: b.name, vcpus: b.vcpus, memoryMiB: b.memoryMiB, disks, nics, powerOn: b.powerOn ?? false, ha: b.ha ?? true };
}

export function parseVmUpdate(body: unknown): VmUpdateRequest {
  const b = parseWith(updateSchema, body);
  const out: VmUpdateRequest = { specVersion: b.specVersion };
  if (b.name !== undefined) out.name = b.name;
  if (b.vcpus !== undefined) out.vcpus = b.vcpus;
  if (b.memoryMiB !== undefined) out.memoryMiB = b.memoryMiB;
  if (b.addDisks) out.addDisks = b.addDisks.map((d, i) => diskOf(d, `addDisks[${i}]`));
  if (b.removeDisks) out.removeDisks = b.removeDisks;
  if (b.addNics) {
    out.addNics = b.addNics.map((n) => ({ subnet: n.subnet, ...(n.ip ? { ip: n.ip } : {}), ...(n.mac ? { mac: n.mac.toLowerCase() } : {}) }));
    uniqueMacs(out.addNics, 'addNics');
  }
  if (b.removeNics) out.removeNics = b.removeNics.map((m) => m.toLowerCase());
  if (Object.keys(out).length === 1) throw new InputError('body', 'changes nothing: give name, vcpus, memoryMiB, addDisks, removeDisks, addNics or removeNics');
  return out;
}

/** The update fields a running (or paused) VM cannot take: the hypervisor defines them at power on. */
export const OFF_ONLY_FIELDS = ['vcpus', 'memoryMiB', 'addDisks', 'removeDisks', 'addNics', 'removeNics'] as const;

/**
 * Refuses an update that does not fit the VM as it is: a stale spec version, or a field that needs
 * the VM off while it is not (ConflictError naming the field).
 */
export function checkUpdate(vm: { specVersion: number; powerState: VmPowerState; name: string }, u: VmUpdateRequest): void {
  if (u.specVersion !== vm.specVersion) throw new ConflictError(`specVersion: the VM ${vm.name} is at spec version ${vm.specVersion}, not ${u.specVersion}; read it again and retry`);
  if (vm.powerState === 'off') return;
  const field = OFF_ONLY_FIELDS.find((f) => u[f] !== undefined);
  if (field) throw new ConflictError(`${field}: the VM ${vm.name} must be off to change ${field} (it is ${vm.powerState}); power it off first`);
}

const imageSchema = z.object({
  name,
  url: z.string().max(2048, 'at most 2048 characters').url('an http(s) URL').refine((u) => /^https?:\/\//i.test(u), 'an http(s) URL'),
  format: z.enum(['raw', 'qcow2', 'iso']).optional(),
  container: container.optional(),
}).strict();

export function parseImageCreate(body: unknown): ImageCreateRequest {
  const b = parseWith(imageSchema, body);
  return { name: b.name, url: b.url, ...(b.format ? { format: b.format } : {}), ...(b.container ? { container: b.container } : {}) };
}

const uploadSchema = z.object({
  name,
  format: z.enum(['raw', 'qcow2', 'iso']).optional(),
  /** The image's uuid, chosen by the caller (Prism's v3 two-step upload gives the one its create answered). */
  uuid: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a UUID in lower case (8-4-4-4-12 hex digits)').optional(),
});

/** The query of PUT /images/upload. */
export function parseImageUpload(query: unknown): { name: string; format?: 'raw' | 'qcow2' | 'iso'; uuid?: string } {
  const b = parseWith(uploadSchema, query);
  return { name: b.name, ...(b.format ? { format: b.format } : {}), ...(b.uuid ? { uuid: b.uuid } : {}) };
}

const subnetSchema = z.object({
  name,
  vlanId: z.number().int('must be a whole number').min(0, 'at least 0 (untagged)').max(4094, 'at most 4094'),
  cidr: z.string().max(18).optional(),
  gateway: ipv4.optional(),
  pool: z.object({ start: ipv4, end: ipv4 }).strict().optional(),
  dns: z.array(ipv4).max(4, 'at most 4').optional(),
}).strict();

/** The shape of a subnet request (the addresses' consistency is core/ipam.ts's checkSubnet). */
export function parseSubnetCreate(body: unknown): SubnetCreateRequest {
  const b = parseWith(subnetSchema, body);
  if (!b.cidr && (b.gateway || b.pool)) throw new InputError(b.gateway ? 'gateway' : 'pool', 'needs cidr (a subnet without a CIDR has no IPAM)');
  return { name: b.name, vlanId: b.vlanId, ...(b.cidr ? { cidr: b.cidr } : {}), ...(b.gateway ? { gateway: b.gateway } : {}), ...(b.pool ? { pool: b.pool } : {}), dns: b.dns ?? [] };
}

const powerSchema = z.object({ action: z.enum(['on', 'off', 'shutdown', 'reset', 'pause', 'resume']) }).strict();

export function parsePowerAction(body: unknown): VmPowerAction {
  return parseWith(powerSchema, body).action;
}

/** Whether `action` makes sense for a VM whose desired state is `state` (ConflictError naming `action` otherwise). */
export function checkPowerAction(vmName: string, state: VmPowerState, action: VmPowerAction): void {
  const ok: Record<VmPowerAction, readonly VmPowerState[]> = { on: ['off'], off: ['on', 'paused'], shutdown: ['on'], reset: ['on'], pause: ['on'], resume: ['paused'] };
  if (!ok[action].includes(state)) throw new ConflictError(`action: the VM ${vmName} is ${state}; ${action} needs it ${ok[action].join(' or ')}`);
}

const cloneSchema = z.object({ name }).strict();

export function parseClone(body: unknown): { name: string } {
  return parseWith(cloneSchema, body);
}

const migrateSchema = z.object({ host: z.string().min(1, 'must not be empty').max(64, 'at most 64 characters').optional() }).strict();

/** POST /vms/:uuid/migrate: `{ host? }` (a serial or a host IP; absent: placement chooses). */
export function parseMigrate(body: unknown): { host?: string } {
  const b = parseWith(migrateSchema, body ?? {});
  return b.host === undefined ? {} : { host: b.host };
}

/** The most a console input may carry, bytes (the host agent's bound). */
export const CONSOLE_INPUT_MAX_BYTES = 4096;
const consoleInputSchema = z.object({
  data: z.string().min(1, 'must not be empty').refine((d) => new TextEncoder().encode(d).length <= CONSOLE_INPUT_MAX_BYTES, `at most ${CONSOLE_INPUT_MAX_BYTES} bytes`),
}).strict();

/** POST /vms/:uuid/console/input: `{ data }`, 1 byte to 4 KiB of text typed on the serial console. */
export function parseConsoleInput(body: unknown): { data: string } {
  return parseWith(consoleInputSchema, body);
}
