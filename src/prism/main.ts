/**
 * @module
 * Prism's composition root: runs in every CVM of a cluster (started by the CVM, configuration in
 * CONVERGE_PRISM_CONFIG). Serves HTTPS on the CVM's address at :9440, campaigns for leadership in
 * the configuration store, and while it leads also serves the cluster's virtual IP.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:https';
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import type { Etcd3 } from 'etcd3';
import { ensureServerCert, type Pem } from '../shared/tls.ts';
import { errorMessage } from '../shared/errors.ts';
import { exitOnSignals } from '../shared/processes.ts';
import { storeClient } from '../cvm/protocol/store.ts';
import { readIdentity, type MemberIdentities } from '../shared/identity.ts';
import { useIdentity } from '../shared/http-client.ts';
import { PRISM_CA_KEY, PRISM_ELECTION, PRISM_PORT, type PrismConfig } from './protocol/prism.ts';
import { Accounts, Tasks } from './node/accounts.ts';
import { SnapshotSource } from './node/source.ts';
import { Leadership } from '../shared/leadership.ts';
import { createPrismApi, createVipServer } from './node/server.ts';
import { SharedSessions } from './node/sessions.ts';
import { Health } from './node/health.ts';
import { VmRecords } from './node/vm-records.ts';
import { cvmCall } from '../cvm/protocol/client.ts';

const cfg = JSON.parse(process.env['CONVERGE_PRISM_CONFIG'] ?? '{}') as PrismConfig;
/** The browser console: beside prism.mjs in the release bundle, or as the repository builds it (running from source). */
const CONSOLE_DIRS = [join(import.meta.dirname, 'console'), join(import.meta.dirname, '..', '..', 'web', 'prism', 'dist')];
const consoleDir = CONSOLE_DIRS.find((d) => existsSync(join(d, 'index.html'))) ?? CONSOLE_DIRS[0] ?? 'console';
const log = (m: string): void => console.log(`prism: ${m}`);

async function caOf(etcd: Etcd3): Promise<Pem> {
  for (let i = 0; ; i++) {
    try {
      const raw = await etcd.get(PRISM_CA_KEY).string();
      if (raw) return JSON.parse(raw) as Pem;
      if (i % 20 === 0) log('waiting for the cluster certificate authority in the configuration store');
    } catch (e) {
      if (i % 20 === 0) log(`waiting for the configuration store (${errorMessage(e)})`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function main(): Promise<void> {
  const member = JSON.parse(readFileSync(cfg.pki.member, 'utf8')) as MemberIdentities;
  const node = readIdentity(cfg.pki.node);
  if (!node) throw new Error(`no node identity at ${cfg.pki.node}`);
  // Prism calls CVMs and hosts as its CVM's member of the cluster (their servers present node certificates)
  useIdentity({ cert: member.cvm.cert, key: member.cvm.key, ca: [...node.ca, member.ca] });
  const etcd = storeClient(cfg.store, { ca: member.ca, cert: member.cvm.cert, key: member.cvm.key }, 2000);
  const ca = await caOf(etcd);
  const ips = [cfg.cvmIp, ...(cfg.vip ? [cfg.vip] : [])];
  const tag = ips.join('_');
  const tls = await ensureServerCert(ca, join(cfg.stateDir, `prism-${tag}.crt`), join(cfg.stateDir, `prism-${tag}.key`), ips);
  let vipServer: Server | undefined;
  let vipTimer: NodeJS.Timeout | undefined;
  const releaseVip = async (): Promise<void> => {
    if (vipTimer) clearTimeout(vipTimer);
    vipTimer = undefined;
    const s = vipServer;
    vipServer = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
    log(`released the virtual IP ${cfg.vip ?? ''}`);
  };
  const sessionTtlS = cfg.sessionTtlS ?? 900;
  const sessions = new SharedSessions(etcd, sessionTtlS * 1000, () => randomBytes(24).toString('base64url'), log);
  // a Prism that leads again must not serve sessions from its memory that ended under another leader
  const leadership: Leadership = new Leadership(etcd, { election: PRISM_ELECTION, self: cfg.cvmIp, ttlS: cfg.leaseTtlS ?? 3, what: 'Prism', log }, {
    elected: () => {
      sessions.forgetLocal();
      takeVip();
    },
    lost: () => {
      sessions.forgetLocal();
      return releaseVip();
    },
  });
  const accounts = new Accounts(etcd);
  await accounts.follow(log);
  const source = new SnapshotSource(etcd, cfg.cvmIp);
  const vmRecords = new VmRecords(etcd, log);
  const health = new Health(etcd, source, (path, o) => cvmCall(cfg.cvmIp, path, o), tls.cert, log);
  const app = createPrismApi({
    cvmIp: cfg.cvmIp, vip: cfg.vip, source, accounts, tasks: new Tasks(etcd, log),
    sessions, health, vmRecords: () => vmRecords.list(),
    leadership, sessionTtlS, log, tls, consoleDir,
  });
  const stopHealth = health.loop(() => leadership.isLeader);
  await app.ready();
  // the leader binds the virtual IP; an old leader may still hold it for a moment: try until it is free
  const takeVip = (): void => {
    const vip = cfg.vip;
    if (!vip || vipServer || !leadership.isLeader) return;
    const s = createVipServer(app, tls);
    s.once('error', (e: NodeJS.ErrnoException) => {
      s.close();
      if (leadership.isLeader) {
        if (e.code !== 'EADDRINUSE') log(`cannot serve the virtual IP ${vip}: ${e.message}`);
        vipTimer = setTimeout(takeVip, 250);
      }
    });
    s.listen(PRISM_PORT, vip, () => {
      if (!leadership.isLeader) {
        s.close();
        return;
      }
      vipServer = s;
      log(`serving the virtual IP https://${vip}:${PRISM_PORT}`);
    });
  };
  await app.listen({ host: cfg.cvmIp, port: PRISM_PORT });
  log(`Prism at https://${cfg.cvmIp}:${PRISM_PORT} (cluster ${cfg.clusterId})`);
  leadership.start();

  exitOnSignals(async () => {
    stopHealth();
    await vmRecords.stop();
    await leadership.stop();
    await releaseVip();
    await app.close();
    await accounts.stop();
    etcd.close();
  }, 5000);
}

main().catch((e: unknown) => {
  log(`cannot start: ${errorMessage(e)}`);
  process.exit(1);
});
