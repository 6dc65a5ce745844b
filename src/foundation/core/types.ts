/**
 * @module
 * Foundation's domain types shared by its pure modules (discovery results, validation, IP plan).
 */

/** A node as discovery sees it: identity and inventory read from its BMC over Redfish. */
export interface DiscoveredNode {
  serial: string;
  uuid: string;
  model: string;
  vendor: string;
  blockSerial: string;
  /** A, B, C or D. */
  position: string;
  bmc: { url: string; ip: string; mac: string };
  power: string;
  inventory: NodeInventoryView;
  /** Set when the node already runs Converge software (pre-imaged or in a cluster). */
  software?: { hypervisorVersion: string; nosVersion: string; configured: boolean; clusterId: string | null; cvmIp: string | null };
}

export interface NodeInventoryView {
  cpu: { model: string; sockets: number; coresPerSocket: number; threadsPerCore: number };
  memoryMiB: number;
  nics: { id: string; mac: string; speedMbps: number; linkUp: boolean }[];
  bootDevice: { serial: string; model: string; type: string; capacityBytes: number } | null;
  disks: { serial: string; model: string; mediaType: 'SSD' | 'HDD'; protocol: string; capacityBytes: number; health: 'OK' | 'Warning' | 'Critical'; slot: number }[];
  hba: { model: string; vendorId: string; deviceId: string; passthroughCapable: boolean; pciAddress?: string } | null;
  firmware: { bios: string; bmc: string };
}

export type Verdict = 'PASS' | 'WARN' | 'FAIL';

/** One rule's outcome: what was measured, against which threshold, and how to fix it. */
export interface CheckResult {
  /** Stable id of the rule, e.g. "cpu.cores", "disk.health". */
  check: string;
  verdict: Verdict;
  measured: string;
  threshold: string;
  /** Human sentence; empty for PASS. */
  remedy: string;
}

export interface NodeReport {
  serial: string;
  verdict: Verdict;
  checks: CheckResult[];
  /** FAIL nodes are excluded unless overridden. */
  excluded: boolean;
  overridden: boolean;
}

export type Profile = 'lab' | 'production';

export interface ValidationReport {
  profile: Profile;
  verdict: Verdict;
  nodes: NodeReport[];
  /** Checks over the whole set (node count vs RF, mixed models). */
  cluster: CheckResult[];
  counts: Record<Verdict, number>;
  /**
   * Foundation: the release bundle whose minimum firmware the firmware checks applied (the one
   * named, else the newest in the repository); null when the repository has none (no minimum).
   */
  bundle?: string | null;
}

export interface ValidationOptions {
  profile: Profile;
  redundancyFactor: 1 | 2 | 3;
  /** CVM size the deployment asks for. */
  cvm: { vcpus: number; ramGiB: number };
  /** Minimum firmware from the release bundle's manifest; absent = no minimum. */
  minFirmware: { bios?: string; bmc?: string };
  /** Serials whose FAIL the user overrides (they stay included). */
  overrides: readonly string[];
}

/** A network of the plan: BMC (IPMI), hypervisor host, or CVM. */
export interface NetworkSpec {
  netmask: string;
  gateway: string;
  /** 0 or absent = untagged. */
  vlan?: number;
  /** First address to assign, in node order; nodes with an explicit address skip it. */
  start?: string;
}

export interface PlanNodeInput {
  serial: string;
  bmcIp?: string;
  hostIp?: string;
  cvmIp?: string;
  hostname?: string;
}

export interface PlanInput {
  clusterName: string;
  /** Cluster virtual IP (Prism); optional, on the host network. */
  clusterVip?: string;
  dns: string[];
  ntp: string[];
  hostnamePrefix: string;
  bmc: NetworkSpec;
  host: NetworkSpec;
  cvm: NetworkSpec;
  /** Assignment order = this order. */
  nodes: PlanNodeInput[];
  /** A lab deployment: every address must be loopback (127.0.0.0/8). */
  lab: boolean;
}

export interface PlanNode {
  serial: string;
  bmcIp: string;
  hostIp: string;
  cvmIp: string;
  hostname: string;
}

export interface Plan {
  clusterName: string;
  clusterVip: string | null;
  dns: string[];
  ntp: string[];
  bmc: NetworkSpec;
  host: NetworkSpec;
  cvm: NetworkSpec;
  lab: boolean;
  nodes: PlanNode[];
}

/** A problem with a plan: which node (if any), which field, and why. */
export interface PlanError {
  node?: string;
  field: string;
  reason: string;
}
