/**
 * @module
 * `converge container ...` and `converge vdisk ...`: the storage metadata of a cluster, through any
 * of its CVMs (`--cvm-ip`, or CONVERGE_CVM_IP).
 */
import type { Command } from 'commander';
import type { Container, Vdisk } from '../cvm/core/storage.ts';
import type { PoolView } from '../cvm/protocol/cluster.ts';
import { fail, printJson, table } from './output.ts';
import { cvm, cvmTarget as target, withDataDir } from './cluster.ts';

const gib = (b: number): string => `${(b / 1024 ** 3).toFixed(b % 1024 ** 3 === 0 ? 0 : 2)} GiB`;

export function registerStorage(program: Command): void {
  const withCvm = (c: Command): Command => withDataDir(c.option('--cvm-ip <ip>', 'any CVM of the cluster').option('--json', 'machine-readable output'));

  const container = program.command('container').description('storage containers: a namespace with a replication factor');
  withCvm(container.command('create'))
    .requiredOption('--name <name>')
    .option('--rf <n>', 'replication factor (default: the cluster\'s)')
    .action(async (o: { cvmIp?: string; json?: boolean; name: string; rf?: string }) => {
      try {
        const body: Record<string, unknown> = { name: o.name };
        if (o.rf !== undefined) body['replicationFactor'] = Number(o.rf);
        const c = await cvm<Container>(target(o), '/storage/containers', body);
        if (o.json) printJson(c);
        else process.stdout.write(`container ${c.name} created (RF${c.replicationFactor})\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });
  withCvm(container.command('list')).action(async (o: { cvmIp?: string; json?: boolean }) => {
    try {
      const ip = target(o);
      const [cs, p] = await Promise.all([cvm<Container[]>(ip, '/storage/containers'), cvm<PoolView>(ip, '/storage/pool')]);
      const use = new Map(p.usage.containers.map((u) => [u.name, u]));
      if (o.json) return printJson(cs.map((c) => ({ ...c, usage: use.get(c.name) ?? null })));
      const rows = [['CONTAINER', 'RF', 'VDISKS', 'PROVISIONED', 'WRITTEN', 'PHYSICAL']];
      for (const c of cs) {
        const u = use.get(c.name);
        rows.push([c.name, String(c.replicationFactor), String(u?.vdisks ?? 0), gib(u?.provisionedBytes ?? 0), gib(u?.logicalBytes ?? 0), gib(u?.physicalBytes ?? 0)]);
      }
      process.stdout.write(table(rows) + '\n');
      const uncounted = p.usage.uncountedDisks ?? [];
      if (uncounted.length > 0) process.stdout.write(`WRITTEN and PHYSICAL leave out disk(s) ${uncounted.join(', ')}: their CVMs did not report what they hold\n`);
    } catch (e) {
      fail(e, o.json === true);
    }
  });
  withCvm(container.command('delete')).argument('<name>').action(async (name: string, o: { cvmIp?: string; json?: boolean }) => {
    try {
      await cvm(target(o), `/storage/containers/${encodeURIComponent(name)}`, undefined, 30_000, 'DELETE');
      if (o.json) printJson({ deleted: name });
      else process.stdout.write(`container ${name} deleted\n`);
    } catch (e) {
      fail(e, o.json === true);
    }
  });

  const vdisk = program.command('vdisk').description('virtual disks: block devices served over NBD by the CVMs');
  withCvm(vdisk.command('create'))
    .requiredOption('--name <name>')
    .requiredOption('--size <size>', 'e.g. 10G, 512M')
    .option('--container <name>', 'container', 'default-container')
    .action(async (o: { cvmIp?: string; json?: boolean; name: string; size: string; container: string }) => {
      try {
        const v = await cvm<Vdisk>(target(o), '/storage/vdisks', { name: o.name, size: o.size, container: o.container });
        if (o.json) printJson(v);
        else process.stdout.write(`vdisk ${v.name} created: ${gib(v.sizeBytes)} in ${v.container}\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });
  withCvm(vdisk.command('list')).action(async (o: { cvmIp?: string; json?: boolean }) => {
    try {
      const vs = await cvm<Vdisk[]>(target(o), '/storage/vdisks');
      if (o.json) return printJson(vs);
      const rows = [['VDISK', 'SIZE', 'CONTAINER', 'UUID']];
      for (const v of vs) rows.push([v.name, gib(v.sizeBytes), v.container, v.uuid]);
      process.stdout.write(table(rows) + '\n');
    } catch (e) {
      fail(e, o.json === true);
    }
  });
  withCvm(vdisk.command('delete')).argument('<name>').action(async (name: string, o: { cvmIp?: string; json?: boolean }) => {
    try {
      await cvm(target(o), `/storage/vdisks/${encodeURIComponent(name)}`, undefined, 30_000, 'DELETE');
      if (o.json) printJson({ deleted: name });
      else process.stdout.write(`vdisk ${name} deleted\n`);
    } catch (e) {
      fail(e, o.json === true);
    }
  });
}
