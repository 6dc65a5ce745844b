/**
 * `rack down` then `rack up` restores everything from the data dir: power states (a node that was
 * on boots again), boot override, virtual media, accounts, BMC settings, faults and disk contents.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestRack } from '../drivers/rack-driver.ts';
import { FileServer, serveTestInstaller } from '../drivers/boot-images.ts';
import { DiskVolume } from '../../src/shared/disk-volume.ts';

test('a restarted rack is the same rack', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cvg-persist-'));
  const files = await FileServer.start();
  let tr: TestRack | undefined;
  try {
    const url = await serveTestInstaller(files);
    tr = await TestRack.start('127.34', { nodes: 2 }, dir);
    const serials = tr.rack.nodes.map((n) => n.serial);
    const rf0 = tr.redfish(0);
    await rf0.post('/redfish/v1/Managers/1/VirtualMedia/CD1/Actions/VirtualMedia.InsertMedia', { Image: url });
    await rf0.patch('/redfish/v1/Systems/1', { Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Once' }, AssetTag: 'keep-me' });
    await rf0.post('/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', { ResetType: 'On' });
    await tr.until(() => tr?.node(0).state.power.running?.name === 'test-hypervisor', 15_000, 'install');
    const rf1 = tr.redfish(1);
    await rf1.patch('/redfish/v1/Systems/1', { Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous' } });
    await rf1.post('/redfish/v1/AccountService/Accounts', { UserName: 'ops', Password: 'ops-password-1', RoleId: 'Operator' });
    const disk = tr.node(1).inventory.disks[0]!;
    const vol = DiskVolume.open(tr.node(1).diskPath(disk.serial)!);
    await vol.writeFile('egroup/42', Buffer.alloc(8192, 7));
    await tr.rack.setFaults(serials[1]!, { nicLinkDown: ['NIC3'] });
    await tr.stop(true);

    tr = await TestRack.start('127.34', {}, dir);
    assert.deepEqual(tr.rack.nodes.map((n) => n.serial), serials);
    // node 0 was on: power is restored and it boots what is installed on its disk
    await tr.until(() => tr?.node(0).state.power.running?.name === 'test-hypervisor', 15_000, 'restore boot');
    assert.equal(tr.node(0).state.power.running?.source, 'Hdd');
    const s0 = (await tr.redfish(0).get('/redfish/v1/Systems/1')).json;
    assert.equal(s0.PowerState, 'On');
    assert.equal(s0.AssetTag, 'keep-me');
    assert.equal((await tr.redfish(0).get('/redfish/v1/Managers/1/VirtualMedia/CD1')).json.Image, url);
    // node 1 was off with a continuous override, an extra account, a NIC fault and data on a disk
    const s1 = (await tr.redfish(1).get('/redfish/v1/Systems/1')).json;
    assert.equal(s1.PowerState, 'Off');
    assert.deepEqual([s1.Boot.BootSourceOverrideTarget, s1.Boot.BootSourceOverrideEnabled], ['Pxe', 'Continuous']);
    assert.equal((await tr.redfish(1, 'ops', 'ops-password-1').get('/redfish/v1/Systems/1')).status, 200);
    assert.equal((await tr.redfish(1).get('/redfish/v1/Systems/1/EthernetInterfaces/NIC3')).json.LinkStatus, 'LinkDown');
    const again = DiskVolume.open(tr.node(1).diskPath(disk.serial)!);
    assert.deepEqual(await again.readFile('egroup/42'), Buffer.alloc(8192, 7));
    assert.equal(again.used(), 8192);
    await tr.stop(true);
  } finally {
    // a failed assertion must not leave the rack (and its node programs) running
    await tr?.stop(true).catch(() => undefined);
    await files.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
