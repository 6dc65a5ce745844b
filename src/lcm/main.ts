/**
 * @module
 * LCM's composition root (ADR 018): runs in every CVM of a cluster as a process of its own, started
 * by the CVM (configuration in CONVERGE_LCM_CONFIG) so that nothing LCM does can take the storage
 * down. Serves its API over mutual TLS on the CVM's address at LCM_PORT (the deployment's operator,
 * the cluster's members), campaigns for the right to drive upgrades, and drives one while it leads.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { errorMessage } from '../shared/errors.ts';
import { exitOnSignals } from '../shared/processes.ts';
import { createInternalApi } from '../shared/http-api.ts';
import { useIdentity } from '../shared/http-client.ts';
import { readIdentity, type Identity, type MemberIdentities } from '../shared/identity.ts';
import { storeClient } from '../cvm/protocol/store.ts';
import { BMCS_PREFIX, type StoredBmc } from '../cvm/protocol/bmcs.ts';
import { LCM_PORT, type LcmConfig } from './protocol/lcm.ts';
import { PRISM_CA_KEY } from '../prism/protocol/prism.ts';
import type { Pem } from '../shared/tls.ts';
import { LcmService } from './node/service.ts';
import { registerLcmRoutes } from './node/routes.ts';

const cfg = JSON.parse(process.env['CONVERGE_LCM_CONFIG'] ?? '{}') as LcmConfig;
const log = (m: string): void => console.log(`lcm: ${m}`);

async function main(): Promise<void> {
  const member = JSON.parse(readFileSync(cfg.pki.member, 'utf8')) as MemberIdentities;
  const node = readIdentity(cfg.pki.node);
  if (!node) throw new Error(`no node identity at ${cfg.pki.node}`);
  // LCM calls CVMs, hosts and its peers as its CVM's member of the cluster (their servers present node certificates)
  const identity: Identity = { cert: member.cvm.cert, key: member.cvm.key, ca: [...node.ca, member.ca] };
  useIdentity(identity);
  const etcd = storeClient(cfg.store, { ca: member.ca, cert: member.cvm.cert, key: member.cvm.key }, 2000);
  const service = new LcmService({
    etcd, cluster: { uuid: cfg.clusterId, name: cfg.clusterName }, self: { cvmIp: cfg.cvmIp, serial: cfg.serial }, members: () => cfg.members, identity,
    bundleDir: join(cfg.stateDir, 'bundles'), log, ...(cfg.leaseTtlS ? { leaseTtlS: cfg.leaseTtlS } : {}),
    bmc: async (serial) => {
      const v = await etcd.get(BMCS_PREFIX + serial).string();
      return v === null ? undefined : (JSON.parse(v) as StoredBmc);
    },
    imageCa: async () => {
      const raw = await etcd.get(PRISM_CA_KEY).string();
      if (!raw) throw new Error('the cluster certificate authority is not in the configuration store');
      return JSON.parse(raw) as Pem;
    },
  });
  // bundles are uploaded as long as they keep arriving (longBody routes)
  const app = createInternalApi({ tls: { identity: node, anchors: { deployment: node.ca[0], cluster: member.ca } }, bodyLimit: 1 << 20, longBodyIdleMs: 60_000, log });
  registerLcmRoutes(app, () => service);
  await app.listen({ host: cfg.cvmIp, port: LCM_PORT });
  log(`LCM at https://${cfg.cvmIp}:${LCM_PORT} (cluster ${cfg.clusterId})`);
  service.start();

  exitOnSignals(async () => {
    await service.stop();
    await app.close();
    etcd.close();
  }, 5000);
}

main().catch((e: unknown) => {
  log(`cannot start: ${errorMessage(e)}`);
  process.exit(1);
});
