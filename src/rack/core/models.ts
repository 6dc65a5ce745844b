/**
 * @module
 * Hardware models: the JSON format that describes a kind of node, the built-in models, and the
 * expansion of a model into one node's concrete inventory (serials, MACs, slots). Pure.
 */
import { z } from 'zod';
import { InputError } from '../../shared/errors.ts';

const GiB = 1024 ** 3;

const diskGroup = z.object({
  count: z.number().int().min(1).max(24),
  mediaType: z.enum(['SSD', 'HDD']),
  protocol: z.enum(['SATA', 'SAS', 'NVMe']),
  model: z.string().min(1),
  /** Advertised (and enforced) capacity of each disk, in GiB. Lab models keep this small. */
  capacityGiB: z.number().positive().max(1024 * 64),
  /** The drives' firmware revision (Redfish Drive.Revision, and a FirmwareInventory member per drive); default DEFAULT_DISK_FIRMWARE. */
  firmware: z.string().min(1).max(64).optional(),
});

/** A disk group's firmware revision when its model names none. */
export const DEFAULT_DISK_FIRMWARE = '1.0';

export const hardwareModelSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, dot, dash, underscore; at most 64'),
  vendor: z.string().min(1),
  description: z.string().default(''),
  /** Nodes per block (chassis); positions A, B, C, D. */
  nodesPerBlock: z.number().int().min(1).max(4),
  cpu: z.object({
    model: z.string().min(1),
    sockets: z.number().int().min(1).max(8),
    coresPerSocket: z.number().int().min(1).max(256),
    threadsPerCore: z.number().int().min(1).max(4),
    speedMHz: z.number().int().min(100).max(10000),
  }),
  memory: z.object({
    dimms: z.number().int().min(1).max(48),
    dimmSizeGiB: z.number().int().min(1).max(512),
    speedMTs: z.number().int().min(100).max(10000),
    type: z.enum(['DDR4', 'DDR5']),
  }),
  nics: z.array(z.object({ count: z.number().int().min(1).max(8), speedMbps: z.number().int().min(100) })).min(1),
  bootDevice: z.object({
    type: z.enum(['M.2', 'SATADOM']),
    model: z.string().min(1),
    capacityGiB: z.number().positive().max(4096),
  }),
  hba: z.object({
    model: z.string().min(1),
    vendorId: z.string().regex(/^0x[0-9a-fA-F]{4}$/),
    deviceId: z.string().regex(/^0x[0-9a-fA-F]{4}$/),
    passthroughCapable: z.boolean(),
  }),
  disks: z.array(diskGroup).min(0),
  firmware: z.object({ bios: z.string().min(1), bmc: z.string().min(1) }),
});

export type HardwareModel = z.infer<typeof hardwareModelSchema>;

/** Parses a model definition (the JSON format of docs/rack.md); errors name the field. */
export function parseHardwareModel(input: unknown): HardwareModel {
  const r = hardwareModelSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue ? issue.path.join('.') || '(model)' : '(model)';
    throw new InputError(`model.${field}`, issue?.message ?? 'invalid');
  }
  return r.data;
}

