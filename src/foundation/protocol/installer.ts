/**
 * @module
 * The wire contract between Foundation and the programs on the nodes it images:
 *
 * ```
 *  node (installer)  GET  <media dir>/config.json              → InstallConfig
 *  node (installer)  POST InstallConfig.reportUrl  InstallerReport (each step; status done|failed at the end)
 *  node (CVM)        POST <foundationUrl>/foundation/cvm_announce  CvmAnnounce (when up, then every minute)
 * ```
 * The media URL Foundation inserts is `<foundationUrl>/foundation/media/<session>/<serial>/installer.tar`;
 * config.json sits beside it.
 */
import type { NodeAddressing } from '../../hypervisor/protocol/node-config.ts';
import type { Identity } from '../../shared/identity.ts';

export interface InstallConfig extends NodeAddressing {
  /** The node's certificate (host and CVM addresses), key and the deployment CA: written to the boot disk (ADR 013). */
  identity: Identity;
  sessionId: string;
  serial: string;
  foundationUrl: string;
  reportUrl: string;
  bundleUrl: string;
  bundleSha256: string;
}

export interface InstallerReport {
  serial: string;
  percent: number;
  message: string;
  status: 'running' | 'done' | 'failed';
}

export interface CvmAnnounce {
  serial: string;
  cvmIp: string;
  hostIp: string;
  hypervisorVersion: string;
  nosVersion: string;
  configured: boolean;
  clusterId: string | null;
}

/** Where an installer finds its configuration, given its media URL. */
export function configUrlOf(mediaUrl: string): string {
  return new URL('config.json', mediaUrl).href;
}
