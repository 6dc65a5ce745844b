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
import { guestImageCommand } from './guest.ts';

const program = new Command();
program.name('converge').description('Converge: an open-source hyperconverged infrastructure platform').version('0.1.0').enablePositionalOptions();
registerRackTour(registerRack(program));
registerFoundation(program);
registerCluster(program);
registerStorage(program);
registerDemo(program);
program.command('image').description('VM disk images').addCommand(guestImageCommand());
await program.parseAsync(process.argv);
