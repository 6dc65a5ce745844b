/**
 * The BMC's Redfish service over HTTPS: every resource, the protocol rules (ETag, Allow, OData
 * headers), authentication and sessions, accounts and privileges, every bad-input case (with
 * "nothing changed" checked), and firmware updates through UpdateService tasks.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestRack, PASSWORD, RedfishTestClient } from '../drivers/rack-driver.ts';
import { FileServer } from '../drivers/boot-images.ts';
import { createServer as createHttpsServer } from 'node:https';
import { createCa, issueCert } from '../../src/shared/tls.ts';

let tr: TestRack;
let rf: RedfishTestClient;
let files: FileServer;

before(async () => {
  tr = await TestRack.start('127.32', { nodes: 3 });
  rf = tr.redfish(0);
  files = await FileServer.start();
});
after(async () => {
  await tr.stop();
  await files.stop();
});

const SYS = '/redfish/v1/Systems/1';
const BASE = 'Base.1.24.0';

/** Visits every resource reachable from the service root through @odata.id links. */
async function crawl(): Promise<Map<string, any>> {
  const seen = new Map<string, any>();
  const queue = ['/redfish/v1/'];
  while (queue.length) {
    const path = queue.shift()!;
    if (seen.has(path)) continue;
    const r = await rf.get(path);
    assert.equal(r.status, 200, `GET ${path}`);
    seen.set(path, { ...r.json, __headers: r.headers });
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
          if (k === '@odata.id' && typeof x === 'string' && !x.includes('#') && x !== path) queue.push(x);
          else walk(x);
        }
      }
    };
    walk(r.json);
  }
  return seen;
}

