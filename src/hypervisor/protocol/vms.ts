/**
 * @module
 * The host agent's VM runtime API (hostIp:8100, mutual TLS; ADR 014): what the VM service leader
 * (a CVM, role `cvm`) and the operator ask of a hypervisor. Each VM is a QEMU process driven over
 * QMP; its disks are vdisks reached through this host's redirector (NBD on a Unix socket); its NICs
 * are ports on this host's virtual switch for their subnet.
 *
 *   GET    /resources                     HostResources: memory and vCPUs, total and used by VMs
 *   GET    /vms                           HostVm[]: every VM this host runs or ran since boot
 *   GET    /vms/:uuid                     HostVm
 *   PUT    /vms/:uuid                     HostVmSpec → HostVm (201): define and power on; 409 if it runs
 *   POST   /vms/:uuid/power               { action: PowerAction } → HostVm
 *   DELETE /vms/:uuid                     forget a VM that is off (409 while it runs)
 *   GET    /vms/:uuid/console?offset=N    ConsoleChunk: the serial console log from byte N
 *   GET    /vms/:uuid/console/stream      text/plain, chunked: the log from now on, live, until closed
 *   POST   /vms/:uuid/console/input       { data } (≤ 4 KiB): typed on the serial console
 *   PUT    /vms/:uuid/incoming            HostVmSpec → { port }: start QEMU waiting for a migration
 *   POST   /vms/:uuid/migrate             { targetHostIp, port } → MigrationResult (when done)
 *   PUT    /network                       HostNetwork: the subnets and peers of the virtual switch
 * Errors: the internal error body `{ error: { code, message, field? } }` (shared/http-api.ts).
 */

/** A VM disk as a hypervisor attaches it: a vdisk over NBD through this host's redirector. */
export interface HostVmDisk {
  /** The vdisk's name on the fabric (the NBD export). */
  vdisk: string;
  /** virtio-blk (default), virtio-scsi, or a CD-ROM (IDE, read-only: an ISO image's vdisk). */
  bus: 'virtio-blk' | 'virtio-scsi' | 'cdrom';
  /** Boot order (1 first); absent: not a boot device. */
  bootIndex?: number;
}

/** A NIC: a port on the host's virtual switch for the subnet; the switch answers its DHCP with `ip`. */
export interface HostVmNic {
  mac: string;
  subnetUuid: string;
  /** The address IPAM gave this NIC (null: the subnet has no IPAM; the guest's DHCP goes unanswered). */
  ip: string | null;
}

/** What a host needs to run a VM (the VM service's spec, resolved: vdisks named, addresses assigned). */
export interface HostVmSpec {
  uuid: string;
  name: string;
  vcpus: number;
  memoryMiB: number;
  disks: HostVmDisk[];
  nics: HostVmNic[];
  /**
   * The VM's placement epoch, raised by the leader each time it places the VM on a host. A host
   * refuses a spec with a lower epoch than one it has seen for the VM (a stale leader's order).
   */
  epoch: number;
}

export type PowerAction = 'shutdown' | 'off' | 'reset' | 'pause' | 'resume';

/**
 * A VM's state on its host: `starting` (QEMU spawned, QMP not yet up), `running`, `paused`,
 * `shutting-down` (ACPI power button pressed), `incoming` (waiting for a migration),
 * `migrating` (sending itself to another host), `migrated` (gone to another host), `off`
 * (stopped as asked or by the guest), `crashed` (QEMU died unasked; `exit` says how).
 */
export type HostVmState = 'starting' | 'running' | 'paused' | 'shutting-down' | 'incoming' | 'migrating' | 'migrated' | 'off' | 'crashed';

export interface HostVm {
  spec: HostVmSpec;
  state: HostVmState;
  pid: number | null;
  /** When QEMU last started (ISO time). */
  startedAt: string | null;
  /** The last QMP events (newest last, at most 20): { event, at, data? }. */
  events: { event: string; at: string; data?: unknown }[];
  /** How the last QEMU process ended, when it has. */
  exit: { code: number | null; signal: string | null; reason: string } | null;
  /** Bytes in the console log so far. */
  consoleBytes: number;
}

export interface HostResources {
  memoryMiB: number;
  /** The CVM's share (it is a VM of this host). */
  cvmMemoryMiB: number;
  /** Memory of the VMs this host runs (or is receiving). */
  vmMemoryMiB: number;
  freeMemoryMiB: number;
  /** Logical CPUs (threads). */
  vcpus: number;
  cvmVcpus: number;
  vmVcpus: number;
  /** Whether QEMU runs with KVM here (otherwise TCG: software emulation). */
  accelerator: 'kvm' | 'tcg';
  /**
   * New each time the host agent starts: a host that restarted between two polls (an upgrade's
   * restart takes seconds) is told its switch's subnets again. Absent from hosts before 1.1.0.
   */
  bootId?: string;
}

export interface ConsoleChunk {
  text: string;
  /** Where the next read starts. */
  next: number;
}

export interface MigrationResult {
  /** Time the guest was stopped (QEMU's `downtime`; with `resumeOnTarget`, from the stop to the end of the copy). */
  downtimeMs: number;
  totalMs: number;
  transferredBytes: number;
  /**
   * The guest was stopped for the whole copy (TCG: QEMU 7.2 loses guest writes in a live copy;
   * docs/migration.md), so the target holds it paused: whoever moves it resumes it there.
   */
  resumeOnTarget?: boolean;
}

/** A subnet as the virtual switch carries it (VLAN-isolated L2 segment, DHCP answered from IPAM). */
export interface HostSubnet {
  uuid: string;
  name: string;
  vlanId: number;
  /**
   * CIDR (e.g. 10.10.0.0/24); null: no IPAM (the switch answers no DHCP). The switch answers DHCP
   * from the last usable address (10.10.0.254), or the one below it when that is the gateway: IPAM
   * must not give that address to a NIC (docs/networking.md).
   */
  cidr: string | null;
  gateway: string | null;
  dns: string[];
}

/** PUT /network: the subnets and the other hosts whose switches this one links to (over mutual TLS). */
export interface HostNetwork {
  subnets: HostSubnet[];
  /** Host addresses of the cluster's other hypervisors. */
  peers: string[];
}

/** The virtual switch's tunnel port between hosts (hostIp; mutual TLS with the members' host certificates). */
export const VSWITCH_TUNNEL_PORT = 8110;
/** Live migration streams arrive on ports from here (hostIp), one per incoming VM. */
export const MIGRATION_PORT_BASE = 49152;
