/**
 * @module
 * The compute commands, as acli is on the reference platform: `converge vm …`, `converge image …`,
 * `converge subnet …`, `converge host …`, through any CVM of the cluster (`--cvm-ip` or
 * CONVERGE_CVM_IP; the VM service's leader does the work). Each long action is a task: the command
 * shows its progress until it ends (or returns at once with `--no-wait`) and exits 1 when it fails.
 */
import { createReadStream, statSync } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../shared/errors.ts';
import type { Accepted, Image, Subnet, Task, Vm, VmCreateRequest, VmDiskRequest, VmHost, VmNicRequest, VmPowerAction, VmUpdateRequest } from '../cvm/protocol/vms.ts';
import type { ConsoleChunk } from '../hypervisor/protocol/vms.ts';
import { fail, printJson, table } from './output.ts';
import { cvm, cvmTarget, cvmWith, withDataDir } from './cluster.ts';
import { guestImageCommand } from './guest.ts';

interface Common {
  cvmIp?: string;
  json?: boolean;
  wait?: boolean;
}

const UNITS: Record<string, number> = { '': 1, K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 };

/** A memory size in MiB from "256M", "2G" or a plain number of MiB. */
export function parseMiB(v: string, field: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(v.trim());
  const n = m ? Number(m[1]) * (UNITS[(m[2] ?? '').toUpperCase()] ?? NaN) : NaN;
  if (!Number.isFinite(n) || n <= 0 || !Number.isInteger(n)) throw new InputError(field, `a size such as 256M or 2G (whole MiB), not ${JSON.stringify(v)}`);
  return n;
}

/** A disk size in bytes from "10G", "512M". */
export function parseBytes(v: string, field: string): number {
  return parseMiB(v, field) * 1024 * 1024;
}

function positiveInt(v: string, field: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InputError(field, `a whole number of at least 1, not ${JSON.stringify(v)}`);
  return n;
}