test('every resource: @odata.id is its URI, @odata.type is versioned, Id/Name present, ETag and Allow headers', async () => {
  tr.node(0).addEvent('OK', 'test event');
  tr.node(0).consoleLine('test console line');
  const all = await crawl();
  const types = new Set([...all.values()].map((r) => String(r['@odata.type']).split('.')[0]));
  for (const t of ['#ServiceRoot', '#ComputerSystem', '#Processor', '#Memory', '#Storage', '#Drive', '#StorageController', '#EthernetInterface', '#PCIeDevice', '#PCIeFunction', '#Bios', '#Chassis', '#Power', '#Thermal',
    '#Manager', '#VirtualMedia', '#LogService', '#LogEntry', '#SessionService', '#AccountService', '#ManagerAccount', '#Role', '#UpdateService', '#SoftwareInventory', '#TaskService', '#MessageRegistryFile']) {
    assert.ok(types.has(t), `serves ${t}`);
  }
  for (const [path, r] of all) {
    const want = path === '/redfish/v1/' ? '/redfish/v1/' : path;
    assert.equal(r['@odata.id'], want, `@odata.id of ${path}`);
    assert.match(r['@odata.type'], /^#\w+(\.v\d+_\d+_\d+)?\.\w+$/, `@odata.type of ${path}`);
    if (r['@odata.type'].includes('Collection.')) {
      assert.equal(r['Members@odata.count'], r.Members.length, `count of ${path}`);
    } else {
      assert.ok(r.Id !== undefined && r.Name !== undefined, `Id and Name of ${path}`);
    }
    const h = r.__headers as Headers;
    assert.match(h.get('etag') ?? '', /^"[0-9a-f]+"$/, `ETag of ${path}`);
    assert.match(h.get('allow') ?? '', /GET/, `Allow of ${path}`);
    assert.equal(h.get('odata-version'), '4.0');
    const [ns, version] = String(r['@odata.type']).slice(1).split('.');
    const schema = /^v\d+_\d+_\d+$/.test(version ?? '') ? `${ns}.${version}` : ns;
    assert.equal(h.get('link'), `<http://redfish.dmtf.org/schemas/v1/${schema}.json>; rel=describedby`, `Link of ${path}`);
  }
  assert.ok(all.size > 40, `crawled ${all.size} resources`);
});

test('inventory: processors, memory, drives with serial/capacity/media, NICs with MACs, the HBA as a PCIe device', async () => {
  const hw = tr.node(0).inventory;
  const cpu = (await rf.get(`${SYS}/Processors/CPU1`)).json;
  assert.equal(cpu.TotalCores, hw.cpu.coresPerSocket);
  assert.equal(cpu.TotalThreads, hw.cpu.coresPerSocket * hw.cpu.threadsPerCore);
  const mem = (await rf.get(`${SYS}/Memory`)).json;
  assert.equal(mem.Members.length, hw.dimms.length);
  const storage = (await rf.get(`${SYS}/Storage/1`)).json;
  assert.equal(storage.Drives.length, hw.disks.length);
  const d = (await rf.get(storage.Drives[5]['@odata.id'])).json;
  assert.deepEqual([d.SerialNumber, d.CapacityBytes, d.MediaType, d.Status.Health], [hw.disks[5]!.serial, hw.disks[5]!.capacityBytes, 'HDD', 'OK']);
  const nic = (await rf.get(`${SYS}/EthernetInterfaces/NIC1`)).json;
  assert.equal(nic.MACAddress, hw.nics[0]!.mac);
  assert.equal(nic.SpeedMbps, 25000);
  const hba = (await rf.get(`${SYS}/PCIeDevices/HBA0`)).json;
  assert.equal(hba.Oem.Converge.PassthroughCapable, true);
  const fn = (await rf.get(`${SYS}/PCIeDevices/HBA0/PCIeFunctions/0`)).json;
  assert.equal(fn.DeviceClass, 'MassStorageController');
  assert.equal(fn.Links.Drives.length, hw.disks.length);
  const boot = (await rf.get(`${SYS}/Storage/2/Drives/Boot.0`)).json;
  assert.equal(boot.CapacityBytes, hw.bootDevice.capacityBytes);
  const fw = (await rf.get('/redfish/v1/UpdateService/FirmwareInventory/BMC')).json;
  assert.equal(fw.Version, '3.10.2');
  // each data drive's firmware: on the drive (Revision) and in FirmwareInventory, read only
  const inv = (await rf.get('/redfish/v1/UpdateService/FirmwareInventory')).json;
  assert.deepEqual(inv.Members.map((m: { '@odata.id': string }) => m['@odata.id'].split('/').pop()), ['BMC', 'BIOS', ...hw.disks.map((d) => `Disk.Bay.${d.slot}`)]);
  const ssd = (await rf.get('/redfish/v1/UpdateService/FirmwareInventory/Disk.Bay.0')).json;
  assert.deepEqual([ssd.Version, ssd.Updateable, ssd.RelatedItem[0]['@odata.id']], ['JXTC104Q', false, `${SYS}/Storage/1/Drives/Disk.Bay.0`]);
  assert.equal((await rf.get(`${SYS}/Storage/1/Drives/Disk.Bay.5`)).json.Revision, 'E004');
  assert.equal((await rf.get('/redfish/v1/UpdateService/FirmwareInventory/Disk.Bay.9')).status, 404);
  const chassis = (await rf.get('/redfish/v1/Chassis/1')).json;
  assert.equal(chassis.Oem.Converge.NodePosition, 'A');
  const power = (await rf.get('/redfish/v1/Chassis/1/Power')).json;
  assert.ok(power.PowerControl[0].PowerConsumedWatts > 0);
});

test('the service root, /redfish, odata and $metadata need no authentication; everything else does', async () => {
  const anon = tr.redfish(0, null);
  assert.equal((await anon.get('/redfish')).json.v1, '/redfish/v1/');
  assert.equal((await anon.get('/redfish/v1')).status, 200);
  assert.equal((await anon.get('/redfish/v1/odata')).status, 200);
  const md = await anon.get('/redfish/v1/$metadata');
  assert.equal(md.status, 200);
  assert.match(md.headers.get('content-type') ?? '', /application\/xml/);
  assert.match(md.text, /EntityContainer/);
  const r = await anon.get(SYS);
  assert.equal(r.status, 401);
  assert.equal(r.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.NoValidSession`);
  assert.match(r.headers.get('www-authenticate') ?? '', /Basic/);
  assert.equal((await anon.get('/redfish/v1/NoSuchThing')).status, 401, 'no hint about what exists without auth');
});

test('bad credentials get 401 and repeated failures lock the account for a while', async () => {
  const bad = tr.redfish(2, 'admin', 'wrong-password');
  for (let i = 0; i < 5; i++) assert.equal((await bad.get(SYS)).status, 401);
  const locked = await tr.redfish(2).get(SYS);
  assert.equal(locked.status, 401, 'even the right password is refused while locked');
  assert.match(locked.json.error.message, /locked/);
});

test('sessions: login returns X-Auth-Token and Location; the token works until logout', async () => {
  const anon = tr.redfish(0, null);
  const bad = await anon.post('/redfish/v1/SessionService/Sessions', { UserName: 'admin', Password: 'nope-nope' });
  assert.equal(bad.status, 401);
  const missing = await anon.post('/redfish/v1/SessionService/Sessions', { UserName: 'admin' });
  assert.equal(missing.status, 400);
  assert.equal(missing.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.PropertyMissing`);
  const r = await anon.post('/redfish/v1/SessionService/Sessions', { UserName: 'admin', Password: PASSWORD });
  assert.equal(r.status, 201);
  const token = r.headers.get('x-auth-token')!;
  const loc = r.headers.get('location')!;
  assert.match(loc, /^\/redfish\/v1\/SessionService\/Sessions\/\w+$/);
  const withToken = anon.as({ 'X-Auth-Token': token });
  assert.equal((await withToken.get(SYS)).status, 200);
  assert.equal((await withToken.get(loc)).json.UserName, 'admin');
  assert.equal((await withToken.delete(loc)).status, 204);
  assert.equal((await withToken.get(SYS)).status, 401);
});

test('bad input: unknown resource 404, wrong method 405 with Allow, nothing changes', async () => {
  const nf = await rf.get('/redfish/v1/Systems/2');
  assert.equal(nf.status, 404);
  assert.equal(nf.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.ResourceMissingAtURI`);
  const nf2 = await rf.get(`${SYS}/Processors/CPU9`);
  assert.equal(nf2.status, 404);
  assert.equal(nf2.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.ResourceNotFound`);
  const m = await rf.delete(SYS);
  assert.equal(m.status, 405);
  assert.equal(m.headers.get('allow'), 'GET, HEAD, PATCH');
  assert.equal(m.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.OperationNotAllowed`);
  assert.equal((await rf.patch('/redfish/v1/Systems', { Name: 'x' })).status, 405);
  assert.equal((await rf.get(`${SYS}/Actions/ComputerSystem.Reset`)).status, 405);
  assert.equal((await rf.get(`${SYS}?$expand=.`)).status, 501);
});

test('bad input: invalid ResetType is 400 naming the allowed values; power does not change', async () => {
  const before = (await rf.get(SYS)).json.PowerState;
  const r = await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'Reboot' });
  assert.equal(r.status, 400);
  const msg = r.json.error['@Message.ExtendedInfo'][0];
  assert.equal(msg.MessageId, `${BASE}.ActionParameterValueNotInList`);
  assert.deepEqual(msg.MessageArgs, ['Reboot', 'ResetType', 'ComputerSystem.Reset']);
  assert.match(r.json.error.message, /On, ForceOff, GracefulShutdown, GracefulRestart, ForceRestart, PowerCycle, Nmi/);
  const missing = await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, {});
  assert.equal(missing.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.ActionParameterMissing`);
  const unknown = await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On', Force: true });
  assert.equal(unknown.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.ActionParameterUnknown`);
  const off = await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'Nmi' });
  assert.equal(off.status, 409, 'NMI to a powered-off system');
  assert.equal((await rf.get(SYS)).json.PowerState, before);
});

test('bad input: PATCH of a read-only property, an unknown property, a bad enum, malformed JSON: 400 and nothing changes', async () => {
  const before = (await rf.get(SYS)).json;
  const ro = await rf.patch(SYS, { SerialNumber: 'X', Boot: { BootSourceOverrideTarget: 'Cd' } });
  assert.equal(ro.status, 400);
  assert.equal(ro.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.PropertyNotWritable`);
  assert.deepEqual(ro.json.error['@Message.ExtendedInfo'][0].MessageArgs, ['SerialNumber']);
  const unk = await rf.patch(SYS, { Colour: 'blue' });
  assert.equal(unk.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.PropertyUnknown`);
  const en = await rf.patch(SYS, { Boot: { BootSourceOverrideTarget: 'Floppy' } });
  assert.equal(en.status, 400);
  assert.equal(en.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.PropertyValueNotInList`);
  assert.deepEqual(en.json.error['@Message.ExtendedInfo'][0].MessageArgs, ['Floppy', 'Boot/BootSourceOverrideTarget']);
  const bad = await rf.patch(SYS, '{"Boot": {');
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.MalformedJSON`);
  const badPost = await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, 'ResetType=On');
  assert.equal(badPost.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.MalformedJSON`);
  const after = (await rf.get(SYS)).json;
  assert.deepEqual(after.Boot, before.Boot);
  assert.equal(after.SerialNumber, before.SerialNumber);
});

