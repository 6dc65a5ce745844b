/**
 * @module
 * The Controller VM's software (AOS in the reference platform), first cut: it takes ownership of
 * the passed-through data disks, answers on cvmIp:2100, and announces itself to Foundation as up
 * and unconfigured (or configured, once it belongs to a cluster). Issue 4 adds the service
 * manager, cluster formation and the storage fabric.
 */
import { createServer } from 'node:http';
import { readFileSync, mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { DiskVolume } from '../shared/disk-volume.ts';
import { errorMessage } from '../shared/errors.ts';
import { CVM_STATUS_PORT, type CvmConfig } from '../hypervisor/protocol/node-config.ts';
import type { CvmAnnounce } from '../foundation/protocol/installer.ts';

const cfg = JSON.parse(readFileSync(process.env['CONVERGE_CVM_CONFIG'] ?? '', 'utf8')) as CvmConfig;
const log = (m: string): void => console.log(m);
mkdirSync(cfg.stateDir, { recursive: true });
const statePath = join(cfg.stateDir, 'cluster.json');
const cluster = existsSync(statePath) ? (JSON.parse(readFileSync(statePath, 'utf8')) as { clusterId: string | null }) : { clusterId: null };

const disks = cfg.disks.map((d) => {
  try {
    const v = DiskVolume.open(d.path);
    return { serial: d.serial, mediaType: d.mediaType, capacityBytes: v.capacityBytes, usedBytes: v.used(), ok: true };
  } catch (e) {
    log(`disk ${d.serial}: ${errorMessage(e)}`);
    return { serial: d.serial, mediaType: d.mediaType, capacityBytes: d.capacityBytes, usedBytes: 0, ok: false };
  }
});

const announce: CvmAnnounce = {
  serial: cfg.serial, cvmIp: cfg.cvmIp, hostIp: cfg.hostIp, hypervisorVersion: cfg.versions.hypervisor, nosVersion: cfg.versions.nos,
  configured: cluster.clusterId !== null, clusterId: cluster.clusterId,
};

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/status') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ ...announce, disks }));
    return;
  }
  res.writeHead(404, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ error: { code: 'CVG_ERR_NOT_FOUND', message: `no ${req.method ?? ''} ${req.url ?? ''}` } }));
});

let timer: NodeJS.Timeout | undefined;
async function announceLoop(delayMs: number): Promise<void> {
  let next = 60_000;
  try {
    const r = await fetch(new URL('/foundation/cvm_announce', cfg.foundationUrl), {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(announce), signal: AbortSignal.timeout(10_000),
    });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    if (delayMs === 0) log(`announced to Foundation at ${cfg.foundationUrl}`);
  } catch (e) {
    next = Math.min(Math.max(delayMs * 2, 500), 30_000);
    if (delayMs === 0) log(`cannot reach Foundation yet (${errorMessage(e)}); retrying`);
  }
  timer = setTimeout(() => void announceLoop(next), next);
}

function shutdown(): void {
  log('CVM shutting down');
  if (timer) clearTimeout(timer);
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

server.on('error', (e) => {
  log(`cannot listen on ${cfg.cvmIp}:${CVM_STATUS_PORT}: ${e.message}`);
  process.exit(1);
});
server.listen(CVM_STATUS_PORT, cfg.cvmIp, () => {
  log(`CVM up: storage OS ${cfg.versions.nos} at ${cfg.cvmIp}, ${disks.filter((d) => d.ok).length}/${disks.length} disks, ${announce.configured ? `in cluster ${announce.clusterId ?? ''}` : 'unconfigured'}`);
  void announceLoop(0);
});
