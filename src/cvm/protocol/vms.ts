/**
 * @module
 * The VM service's API on every CVM (cvmIp:2100, mutual TLS; ADR 014). One CVM leads (elected in
 * the cluster's etcd); the others forward to it. Specs, states, images, subnets and tasks live in
 * etcd under `acropolis/`; every change is a task that outlives a leader change.
 *
 *   GET  /vms                       Vm[]
 *   POST /vms                       VmCreateRequest → 202 Accepted
 *   GET  /vms/:uuid                 Vm
 *   PUT  /vms/:uuid                 VmUpdateRequest → 202 (what needs the VM off says so: 409)
 *   DELETE /vms/:uuid               → 202 (the VM off; its own disks deleted)
 *   POST /vms/:uuid/power           { action: VmPowerAction } → 202
 *   POST /vms/:uuid/clone           { name } → 202 (a copy of every disk; NICs get new addresses)
 *   POST /vms/:uuid/migrate         { host?: serial or host IP } → 202 (live; task vm.migrate, its result
 *                                   { hostIp, serial, downtimeMs, totalMs, transferredBytes })
 *   GET  /vms/:uuid/console?offset=N ConsoleChunk (from the host that runs it)
 *   POST /vms/:uuid/console/input   { data } (≤ 4 KiB; the operator or Prism) → 200: typed on its serial console
 *   GET  /images  POST /images      ImageCreateRequest (from a URL) → 202
 *   PUT  /images/upload?name=&format=&uuid=  octet-stream body → 202 (the file streamed to the importer;
 *                                   `uuid` optional, the image's: 409 when an image has it or the name)
 *   DELETE /images/:uuid            → 200 (409 while a VM disk was made from it and… see ADR 014)
 *   GET  /subnets  POST /subnets    SubnetCreateRequest → 201;  DELETE /subnets/:uuid (409 in use)
 *   GET  /tasks?entity=uuid   GET /tasks/:uuid   Task
 *   GET  /hosts                     VmHost[]
 *   POST /hosts/:id/maintenance     { enter: boolean } → 202 (task host.maintenance; its VMs move as
 *                                   child vm.migrate tasks, and back on exit)
 *   POST /hosts/:id/power-on        → 202 (task host.power-on: a fenced host powered on through its BMC,
 *                                   back in service once it reports no running VM)
 * HA (docs/ha.md) records its work as tasks too: host.fence (a host powered off by its BMC) and
 * vm.ha-restart (a VM started elsewhere, its parent the fence); a VM HA cannot restart says why in
 * `haBlocked` and in a failed vm.ha-restart task.
 * Errors: the internal error body `{ error: { code, message, field? } }`.
 */

/** `paused`: only an LCM upgrade's (lcm/core/tasks.ts), the VM service's tasks never pause. */
export type TaskState = 'queued' | 'running' | 'paused' | 'succeeded' | 'failed' | 'aborted';

export interface TaskEntity {
  kind: 'vm' | 'image' | 'subnet' | 'host' | 'cluster';
  uuid: string;
  name: string;
}