export const BUILTIN_MODELS: readonly HardwareModel[] = [
  parseHardwareModel({
    name: 'CVG-H1065',
    vendor: 'Converge Labs',
    description: 'Hybrid node, 4 nodes per 2U block: 2 SSD + 4 HDD behind a SAS HBA',
    nodesPerBlock: 4,
    cpu: { model: 'Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz', sockets: 2, coresPerSocket: 16, threadsPerCore: 2, speedMHz: 2400 },
    memory: { dimms: 8, dimmSizeGiB: 32, speedMTs: 3200, type: 'DDR4' },
    nics: [{ count: 2, speedMbps: 25000 }, { count: 2, speedMbps: 1000 }],
    bootDevice: { type: 'M.2', model: 'Micron 7450 M.2 240GB (lab 4 GiB)', capacityGiB: 4 },
    hba: { model: 'Broadcom SAS3808 HBA', vendorId: '0x1000', deviceId: '0x00e6', passthroughCapable: true },
    disks: [
      { count: 2, mediaType: 'SSD', protocol: 'SATA', model: 'Samsung PM893 1.92TB (lab)', capacityGiB: 4, firmware: 'JXTC104Q' },
      { count: 4, mediaType: 'HDD', protocol: 'SAS', model: 'Seagate Exos 8TB (lab)', capacityGiB: 8, firmware: 'E004' },
    ],
    firmware: { bios: 'CVGB-2.4.1', bmc: '3.10.2' },
  }),
  parseHardwareModel({
    name: 'CVG-F1120',
    vendor: 'Converge Labs',
    description: 'All-flash node, 1 node per 1U block: 4 NVMe SSD behind a tri-mode HBA',
    nodesPerBlock: 1,
    cpu: { model: 'AMD EPYC 7313P 16-Core Processor', sockets: 1, coresPerSocket: 16, threadsPerCore: 2, speedMHz: 3000 },
    memory: { dimms: 8, dimmSizeGiB: 64, speedMTs: 3200, type: 'DDR4' },
    nics: [{ count: 2, speedMbps: 100000 }, { count: 1, speedMbps: 1000 }],
    bootDevice: { type: 'M.2', model: 'Kioxia XG6 M.2 480GB (lab 4 GiB)', capacityGiB: 4 },
    hba: { model: 'Broadcom 9500-16i Tri-Mode HBA', vendorId: '0x1000', deviceId: '0x00e6', passthroughCapable: true },
    disks: [{ count: 4, mediaType: 'SSD', protocol: 'NVMe', model: 'Intel D7-P5520 3.84TB (lab)', capacityGiB: 4, firmware: '9CV10200' }],
    firmware: { bios: 'CVGF-1.8.0', bmc: '3.10.2' },
  }),
  parseHardwareModel({
    name: 'CVG-LAB-MINI',
    vendor: 'Converge Labs',
    description: 'Undersized lab node (4 cores, 16 GiB, one SSD): for trying hardware validation',
    nodesPerBlock: 1,
    cpu: { model: 'Intel(R) Xeon(R) E-2224 CPU @ 3.40GHz', sockets: 1, coresPerSocket: 4, threadsPerCore: 1, speedMHz: 3400 },
    memory: { dimms: 2, dimmSizeGiB: 8, speedMTs: 2666, type: 'DDR4' },
    nics: [{ count: 1, speedMbps: 1000 }],
    bootDevice: { type: 'SATADOM', model: 'Innodisk SATADOM 64GB (lab 2 GiB)', capacityGiB: 2 },
    hba: { model: 'Intel C246 AHCI', vendorId: '0x8086', deviceId: '0xa352', passthroughCapable: false },
    disks: [{ count: 1, mediaType: 'SSD', protocol: 'SATA', model: 'Crucial MX500 1TB (lab)', capacityGiB: 2, firmware: 'M3CR046' }],
    firmware: { bios: 'CVGM-1.0.3', bmc: '2.8.0' },
  }),
];

export const DEFAULT_MODEL = 'CVG-H1065';

export function findModel(models: readonly HardwareModel[], name: string): HardwareModel {
  const m = models.find((x) => x.name.toLowerCase() === name.toLowerCase());
  if (!m) throw new InputError('model', `unknown model "${name}"`, models.map((x) => x.name));
  return m;
}

/** The identity of one node in the rack, fixed when it is racked and kept in rack.json. */
export interface NodeIdentity {
  /** 1-based index in the rack; gives the BMC address and MACs. */
  index: number;
  serial: string;
  uuid: string;
  model: string;
  blockSerial: string;
  position: string;
  bmcIp: string;
}

export interface InventoryDisk {
  slot: number;
  serial: string;
  model: string;
  mediaType: 'SSD' | 'HDD';
  protocol: 'SATA' | 'SAS' | 'NVMe';
  capacityBytes: number;
  /** Its firmware revision. */
  firmware: string;
}

export interface NodeInventory {
  cpu: HardwareModel['cpu'];
  dimms: { slot: string; sizeMiB: number; speedMTs: number; type: string }[];
  nics: { id: string; mac: string; speedMbps: number }[];
  bmcMac: string;
  bootDevice: { serial: string; model: string; type: 'M.2' | 'SATADOM'; capacityBytes: number };
  hba: HardwareModel['hba'] & { pciAddress: string; id: string };
  disks: InventoryDisk[];
}

const hex2 = (n: number): string => (n & 0xff).toString(16).padStart(2, '0');

/** Locally administered MAC: 02:43:56 ("CV"), then the kind of port, then the node index. */
export function macFor(index: number, port: number): string {
  return ['02', '43', '56', hex2(port), hex2(index >> 8), hex2(index)].join(':');
}

export const DEFAULT_BMC_NETWORK = '127.10';

/**
 * BMC address of the node with the given 1-based index in a /16 loopback network ("127.10"):
 * 127.10.0.1 ... 127.10.0.250, then 127.10.1.1 ... (x.x.255.x is kept for the rack itself).
 */
