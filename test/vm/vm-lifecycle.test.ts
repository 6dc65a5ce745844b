/**
 * Virtual machines on a 3-node lab deployed through Foundation (issue 11), driven as a user would,
 * with the `converge` command: the guest image built from Debian packages and imported from a
 * file, a VM that boots from its own vdisk (real QEMU, TCG here), its data surviving a power cycle
 * and a kill -9 of its host's CVM under the guest's write-and-verify loop, and bad input refused
 * with the field named and nothing half-made.
 *
 * Addresses: BMCs on 127.110.0.x, hosts 127.111.0.x, CVMs 127.111.1.x.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { VmLab } from '../drivers/vm-lab.ts';
import { hostCall } from '../../src/hypervisor/protocol/client.ts';
import { DeploymentPki, type Identity } from '../../src/shared/identity.ts';
import type { HostStatus } from '../../src/hypervisor/protocol/node-config.ts';
import type { Image, Subnet, Vm } from '../../src/cvm/protocol/vms.ts';
import type { Vdisk } from '../../src/cvm/core/storage.ts';

let lab: VmLab;
let http: Server;
const cli = <T>(...a: string[]): ReturnType<VmLab['cli']> => lab.cli<T>(...a);
const ok = <T>(...a: string[]): Promise<T> => lab.ok<T>(...a);
const vm = (name: string): Promise<Vm> => lab.vm(name);
const consoleOf = (name: string): Promise<string> => lab.console(name);
const waitConsole = (name: string, re: RegExp, from = 0, timeoutMs = 180_000): Promise<string> => lab.waitConsole(name, re, from, timeoutMs);

function operator(): Identity {
  const id = DeploymentPki.operatorOf(lab.t.dir);
  assert.ok(id, 'the deployment has an operator certificate');
  return id;
}

before(async () => {
  lab = await VmLab.start('127.110', 18110, '127.111');
  lab.cvmIp = lab.cvms[1] ?? '';
  http = createServer((_req, res) => res.writeHead(404).end('no such image'));
  await new Promise<void>((res) => http.listen(18111, '127.110.9.9', res));
});
after(async () => {
  http?.close();
  await lab?.stop();
});

test('an image imported from a file; a VM created from it boots from its vdisk, gets its IPAM address, and its data survives a power cycle', async () => {
  await ok('image', 'create', '--name', 'guest', '--file', lab.guestImage);
  const imgs = await ok<Image[]>('image', 'list');
  assert.deepEqual(imgs.map((i) => [i.name, i.state, i.format]), [['guest', 'ready', 'raw']]);
  const sub = await ok<Subnet>('subnet', 'create', '--name', 'lab', '--vlan', '10', '--cidr', '10.10.0.0/24', '--gateway', '10.10.0.1');
  assert.equal(sub.cidr, '10.10.0.0/24');

  await ok('vm', 'create', '--name', 'vm1', '--vcpus', '1', '--memory', '256M', '--image', 'guest', '--disk', '64M', '--nic', 'lab', '--power-on');
  const v = await vm('vm1');
  assert.equal(v.powerState, 'on');
  assert.ok(v.host, 'placed on a host');
  assert.equal(v.disks.length, 2);
  assert.equal(v.disks[0]?.image !== null, true, 'the boot disk is a copy of the image');
  const ip = v.nics[0]?.ip ?? '';
  assert.match(ip, /^10\.10\.0\.\d+$/);
  const boot = await waitConsole('vm1', /converge-guest: verify pass 2 ok/);
  assert.equal(boot.match(/converge-guest: booted /g)?.length, 1, 'one boot');
  assert.match(boot, new RegExp(`converge-guest: eth0 ${ip.replaceAll('.', '\\.')}/24`), 'the guest got the address IPAM gave its NIC, by DHCP from the switch');

  await ok('vm', 'shutdown', 'vm1');
  assert.equal((await vm('vm1')).powerState, 'off');
  // the console of a VM that is off: its last host's log
  assert.match(await consoleOf('vm1'), /converge-guest: power off/);
  await ok('vm', 'start', 'vm1');
  // its host may be another one (a new log there) or the same (the log goes on): the second boot is the one that resumes
  const again = await waitConsole('vm1', /converge-guest: verify resumed pass (\d+): \d+ blocks ok/);
  assert.ok(Number(/verify resumed pass (\d+)/.exec(again)?.[1]) >= 2, 'the pass it had recorded before the power off reads back intact');
});

test("kill -9 of the VM's local CVM under the guest's write-and-verify loop: no I/O error, no verify failure", async () => {
  const v = await vm('vm1');
  assert.ok(v.host);
  const st = await hostCall<HostStatus>(v.host.hostIp, '/status', { identity: operator() });
  assert.ok(st.cvm.pid);
  const mark = (await consoleOf('vm1')).length;
  process.kill(st.cvm.pid, 'SIGKILL');
  // the redirector stalls the guest's I/O and sends it to another CVM: passes go on, none fails
  const after1 = await waitConsole('vm1', /verify pass \d+ ok[\s\S]*verify pass \d+ ok[\s\S]*verify pass \d+ ok/, mark, 180_000);
  assert.doesNotMatch(after1, /ERROR/);
});

test('bad input is refused naming the field, and nothing is half-made', async () => {
  const vdisksBefore = (await ok<Vdisk[]>('vdisk', 'list')).map((d) => d.name).sort();
  const vmsBefore = (await ok<Vm[]>('vm', 'list')).map((x) => x.name).sort();

  const big = await cli('vm', 'create', '--name', 'huge', '--memory', '4096G', '--image', 'guest');
  assert.equal(big.code, 2, big.stdout);
  assert.match(big.stdout, /"field": "memoryMiB"/);

  const missing = await cli('image', 'create', '--name', 'nothing', '--url', 'http://127.110.9.9:18111/missing.img');
  assert.notEqual(missing.code, 0);
  assert.match(missing.stdout, /"field": "url"/);
  assert.match(missing.stdout, /404/);
  assert.deepEqual((await ok<Image[]>('image', 'list')).map((i) => i.name), ['guest']);

  const nosub = await cli('vm', 'create', '--name', 'lost', '--image', 'guest', '--nic', 'nowhere');
  assert.notEqual(nosub.code, 0);
  assert.match(nosub.stdout, /"field": "nics\[0\]\.subnet"/);

  const data = (await vm('vm1')).disks[1]?.vdisk ?? '';
  const shared = await cli('vm', 'create', '--name', 'thief', '--vdisk', data);
  assert.notEqual(shared.code, 0);
  assert.match(shared.stdout, /disks\[0\]/);
  assert.match(shared.stdout, /belongs to VM/);

  assert.deepEqual((await ok<Vm[]>('vm', 'list')).map((x) => x.name).sort(), vmsBefore, 'no VM half-made');
  assert.deepEqual((await ok<Vdisk[]>('vdisk', 'list')).map((d) => d.name).sort(), vdisksBefore, 'no vdisk left behind');

  const inUse = await cli('image', 'delete', 'guest');
  assert.notEqual(inUse.code, 0, 'an image a VM was made from is not deleted');
});
