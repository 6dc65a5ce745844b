/**
 * @module
 * LCM's shapes (ADR 018): what runs on each node (the inventory), a bundle offered to the cluster,
 * the plan of an upgrade, its pre-checks, and the record of a rolling upgrade as it is kept in the
 * cluster's etcd so that whichever CVM leads LCM carries it on.
 */

/** What runs on one node now. */
export interface NodeInventory {
  serial: string;
  hostname: string;
  hostIp: string;
  cvmIp: string;
  /** The hypervisor's version (null: the host does not answer). */
  hypervisor: string | null;
  /** The storage OS (CVM) version (null: the CVM does not answer). */
  nos: string | null;
  /** The release bundle the node was installed or last upgraded from. */
  bundle: string | null;
  /**
   * Firmware as the node's BMC reports it (Redfish FirmwareInventory): BMC and BIOS (null: not
   * read), and each data drive's (absent: not read).
   */
  firmware: { bmc: string | null; bios: string | null; disks?: DiskFirmware[] };
}

/** A drive's firmware: its FirmwareInventory member (Disk.Bay.0), the drive's model, the version. */
export interface DiskFirmware {
  id: string;
  model: string;
  version: string;
}

/** A release bundle as LCM weighs it (from its manifest, shared/bundle/manifest.ts). */
export interface BundleOffer {
  version: string;
  hypervisor: string;
  nos: string;
  /** Storage-OS version → the hypervisor versions it supports. */
  compatibility: Record<string, string[]>;
  minFirmware: { bios?: string; bmc?: string };
  /** Bundle versions it may upgrade from; absent: any older one. */
  upgradeFrom?: string[];
  /** The CVM protocol it speaks, and the oldest it works beside (mixed versions during an upgrade). */
  cvmProtocol?: { version: number; compatibleFrom: number };
  /** The firmware images it carries (their versions): a node below minFirmware is flashed to them. */
  firmwareImages?: { bmc?: string; bios?: string };
  sha256: string;
}

/** One thing done to a node, in order. */
export type StepKind =
  | 'firmware-bmc' | 'firmware-bios'
  | 'enter-maintenance' | 'stop-cvm' | 'install' | 'restart' | 'rejoin' | 'resiliency' | 'exit-maintenance';

export interface PlanStep {
  kind: StepKind;
  /** What it does, for people. */
  detail: string;
}

export interface NodePlan {
  serial: string;
  hostname: string;
  from: { hypervisor: string | null; nos: string | null; bundle: string | null };
  steps: PlanStep[];
}

/** A refused pairing or version, named. */
export interface Refusal {
  /** What is refused: `bundle`, `compatibility`, `firmware.bmc`, `cvmProtocol`, `node` … */
  field: string;
  reason: string;
}

export interface UpgradePlan {
  to: string;
  /** The nodes in the order they are upgraded, one at a time; a node already at the target is left out. */
  nodes: NodePlan[];
  /** Nodes already at the target. */
  current: string[];
}

export type CheckStatus = 'PASS' | 'WARN' | 'FAIL';

export interface PrecheckResult {
  id: string;
  title: string;
  status: CheckStatus;
  detail: string;
}

/** Where a node is in a rolling upgrade: waiting, in one of its plan's steps, done, or stopped at a step. */
export interface NodeProgress {
  serial: string;
  state: 'pending' | 'running' | 'done' | 'failed';
  /** The index of the step in the node's plan it is in (or failed at); -1 before its first. */
  step: number;
  /** When that step began (ISO). */
  since: string;
  /** Why it failed, and what to do. */
  error: string | null;
  /** The driver that last asked for the step's action: a new driver (another CVM leads LCM) asks again. */
  issuedBy: string | null;
  /** When it took the shutdown token (absent in records of LCM before 1.2). */
  startedAt?: string;
  /** When each of its plan's steps was reached, in order (absent in records of LCM before 1.2). */
  finished?: string[];
}

export type UpgradeState = 'running' | 'paused' | 'failed' | 'succeeded' | 'aborted';

/** A rolling upgrade as etcd keeps it (LCM_UPGRADE_KEY). */
export interface UpgradeRecord {
  id: string;
  to: string;
  bundleSha256: string;
  state: UpgradeState;
  /** Asked to pause: the driver stops at the next node boundary and says paused. */
  pauseRequested: boolean;
  plan: UpgradePlan;
  nodes: NodeProgress[];
  /** The node holding the shutdown token (the only one whose CVM may be down for the upgrade). */
  token: string | null;
  startedAt: string;
  updatedAt: string;
  finishedAt: string | null;
  /** Why it stopped (failed, aborted), with how to recover. */
  error: string | null;
  /** Time limits for this upgrade's steps that differ from the defaults (ms). */
  limits?: Partial<Record<StepKind, number>>;
  /** The newest events, for `converge lcm status` and Prism's page. */
  events: { at: string; node: string | null; message: string }[];
}

/** Where the record of the current (or last) upgrade lives in the cluster's etcd. */
export const LCM_UPGRADE_KEY = '/converge/lcm/upgrade';
/** The election of the CVM that drives upgrades. */
export const LCM_ELECTION = 'lcm-leader';

/** A bundle in the cluster's repository (etcd, under LCM_BUNDLES_PREFIX + version). */
export interface StoredBundle {
  offer: BundleOffer;
  size: number;
  /** Its file name (converge-<version>.tar.gz). */
  file: string;
  uploadedAt: string;
  /** The CVMs that keep a copy. */
  holders: string[];
}

/** Where the repository's index lives in the cluster's etcd. */
export const LCM_BUNDLES_PREFIX = '/converge/lcm/bundles/';

/** LCM's API on each CVM's address (mutual TLS, like the CVM's API). */
export const LCM_PORT = 2102;

/** What the CVM gives the LCM process it starts (CONVERGE_LCM_CONFIG). */
export interface LcmConfig {
  cvmIp: string;
  serial: string;
  clusterId: string;
  /** The cluster's name (the entity of the upgrade's tasks, with clusterId). */
  clusterName: string;
  /** The cluster's etcd client URLs. */
  store: string[];
  /** The cluster's members. */
  members: { serial: string; cvmIp: string; hostIp: string }[];
  /** LCM's own state (its copies of bundles). */
  stateDir: string;
  pki: { member: string; node: string };
  leaseTtlS?: number;
}

/** A node's drive firmware in a line: each model with its version and how many drives run it ("Seagate Exos 8TB E004 ×4"); '?' when not read. */
export function diskFirmwareText(disks: NodeInventory['firmware']['disks']): string {
  if (!disks) return '?';
  if (disks.length === 0) return 'none';
  const count = new Map<string, number>();
  for (const d of disks) count.set(`${d.model} ${d.version}`, (count.get(`${d.model} ${d.version}`) ?? 0) + 1);
  return [...count].map(([k, n]) => `${k} ×${n}`).join(', ');
}
