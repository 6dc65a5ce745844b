/**
 * @module
 * The `converge` command.
 */
import { Command } from 'commander';
import { registerRack } from './rack.ts';

const program = new Command();
program.name('converge').description('Converge: an open-source hyperconverged infrastructure platform').version('0.1.0');
registerRack(program);
await program.parseAsync(process.argv);
