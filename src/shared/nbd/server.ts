/**
 * @module
 * The NBD server: accepts TCP connections and hands each to an NbdConnection. A bad client ends
 * only its own connection.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { NbdConnection, type ExportProvider } from './connection.ts';

export class NbdServer {
  private server: Server | undefined;
  private conns = new Set<Socket>();

  constructor(private readonly exports: ExportProvider, private readonly log: (m: string) => void = () => undefined) {}

  /** Serves one client over any duplex stream (tests use in-memory pairs). */
  handle(stream: Socket): NbdConnection {
    return new NbdConnection(stream, this.exports, this.log);
  }

  listen(port: number, host: string): Promise<{ port: number }> {
    const server = createServer({ noDelay: true }, (s) => {
      this.conns.add(s);
      s.on('close', () => this.conns.delete(s));
      s.on('error', () => undefined);
      this.handle(s);
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        const a = server.address();
        resolve({ port: typeof a === 'object' && a ? a.port : port });
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.conns) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
