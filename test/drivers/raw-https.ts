/**
 * @module
 * Raw HTTP/1.1 over TLS for fuzz and attack tests: any bytes as the request, an optional client
 * certificate, and the status and body of whatever comes back (status 0: nothing did).
 */
import { connect } from 'node:tls';

export interface RawAnswer {
  status: number;
  body: string;
}

/** A request's bytes: method, path, content type (none when empty) and body, Connection: close. */
export function httpRequest(host: string, method: string, path: string, type: string, body: string): Buffer {
  const b = Buffer.from(body);
  return Buffer.concat([Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n${type ? `Content-Type: ${type}\r\n` : ''}Content-Length: ${b.length}\r\n\r\n`, 'latin1'), b]);
}

export function rawTls(host: string, port: number, request: Buffer, o: { ca: string[]; cert?: string; key?: string }): Promise<RawAnswer> {
  return new Promise((resolve) => {
    // write, not end: ending sends TLS close_notify, and a server may close before it answers (Connection: close ends it)
    const s = connect({ host, port, ca: o.ca, ...(o.cert && o.key ? { cert: o.cert, key: o.key } : {}) }, () => s.write(request));
    const out: Buffer[] = [];
    s.on('data', (c: Buffer) => out.push(c));
    s.on('close', () => {
      const text = Buffer.concat(out).toString('latin1');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    s.on('error', () => undefined);
    s.setTimeout(10_000, () => s.destroy());
  });
}
