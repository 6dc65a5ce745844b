/**
 * @module
 * The cluster's configuration store (etcd) as its clients reach it: TLS both ways with a member's
 * `cvm` certificate of the cluster CA (ADR 013). etcd runs with --client-cert-auth, so a client
 * without one is refused before it reads a key.
 */
import { Etcd3 } from 'etcd3';
import { ETCD_CLIENT_PORT } from './cluster.ts';

/** A member's certificate and key, and the cluster CA (PEM). */
export interface StoreTls {
  ca: string;
  cert: string;
  key: string;
}

export function storeClient(ips: readonly string[], tls: StoreTls, dialTimeout = 3000): Etcd3 {
  return new Etcd3({
    hosts: ips.map((ip) => `https://${ip}:${ETCD_CLIENT_PORT}`),
    credentials: { rootCertificate: Buffer.from(tls.ca), certChain: Buffer.from(tls.cert), privateKey: Buffer.from(tls.key) },
    dialTimeout,
  });
}