test('ETags: If-Match with a stale ETag is 412 and changes nothing; the current one works; If-None-Match gives 304', async () => {
  const g = await rf.get(SYS);
  const etag = g.headers.get('etag')!;
  assert.equal((await rf.get(SYS, { 'If-None-Match': etag })).status, 304);
  const ok = await rf.patch(SYS, { AssetTag: 'rack-1' }, { 'If-Match': etag });
  assert.equal(ok.status, 200);
  assert.equal(ok.json.AssetTag, 'rack-1');
  const stale = await rf.patch(SYS, { AssetTag: 'rack-2' }, { 'If-Match': etag });
  assert.equal(stale.status, 412);
  assert.equal(stale.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.PreconditionFailed`);
  assert.equal((await rf.get(SYS)).json.AssetTag, 'rack-1');
  assert.equal((await rf.get(SYS, { 'OData-Version': '3.0' })).status, 412);
});

test('virtual media: insert validates the URL and parameters; PATCH and eject work', async () => {
  const CD = '/redfish/v1/Managers/1/VirtualMedia/CD1';
  const noImage = await rf.post(`${CD}/Actions/VirtualMedia.InsertMedia`, {});
  assert.equal(noImage.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.ActionParameterMissing`);
  const ftp = await rf.post(`${CD}/Actions/VirtualMedia.InsertMedia`, { Image: 'ftp://x/y.iso' });
  assert.equal(ftp.status, 400);
  assert.match(ftp.json.error.message, /Image/);
  const proto = await rf.post(`${CD}/Actions/VirtualMedia.InsertMedia`, { Image: 'http://h/a.iso', TransferProtocolType: 'NFS' });
  assert.equal(proto.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.ActionParameterValueNotInList`);
  assert.equal((await rf.get(CD)).json.Inserted, false, 'nothing inserted by the bad requests');
  assert.equal((await rf.post(`${CD}/Actions/VirtualMedia.InsertMedia`, { Image: 'http://h/a.iso', Inserted: true, WriteProtected: true })).status, 204);
  let vm = (await rf.get(CD)).json;
  assert.deepEqual([vm.Image, vm.ImageName, vm.Inserted, vm.ConnectedVia], ['http://h/a.iso', 'a.iso', true, 'URI']);
  assert.equal((await rf.patch(CD, { Image: null, Inserted: false })).status, 200);
  vm = (await rf.get(CD)).json;
  assert.equal(vm.Inserted, false);
  assert.equal((await rf.patch(CD, { Image: 'http://h/b.iso', Inserted: true })).status, 200);
  assert.equal((await rf.post(`${CD}/Actions/VirtualMedia.EjectMedia`)).status, 204);
  assert.equal((await rf.get(CD)).json.Image, null);
});

test('accounts and roles: a ReadOnly user can read but not act; a user changes their own password', async () => {
  const short = await rf.post('/redfish/v1/AccountService/Accounts', { UserName: 'viewer', Password: 'short', RoleId: 'ReadOnly' });
  assert.equal(short.status, 400);
  const role = await rf.post('/redfish/v1/AccountService/Accounts', { UserName: 'viewer', Password: 'viewer-pass-1', RoleId: 'Guest' });
  assert.equal(role.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.PropertyValueNotInList`);
  const c = await rf.post('/redfish/v1/AccountService/Accounts', { UserName: 'viewer', Password: 'viewer-pass-1', RoleId: 'ReadOnly' });
  assert.equal(c.status, 201);
  const loc = c.headers.get('location')!;
  assert.equal((await rf.post('/redfish/v1/AccountService/Accounts', { UserName: 'viewer', Password: 'viewer-pass-1', RoleId: 'ReadOnly' })).status, 409);
  const viewer = tr.redfish(0, 'viewer', 'viewer-pass-1');
  assert.equal((await viewer.get(SYS)).status, 200);
  const denied = await viewer.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' });
  assert.equal(denied.status, 403);
  assert.equal(denied.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.InsufficientPrivilege`);
  assert.equal((await viewer.patch(loc, { RoleId: 'Administrator' })).status, 403, 'no self-promotion');
  assert.equal((await viewer.patch(loc, { Password: 'viewer-pass-2' })).status, 200);
  assert.equal((await tr.redfish(0, 'viewer', 'viewer-pass-2').get(SYS)).status, 200);
  assert.equal((await tr.redfish(0, 'viewer', 'viewer-pass-1').get(SYS)).status, 401);
  const me = (await rf.get('/redfish/v1/AccountService/Accounts/1')).json;
  assert.equal(me.Password, null, 'passwords are never shown');
  assert.equal((await rf.delete('/redfish/v1/AccountService/Accounts/1')).status, 409, 'the last administrator stays');
  assert.equal((await rf.delete(loc)).status, 204);
});

test('firmware update: SimpleUpdate runs as a task; the new version shows; a bad image fails its task', async () => {
  const good = files.serve('bmc.json', Buffer.from(JSON.stringify({ ConvergeFirmware: 1, Component: 'BIOS', Version: 'CVGB-2.5.0' })));
  const r = await rf.post('/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate', { ImageURI: good, TransferProtocol: 'HTTP' });
  assert.equal(r.status, 202);
  const monitor = r.headers.get('location')!;
  assert.match(monitor, /TaskMonitors/);
  const done = await tr.until(async () => {
    const t = (await rf.get(r.json['@odata.id'])).json;
    return t.TaskState === 'Completed' || t.TaskState === 'Exception' ? t : undefined;
  }, 10_000, 'task');
  assert.equal(done.TaskState, 'Completed');
  assert.equal(done.PercentComplete, 100);
  assert.equal((await rf.get(monitor)).status, 200);
  assert.equal((await rf.get('/redfish/v1/UpdateService/FirmwareInventory/BIOS')).json.Version, 'CVGB-2.5.0');
  assert.equal((await rf.get(SYS)).json.BiosVersion, 'CVGB-2.5.0');

  const bad = files.serve('bad.bin', Buffer.from('garbage'));
  const r2 = await rf.post('/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate', { ImageURI: bad });
  const failed = await tr.until(async () => {
    const t = (await rf.get(r2.json['@odata.id'])).json;
    return t.TaskState === 'Exception' ? t : undefined;
  }, 10_000, 'failed task');
  assert.equal(failed.TaskStatus, 'Critical');
  assert.equal((await rf.get('/redfish/v1/UpdateService/FirmwareInventory/BIOS')).json.Version, 'CVGB-2.5.0');
  const noUri = await rf.post('/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate', {});
  assert.equal(noUri.json.error['@Message.ExtendedInfo'][0].MessageId, `${BASE}.ActionParameterMissing`);
  const badTarget = await rf.post('/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate', { ImageURI: good, Targets: ['/redfish/v1/Systems/1'] });
  assert.equal(badTarget.status, 400);
});

test('firmware over HTTPS: an image server of a private CA is refused until that CA is added to RemoteServerCertificates; the CA listed, removable; bad certificates refused naming the field', async () => {
  const ca = await createCa('image-server ca');
  const cert = await issueCert(ca, { cn: '127.32.9.1', ips: ['127.32.9.1'], usage: 'server' });
  const img = Buffer.from(JSON.stringify({ ConvergeFirmware: 1, Component: 'BMC', Version: 'CVGM-9.1.0' }));
  const server = createHttpsServer({ key: cert.key, cert: cert.cert }, (_req, res) => res.writeHead(200, { 'Content-Type': 'application/json' }).end(img));
  await new Promise<void>((r) => server.listen(18032, '127.32.9.1', r));
  const rf1 = tr.redfish(1);
  const update = async (): Promise<any> => {
    const r = await rf1.post('/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate', { ImageURI: 'https://127.32.9.1:18032/bmc.json' });
    assert.equal(r.status, 202, JSON.stringify(r.json));
    return tr.until(async () => {
      const t = (await rf1.get(r.json['@odata.id'])).json;
      return t.TaskState === 'Completed' || t.TaskState === 'Exception' ? t : undefined;
    }, 10_000, 'task');
  };
  try {
    const us = (await rf1.get('/redfish/v1/UpdateService')).json;
    assert.equal(us.VerifyCertificate, true, JSON.stringify(us).slice(0, 300));
    const COL = us.RemoteServerCertificates['@odata.id'] as string;
    const refused = await update();
    assert.equal(refused.TaskState, 'Exception', 'an unknown CA: not downloaded');
    assert.match(JSON.stringify(refused.Messages), /cannot download/);
    assert.notEqual((await rf1.get('/redfish/v1/UpdateService/FirmwareInventory/BMC')).json.Version, 'CVGM-9.1.0');
    const notPem = await rf1.post(COL, { CertificateString: 'nope', CertificateType: 'PEM' });
    assert.equal(notPem.status, 400);
    assert.match(JSON.stringify(notPem.json), /CertificateString/);
    const leaf = await rf1.post(COL, { CertificateString: cert.cert, CertificateType: 'PEM' });
    assert.equal(leaf.status, 400, 'a server certificate is not a CA');
    const added = await rf1.post(COL, { CertificateString: ca.cert, CertificateType: 'PEM' });
    assert.equal(added.status, 201);
    assert.equal((await rf1.post(COL, { CertificateString: ca.cert, CertificateType: 'PEM' })).status, 409, 'the same CA once');
    const listed = (await rf1.get(COL)).json;
    assert.equal(listed.Members.length, 1);
    assert.equal((await rf1.get(listed.Members[0]['@odata.id'])).json.Subject.CommonName, 'image-server ca');
    const r = await rf1.post('/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate', { ImageURI: 'https://127.32.9.1:18032/bmc.json' });
    assert.equal(r.status, 202);
    // a BMC update ends with the BMC restarting (its tasks gone, as on real BMCs): the inventory says it
    await tr.until(async () => ((await rf1.get('/redfish/v1/UpdateService/FirmwareInventory/BMC').catch(() => null))?.json?.Version === 'CVGM-9.1.0' ? true : undefined), 30_000, 'the new BMC firmware');
    const loc = added.headers.get('location') ?? '';
    assert.equal((await rf1.delete(loc)).status, 204);
    assert.equal((await rf1.get(COL)).json.Members.length, 0);
  } finally {
    server.close();
  }
});

test('BMC network settings (ipmi_config): validated, then the BMC moves to its new address', async () => {
  const rf1 = tr.redfish(1);
  const NIC = '/redfish/v1/Managers/1/EthernetInterfaces/1';
  const bad = await rf1.patch(NIC, { IPv4StaticAddresses: [{ Address: '10.0.0.5', SubnetMask: '255.255.255.0', Gateway: '10.0.0.1' }] });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error.message, /loopback/);
  const fmt = await rf1.patch(NIC, { IPv4StaticAddresses: [{ Address: '127.32.9.300' }] });
  assert.equal(fmt.status, 400);
  assert.equal((await rf1.patch(NIC, { HostName: 'bmc-b', IPv4StaticAddresses: [{ Address: '127.32.9.9', SubnetMask: '255.255.0.0', Gateway: '127.32.0.254' }] })).status, 200);
  const moved = new RedfishTestClient('https://127.32.9.9:8443', tr.agent, 'admin', PASSWORD);
  const nic = await tr.until(async () => {
    try {
      return (await moved.get(NIC)).json;
    } catch {
      return undefined;
    }
  }, 5000, 'the BMC at its new address');
  assert.equal(nic.IPv4Addresses[0].Address, '127.32.9.9');
  assert.equal(nic.HostName, 'bmc-b');
  assert.equal(tr.rack.summary(tr.node(1)).bmc.ip, '127.32.9.9');
  // what the node's programs are told follows the move
  assert.deepEqual([tr.node(1).hardware('Hdd').bmc.ip, tr.node(1).hardware('Hdd').bmc.url], ['127.32.9.9', 'https://127.32.9.9:8443']);
});
