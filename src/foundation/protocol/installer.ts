/**
 * @module
 * The wire contract between Foundation and the programs on the nodes it images:
 *
 * ```
 *  node's BMC        GET  <media>/installer.tar                    the installer (virtual media)
 *  node (installer)  GET  <media>/config.json                      → InstallConfig
 *  node (installer)  GET  InstallConfig.bundleUrl (<media>/bundle.tar.gz)
 *  node (installer)  POST InstallConfig.reportUrl  InstallerReport (each step; status done|failed at the end)
 *  node (CVM)        POST <foundationUrl>/foundation/cvm_announce  CvmAnnounce (when up, then every minute)
 * ```
 * `<media>` is the media URL's folder, `<foundationUrl>/foundation/media/<session>/<serial>/<media
 * token>`: the random media token is the credential for what sits there (only the node's BMC is
 * given the URL). Reports and announcements carry the node's own credential,
 * `InstallConfig.foundationToken`, as `Authorization: Bearer <token>`; the installer keeps it in
 * the node configuration (NodeConfig.foundationToken) for the CVM (CvmConfig.foundationToken).
 */
import type { NodeAddressing } from '../../hypervisor/protocol/node-config.ts';

export interface InstallConfig extends NodeAddressing {
  /** The node's certificate (host and CVM addresses), key and the deployment CA: written to the boot disk (ADR 013). */
  identity: { cert: string; key: string; ca: string[] };
  sessionId: string;
  serial: string;
  foundationUrl: string;
  /** The node's credential for its reports and its CVM's announcements (a secret: never logged). */
  foundationToken: string;
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

/** The `Authorization` header value that carries a node's credential. */
export function nodeAuthorization(foundationToken: string): string {
  return `Bearer ${foundationToken}`;
}
