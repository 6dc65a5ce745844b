/**
 * @module
 * Prism's contract with the CVM that runs it and with the cluster's configuration store:
 * where it listens, how it is configured, and the records it reads in etcd (written at cluster
 * creation by the CVM that drives it).
 *
 *   /converge/prism/ca             { cert, key }  the cluster's certificate authority (PEM)
 *   /converge/prism/users/<name>   PrismUser      a local account (scrypt hash, never the password)
 *   /converge/prism/leader/…       the leader election (etcd3 Election "prism")
 *   /converge/tasks/<uuid>         PrismTask      long operations started through Prism
 */

/** HTTPS on every CVM's address and, on the leader, on the cluster virtual IP. */
export const PRISM_PORT = 9440;
export const PRISM_CA_KEY = '/converge/prism/ca';
export const PRISM_USERS_PREFIX = '/converge/prism/users/';
/** Login sessions, by SHA-256 of the cookie's token (the store never holds a usable token). */
export const PRISM_SESSIONS_PREFIX = '/converge/prism/sessions/';
export const PRISM_ELECTION = 'converge/prism/leader';
export const TASKS_PREFIX = '/converge/tasks/';
export const ADMIN_USER = 'admin';
/** A password Prism accepts: 8 to 128 characters. */
export const PASSWORD_RULE = { min: 8, max: 128 } as const;

/** What the CVM hands its Prism process (CONVERGE_PRISM_CONFIG, JSON). */
export interface PrismConfig {
  cvmIp: string;
  /** The cluster's virtual IP (the leader serves there too), or null: clients use the leader's CVM address. */
  vip: string | null;
  clusterId: string;
  /** CVM addresses that run the configuration store. */
  store: string[];
  /** Where Prism keeps its server certificate. */
  stateDir: string;
  /** Its CVM's identities (ADR 013): the member's cluster certificates (MemberIdentities: the store), the node's (hosts' and CVMs' APIs). */
  pki: { member: string; node: string };
  /** Leader lease in seconds: a dead leader's VIP moves after at most about this long. */
  leaseTtlS?: number;
  /** Idle session lifetime in seconds (default 900). */
  sessionTtlS?: number;
}

export interface PrismUser {
  name: string;
  /** scrypt$salt$hash (shared/passwords.ts). */
  passwordHash: string;
  /** The password was generated or set by the deployment and has not been changed by its owner. */
  initial: boolean;
  updatedAt: string;
}

export type TaskStatus = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED';

export interface PrismTask {
  uuid: string;
  operationType: string;
  status: TaskStatus;
  percentage: number;
  message: string;
  entities: { kind: string; uuid: string; name: string }[];
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
}
