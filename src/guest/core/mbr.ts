/**
 * @module
 * The first sector of a BIOS-bootable disk: boot code (syslinux's mbr.bin), a disk signature and one
 * active partition. Pure: the caller writes the 512 bytes at offset 0.
 */

export const SECTOR = 512;
/** FAT16 with LBA addressing (the partition type syslinux and the kernel both take). */
export const PART_FAT16_LBA = 0x0e;

export interface MbrPartition {
  startLba: number;
  sectors: number;
  type: number;
  active: boolean;
}

/** The CHS triple of an LBA for a 64-head, 32-sector geometry (1023/254/63 when out of range). */
export function chs(lba: number, heads = 64, sectorsPerTrack = 32): [number, number, number] {
  let c = Math.floor(lba / (heads * sectorsPerTrack));
  let h = Math.floor(lba / sectorsPerTrack) % heads;
  let s = (lba % sectorsPerTrack) + 1;
  if (c > 1023) [c, h, s] = [1023, 254, 63];
  return [h, (s & 0x3f) | ((c >> 2) & 0xc0), c & 0xff];
}

/** 440 bytes of boot code at most, a 32-bit disk signature, up to four partitions, 0x55AA. */
export function mbrSector(bootCode: Uint8Array, signature: number, partitions: readonly MbrPartition[]): Buffer {
  if (bootCode.length > 440) throw new Error(`MBR boot code is ${bootCode.length} bytes; at most 440 fit`);
  if (partitions.length > 4) throw new Error('an MBR holds at most 4 partitions');
  const b = Buffer.alloc(SECTOR);
  b.set(bootCode, 0);
  b.writeUInt32LE(signature >>> 0, 440);
  partitions.forEach((p, i) => {
    const o = 446 + i * 16;
    b[o] = p.active ? 0x80 : 0x00;
    b.set(chs(p.startLba), o + 1);
    b[o + 4] = p.type;
    b.set(chs(p.startLba + p.sectors - 1), o + 5);
    b.writeUInt32LE(p.startLba, o + 8);
    b.writeUInt32LE(p.sectors, o + 12);
  });
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

/** Reads the partition table back (for checks): the entries with a non-zero type. */
export function readMbr(sector: Uint8Array): { signature: number; partitions: MbrPartition[] } | undefined {
  if (sector.length < SECTOR || sector[510] !== 0x55 || sector[511] !== 0xaa) return undefined;
  const b = Buffer.from(sector.buffer, sector.byteOffset, SECTOR);
  const partitions: MbrPartition[] = [];
  for (let i = 0; i < 4; i++) {
    const o = 446 + i * 16;
    const type = b[o + 4] ?? 0;
    if (type === 0) continue;
    partitions.push({ active: b[o] === 0x80, type, startLba: b.readUInt32LE(o + 8), sectors: b.readUInt32LE(o + 12) });
  }
  return { signature: b.readUInt32LE(440), partitions };
}
