/**
 * @module
 * HTTP helpers for the rack's small HTTP servers and its downloads: reading a request body with a
 * size limit, reading a download with a size limit, and keeping credentials out of URLs that are
 * shown or logged.
 */
import type { IncomingMessage } from 'node:http';

export class BodyTooLarge extends Error {}

export function readBody(req: IncomingMessage, limit = 1 << 20): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new BodyTooLarge(`request body larger than ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
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