export function bmcIpFor(index: number, network = DEFAULT_BMC_NETWORK): string {
  if (!Number.isInteger(index) || index < 1 || index > 250 * 250) throw new InputError('index', `node index ${index} out of range 1..62500`);
  return `${network}.${Math.floor((index - 1) / 250)}.${((index - 1) % 250) + 1}`;
}

/** Checks a BMC network prefix: two octets of 127.0.0.0/8, e.g. "127.10". */
export function parseBmcNetwork(v: string): string {
  const m = /^127\.(\d{1,3})$/.exec(v);
  if (!m || Number(m[1]) > 254 || Number(m[1]) < 1) throw new InputError('bmc-network', 'must be "127.N" with N from 1 to 254 (a /16 of loopback)', undefined, v);
  return v;
}

/** Expands a model into one node's inventory. Deterministic in the node's identity. */
export function inventoryFor(model: HardwareModel, id: NodeIdentity): NodeInventory {
  const dimms: NodeInventory['dimms'] = [];
  const perSocket = Math.ceil(model.memory.dimms / model.cpu.sockets);
  for (let i = 0; i < model.memory.dimms; i++) {
    const cpu = Math.floor(i / perSocket) + 1;
    const ch = String.fromCharCode(65 + (i % perSocket));
    dimms.push({ slot: `P${cpu}-DIMM${ch}1`, sizeMiB: model.memory.dimmSizeGiB * 1024, speedMTs: model.memory.speedMTs, type: model.memory.type });
  }
  const nics: NodeInventory['nics'] = [];
  let port = 1;
  for (const group of model.nics) {
    for (let i = 0; i < group.count; i++, port++) {
      nics.push({ id: `NIC${port}`, mac: macFor(id.index, port), speedMbps: group.speedMbps });
    }
  }
  const disks: InventoryDisk[] = [];
  let slot = 0;
  for (const g of model.disks) {
    for (let i = 0; i < g.count; i++, slot++) {
      const prefix = g.mediaType === 'HDD' ? 'ZA' : g.protocol === 'NVMe' ? 'PHAX' : 'S4';
      disks.push({
        slot,
        serial: `${prefix}${id.serial.slice(-6)}${String(slot).padStart(2, '0')}`,
        model: g.model,
        mediaType: g.mediaType,
        protocol: g.protocol,
        capacityBytes: Math.round(g.capacityGiB * GiB),
        firmware: g.firmware ?? DEFAULT_DISK_FIRMWARE,
      });
    }
  }
  return {
    cpu: model.cpu,
    dimms,
    nics,
    bmcMac: macFor(id.index, 0),
    bootDevice: {
      serial: `BD${id.serial.slice(-8)}`,
      model: model.bootDevice.model,
      type: model.bootDevice.type,
      capacityBytes: Math.round(model.bootDevice.capacityGiB * GiB),
    },
    hba: { ...model.hba, id: 'HBA0', pciAddress: '0000:3b:00.0' },
    disks,
  };
}

/**
 * Identities for `count` new nodes after the `existing` ones. Nodes fill blocks of the model's
 * size: a new node goes into the last block if it has a free position of the same model.
 */
export function rackNewNodes(existing: readonly NodeIdentity[], model: HardwareModel, count: number, uuidOf: (index: number) => string, network = DEFAULT_BMC_NETWORK): NodeIdentity[] {
  if (!Number.isInteger(count) || count < 1) throw new InputError('nodes', 'must be a whole number of at least 1', undefined, count);
  const out: NodeIdentity[] = [];
  const all = [...existing];
  for (let i = 0; i < count; i++) {
    const index = all.reduce((m, n) => Math.max(m, n.index), 0) + 1;
    const last = all[all.length - 1];
    const inLast = last ? all.filter((n) => n.blockSerial === last.blockSerial).length : 0;
    const blockNo = new Set(all.map((n) => n.blockSerial)).size;
    const sameBlock = last !== undefined && last.model === model.name && inLast < model.nodesPerBlock;
    const blockSerial = sameBlock ? last.blockSerial : `BLK${String(blockNo + 1).padStart(3, '0')}${model.name.replace(/[^A-Z0-9]/gi, '').slice(-4).toUpperCase()}`;
    const position = String.fromCharCode(65 + (sameBlock ? inLast : 0));
    const node: NodeIdentity = {
      index,
      serial: `CVG${String(24_000_000 + index * 7919).padStart(8, '0')}`,
      uuid: uuidOf(index),
      model: model.name,
      blockSerial,
      position,
      bmcIp: bmcIpFor(index, network),
    };
    all.push(node);
    out.push(node);
  }
  return out;
}
