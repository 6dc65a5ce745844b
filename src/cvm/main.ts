/**
 * @module
 * The Controller VM's composition root (AOS in the reference platform): reads the configuration
 * the hypervisor hands it (CONVERGE_CVM_CONFIG) and runs the CVM (node/cvm.ts) until SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { errorMessage } from '../shared/errors.ts';
import { exitOnSignals } from '../shared/processes.ts';
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

exitOnSignals(() => {
  log('CVM shutting down');
  return cvm.stop();
}, 15_000);

cvm.start().catch((e: unknown) => {
  log(`cannot start: ${errorMessage(e)}`);
  process.exit(1);
});
