/**
 * @module
 * TLS for NBD [proto.md "TLS support"]: the in-session upgrade that follows NBD_OPT_STARTTLS, on
 * both sides, with X.509 certificates on both ends (as QEMU's `tls-creds-x509`, nbdkit's
 * `--tls=require --tls-verify-peer` and libnbd's `nbds://` do).
 *
 *  - The server insists on a client certificate that chains to one of its CAs and is fit for
 *    client authentication (extended key usage clientAuth, if the certificate names any).
 *  - The client checks that the server's certificate chains to its CAs and names the server: an
 *    IP address in subjectAltName (cluster certificates carry the addresses they serve on), or a
 *    DNS name.
 *
 * TLS 1.2 at least [proto.md "TLS versions"].
 */
import * as tls from 'node:tls';
import { isIP, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { X509Certificate } from 'node:crypto';
import { AuthError, InputError, errorMessage } from '../errors.ts';

/** A server's TLS: its certificate and key, the CAs its clients' certificates must chain to. */
export interface NbdServerTls {
  /** PEM; may carry the chain after the leaf. */
  cert: string;
  key: string;
  /** PEM CA certificate(s) a client certificate must chain to. */
  ca: string | string[];
  /**
   * true (the default): FORCEDTLS, nothing but NBD_OPT_STARTTLS and NBD_OPT_ABORT is answered
   * before TLS is up (nbdkit `--tls=require`). false: TLS at the client's choice (`--tls=on`).
   */
  require?: boolean;
}

/** A client's TLS: its certificate and key, the CAs the server's certificate must chain to. */
export interface NbdClientTls {
  cert: string;
  key: string;
  ca: string | string[];
  /**
   * The name the server's certificate must carry (an IP address or a DNS name). Defaults to the
   * host connected to; required over a Unix socket, which has none.
   */
  servername?: string;
}

/** Who is at the other end of a TLS connection, as the server's authorize() hook sees it. */
export interface NbdPeer {
  /** The client's certificate (already verified against the CAs). */
  certificate: X509Certificate;
  /** The client's address (`ip:port`), or `unix` / `stream`. */
  remote: string;
}

const MIN_VERSION = 'TLSv1.2';

/** The server side of NBD_OPT_STARTTLS, built once per server from its certificates. */
export class TlsUpgrader {
  readonly require: boolean;
  private readonly options: tls.TlsOptions;

  constructor(cfg: NbdServerTls) {
    this.options = { cert: cfg.cert, key: cfg.key, ca: cfg.ca, requestCert: true, rejectUnauthorized: true, minVersion: MIN_VERSION };
    try {
      tls.createSecureContext(this.options); // a bad certificate or key fails at startup, not at the first client
    } catch (e) {
      throw new InputError('tls', `the NBD server's certificate, key or CA cannot be used: ${errorMessage(e)}`);
    }
    this.require = cfg.require ?? true;
  }

  /**
   * Takes over `raw` (the server has just answered NBD_REP_ACK to NBD_OPT_STARTTLS) and resolves
   * with the TLS socket once the client has shown a certificate that verifies; rejects with an
   * AuthError (the socket destroyed) otherwise.
   *
   * The handshake runs in a tls.Server that never listens, handed the stream as a 'connection':
   * that is what applies Node's server-side check of the client's certificate. A bare
   * `new TLSSocket(raw, { isServer: true, requestCert: true, rejectUnauthorized: true })` only
   * insists that the client send *a* certificate, and takes one from any CA.
   */
  upgrade(raw: Duplex): Promise<tls.TLSSocket> {
    const server = tls.createServer(this.options);
    return new Promise((resolve, reject) => {
      // a refused certificate also closes the stream: let tlsClientError, which says why, come first
      const gone = (): void => void setImmediate(() => reject(new AuthError('the client went away during the TLS handshake')));
      raw.once('close', gone);
      server.once('secureConnection', (s: tls.TLSSocket) => {
        raw.off('close', gone);
        if (s.authorized) resolve(s);
        else {
          s.destroy();
          reject(new AuthError(`client certificate refused (${String(s.authorizationError)})`));
        }
      });
      server.once('tlsClientError', (e: Error, s: tls.TLSSocket) => {
        raw.off('close', gone);
        s.destroy();
        reject(new AuthError(s.authorizationError ? `client certificate refused (${String(s.authorizationError)})` : `TLS handshake failed: ${e.message.trim()}`));
      });
      server.emit('connection', raw);
    });
  }
}

/**
 * The client side: upgrades `raw` (the server has just answered NBD_REP_ACK to NBD_OPT_STARTTLS)
 * and resolves once the server's certificate has verified and names `cfg.servername ?? host`.
 */
export function startTlsClient(raw: Duplex, cfg: NbdClientTls, host: string | undefined): Promise<tls.TLSSocket> {
  const name = cfg.servername ?? host;
  if (!name) return Promise.reject(new InputError('tls.servername', 'needed over a Unix socket: the IP address or DNS name the server\'s certificate is issued for'));
  return new Promise((resolve, reject) => {
    // an IP is checked against the certificate's IP SANs through `host`; SNI carries DNS names only
    const s = tls.connect({ socket: raw, ca: cfg.ca, cert: cfg.cert, key: cfg.key, minVersion: MIN_VERSION, ...(isIP(name) ? { host: name } : { servername: name }) });
    s.once('secureConnect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** `ip:port` of a socket's peer, or `unix` (a Unix socket), or `stream` (any other duplex). */
export function remoteOf(stream: Duplex): string {
  if (!(stream instanceof Socket)) return 'stream';
  return stream.remoteAddress ? `${stream.remoteAddress}:${stream.remotePort ?? 0}` : 'unix';
}
