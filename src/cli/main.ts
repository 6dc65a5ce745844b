/**
 * @module
 * The `converge` command.
 */
import { Command } from 'commander';
import { registerRack } from './rack.ts';
import { registerRackTour } from './rack-tour.ts';

const program = new Command();
program.name('converge').description('Converge: an open-source hyperconverged infrastructure platform').version('0.1.0');
registerRackTour(registerRack(program));
await program.parseAsync(process.argv);