/** A long operation of the VM service (stored in etcd; a new leader carries on with queued and running ones). */
export interface Task {
  uuid: string;
  /** e.g. vm.create, vm.power.on, vm.migrate, image.import, host.enter-maintenance, vm.ha-restart */
  operation: string;
  entity: TaskEntity;
  state: TaskState;
  percent: number;
  message: string;
  /** Why it failed (state failed or aborted). */
  error: { code: string; message: string; field?: string } | null;
  /** What it produced (e.g. a migration's downtime, a created entity). */
  result: Record<string, unknown> | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** The task that started this one (a maintenance task's migrations). */
  parent: string | null;
  /** The request, as the leader runs it again after a leader change. */
  request: Record<string, unknown>;
}

/** What a mutation answers: its task (poll GET /tasks/:uuid) and the entity it acts on. */
export interface Accepted {
  taskUuid: string;
  entityUuid: string;
}

export type VmPowerAction = 'on' | 'off' | 'shutdown' | 'reset' | 'pause' | 'resume';

/** A disk in a create request: a copy of an image, a new empty vdisk, or a CD-ROM with an image. */
export type VmDiskRequest =
  | { image: string; bus?: 'virtio-blk' | 'virtio-scsi'; sizeBytes?: number; container?: string }
  | { sizeBytes: number; bus?: 'virtio-blk' | 'virtio-scsi'; container?: string }
  | { cdromImage: string }
  /** An existing vdisk, attached as it is (refused when another VM's disk is that vdisk). */
  | { vdisk: string; bus?: 'virtio-blk' | 'virtio-scsi' };

export interface VmNicRequest {
  /** The subnet's name or uuid. */
  subnet: string;
  /** A fixed address from the subnet (default: the next free one of its pool). */
  ip?: string;
  mac?: string;
}

export interface VmCreateRequest {
  name: string;
  vcpus: number;
  memoryMiB: number;
  disks: VmDiskRequest[];
  nics?: VmNicRequest[];
  /** Power on once created (default false). */
  powerOn?: boolean;
  /** Restart on another host when its host fails (default true). */
  ha?: boolean;
}

export interface VmUpdateRequest {
  /** The spec version the change was made against (409 when it moved on). */
  specVersion: number;
  name?: string;
  vcpus?: number;
  memoryMiB?: number;
  addDisks?: VmDiskRequest[];
  removeDisks?: string[];
  addNics?: VmNicRequest[];
  removeNics?: string[];
}

export interface VmDisk {
  /** The vdisk (owned by the VM unless it is a CD-ROM's image or was attached as an existing vdisk). */
  vdisk: string;
  bus: 'virtio-blk' | 'virtio-scsi' | 'cdrom';
  sizeBytes: number;
  /** The image it was copied from (or holds, for a CD-ROM). */
  image: string | null;
  bootIndex?: number;
}

export interface VmNic {
  mac: string;
  subnetUuid: string;
  ip: string | null;
}

export type VmPowerState = 'on' | 'off' | 'paused';

export interface Vm {
  uuid: string;
  name: string;
  specVersion: number;
  vcpus: number;
  memoryMiB: number;
  disks: VmDisk[];
  nics: VmNic[];
  ha: boolean;
  /** What the VM should be (the leader drives hosts toward it). */
  powerState: VmPowerState;
  /** Where it runs (host serial and address), or null while off. */
  host: { serial: string; hostIp: string } | null;
  /** Placement epoch (raised each time it is placed: HA restarts and migrations). */
  epoch: number;
  /** What the host last reported (HostVmState), or 'unknown' while its host does not answer. */
  runtimeState: string;
  /** Why HA cannot restart it now (its host failed and could not be fenced, no host has room…); absent otherwise. */
  haBlocked?: string;
  createdAt: string;
}

export interface ImageCreateRequest {
  name: string;
  /** http(s) URL of a raw, qcow2 or iso file. */
  url: string;
  format?: 'raw' | 'qcow2' | 'iso';
  container?: string;
}

export interface Image {
  uuid: string;
  name: string;
  format: 'raw' | 'qcow2' | 'iso';
  /** The vdisk holding it (in the image container). */
  vdisk: string;
  sizeBytes: number;
  /** A failed import leaves no image (its task says why). */
  state: 'importing' | 'ready';
  source: string;
  createdAt: string;
}

export interface SubnetCreateRequest {
  name: string;
  vlanId: number;
  /** Network address (10.10.0.0/24); absent: a subnet without IPAM. */
  cidr?: string;
  gateway?: string;
  /** First and last addresses IPAM gives out. */
  pool?: { start: string; end: string };
  dns?: string[];
}

export interface Subnet {
  uuid: string;
  name: string;
  vlanId: number;
  cidr: string | null;
  gateway: string | null;
  pool: { start: string; end: string } | null;
  dns: string[];
  /** Addresses given out: ip → NIC mac. */
  leases: Record<string, string>;
}

export interface VmHost {
  serial: string;
  hostIp: string;
  cvmIp: string;
  /**
   * up: answers; down: stopped answering (or being fenced); fenced: its BMC powered it off (it stays
   * fenced until powered on through the cluster and it reports no running VM); entering-maintenance:
   * its VMs are moving away; maintenance: no VMs placed. Only an up host takes new VMs.
   */
  state: 'up' | 'down' | 'fenced' | 'maintenance' | 'entering-maintenance';
  memoryMiB: number;
  freeMemoryMiB: number;
  vcpus: number;
  freeVcpus: number;
  vms: number;
}

/**
 * Set on a mutation a follower passes on to the leader: the leader runs it, and a CVM that no longer
 * leads refuses it (503) rather than passing it on again. A call without it from another CVM's
 * member certificate (Prism, which runs beside any CVM) is passed on like the operator's.
 */
export const FORWARDED_HEADER = 'x-converge-forwarded';

/** Where the VM service keeps its records in the cluster's etcd. */
export const ACROPOLIS_PREFIX = 'acropolis/';
export const VM_ELECTION = 'acropolis-leader';
/** The container new images go to (created on first import, RF of the cluster). */
export const IMAGE_CONTAINER = 'images';
