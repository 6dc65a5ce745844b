/**
 * Fault injection, over the control API as the CLI and tests use it: every fault changes what the
 * BMC or the node does, and clearing it restores normal behaviour.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { TestRack } from '../drivers/rack-driver.ts';
import { FileServer, serveTestInstaller } from '../drivers/boot-images.ts';
import type { RackClient} from '../../src/rack/protocol/client.ts';
import { RackApiError } from '../../src/rack/protocol/client.ts';
import { DiskVolume } from '../../src/shared/disk-volume.ts';
import { DiskIoError } from '../../src/shared/errors.ts';

let tr: TestRack;
let api: RackClient;
let files: FileServer;
let installerUrl: string;

before(async () => {
  tr = await TestRack.start('127.33', { nodes: 3 });
  api = tr.api();
  files = await FileServer.start();
  installerUrl = await serveTestInstaller(files);
});
after(async () => {
  await tr.stop();
  await files.stop();
});

const SYS = '/redfish/v1/Systems/1';
const serial = (i: number): string => tr.node(i).serial;

test('the control API lists every BMC for discovery where multicast does not work', async () => {
  const { bmcs } = await api.bmcs();
  assert.equal(bmcs.length, 3);
  assert.match(bmcs[0]!.url, /^https:\/\/127\.33\.0\.1:8443\/redfish\/v1\/$/);
});

test('SSDP: an M-SEARCH for the Redfish service gets one answer per BMC with AL and USN', async () => {
  const sock = createSocket('udp4');
  const replies: string[] = [];
  sock.on('message', (m) => replies.push(m.toString()));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const msg = ['M-SEARCH * HTTP/1.1', 'HOST: 239.255.255.250:1900', 'MAN: "ssdp:discover"', 'MX: 1', 'ST: urn:dmtf-org:service:redfish-rest:1', '', ''].join('\r\n');
  sock.send(msg, 20033, '127.0.0.1');
  await tr.until(() => replies.length >= 3, 3000, 'SSDP replies');
  sock.close();
  assert.ok(replies.every((r) => r.startsWith('HTTP/1.1 200 OK') && /\r\nST: urn:dmtf-org:service:redfish-rest:1/.test(r) && /\r\nUSN: uuid:[0-9a-f-]{36}::urn:dmtf-org/.test(r)));
  const als = replies.map((r) => /\r\nAL: (\S+)/.exec(r)?.[1]).sort();
  assert.deepEqual(als, ['https://127.33.0.1:8443/redfish/v1/', 'https://127.33.0.2:8443/redfish/v1/', 'https://127.33.0.3:8443/redfish/v1/']);
});

test('BMC unreachable: connections are refused until cleared', async () => {
  await api.setFaults(serial(0), { bmcUnreachable: true });
  await assert.rejects(tr.redfish(0).get(SYS));
  assert.equal((await api.node(serial(0))).bmc.reachable, false);
  assert.equal((await api.bmcs()).bmcs.length, 2);
  await api.clearFaults(serial(0));
  assert.equal((await tr.redfish(0).get(SYS)).status, 200);
});

test('BMC slow: every answer is delayed', async () => {
  await api.setFaults(serial(0), { bmcSlowMs: 300 });
  const t0 = Date.now();
  assert.equal((await tr.redfish(0).get(SYS)).status, 200);
  assert.ok(Date.now() - t0 >= 290, `took ${Date.now() - t0} ms`);
  await api.setFaults(serial(0), { bmcSlowMs: 0 });
  const t1 = Date.now();
  await tr.redfish(0).get(SYS);
  assert.ok(Date.now() - t1 < 250);
});

test('disk failed: the drive reports Critical and its owner gets I/O errors; clearing restores it', async () => {
  const disk = tr.node(1).inventory.disks[2]!;
  const vol = DiskVolume.open(tr.node(1).diskPath(disk.serial)!);
  await vol.writeFile('extent-0', 'data');
  await api.setFaults(serial(1), { failedDisks: [disk.serial] });
  const d = (await tr.redfish(1).get(`${SYS}/Storage/1/Drives/Disk.Bay.2`)).json;
  assert.equal(d.Status.Health, 'Critical');
  assert.equal((await tr.redfish(1).get(SYS)).json.Status.Health, 'Critical');
  await assert.rejects(vol.readFile('extent-0'), DiskIoError);
  await assert.rejects(vol.writeFile('extent-1', 'x'), DiskIoError);
  const sel = (await tr.redfish(1).get('/redfish/v1/Managers/1/LogServices/SEL/Entries')).json;
  assert.ok(sel.Members.some((e: { Message: string }) => e.Message.includes(`Drive ${disk.serial}`) && e.Message.includes('failed')));
  await api.clearFaults(serial(1));
  assert.equal((await vol.readFile('extent-0')).toString(), 'data');
  assert.equal((await tr.redfish(1).get(`${SYS}/Storage/1/Drives/Disk.Bay.2`)).json.Status.Health, 'OK');
});

test('bad fault input names the field and changes nothing', async () => {
  await assert.rejects(api.setFaults(serial(1), { failedDisks: ['NOPE'] }), (e: unknown) => e instanceof RackApiError && e.status === 400 && e.field === 'disk');
  await assert.rejects(api.setFaults(serial(1), { bmcSlowMs: -5 }), (e: unknown) => e instanceof RackApiError && e.field === 'bmcSlowMs');
  await assert.rejects(api.setFaults(serial(1), { melt: true } as never), (e: unknown) => e instanceof RackApiError && e.field === 'melt');
  await assert.rejects(api.setFaults('CVG0', {}), (e: unknown) => e instanceof RackApiError && e.status === 404);
  assert.deepEqual((await api.node(serial(1))).faults.failedDisks, []);
});

test('power-on failure: POST fails, the node stays off, the SEL says why', async () => {
  await api.setFaults(serial(2), { powerOnFailure: true });
  await tr.redfish(2).post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' });
  await tr.until(() => tr.node(2).consoleLines().some((l) => l.includes('POST: fatal error')), 5000, 'POST failure');
  assert.equal((await tr.redfish(2).get(SYS)).json.PowerState, 'Off');
  await api.clearFaults(serial(2));
});

test('boot failure: the boot device fails and the node halts', async () => {
  await api.setFaults(serial(2), { bootFailure: true });
  await tr.redfish(2).post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' });
  await tr.until(() => tr.node(2).state.power.phase === 'halted', 5000, 'halt');
  assert.equal((await tr.redfish(2).get(SYS)).json.BootProgress.OemLastState, 'NoBootableDevice');
  await tr.redfish(2).post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'ForceOff' });
  await api.clearFaults(serial(2));
});

test('NIC link down: Redfish shows LinkDown and the running program sees it in its hardware description', async () => {
  await api.setFaults(serial(1), { nicLinkDown: ['NIC2'] });
  const nic = (await tr.redfish(1).get(`${SYS}/EthernetInterfaces/NIC2`)).json;
  assert.equal(nic.LinkStatus, 'LinkDown');
  assert.equal(tr.node(1).hardware('Hdd').nics.find((n) => n.id === 'NIC2')?.linkUp, false);
  await api.clearFaults(serial(1));
  assert.equal((await tr.redfish(1).get(`${SYS}/EthernetInterfaces/NIC2`)).json.LinkStatus, 'LinkUp');
});

test('installer crash at a percent: the installer booted on that node dies there; the node halts with OSCrashed', async () => {
  await api.setFaults(serial(2), { installerCrashAtPercent: 40 });
  const rf = tr.redfish(2);
  await rf.post('/redfish/v1/Managers/1/VirtualMedia/CD1/Actions/VirtualMedia.InsertMedia', { Image: installerUrl });
  await rf.patch(SYS, { Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Once' } });
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' });
  await tr.until(() => tr.node(2).state.power.phase === 'halted', 10_000, 'crash');
  const lines = tr.node(2).consoleLines();
  assert.ok(lines.some((l) => l.includes('installer: fatal error at 40%')));
  assert.ok(!lines.some((l) => l.includes('installer: 40%')));
  assert.equal((await rf.get(SYS)).json.BootProgress.OemLastState, 'OSCrashed');
  // cleared: the same media installs fine
  await api.clearFaults(serial(2));
  await rf.patch(SYS, { Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Once' } });
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'ForceRestart' });
  await tr.until(() => tr.node(2).state.power.running?.name === 'test-hypervisor', 10_000, 'install after clearing');
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'ForceOff' });
});

test('rack add: a new node is racked into the running rack and its BMC answers', async () => {
  const [n] = await api.addNodes(1, 'CVG-F1120');
  assert.ok(n);
  assert.equal(n.model, 'CVG-F1120');
  assert.equal(n.bmc.ip, '127.33.0.4');
  assert.equal((await tr.redfish(3).get(SYS)).json.Model, 'CVG-F1120');
  await assert.rejects(api.addNodes(1, 'NOPE'), (e: unknown) => e instanceof RackApiError && e.field === 'model');
});
