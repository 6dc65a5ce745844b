/**
 * @module
 * The `converge` command.
 */
import { Command } from 'commander';
import { registerRack } from './rack.ts';
import { registerRackTour } from './rack-tour.ts';
import { registerFoundation } from './foundation.ts';
import { registerCluster } from './cluster.ts';
import { registerStorage } from './storage.ts';
import { registerDemo } from './demo.ts';
import { registerCompute } from './compute.ts';
import { registerHealth } from './health.ts';
import { registerLcm } from './lcm.ts';

const program = new Command();
program.name('converge').description('Converge: an open-source hyperconverged infrastructure platform').version('0.1.0').enablePositionalOptions();
registerRackTour(registerRack(program));
registerFoundation(program);
registerCluster(program);
registerStorage(program);
registerCompute(program);
registerHealth(program);
registerLcm(program);
registerDemo(program);
await program.parseAsync(process.argv);
