/**
 * @module
 * Where a rack keeps everything in its data dir. One place, so the daemon, the CLI and tests
 * agree.
 *
 * ```
 * <data-dir>/rack/
 *   rack.json            the rack: nodes (identity, model), BMC credentials, pace, custom models
 *   control-token        the control API's bearer token (mode 0600; protocol/access.ts reads it)
 *   daemon.json          while the rack runs: pid and control URL
 *   rack.log             the daemon's log
 *   ca/ca.crt, ca.key    the rack's CA (clients trust ca.crt)
 *   nodes/<serial>/
 *     state.json         power, boot override, virtual media, BMC settings, firmware, faults
 *     events.json        the system event log (SEL)
 *     console.log        the serial console
 *     hardware.json      what the running program is told about its hardware
 *     tls/bmc.crt, bmc.key
 *     boot/              the boot disk (a DiskVolume)
 *     disks/<slot>-<serial>/   data disks (DiskVolumes)
 *     media/             downloaded virtual media, unpacked
 * ```
 */
import { join } from 'node:path';
import { homedir } from 'node:os';
import { CONTROL_TOKEN_FILE } from '../protocol/access.ts';

export function defaultDataDir(): string {
  return process.env['CONVERGE_DATA_DIR'] ?? join(homedir(), '.converge');
}

export class RackLayout {
  readonly root: string;
  constructor(readonly dataDir: string) {
    this.root = join(dataDir, 'rack');
  }
  get rackJson(): string {
    return join(this.root, 'rack.json');
  }
  get controlToken(): string {
    return join(this.root, CONTROL_TOKEN_FILE);
  }
  get daemonJson(): string {
    return join(this.root, 'daemon.json');
  }
  get log(): string {
    return join(this.root, 'rack.log');
  }
  get caCert(): string {
    return join(this.root, 'ca', 'ca.crt');
  }
  get caKey(): string {
    return join(this.root, 'ca', 'ca.key');
  }
  node(serial: string): NodeLayout {
    return new NodeLayout(join(this.root, 'nodes', serial));
  }
}

export class NodeLayout {
  constructor(readonly dir: string) {}
  get state(): string {
    return join(this.dir, 'state.json');
  }
  get events(): string {
    return join(this.dir, 'events.json');
  }
  get console(): string {
    return join(this.dir, 'console.log');
  }
  get hardware(): string {
    return join(this.dir, 'hardware.json');
  }
  get tlsCert(): string {
    return join(this.dir, 'tls', 'bmc.crt');
  }
  get tlsKey(): string {
    return join(this.dir, 'tls', 'bmc.key');
  }
  get bootDisk(): string {
    return join(this.dir, 'boot');
  }
  disk(slot: number, serial: string): string {
    return join(this.dir, 'disks', `${slot}-${serial}`);
  }
  get media(): string {
    return join(this.dir, 'media');
  }
}