/** `--nic subnet[=ip]`, repeatable. */
export function parseNic(v: string): VmNicRequest {
  const [subnet = '', ip] = v.split('=');
  if (subnet === '') throw new InputError('nic', 'give a subnet name (or name=address)');
  return ip ? { subnet, ip } : { subnet };
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

const mib = (n: number): string => (n >= 1024 && n % 1024 === 0 ? `${n / 1024} GiB` : `${n} MiB`);
const size = (b: number): string => (b >= 1024 ** 3 ? `${(b / 1024 ** 3).toFixed(b % 1024 ** 3 === 0 ? 0 : 1)} GiB` : `${Math.round(b / 1024 ** 2)} MiB`);

/** Follows a task to its end: a progress line on stderr (a terminal), the task at the end; throws when it fails. */
export async function followTask(ip: string, uuid: string, json: boolean, timeoutMs = 30 * 60_000): Promise<Task> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const t = await cvm<Task>(ip, `/tasks/${encodeURIComponent(uuid)}`);
    const line = `${t.operation} ${t.entity.name}: ${t.state} ${t.percent}% ${t.message}`;
    if (!json && line !== last) {
      process.stderr.write(process.stderr.isTTY ? `\r\u001b[K${line}` : `${line}\n`);
      last = line;
    }
    if (t.state === 'succeeded' || t.state === 'failed' || t.state === 'aborted') {
      if (!json && process.stderr.isTTY) process.stderr.write('\n');
      if (t.state !== 'succeeded') {
        const e = t.error;
        if (e?.field) throw new InputError(e.field, e.message.replace(`${e.field}: `, ''));
        throw new Error(`${t.operation} ${t.entity.name} ${t.state}: ${e?.message ?? t.message}`);
      }
      return t;
    }
    if (Date.now() > deadline) throw new Error(`task ${uuid} (${t.operation}) still ${t.state} after ${timeoutMs / 1000} s; follow it with: converge task get ${uuid}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * Runs a mutation and, unless --no-wait, follows its task (and, with `children`, the tasks it
 * started: a create with --power-on powers the VM on in a task of its own); prints the task (JSON)
 * or `done`.
 */
async function mutate(o: Common, path: string, body: unknown, done: (t: Task) => string, method?: string, children = false): Promise<void> {
  const ip = cvmTarget(o);
  const a = await cvm<Accepted>(ip, path, body, 60_000, method);
  if (o.wait === false) {
    if (o.json) printJson(a);
    else process.stdout.write(`task ${a.taskUuid} accepted (converge task get ${a.taskUuid})\n`);
    return;
  }
  const t = await followTask(ip, a.taskUuid, o.json === true);
  if (children) {
    const started = (await cvm<Task[]>(ip, `/tasks?entity=${encodeURIComponent(t.entity.uuid)}`)).filter((c) => c.parent === t.uuid);
    for (const c of started) await followTask(ip, c.uuid, o.json === true);
  }
  if (o.json) printJson(t);
  else process.stdout.write(done(t) + '\n');
}

/** A VM's uuid from its name or uuid. */
async function vmOf(ip: string, ref: string): Promise<Vm> {
  const vms = await cvm<Vm[]>(ip, '/vms');
  const found = vms.filter((v) => v.uuid === ref || v.name === ref);
  if (found.length === 0) throw new InputError('vm', `no VM named ${ref}`);
  if (found.length > 1) throw new InputError('vm', `${found.length} VMs are named ${ref}; give its uuid (${found.map((v) => v.uuid).join(', ')})`);
  return found[0] as Vm;
}

async function imageOf(ip: string, ref: string): Promise<Image> {
  const found = (await cvm<Image[]>(ip, '/images')).find((i) => i.uuid === ref || i.name === ref);
  if (!found) throw new InputError('image', `no image named ${ref}`);
  return found;
}

function vmRows(vms: readonly Vm[], hosts: readonly VmHost[]): string[][] {
  const hostName = new Map(hosts.map((h) => [h.serial, h.hostIp]));
  const rows = [['VM', 'POWER', 'STATE', 'HOST', 'VCPUS', 'MEMORY', 'DISKS', 'IPS', 'UUID']];
  for (const v of vms) {
    const ips = v.nics.map((n) => n.ip ?? '-').join(',') || '-';
    rows.push([v.name, v.powerState, v.runtimeState, v.host ? hostName.get(v.host.serial) ?? v.host.hostIp : '-', String(v.vcpus), mib(v.memoryMiB), String(v.disks.length), ips, v.uuid]);
  }
  return rows;
}

function describeVm(v: Vm): string {
  const lines = [
    `VM ${v.name} (${v.uuid})`,
    `  power      ${v.powerState} (${v.runtimeState})${v.host ? ` on ${v.host.hostIp} (${v.host.serial})` : ''}`,
    `  vCPUs      ${v.vcpus}`,
    `  memory     ${mib(v.memoryMiB)}`,
    `  HA         ${v.ha ? 'restart elsewhere when its host fails' : 'off'}`,
    `  spec       version ${v.specVersion}, placement epoch ${v.epoch}`,
  ];
  for (const [i, d] of v.disks.entries()) lines.push(`  disk ${i}     ${d.bus} ${d.vdisk} ${size(d.sizeBytes)}${d.image ? ` (from image ${d.image})` : ''}${d.bootIndex ? ` boot ${d.bootIndex}` : ''}`);
  for (const [i, n] of v.nics.entries()) lines.push(`  nic ${i}      ${n.mac} subnet ${n.subnetUuid} ${n.ip ?? 'no address'}`);
  return lines.join('\n');
}

export function registerCompute(program: Command): void {
  const common = (c: Command, wait = false): Command => {
    withDataDir(c.option('--cvm-ip <ip>', 'any CVM of the cluster').option('--json', 'machine-readable output'));
    return wait ? c.option('--no-wait', 'return once the task is accepted') : c;
  };

  // ---- vm ----
  const vm = program.command('vm').description('virtual machines: QEMU guests whose disks are vdisks on the fabric');
  common(vm.command('create'), true)
    .description('create a VM: a boot disk copied from an image, empty data disks, NICs on subnets')
    .requiredOption('--name <name>')
    .option('--vcpus <n>', 'virtual CPUs', '1')
    .option('--memory <size>', 'memory, e.g. 256M or 2G', '256M')
    .option('--image <image>', 'boot disk: a copy of this image')
    .option('--disk <size>', 'an empty data disk of this size (repeatable)', collect)
    .option('--vdisk <name>', 'attach an existing vdisk as it is (repeatable)', collect)
    .option('--cdrom <image>', 'a CD-ROM holding this (ISO) image')
    .option('--nic <subnet[=ip]>', 'a NIC on this subnet, with a fixed address if given (repeatable)', collect)
    .option('--no-ha', 'do not restart it elsewhere when its host fails')
    .option('--power-on', 'power it on once created')
    .action(async (o: Common & { name: string; vcpus: string; memory: string; image?: string; disk?: string[]; vdisk?: string[]; cdrom?: string; nic?: string[]; ha: boolean; powerOn?: boolean }) => {
      try {
        const disks: VmDiskRequest[] = [];
        if (o.image) disks.push({ image: o.image });
        for (const d of o.disk ?? []) disks.push({ sizeBytes: parseBytes(d, 'disk') });
        for (const d of o.vdisk ?? []) disks.push({ vdisk: d });
        if (o.cdrom) disks.push({ cdromImage: o.cdrom });
        const req: VmCreateRequest = {
          name: o.name, vcpus: positiveInt(o.vcpus, 'vcpus'), memoryMiB: parseMiB(o.memory, 'memory'), disks,
          nics: (o.nic ?? []).map(parseNic), ha: o.ha, powerOn: o.powerOn === true,
        };
        await mutate(o, '/vms', req, (t) => `VM ${o.name} created (${t.entity.uuid})${o.powerOn ? ' and powered on' : ''}`, undefined, o.powerOn === true);
      } catch (e) {
        fail(e, o.json === true);
      }
    });
  common(vm.command('list')).action(async (o: Common) => {
    try {
      const ip = cvmTarget(o);
      const [vms, hosts] = await Promise.all([cvm<Vm[]>(ip, '/vms'), cvm<VmHost[]>(ip, '/hosts')]);
      if (o.json) return printJson(vms);
      process.stdout.write(vms.length === 0 ? 'no VMs\n' : table(vmRows(vms, hosts)) + '\n');
    } catch (e) {
      fail(e, o.json === true);
    }
  });
  common(vm.command('get')).argument('<vm>', 'name or uuid').action(async (ref: string, o: Common) => {
    try {
      const v = await vmOf(cvmTarget(o), ref);
      if (o.json) printJson(v);
      else process.stdout.write(describeVm(v) + '\n');
    } catch (e) {
      fail(e, o.json === true);
    }
  });
  common(vm.command('update'), true).argument('<vm>', 'name or uuid')
    .description('change a VM (vCPUs, memory, disks and NICs need it powered off)')
    .option('--name <name>', 'new name')
    .option('--vcpus <n>')
    .option('--memory <size>')
    .option('--add-disk <size>', 'add an empty data disk (repeatable)', collect)
    .option('--remove-disk <vdisk>', 'remove a disk (its vdisk is deleted unless attached as an existing one) (repeatable)', collect)
    .option('--add-nic <subnet[=ip]>', 'add a NIC (repeatable)', collect)
    .option('--remove-nic <mac>', 'remove a NIC (repeatable)', collect)
    .action(async (ref: string, o: Common & { name?: string; vcpus?: string; memory?: string; addDisk?: string[]; removeDisk?: string[]; addNic?: string[]; removeNic?: string[] }) => {
      try {
        const v = await vmOf(cvmTarget(o), ref);
        const req: VmUpdateRequest = { specVersion: v.specVersion };
        if (o.name !== undefined) req.name = o.name;
        if (o.vcpus !== undefined) req.vcpus = positiveInt(o.vcpus, 'vcpus');
        if (o.memory !== undefined) req.memoryMiB = parseMiB(o.memory, 'memory');
        if (o.addDisk) req.addDisks = o.addDisk.map((d) => ({ sizeBytes: parseBytes(d, 'add-disk') }));
        if (o.removeDisk) req.removeDisks = o.removeDisk;
        if (o.addNic) req.addNics = o.addNic.map(parseNic);
        if (o.removeNic) req.removeNics = o.removeNic;
        await mutate(o, `/vms/${v.uuid}`, req, () => `VM ${v.name} updated`, 'PUT');
      } catch (e) {
        fail(e, o.json === true);
      }
    });
  const power: [string, VmPowerAction, string][] = [
    ['start', 'on', 'power on (placed on the host with the most free memory)'],
    ['shutdown', 'shutdown', 'ACPI shutdown: the guest powers itself off'],
    ['stop', 'off', 'power off at once (pulls the plug)'],
    ['reset', 'reset', 'hard reset'],
    ['pause', 'pause', 'pause the vCPUs'],
    ['resume', 'resume', 'resume a paused VM'],
  ];
  for (const [cmd, action, what] of power) {
    common(vm.command(cmd), true).argument('<vm>', 'name or uuid').description(what).action(async (ref: string, o: Common) => {
      try {
        const v = await vmOf(cvmTarget(o), ref);
        await mutate(o, `/vms/${v.uuid}/power`, { action }, () => `VM ${v.name}: ${cmd} done`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });
  }
  common(vm.command('delete'), true).argument('<vm>', 'name or uuid').description('power off and delete a VM and its own disks').action(async (ref: string, o: Common) => {
    try {
      const v = await vmOf(cvmTarget(o), ref);
      await mutate(o, `/vms/${v.uuid}`, undefined, () => `VM ${v.name} deleted`, 'DELETE');
    } catch (e) {
      fail(e, o.json === true);
    }
  });
  common(vm.command('clone'), true).argument('<vm>', 'name or uuid').requiredOption('--name <name>', 'the clone\'s name').action(async (ref: string, o: Common & { name: string }) => {
    try {
      const v = await vmOf(cvmTarget(o), ref);
      await mutate(o, `/vms/${v.uuid}/clone`, { name: o.name }, () => `VM ${o.name} cloned from ${v.name}`);
    } catch (e) {
      fail(e, o.json === true);
    }
  });
  common(vm.command('migrate'), true).argument('<vm>', 'name or uuid').option('--host <host>', 'target host (serial or address; default: chosen)')
    .description('live-migrate a running VM to another host (its disks stay on the fabric)')
    .action(async (ref: string, o: Common & { host?: string }) => {
      try {
        const v = await vmOf(cvmTarget(o), ref);
        await mutate(o, `/vms/${v.uuid}/migrate`, o.host ? { host: o.host } : {}, (t) => {
          const r = (t.result ?? {}) as { hostIp?: string; downtimeMs?: number; totalMs?: number };
          return `VM ${v.name} migrated to ${r.hostIp ?? '?'}: downtime ${r.downtimeMs ?? '?'} ms, total ${r.totalMs ?? '?'} ms`;
        });
      } catch (e) {
        fail(e, o.json === true);
      }
    });
  common(vm.command('console')).argument('<vm>', 'name or uuid')
    .option('--follow', 'keep printing what the guest writes (Ctrl-C stops)')
    .option('--send <line>', 'type this line (and Enter) on the console first')
    .description('the VM\'s serial console: its log, live with --follow; --send types a line')
    .action(async (ref: string, o: Common & { follow?: boolean; send?: string }) => {
      try {
        const ip = cvmTarget(o);
        const v = await vmOf(ip, ref);
        if (o.send !== undefined) await cvm(ip, `/vms/${v.uuid}/console/input`, { data: `${o.send}\n` });
        // the log comes in chunks (64 KiB at most each): all of it, then (--follow) what follows
        let offset = 0;
        let all = '';
        for (;;) {
          const c = await cvm<ConsoleChunk>(ip, `/vms/${v.uuid}/console?offset=${offset}`);
          offset = c.next;
          if (o.json && !o.follow) {
            all += c.text;
            if (c.text !== '') continue;
            return printJson({ text: all, next: offset });
          }
          process.stdout.write(c.text);
          if (c.text !== '') continue;
          if (!o.follow) return;
          await new Promise((r) => setTimeout(r, 500));
        }
      } catch (e) {
        fail(e, o.json === true);
      }
    });

  // ---- image ----
  const image = program.command('image').description('images: disk images (raw, qcow2, ISO) kept as vdisks, copied into VM disks');
  image.addCommand(guestImageCommand());
  common(image.command('create'), true)
    .description('import an image from an http(s) URL or a local file')
    .requiredOption('--name <name>')
    .option('--url <url>', 'http(s) URL of a raw, qcow2 or ISO file')
    .option('--file <path>', 'a local file, uploaded')
    .option('--format <f>', 'raw, qcow2 or iso (default: detected)')
    .action(async (o: Common & { name: string; url?: string; file?: string; format?: string }) => {
      try {
        if ((o.url === undefined) === (o.file === undefined)) throw new InputError('url', 'give either --url or --file');
        const done = (): string => `image ${o.name} imported`;
        if (o.url) return await mutate(o, '/images', { name: o.name, url: o.url, ...(o.format ? { format: o.format } : {}) }, done);
        const file = o.file ?? '';
        let bytes: number;
        try {
          bytes = statSync(file).size;
        } catch {
          throw new InputError('file', `cannot read ${file}`);
        }
        const ip = cvmTarget(o);
        if (!o.json) process.stderr.write(`uploading ${basename(file)} (${size(bytes)})…\n`);
        const q = new URLSearchParams({ name: o.name, ...(o.format ? { format: o.format } : {}) });
        const a = await cvmWith<Accepted>(ip, `/images/upload?${q.toString()}`, { method: 'PUT', stream: createReadStream(file), timeoutMs: 60 * 60_000 });
        if (o.wait === false) return o.json ? printJson(a) : void process.stdout.write(`task ${a.taskUuid} accepted\n`);
        const t = await followTask(ip, a.taskUuid, o.json === true);
        if (o.json) printJson(t);
        else process.stdout.write(done() + '\n');
      } catch (e) {
        fail(e, o.json === true);
      }
    });
  common(image.command('list')).action(async (o: Common) => {
    try {
      const imgs = await cvm<Image[]>(cvmTarget(o), '/images');
      if (o.json) return printJson(imgs);
      const rows = [['IMAGE', 'FORMAT', 'SIZE', 'STATE', 'VDISK', 'UUID']];
      for (const i of imgs) rows.push([i.name, i.format, size(i.sizeBytes), i.state, i.vdisk, i.uuid]);
      process.stdout.write(imgs.length === 0 ? 'no images\n' : table(rows) + '\n');
    } catch (e) {
      fail(e, o.json === true);
    }
  });
  common(image.command('delete')).argument('<image>', 'name or uuid').action(async (ref: string, o: Common) => {
    try {
      const ip = cvmTarget(o);
      const i = await imageOf(ip, ref);
      await cvm(ip, `/images/${i.uuid}`, undefined, 60_000, 'DELETE');
      if (o.json) printJson({ deleted: i.uuid });
      else process.stdout.write(`image ${i.name} deleted\n`);
    } catch (e) {
      fail(e, o.json === true);
    }
  });

  // ---- subnet ----
  const subnet = program.command('subnet').description('subnets: VLAN-isolated L2 networks across hosts, with IPAM answered as DHCP');
  common(subnet.command('create'))
    .requiredOption('--name <name>')
    .requiredOption('--vlan <id>', 'VLAN id (0 to 4094)')
    .option('--cidr <a.b.c.d/n>', 'network address (enables IPAM)')
    .option('--gateway <ip>')
    .option('--pool <first-last>', 'addresses IPAM gives out, e.g. 10.10.0.100-10.10.0.200')
    .option('--dns <a,b>', 'DNS servers given to guests')
    .action(async (o: Common & { name: string; vlan: string; cidr?: string; gateway?: string; pool?: string; dns?: string }) => {
      try {
        const vlanId = Number(o.vlan);
        const body: Record<string, unknown> = { name: o.name, vlanId };
        if (o.cidr) body['cidr'] = o.cidr;
        if (o.gateway) body['gateway'] = o.gateway;
        if (o.pool) {
          const [start, end] = o.pool.split('-');
          if (!start || !end) throw new InputError('pool', 'first-last, e.g. 10.10.0.100-10.10.0.200');
          body['pool'] = { start, end };
        }
        if (o.dns) body['dns'] = o.dns.split(',').map((s) => s.trim());
        const s = await cvm<Subnet>(cvmTarget(o), '/subnets', body);
        if (o.json) printJson(s);
        else process.stdout.write(`subnet ${s.name} created (VLAN ${s.vlanId}${s.cidr ? `, ${s.cidr}` : ''}, ${s.uuid})\n`);
      } catch (e) {
        fail(e, o.json === true);
      }
    });
  common(subnet.command('list')).action(async (o: Common) => {
    try {
      const subs = await cvm<Subnet[]>(cvmTarget(o), '/subnets');
      if (o.json) return printJson(subs);
      const rows = [['SUBNET', 'VLAN', 'CIDR', 'GATEWAY', 'POOL', 'LEASES', 'UUID']];
      for (const s of subs) rows.push([s.name, String(s.vlanId), s.cidr ?? '-', s.gateway ?? '-', s.pool ? `${s.pool.start}-${s.pool.end}` : '-', String(Object.keys(s.leases).length), s.uuid]);
      process.stdout.write(subs.length === 0 ? 'no subnets\n' : table(rows) + '\n');
    } catch (e) {
      fail(e, o.json === true);
    }
  });
  common(subnet.command('delete')).argument('<subnet>', 'name or uuid').action(async (ref: string, o: Common) => {
    try {
      const ip = cvmTarget(o);
      const s = (await cvm<Subnet[]>(ip, '/subnets')).find((x) => x.uuid === ref || x.name === ref);
      if (!s) throw new InputError('subnet', `no subnet named ${ref}`);
      await cvm(ip, `/subnets/${s.uuid}`, undefined, 60_000, 'DELETE');
      if (o.json) printJson({ deleted: s.uuid });
      else process.stdout.write(`subnet ${s.name} deleted\n`);
    } catch (e) {
      fail(e, o.json === true);
    }
  });

  // ---- host ----
  const host = program.command('host').description('the cluster\'s hypervisor hosts: capacity, VMs, maintenance mode');
  common(host.command('list')).action(async (o: Common) => {
    try {
      const hs = await cvm<VmHost[]>(cvmTarget(o), '/hosts');
      if (o.json) return printJson(hs);
      const rows = [['HOST', 'ADDRESS', 'CVM', 'STATE', 'VMS', 'MEMORY FREE', 'VCPUS FREE']];
      for (const h of hs) rows.push([h.serial, h.hostIp, h.cvmIp, h.state, String(h.vms), `${mib(h.freeMemoryMiB)} of ${mib(h.memoryMiB)}`, `${h.freeVcpus} of ${h.vcpus}`]);
      process.stdout.write(table(rows) + '\n');
    } catch (e) {
      fail(e, o.json === true);
    }
  });
  for (const [cmd, enter] of [['enter-maintenance', true], ['exit-maintenance', false]] as const) {
    common(host.command(cmd), true).argument('<host>', 'serial or host address')
      .description(enter ? 'live-migrate every VM off the host; then it can be powered off' : 'return the host to service (and its VMs to it)')
      .action(async (ref: string, o: Common) => {
        try {
          const ip = cvmTarget(o);
          const h = (await cvm<VmHost[]>(ip, '/hosts')).find((x) => x.serial === ref || x.hostIp === ref);
          if (!h) throw new InputError('host', `no host ${ref} in this cluster`);
          await mutate(o, `/hosts/${h.serial}/maintenance`, { enter }, () => (enter ? `host ${h.hostIp} is in maintenance: no VMs run on it` : `host ${h.hostIp} is back in service`));
        } catch (e) {
          fail(e, o.json === true);
        }
      });
  }

  // ---- task ----
  const task = program.command('task').description('the VM service\'s tasks: every change it makes');
  common(task.command('list')).option('--entity <uuid>', 'only the tasks of this VM, image, subnet or host').action(async (o: Common & { entity?: string }) => {
    try {
      const ts = await cvm<Task[]>(cvmTarget(o), `/tasks${o.entity ? `?entity=${encodeURIComponent(o.entity)}` : ''}`);
      if (o.json) return printJson(ts);
      const rows = [['TASK', 'OPERATION', 'ENTITY', 'STATE', '%', 'CREATED', 'MESSAGE']];
      for (const t of ts) rows.push([t.uuid, t.operation, t.entity.name, t.state, String(t.percent), t.createdAt, t.error?.message ?? t.message]);
      process.stdout.write(table(rows) + '\n');
    } catch (e) {
      fail(e, o.json === true);
    }
  });
  common(task.command('get')).argument('<uuid>').option('--follow', 'until it ends').action(async (uuid: string, o: Common & { follow?: boolean }) => {
    try {
      const ip = cvmTarget(o);
      const t = o.follow ? await followTask(ip, uuid, o.json === true) : await cvm<Task>(ip, `/tasks/${encodeURIComponent(uuid)}`);
      if (o.json) printJson(t);
      else process.stdout.write(`${t.operation} ${t.entity.kind} ${t.entity.name}: ${t.state} ${t.percent}% ${t.error?.message ?? t.message}\n`);
    } catch (e) {
      fail(e, o.json === true);
    }
  });
}
