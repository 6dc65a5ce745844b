/**
 * @module
 * The rack daemon's composition root: loads the rack of a data dir, starts it, records its pid
 * and control URL in daemon.json, and stops it cleanly on SIGTERM, SIGINT or POST /rack/shutdown.
 */
import { existsSync, rmSync } from 'node:fs';
import { SystemClock } from '../shared/clock.ts';
import { SeededRandom } from '../shared/random.ts';
import { writeJson } from '../shared/json-file.ts';
import { errorMessage } from '../shared/errors.ts';
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
  /** Stops, then exits: 0 when the stop went well, 1 (after logging why) when it did not. */
  const stopAndExit = (why: string): void => {
    stop(why).then(
      () => process.exit(0),
      (e: unknown) => {
        log(`rack stop failed: ${errorMessage(e)}`);
        process.exit(1);
      },
    );
  };
  rack.onShutdownRequest = () => stopAndExit('shutdown requested');
  process.on('SIGTERM', () => stopAndExit('SIGTERM'));
  process.on('SIGINT', () => stopAndExit('SIGINT'));
  try {
    await rack.start();
  } catch (e) {
    await rack.stop().catch((e2: unknown) => log(`rack stop after a failed start: ${errorMessage(e2)}`));
    throw e;
  }
  const info: DaemonInfo = { pid: process.pid, controlUrl: rack.controlUrl, startedAt: new Date().toISOString() };
  writeJson(rack.layout.daemonJson, info);
  log(`rack up: ${rack.nodes.length} nodes, control API ${rack.controlUrl}, SSDP ${rack.ssdpActive ? 'on' : 'off'}`);
  onReady?.(rack);
}
