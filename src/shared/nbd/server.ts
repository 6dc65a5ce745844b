/**
 * @module
 * The NBD server: accepts TCP (and Unix socket) connections and hands each to an NbdConnection. A bad client ends
 * only its own connection.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { NbdConnection, type ExportProvider } from './connection.ts';

export class NbdServer {
  private servers: Server[] = [];
  private conns = new Set<Socket>();

  constructor(private readonly exports: ExportProvider, private readonly log: (m: string) => void = () => undefined) {}

  /** Serves one client over any duplex stream (tests use in-memory pairs). */
  handle(stream: Socket): NbdConnection {
    return new NbdConnection(stream, this.exports, this.log);
  }

  private serve(): Server {
    const server = createServer({ noDelay: true }, (s) => {
      this.conns.add(s);
      s.on('close', () => this.conns.delete(s));
      s.on('error', () => undefined);
      this.handle(s);
    });
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
    for (const s of this.conns) s.destroy();
    await Promise.all(this.servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
    this.servers = [];
  }
}
