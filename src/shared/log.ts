/**
 * @module
 * Structured logs (pino, JSON lines on stderr) with secrets kept out: credentials in headers and
 * in well-known fields are redacted, and URLs that carry a secret in their path or query (a
 * node's media token, the login token) are logged without it.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

/** Fields never written, wherever they appear one level down (and request headers). */
export const REDACTED_PATHS = [
  'req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]',
  '*.password', '*.adminPassword', '*.admin_password', '*.ipmi_password', '*.key', '*.token', '*.foundationToken', '*.apiToken', '*.passwordHash',
];

/** A URL as it may be logged: the media token of /foundation/media/<session>/<serial>/<token>/… and any token= query value removed. */
export function redactUrl(url: string): string {
  return url
    .replace(/^(\/foundation\/media\/[^/]+\/[^/]+\/)[^/?]+/, '$1[redacted]')
    .replace(/([?&](?:token|password|api_key)=)[^&]*/gi, '$1[redacted]');
}

export function createLogger(o: { name: string; level?: string; destination?: DestinationStream }): Logger {
  return pino({
    name: o.name,
    level: o.level ?? process.env['CONVERGE_LOG_LEVEL'] ?? 'info',
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    serializers: {
      req: (r: { method?: string; url?: string; ip?: string }) => ({ method: r.method, url: redactUrl(r.url ?? ''), remote: r.ip }),
    },
  }, o.destination ?? pino.destination(2));
}
