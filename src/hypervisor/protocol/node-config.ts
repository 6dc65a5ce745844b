/**
 * @module
 * What the installer writes onto the boot disk for the hypervisor to read at boot
 * (`config/node.json`), and the layout of an installed boot disk:
 * ```
 *   boot.json                  { name: "converge-hypervisor", version, entry: "hypervisor/hypervisor.mjs" }
 *   hypervisor/hypervisor.mjs  the host agent
 *   cvm/cvm.mjs                the CVM's software, started by the hypervisor
 *   manifest.json              the release bundle's manifest
 *   config/node.json           NodeConfig
 *   config/identity.json       the node's identity from the deployment CA (shared/identity.ts, 0600)
 * ```
 */

/** A node's addresses and CVM sizing, as the IP plan gave them (shared with the installer's configuration). */
export interface NodeAddressing {
  hostname: string;
  hostIp: string;
  hostNetmask: string;
  hostGateway: string;
  cvmIp: string;
  cvmNetmask: string;
  cvmGateway: string;
  dns: string[];
  ntp: string[];
  cvm: { vcpus: number; ramGiB: number };
  /** PCI address of the storage HBA passed through to the CVM. */
  hbaPciAddress: string;
}

export interface NodeConfig extends NodeAddressing {
  serial: string;
  foundationUrl: string;
  /** The node's credential with Foundation (its reports and announcements); absent on nodes installed without one. */
  foundationToken?: string;
  versions: { hypervisor: string; nos: string; bundle: string };
  installedAt: string;
}

export const NODE_CONFIG_PATH = 'config/node.json';
/** The node's certificate (host and CVM addresses), key and the deployment CA, written by the installer. */
export const NODE_IDENTITY_PATH = 'config/identity.json';
export const HYPERVISOR_ENTRY = 'hypervisor/hypervisor.mjs';
export const CVM_ENTRY = 'cvm/cvm.mjs';

/** The redirector's socket (file name in the host↔CVM link's folder): vdisks for this host's own clients. */
export const HOST_VDISK_SOCKET = 'vdisks.sock';

/** Host agent HTTPS port (on the host address): status of the host and its CVM (mutual TLS, ADR 013). */
export const HOST_AGENT_PORT = 8100;

/** What the hypervisor hands the CVM it starts (CONVERGE_CVM_CONFIG names the file). */
export interface CvmConfig {
  serial: string;
  cvmIp: string;
  hostIp: string;
  foundationUrl: string;
  /** NodeConfig.foundationToken: sent with the CVM's announcements (`Authorization: Bearer`). */
  foundationToken?: string;
  versions: { hypervisor: string; nos: string };
  /** The passed-through HBA's disks: directories of DiskVolumes. */
  disks: { serial: string; path: string; mediaType: string; capacityBytes: number }[];
  cvm: { vcpus: number; ramGiB: number };
  /** Where the CVM keeps its own state (configured, cluster id) across restarts. */
  stateDir: string;
  /** The node's identity file (NODE_IDENTITY_PATH on the boot disk): what the CVM presents and trusts. */
  identity: string;
  /**
   * The internal host↔CVM link (the reference platform's 192.168.5.0/24 vSwitch): Unix sockets
   * only this node's processes can reach. The CVM serves its API (`api`) and vdisks over NBD
   * (`nbd`) there; the hypervisor's redirector uses it for the local CVM.
   */
  link?: { api: string; nbd: string };
}

/** What the host agent answers on GET hostIp:8100/status (Prism's view of a hypervisor). */
export interface HostStatus {
  serial: string;
  hostname: string;
  hostIp: string;
  hypervisorVersion: string;
  bundleVersion: string;
  uptimeS: number;
  cvm: { ip: string; state: string; pid: number | null; restarts: number; nosVersion: string };
  link: { state: 'up' | 'down'; detail: string };
  /** The redirector's Unix socket: every vdisk over NBD for this host's clients (`nbd+unix:///<vdisk>?socket=<path>`). */
  vdiskSocket: string;
  /** VMs with a QEMU process on this host (protocol/vms.ts). */
  vms?: number;
  hardware: {
    model: string;
    block: { serial: string; position: string };
    bmcIp: string;
    cpu: { model: string; sockets: number; cores: number; threads: number; speedMHz: number };
    memoryMiB: number;
  };
}
