/**
 * @module
 * The Controller VM's composition root (AOS in the reference platform): reads the configuration
 * the hypervisor hands it (CONVERGE_CVM_CONFIG) and runs the CVM (node/cvm.ts) until SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { errorMessage } from '../shared/errors.ts';
import type { CvmConfig } from '../hypervisor/protocol/node-config.ts';
import { Cvm } from './node/cvm.ts';
import { readIdentity } from '../shared/identity.ts';
import { useIdentity } from '../shared/http-client.ts';
import { stopOnPowerLoss } from '../rack/protocol/hardware.ts';

// stdin is a pipe held by the hypervisor: when it closes, the host is gone and so is this VM
// (every process of its group: etcd, Prism).
stopOnPowerLoss();

const cfg = JSON.parse(readFileSync(process.env['CONVERGE_CVM_CONFIG'] ?? '', 'utf8')) as CvmConfig;
const log = (m: string): void => console.log(m);
const cvm = new Cvm(cfg, log);
// the CVM calls its peers' and hosts' APIs as its node (ADR 013)
const id = readIdentity(cfg.identity);
if (id) useIdentity(id);

let stopping = false;
const shutdown = (): void => {
  if (stopping) return;
  stopping = true;
  log('CVM shutting down');
  cvm.stop().then(() => process.exit(0), () => process.exit(1));
  setTimeout(() => process.exit(0), 15_000).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

cvm.start().catch((e: unknown) => {
  log(`cannot start: ${errorMessage(e)}`);
  process.exit(1);
});
