/**
 * @module
 * The NBD server: accepts TCP (and Unix socket) connections and hands each to an NbdConnection. A bad client ends
 * only its own connection.
 *
 * Invariants:
 *  1. At most `maxConnections` connections are open, and at most `maxConnectionsPerAddress` from
 *     one remote IP address; a connection beyond either is closed as soon as it is accepted.
 *  2. A connection that has not chosen an export within `handshakeTimeoutMs` is dropped (so idle
 *     handshakes cannot hold file descriptors).
 *  3. With `tls`, every listener (TCP and Unix socket alike) speaks TLS with client certificates;
 *     with `tls.require` (the default) nothing is answered before TLS but a refusal.
 *  4. close() stops the listeners, drops every connection and waits until each has closed its export.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { rmSync } from 'node:fs';
import { InputError } from '../errors.ts';
import { SystemClock, type Clock } from '../clock.ts';
import { NbdConnection, DEFAULT_HANDSHAKE_TIMEOUT_MS, type ConnectionOptions, type ExportProvider } from './connection.ts';
import { TlsUpgrader, type NbdPeer, type NbdServerTls } from './starttls.ts';

export interface NbdServerOptions {
  /** TLS with X.509 client certificates (NBD_OPT_STARTTLS). Without it the server speaks plain NBD. */
  tls?: NbdServerTls;
  /**
   * Called once a client's certificate has verified against `tls.ca`: false (or a throw) refuses
   * it; every option it sends is then answered NBD_REP_ERR_POLICY. Without it, any certificate
   * that verifies is enough.
   */
  authorize?: (peer: NbdPeer) => boolean | Promise<boolean>;
  /** false: NBD_OPT_LIST is refused (NBD_REP_ERR_POLICY) even to authenticated clients. Default true. */
  listExports?: boolean;
  /** Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Default 1024. */
  maxConnections?: number;
  /** Per remote IP address (Unix socket connections count only towards maxConnections). Default 64. */
  maxConnectionsPerAddress?: number;
  clock?: Clock;
}

export const DEFAULT_MAX_CONNECTIONS = 1024;
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 64;
/** Refused connections are logged at most this often (a flood would otherwise flood the log). */
const REFUSAL_LOG_MS = 10_000;

function positiveInt(field: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1) throw new InputError(field, 'a whole number of at least 1', undefined, v);
  return v;
}

export interface NbdServerStats {
  /** Connections open now. */
  open: number;
  /** Connections closed at once for being over a limit. */
  refused: number;
  /** Connections dropped for not finishing the handshake in time. */
  timedOut: number;
}

export class NbdServer {
  private servers: Server[] = [];
  private conns = new Map<Duplex, NbdConnection>();
  private perAddress = new Map<string, number>();
  private readonly connOpts: ConnectionOptions;
  private readonly maxConnections: number;
  private readonly maxPerAddress: number;
  private readonly clock: Clock;
  private refusedCount = 0;
  private timedOutCount = 0;
  private refusalsUnlogged = 0;
  private lastRefusalLog = -Infinity;

  constructor(private readonly exports: ExportProvider, private readonly log: (m: string) => void = () => undefined, opts: NbdServerOptions = {}) {
    this.clock = opts.clock ?? new SystemClock();
    this.maxConnections = positiveInt('maxConnections', opts.maxConnections, DEFAULT_MAX_CONNECTIONS);
    this.maxPerAddress = positiveInt('maxConnectionsPerAddress', opts.maxConnectionsPerAddress, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS);
    this.connOpts = {
      ...(opts.tls ? { tls: new TlsUpgrader(opts.tls) } : {}),
      ...(opts.authorize ? { authorize: opts.authorize } : {}),
      listExports: opts.listExports ?? true,
      handshakeTimeoutMs: positiveInt('handshakeTimeoutMs', opts.handshakeTimeoutMs, DEFAULT_HANDSHAKE_TIMEOUT_MS),
      clock: this.clock,
    };
  }

  stats(): NbdServerStats {
    return { open: this.conns.size, refused: this.refusedCount, timedOut: this.timedOutCount };
  }

  /** Serves one client over any duplex stream (tests use in-memory pairs). Limits are applied by the listeners. */
  handle(stream: Duplex): NbdConnection {
    const c = new NbdConnection(stream, this.exports, this.log, this.connOpts);
    this.conns.set(stream, c);
    void c.done.finally(() => {
      this.conns.delete(stream);
      if (c.timedOut) this.timedOutCount++;
    });
    return c;
  }

  /** Accepts a socket, or closes it at once when a limit is reached. */
  private accept(s: Socket): void {
    s.on('error', () => undefined);
    const ip = s.remoteAddress;
    const fromIp = ip === undefined ? 0 : (this.perAddress.get(ip) ?? 0);
    if (this.conns.size >= this.maxConnections || fromIp >= this.maxPerAddress) {
      s.destroy();
      this.refusedCount++;
      this.noteRefusal(ip === undefined || this.conns.size >= this.maxConnections ? `${this.conns.size} connections open (at most ${this.maxConnections})` : `${fromIp} connections open from ${ip} (at most ${this.maxPerAddress} per address)`);
      return;
    }
    if (ip !== undefined) {
      this.perAddress.set(ip, fromIp + 1);
      s.once('close', () => {
        const n = (this.perAddress.get(ip) ?? 1) - 1;
        if (n > 0) this.perAddress.set(ip, n);
        else this.perAddress.delete(ip);
      });
    }
    this.handle(s);
  }

  private noteRefusal(why: string): void {
    this.refusalsUnlogged++;
    const now = this.clock.now();
    if (now - this.lastRefusalLog < REFUSAL_LOG_MS) return;
    this.log(`nbd: refusing connections: ${why}; ${this.refusalsUnlogged} refused since the last report`);
    this.refusalsUnlogged = 0;
    this.lastRefusalLog = now;
  }

  private serve(): Server {
    const server = createServer({ noDelay: true }, (s) => this.accept(s));
    this.servers.push(server);
    return server;
  }

  listen(port: number, host: string): Promise<{ port: number }> {
    const server = this.serve();
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        const a = server.address();
        resolve({ port: typeof a === 'object' && a ? a.port : port });
      });
    });
  }

  /** Also serves on a Unix socket (a private link between processes of one node); a stale socket file is replaced. */
  listenPath(path: string): Promise<void> {
    rmSync(path, { force: true });
    const server = this.serve();
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  }

  async close(): Promise<void> {
    const stopped = Promise.all(this.servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
    this.servers = [];
    const conns = [...this.conns.values()];
    for (const c of conns) c.hangUp();
    await Promise.all([stopped, ...conns.map((c) => c.done)]);
  }
}
