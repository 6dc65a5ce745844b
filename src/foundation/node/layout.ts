/**
 * @module
 * Where Foundation keeps its state in the data dir:
 * ```
 * <data-dir>/foundation/
 *   bundles/<file>.tar.gz        the bundle repository (enumerate_nos_packages)
 *   sessions/<id>/session.json   the request and every node's state
 *   sessions/<id>/events.jsonl   the event log (what the event stream and node logs show)
 *   announced.json               CVMs that announced themselves (with their node's credential)
 *   node-credentials.json        sha256 of each imaged node's credential (0600; node/credentials.ts)
 * ```
 */
import { join } from 'node:path';

export class FoundationLayout {
  readonly root: string;
  constructor(readonly dataDir: string) {
    this.root = join(dataDir, 'foundation');
  }
  get bundles(): string {
    return join(this.root, 'bundles');
  }
  get sessions(): string {
    return join(this.root, 'sessions');
  }
  session(id: string): { dir: string; state: string; events: string } {
    const dir = join(this.root, 'sessions', id);
    return { dir, state: join(dir, 'session.json'), events: join(dir, 'events.jsonl') };
  }
  get announced(): string {
    return join(this.root, 'announced.json');
  }
  get credentials(): string {
    return join(this.root, 'node-credentials.json');
  }
}
