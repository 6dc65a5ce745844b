/**
 * @module
 * The hosts' BMCs as the cluster keeps them (etcd, readable by members only): given in the cluster
 * create request, used by HA to fence (cvm/node/fencer.ts) and by LCM to read and update firmware.
 */
import { UnavailableError } from '../../shared/errors.ts';

/** A host's BMC as the cluster keeps it (etcd `acropolis/bmcs/<serial>`, readable by members only). */
export interface BmcAccess {
  /** `https://ip[:port]`, or a bare address (HTTPS on 443). */
  address: string;
  user: string;
  password: string;
  /** PEM of the CA that signed the BMC's certificate (null: the system's trusted CAs). */
  ca: string | null;
}

/** Where the BMC of each host is kept in the cluster's store (value: StoredBmc). */
export const BMCS_PREFIX = 'acropolis/bmcs/';

export interface StoredBmc extends BmcAccess {
  serial: string;
  cvmIp: string;
}

/** The BMC's base URL: an https URL as given, or https://address. Refuses anything but HTTPS. */
export function bmcBaseUrl(address: string): string {
  const url = new URL(/^[a-z]+:\/\//i.test(address) ? address : `https://${address}`);
  if (url.protocol !== 'https:') throw new UnavailableError(`the BMC address must be https (not ${url.protocol.replace(':', '')})`);
  return url.origin;
}

