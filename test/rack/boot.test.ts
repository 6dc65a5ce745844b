/**
 * Power and boot over Redfish on a real rack: virtual media boot of an installer image, reboot
 * into what it installed on the boot disk, graceful shutdown, NMI, crash, persistence across a
 * rack restart.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TestRack } from '../drivers/rack-driver.ts';
import { FileServer, serveTestInstaller, buildImage } from '../drivers/boot-images.ts';

let tr: TestRack;
let files: FileServer;
let installerUrl: string;

before(async () => {
  tr = await TestRack.start('127.31', { nodes: 3 });
  files = await FileServer.start();
  installerUrl = await serveTestInstaller(files);
});
after(async () => {
  await tr.stop();
  await files.stop();
});

const SYS = '/redfish/v1/Systems/1';
const CD = '/redfish/v1/Managers/1/VirtualMedia/CD1';

async function power(i: number): Promise<{ PowerState: string; BootProgress: { LastState: string; OemLastState?: string } }> {
  return (await tr.redfish(i).get(SYS)).json;
}

test('Cd boot runs the installer from virtual media, which installs to the boot disk; the node then boots it from Hdd', async () => {
  const rf = tr.redfish(0);
  assert.equal((await rf.post(`${CD}/Actions/VirtualMedia.InsertMedia`, { Image: installerUrl })).status, 204);
  assert.equal((await rf.patch(SYS, { Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Once' } })).status, 200);
  assert.equal((await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' })).status, 204);
  await tr.until(() => tr.node(0).state.power.running?.name === 'test-hypervisor', 15_000, 'the installed hypervisor to run');
  await tr.until(() => tr.node(0).consoleLines().some((l) => l.includes('hypervisor up')), 5000, 'the hypervisor to print');
  const s = await power(0);
  assert.equal(s.PowerState, 'On');
  assert.equal(s.BootProgress.LastState, 'OSRunning');
  const sys = (await rf.get(SYS)).json;
  assert.equal(sys.Boot.BootSourceOverrideEnabled, 'Disabled', 'a one-time override is used once');
  const console = tr.node(0).consoleLines().join('\n');
  assert.match(console, /installer on CVG\S+ from http:\/\/127\.0\.0\.1:\d+\/installer\.tar disks=6 hba=Broadcom/);
  assert.match(console, /OS requested reboot/);
  assert.match(console, /hypervisor up on CVG\S+ boot=Hdd/);
  assert.ok(existsSync(join(tr.node(0).layout.bootDisk, 'data', 'boot.json')), 'the boot disk holds what was installed');
  // the console is also a Redfish LogService
  const entries = (await rf.get('/redfish/v1/Managers/1/LogServices/Console/Entries')).json;
  assert.ok(entries.Members.some((e: { Message: string }) => e.Message.startsWith('hypervisor up')));

  // NMI reaches the running program
  assert.equal((await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'Nmi' })).status, 204);
  await tr.until(() => tr.node(0).consoleLines().some((l) => l.includes('NMI received, dumping')), 5000, 'NMI');

  // graceful shutdown: the program gets SIGTERM, stops, the node powers off
  assert.equal((await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'GracefulShutdown' })).status, 204);
  await tr.until(async () => (await power(0)).PowerState === 'Off', 10_000, 'power off');
  assert.ok(tr.node(0).consoleLines().some((l) => l.includes('hypervisor: shutting down')));

  // power on again: it boots from the disk (no override)
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' });
  await tr.until(() => tr.node(0).state.power.running?.version === '9.9.1', 10_000, 'boot from disk');
  await tr.until(() => tr.node(0).consoleLines().filter((l) => l.includes('hypervisor up')).length === 2, 5000, 'the hypervisor up again');
  assert.equal(tr.node(0).state.power.running?.source, 'Hdd');

  // ForceRestart: killed and booted again
  const epoch = tr.node(0).state.power.epoch;
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'ForceRestart' });
  await tr.until(() => tr.node(0).state.power.phase === 'running' && tr.node(0).state.power.epoch > epoch, 10_000, 'restart');

  // PowerCycle
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'PowerCycle' });
  await tr.until(() => tr.node(0).state.power.phase === 'running' && tr.node(0).consoleLines().some((l) => l.includes('power cycle')), 10_000, 'power cycle');

  // ForceOff stops the program at once
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'ForceOff' });
  assert.equal((await power(0)).PowerState, 'Off');
});

test('nothing bootable: BootProgress and the console say so', async () => {
  const rf = tr.redfish(1);
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' });
  await tr.until(() => tr.node(1).state.power.phase === 'halted', 10_000, 'halt');
  const s = await power(1);
  assert.equal(s.PowerState, 'On');
  assert.equal(s.BootProgress.LastState, 'OEM');
  assert.equal(s.BootProgress.OemLastState, 'NoBootableDevice');
  assert.ok(tr.node(1).consoleLines().some((l) => /boot failed: no bootable device/.test(l)));
  const sel = (await rf.get('/redfish/v1/Managers/1/LogServices/SEL/Entries')).json;
  assert.ok(sel.Members.some((e: { Severity: string; Message: string }) => e.Severity === 'Critical' && e.Message.startsWith('Boot failed')));
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'ForceOff' });
});

test('a Cd boot without media, and a Pxe boot with no DHCP, fail with their reason', async () => {
  const rf = tr.redfish(1);
  await rf.patch(SYS, { Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Once' } });
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' });
  await tr.until(() => tr.node(1).consoleLines().some((l) => l.includes('no virtual media inserted')), 10_000, 'cd failure');
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'ForceOff' });
  await rf.patch(SYS, { Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } });
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' });
  await tr.until(() => tr.node(1).consoleLines().some((l) => l.includes('no DHCP offer')), 10_000, 'pxe failure');
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'ForceOff' });
});

test('media that is not a boot image fails the boot', async () => {
  const rf = tr.redfish(2);
  const url = files.serve('junk.iso', Buffer.from('this is not an image'));
  await rf.post(`${CD}/Actions/VirtualMedia.InsertMedia`, { Image: url });
  await rf.patch(SYS, { Boot: { BootSourceOverrideTarget: 'Cd' } });
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' });
  await tr.until(() => tr.node(2).state.power.phase === 'halted', 10_000, 'halt');
  assert.ok(tr.node(2).consoleLines().some((l) => l.includes('not a bootable image')));
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'ForceOff' });
  await rf.post(`${CD}/Actions/VirtualMedia.EjectMedia`);
});

test('power off stops everything the node runs, including the processes its program started', async () => {
  const rf = tr.redfish(2);
  const spawner = `
import { spawn } from 'node:child_process';
const c = spawn('sleep', ['300'], { stdio: 'ignore' });
console.log('started child ' + c.pid);
setInterval(() => {}, 1000);
`;
  const url = files.serve('spawner.tar', await buildImage({ 'spawner.mjs': spawner }, { name: 'spawner', version: '1', entry: 'spawner.mjs' }));
  await rf.post(`${CD}/Actions/VirtualMedia.InsertMedia`, { Image: url });
  await rf.patch(SYS, { Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Once' } });
  await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' });
  const line = await tr.until(() => tr.node(2).consoleLines().find((l) => l.includes('started child ')), 10_000, 'the program to start its child');
  const pid = Number(/started child (\d+)/.exec(line ?? '')?.[1]);
  assert.ok(pid > 0);
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  assert.ok(alive(), 'the child runs');
  assert.equal((await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'ForceOff' })).status, 204);
  await tr.until(() => !alive(), 5000, 'the child gone with the power');
  await rf.post(`${CD}/Actions/VirtualMedia.EjectMedia`);
});
