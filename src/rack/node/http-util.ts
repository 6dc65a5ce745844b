/**
 * @module
 * HTTP helpers for the rack's small HTTP servers and its downloads: reading a request body with a
 * size limit (draining what is over it, so that the 413 arrives), reading a download with a size
 * limit, and keeping credentials out of URLs that are shown or logged.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

/** A request body over its limit. The request was read to its end when `drained` (the connection may be kept). */
export class BodyTooLarge extends Error {
  constructor(readonly limit: number, readonly drained: boolean) {
    super(`the request body is larger than ${limit} bytes`);
  }
}

/** The BMC's and the control API's default limit on a request body. */
export const BODY_LIMIT = 1 << 20;
/**
 * How much of a body over its limit is still read (and thrown away) so that the answer reaches the
 * client: closing a socket with unread data resets the connection, and the client loses the answer.
 * A body declared larger than limit + this is refused without reading it.
 */
export const DRAIN_LIMIT = 16 << 20;

/**
 * Reads a request body of at most `limit` bytes. Over the limit it keeps nothing, reads on to the
 * end (at most `drainLimit` more), then rejects with BodyTooLarge; a Content-Length beyond that is
 * refused at once, unread. Either way the caller answers 413 and closes the connection.
 */
export function readBody(req: IncomingMessage, limit = BODY_LIMIT, drainLimit = DRAIN_LIMIT): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit + drainLimit) return Promise.reject(new BodyTooLarge(limit, false));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size <= limit) {
        chunks.push(c);
        return;
      }
      chunks.length = 0;
      if (size > limit + drainLimit) {
        req.off('data', onData);
        req.pause();
        reject(new BodyTooLarge(limit, false));
      }
    };
    req.on('data', onData);
    req.on('end', () => (size > limit ? reject(new BodyTooLarge(limit, true)) : resolve(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
    // a client that goes away mid-body: settle (a later resolve or reject does nothing)
    req.on('close', () => reject(new Error('the client went away before sending its whole request')));
  });
}

/**
 * The path and query of a request target, without the URL parser: origin form ("/a?b") or absolute
 * form ("http://host/a?b"), never throwing on odd input (which then simply names no resource).
 */
export function splitTarget(target: string): { path: string; query: string } {
  let t = target;
  const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(t);
  if (abs) t = t.slice(abs[0].length) || '/';
  const hash = t.indexOf('#');
  if (hash >= 0) t = t.slice(0, hash);
  const q = t.indexOf('?');
  return q < 0 ? { path: t, query: '' } : { path: t.slice(0, q), query: t.slice(q + 1) };
}

/** Whether a request announces a body (Content-Length above 0, or chunked). */
export function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

/**
 * The status for a request Node's HTTP parser refused ('clientError'): 501 for a method it does
 * not know (RFC 9110 §15.6.2; DSP0266 "501 Not Implemented"), 431 for headers over its limit, 408
 * for a request that took too long, 400 for anything else malformed. Undefined when there is no one
 * to answer (the connection is gone).
 */
export function clientErrorStatus(err: Error & { code?: string }, socket: Duplex): number | undefined {
  if (err.code === 'ECONNRESET' || !socket.writable) return undefined;
  const byCode: Record<string, number> = { HPE_INVALID_METHOD: 501, HPE_HEADER_OVERFLOW: 431, ERR_HTTP_REQUEST_TIMEOUT: 408 };
  return byCode[err.code ?? ''] ?? 400;
}

/** Writes a whole HTTP/1.1 response on a raw socket (outside Node's HTTP server), then closes it. */
export function writeRawResponse(socket: Duplex, status: number, headers: Record<string, string>, body: string): void {
  const all: Record<string, string> = { ...headers, 'Content-Length': String(Buffer.byteLength(body)), Connection: 'close' };
  const head = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`, ...Object.entries(all).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
  socket.end(`${head}\r\n\r\n${body}`, () => socket.destroy());
}

/** The media type of a Content-Type header, without parameters, lower case ('' when absent). */
export function mediaType(contentType: string | string[] | undefined): string {
  const v = Array.isArray(contentType) ? contentType[0] : contentType;
  return (v ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

export interface Credentials {
  userName: string;
  password: string;
}

/**
 * Splits the user-info off a URL: the URL to show, log and fetch, and the credentials it carried
 * (to send as HTTP Basic). A URL without user-info comes back as it was given.
 */
export function splitUserInfo(raw: string): { url: string; credentials?: Credentials } {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return { url: raw };
  }
  if (u.username === '' && u.password === '') return { url: raw };
  const dec = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const credentials = { userName: dec(u.username), password: dec(u.password) };
  u.username = '';
  u.password = '';
  return { url: u.href, credentials };
}

/** A URL fit for logs, the console and the SEL: without user-info. */
export function redactUrl(raw: string): string {
  return splitUserInfo(raw).url;
}

/** The Authorization header value of HTTP Basic credentials. */
export function basicAuth(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.userName}:${c.password}`).toString('base64')}`;
}

export class DownloadTooLarge extends Error {
  constructor(readonly limit: number, size?: number) {
    super(`${size === undefined ? 'more than' : `${size} bytes; at most`} ${limit} bytes`);
  }
}

/**
 * Reads a download's chunks, refusing more than `limit` bytes (by Content-Length up front, and by
 * counting as it reads). `onChunk` sees each chunk (for streaming to a file).
 */
export async function readLimited(res: Response, limit: number, onChunk: (chunk: Uint8Array) => void | Promise<void>): Promise<number> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > limit) {
    await res.body?.cancel().catch(() => undefined);
    throw new DownloadTooLarge(limit, declared);
  }
  if (!res.body) return 0;
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > limit) throw new DownloadTooLarge(limit);
    await onChunk(chunk);
  }
  return size;
}
