/**
 * @module
 * The rack daemon's composition root: loads the rack of a data dir, starts it, records its pid
 * and control URL in daemon.json, and stops it cleanly on SIGTERM, SIGINT or POST /rack/shutdown.
 */
import { existsSync, rmSync } from 'node:fs';
import { SystemClock } from '../shared/clock.ts';
import { SeededRandom } from '../shared/random.ts';
import { writeJson } from '../shared/json-file.ts';
import { Rack } from './node/rack.ts';

export interface DaemonInfo {
  pid: number;
  controlUrl: string;
  startedAt: string;
}

export async function runRackDaemon(dataDir: string, onReady?: (rack: Rack) => void): Promise<void> {
  const log = (m: string): void => {
    process.stderr.write(`${new Date().toISOString()} ${m}\n`);
  };
  const rack = Rack.load({ dataDir, clock: new SystemClock(), random: new SeededRandom(Date.now() & 0xffffffff), log });
  let stopping: Promise<void> | undefined;
  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log(`rack stopping (${why})`);
      await rack.stop();
      if (existsSync(rack.layout.daemonJson)) rmSync(rack.layout.daemonJson);
      log('rack stopped');
    })();
    return stopping;
  };
  rack.onShutdownRequest = () => void stop('shutdown requested').then(() => process.exit(0));
  process.on('SIGTERM', () => void stop('SIGTERM').then(() => process.exit(0)));
  process.on('SIGINT', () => void stop('SIGINT').then(() => process.exit(0)));
  try {
    await rack.start();
  } catch (e) {
    await rack.stop().catch(() => undefined);
    throw e;
  }
  const info: DaemonInfo = { pid: process.pid, controlUrl: rack.controlUrl, startedAt: new Date().toISOString() };
  writeJson(rack.layout.daemonJson, info);
  log(`rack up: ${rack.nodes.length} nodes, control API ${rack.controlUrl}, SSDP ${rack.ssdpActive ? 'on' : 'off'}`);
  onReady?.(rack);
}
