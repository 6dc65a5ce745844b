/**
 * @module
 * The hardware a node presents to what it boots (the installer, the hypervisor). The rack writes
 * this as `hardware.json` and passes its path in CONVERGE_HARDWARE; the programs a node runs read
 * it as firmware tables would be read on a real server. It is a wire contract between the rack and
 * the software that runs on it, so it lives in protocol/.
 */

export type DriveMediaType = 'SSD' | 'HDD';
export type DriveProtocol = 'SATA' | 'SAS' | 'NVMe';
export type DriveHealth = 'OK' | 'Warning' | 'Critical';
export type BootDeviceType = 'M.2' | 'SATADOM';

export interface CpuInfo {
  model: string;
  sockets: number;
  coresPerSocket: number;
  threadsPerCore: number;
  speedMHz: number;
}

export interface DimmInfo {
  slot: string;
  sizeMiB: number;
  speedMTs: number;
  type: string;
}

export interface NicInfo {
  id: string;
  mac: string;
  speedMbps: number;
  linkUp: boolean;
}

export interface DiskInfo {
  /** Slot in the node's drive bays, 0-based. */
  slot: number;
  serial: string;
  model: string;
  mediaType: DriveMediaType;
  protocol: DriveProtocol;
  capacityBytes: number;
  /** Its firmware revision. */
  firmware: string;
  health: DriveHealth;
  /** Directory that backs the disk; open it with DiskVolume (src/shared/disk-volume.ts). */
  path: string;
}

export interface BootDeviceInfo {
  serial: string;
  model: string;
  type: BootDeviceType;
  capacityBytes: number;
  path: string;
}

export interface HbaInfo {
  id: string;
  model: string;
  pciAddress: string;
  vendorId: string;
  deviceId: string;
  passthroughCapable: boolean;
}

export interface NodeHardware {
  serial: string;
  uuid: string;
  model: string;
  vendor: string;
  block: { serial: string; position: string };
  bmc: { ip: string; url: string; mac: string };
  cpu: CpuInfo;
  memory: { totalMiB: number; dimms: DimmInfo[] };
  nics: NicInfo[];
  bootDevice: BootDeviceInfo;
  hba: HbaInfo;
  disks: DiskInfo[];
  firmware: { bios: string; bmc: string };
  /** Faults the rack injects into what runs on the node (see docs/rack.md, "Faults"). */
  faults: { installerCrashAtPercent?: number };
  /** Where the node's serial console goes. */
  consoleLog: string;
  /** How the node booted this time. */
  bootSource: 'Cd' | 'Hdd';
  /** For a Cd boot: the URL of the inserted virtual media. */
  mediaUrl?: string;
}

/** Environment variable that names the hardware.json of the node a program runs on. */
export const HARDWARE_ENV = 'CONVERGE_HARDWARE';

/**
 * The node's power rail: a booted program's stdin is a pipe held by the rack. When it closes the
 * rack is gone (killed, crashed): the node has lost power, and everything on it stops at once.
 * Long-running node programs (the hypervisor) call this at start.
 */
export function stopOnPowerLoss(): void {
  const lost = (): void => {
    try {
      process.kill(0, 'SIGKILL'); // the node's whole process group
    } catch {
      process.exit(1);
    }
  };
  process.stdin.on('end', lost);
  process.stdin.on('close', lost);
  process.stdin.on('error', lost);
  process.stdin.resume();
}

/**
 * Exit codes a booted program uses to tell the "firmware" what to do next, as an OS would with
 * ACPI: power off, or reboot. Any other exit is a crash: the node halts, powered on.
 */
export const EXIT_POWEROFF = 0;
export const EXIT_REBOOT = 3;

/** Manifest of a bootable medium (virtual media archive or the boot disk): `boot.json`. */
export interface BootManifest {
  /** What it is, e.g. "converge-installer" or "converge-hypervisor". */
  name: string;
  version: string;
  /** Path of the program to run, relative to the manifest's folder (a JavaScript module). */
  entry: string;
}

export const BOOT_MANIFEST = 'boot.json';
