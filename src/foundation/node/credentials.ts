/**
 * @module
 * The credentials of the nodes Foundation images, and of their installation media.
 *
 * - **Node credential** (`foundationToken`): a random secret Foundation issues to a node each time
 *   it inserts that node's media. The node receives it in its install configuration, the
 *   installer writes it into the node configuration on the boot disk, and the node sends it as
 *   `Authorization: Bearer <token>` with its installer reports and its CVM's announcements.
 *   Foundation keeps only its sha256, per serial, in `<data-dir>/foundation/node-credentials.json`
 *   (mode 0600). A newly issued credential is *pending* beside the node's current one until the
 *   node first uses it (its installer reports), so a re-imaging that never reaches the node leaves
 *   the running node's credential valid.
 * - **Media credential**: a random secret in the path of the media URL Foundation gives the node's
 *   BMC (`/foundation/media/<session>/<serial>/<media token>/…`); the installer finds its
 *   configuration and the bundle beside its media, so only whoever holds that URL (the node's BMC,
 *   and so the node) reads the node's configuration. Kept in memory only: after a restart of
 *   Foundation the nodes mid-flight fail anyway, and a retry inserts media with a new one.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AuthError, ForbiddenError } from '../../shared/errors.ts';
import { readJson, writeJson } from '../../shared/json-file.ts';

const digest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();
const newToken = (): string => randomBytes(32).toString('base64url');
const same = (a: Buffer, hex: string | undefined): boolean => {
  if (hex === undefined) return false;
  const b = Buffer.from(hex, 'hex');
  return b.length === a.length && timingSafeEqual(a, b);
};

interface Entry {
  current?: string;
  pending?: string;
}

/** The token of an `Authorization: Bearer <token>` header; '' when there is none. */
export function bearerOf(header: string | string[] | undefined): string {
  const h = typeof header === 'string' ? header : '';
  const m = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(h.trim());
  return m?.[1] ?? '';
}

export class NodeCredentials {
  private entries: Record<string, Entry>;
  private media = new Map<string, { mediaToken: string; nodeToken: string }>();

  constructor(private readonly file: string) {
    this.entries = readJson<Record<string, Entry>>(file) ?? {};
  }

  private persist(): void {
    writeJson(this.file, this.entries, 0o600);
  }

  /** Whether Foundation ever issued a credential to this node. */
  knows(serial: string): boolean {
    return Object.hasOwn(this.entries, serial);
  }

  /**
   * New credentials for a node about to boot its installation media: a node credential (pending
   * until used) and the media credential; answers the media credential.
   */
  issue(sessionId: string, serial: string): string {
    const nodeToken = newToken();
    const mediaToken = newToken();
    const e = Object.hasOwn(this.entries, serial) ? this.entries[serial] ?? {} : {};
    this.entries[serial] = { ...e, pending: digest(nodeToken).toString('hex') };
    this.persist();
    this.media.set(`${sessionId}/${serial}`, { mediaToken, nodeToken });
    return mediaToken;
  }

  /** The node credential for a node's media, when `mediaToken` is that media's credential. */
  nodeTokenForMedia(sessionId: string, serial: string, mediaToken: string): string {
    const m = this.media.get(`${sessionId}/${serial}`);
    const given = digest(mediaToken);
    if (!m || !same(given, digest(m.mediaToken).toString('hex'))) throw new AuthError('this media URL is not (or no longer) valid: the media of an imaging in progress only');
    return m.nodeToken;
  }

  /**
   * Checks that `token` is the node credential of `serial` (AuthError when it is missing or
   * unknown, ForbiddenError when it is another node's). Using a pending credential makes it the
   * node's current one.
   */
  verify(serial: string, token: string): void {
    if (!token) throw new AuthError(`node ${serial}: send the node's credential (Authorization: Bearer <foundationToken from its install configuration>)`);
    const h = digest(token);
    const e = Object.hasOwn(this.entries, serial) ? this.entries[serial] : undefined;
    if (e && same(h, e.pending)) {
      this.entries[serial] = { current: e.pending ?? '' };
      this.persist();
      return;
    }
    if (e && same(h, e.current)) return;
    const owner = Object.entries(this.entries).find(([s, x]) => s !== serial && (same(h, x.current) || same(h, x.pending)));
    if (owner) throw new ForbiddenError(`this credential belongs to another node, not to ${serial}`);
    throw new AuthError(`node ${serial}: the credential is not valid (a node imaged by this Foundation sends the one it was given)`);
  }
}
