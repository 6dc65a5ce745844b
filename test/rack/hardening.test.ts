/**
 * A running rack against hostile or careless input: SSDP packets it must not answer, BMC addresses
 * that are taken, sessions of accounts that changed, malformed control API requests, custom models
 * that shadow known ones, bad firmware images, media behind a password.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { createServer, type Server } from 'node:http';
import type { Socket as UdpSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestRack, PASSWORD, RedfishTestClient } from '../drivers/rack-driver.ts';
import { FileServer, buildImage, TEST_INSTALLER, TEST_HYPERVISOR } from '../drivers/boot-images.ts';
import type { RackClient } from '../../src/rack/protocol/client.ts';
import { Rack } from '../../src/rack/node/rack.ts';
import { BUILTIN_MODELS, findModel, type HardwareModel } from '../../src/rack/core/models.ts';
import { InputError } from '../../src/shared/errors.ts';
import { SystemClock } from '../../src/shared/clock.ts';
import { SeededRandom } from '../../src/shared/random.ts';

let tr: TestRack;
let api: RackClient;
let files: FileServer;

before(async () => {
  tr = await TestRack.start('127.37', { nodes: 3 });
  api = tr.api();
  files = await FileServer.start();
});
after(async () => {
  await tr.stop();
  await files.stop();
});

const SYS = '/redfish/v1/Systems/1';
const NIC = '/redfish/v1/Managers/1/EthernetInterfaces/1';
const CD = '/redfish/v1/Managers/1/VirtualMedia/CD1';
const ACCOUNTS = '/redfish/v1/AccountService/Accounts';
const BASE = 'Base.1.24.0';
const msgId = (r: { json: any }): string => r.json?.error?.['@Message.ExtendedInfo']?.[0]?.MessageId;
const MSEARCH = Buffer.from(['M-SEARCH * HTTP/1.1', 'HOST: 239.255.255.250:1900', 'MAN: "ssdp:discover"', 'MX: 1', 'ST: urn:dmtf-org:service:redfish-rest:1', '', ''].join('\r\n'));

function ssdpSocket(): UdpSocket {
  return (tr.rack as unknown as { ssdp: UdpSocket }).ssdp;
}

async function listenBlocker(ip: string, port: number): Promise<NetServer> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(port, ip, r));
  return s;
}

async function session(user: string, password: string): Promise<RedfishTestClient> {
  const r = await tr.redfish(0, null).post('/redfish/v1/SessionService/Sessions', { UserName: user, Password: password });
  assert.equal(r.status, 201, `login of ${user}: ${r.text}`);
  return tr.redfish(0, null).as({ 'X-Auth-Token': r.headers.get('x-auth-token')! });
}

test('SSDP: a sender with port 0 does not crash the rack; senders outside loopback get no answer', () => {
  const sock = ssdpSocket();
  assert.doesNotThrow(() => sock.emit('message', MSEARCH, { address: '127.0.0.1', family: 'IPv4', port: 0, size: MSEARCH.length }));
  const sent: { port: number; address: string; text: string }[] = [];
  const real = sock.send.bind(sock);
  (sock as unknown as { send: unknown }).send = (msg: string, port: number, address: string): void => void sent.push({ port, address, text: msg });
  try {
    sock.emit('message', MSEARCH, { address: '192.168.10.20', family: 'IPv4', port: 1900, size: MSEARCH.length });
    sock.emit('message', MSEARCH, { address: '10.0.0.1', family: 'IPv4', port: 40000, size: MSEARCH.length });
    assert.equal(sent.length, 0, 'nothing is sent to the LAN');
    sock.emit('message', MSEARCH, { address: '127.0.0.1', family: 'IPv4', port: 40000, size: MSEARCH.length });
    const als = sent.map((s) => /\r\nAL: (\S+)/.exec(s.text)?.[1]);
    assert.deepEqual(als, tr.rack.nodes.map((n) => `${tr.rack.bmcUrl(n.identity.bmcIp)}/redfish/v1/`), 'one answer per BMC, in rack order');
  } finally {
    (sock as unknown as { send: unknown }).send = real;
  }
  assert.equal(tr.rack.ssdpActive, true);
});

test('nodes, BMC list and status come in rack order', async () => {
  const order = tr.rack.config.nodes.map((n) => n.serial);
  assert.deepEqual(tr.rack.nodes.map((n) => n.serial), order);
  assert.deepEqual((await api.status()).nodes.map((n) => n.serial), order);
  assert.deepEqual((await api.bmcs()).bmcs.map((b) => b.serial), order);
});

test('the control API takes JSON objects only, with Content-Type application/json', async () => {
  const call = async (method: string, path: string, body: string | undefined, type: string | undefined = 'application/json'): Promise<{ status: number; json: any }> => {
    const headers: Record<string, string> = { Authorization: `Bearer ${tr.endpoint().token}` };
    if (type) headers['Content-Type'] = type;
    const init: RequestInit = { method, headers };
    if (body !== undefined) init.body = body;
    const res = await fetch(`${tr.rack.controlUrl}${path}`, init);
    return { status: res.status, json: await res.json() };
  };
  const before = tr.rack.config.nodes.length;
  for (const [body, field] of [['[]', 'body'], ['"x"', 'body'], ['[1]', 'body'], ['null', 'body'], ['{"count":null}', 'count'], ['{"count":1.5}', 'count'], ['{"count":"2"}', 'count'], ['{"model":5}', 'model']] as const) {
    const r = await call('POST', '/rack/nodes', body);
    assert.equal(r.status, 400, `POST /rack/nodes ${body}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error.field, field, body);
  }
  const serial = tr.node(0).serial;
  for (const body of ['null', '[]', '"x"']) {
    const r = await call('PATCH', `/rack/nodes/${serial}/faults`, body);
    assert.equal(r.status, 400, `PATCH faults ${body}`);
    assert.equal(r.json.error.field, 'body');
  }
  // a web page's "simple" request (text/plain, form) is refused before it does anything
  let shutdowns = 0;
  tr.rack.onShutdownRequest = () => void (shutdowns += 1);
  for (const type of ['text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', undefined]) {
    const r = await call('POST', '/rack/shutdown', '{}', type ?? '');
    assert.equal(r.status, 400, `shutdown with ${type ?? 'no type'}`);
    assert.equal(r.json.error.field, 'Content-Type');
  }
  assert.equal((await call('POST', '/rack/nodes', '{"count":1}', 'text/plain')).status, 400);
  assert.equal((await call('DELETE', `/rack/nodes/${serial}/faults`, undefined, '')).status, 400);
  assert.equal(shutdowns, 0);
  assert.equal(tr.rack.config.nodes.length, before, 'no node was added');
  // the client sends JSON on every change
  await api.shutdown();
  assert.equal(shutdowns, 1);
  tr.rack.onShutdownRequest = () => undefined;
  assert.deepEqual((await api.clearFaults(serial)).failedDisks, []);
  assert.equal((await api.setFaults(serial, {})).bmcUnreachable, false);
});

test('BMC address: one in use by another BMC or the rack is refused (409), nothing saved; a move binds first', async () => {
  const rf1 = tr.redfish(1);
  const n1 = tr.node(1);
  const home = n1.identity.bmcIp;
  const saved = (): string => JSON.parse(readFileSync(n1.layout.state, 'utf8')).bmcNetwork.address;
  for (const ip of [tr.node(0).identity.bmcIp, tr.node(2).identity.bmcIp, '127.37.255.254']) {
    const r = await rf1.patch(NIC, { HostName: 'renamed', IPv4StaticAddresses: [{ Address: ip }] });
    assert.equal(r.status, 409, `${ip}: ${r.text}`);
    assert.equal(msgId(r), `${BASE}.ResourceInUse`);
    assert.equal(saved(), home);
  }
  assert.equal((await rf1.get(NIC)).json.HostName, n1.state.bmcNetwork.hostName);
  assert.notEqual(n1.state.bmcNetwork.hostName, 'renamed', 'a refused PATCH changes nothing');
  // an address something else listens on: the bind fails, the BMC stays where it was
  const blocker = await listenBlocker('127.37.7.7', 8443);
  try {
    const r = await rf1.patch(NIC, { IPv4StaticAddresses: [{ Address: '127.37.7.7' }] });
    assert.equal(r.status, 409, r.text);
    assert.match(r.json.error.message, /EADDRINUSE/);
    assert.equal(saved(), home);
    assert.equal((await rf1.get(NIC)).json.IPv4Addresses[0].Address, home);
    assert.equal(tr.rack.summary(n1).bmc.ip, home);
  } finally {
    await new Promise<void>((r) => blocker.close(() => r()));
  }
  // a good move: the BMC answers at its new address as soon as the PATCH returns
  const ok = await rf1.patch(NIC, { IPv4StaticAddresses: [{ Address: '127.37.7.8' }] });
  assert.equal(ok.status, 200, ok.text);
  const there = new RedfishTestClient('https://127.37.7.8:8443', tr.agent, 'admin', PASSWORD);
  assert.equal((await there.get(NIC)).json.IPv4Addresses[0].Address, '127.37.7.8');
  assert.equal(saved(), '127.37.7.8');
  assert.deepEqual([n1.hardware('Hdd').bmc.ip, n1.hardware('Hdd').bmc.url], ['127.37.7.8', 'https://127.37.7.8:8443']);
  // and back home, for the tests that follow
  assert.equal((await there.patch(NIC, { IPv4StaticAddresses: [{ Address: home }] })).status, 200);
  assert.equal((await rf1.get(NIC)).json.IPv4Addresses[0].Address, home);
  await assert.rejects(there.get(NIC), 'the old address no longer answers');
});

test('sessions end when their account is deleted, disabled, renamed, or gets a new role or password', async () => {
  const rf = tr.redfish(0);
  const make = async (user: string, role: string): Promise<string> => {
    const r = await rf.post(ACCOUNTS, { UserName: user, Password: `${user}-pass-1`, RoleId: role });
    assert.equal(r.status, 201, r.text);
    return r.headers.get('location')!;
  };
  const cases: [string, string, (loc: string) => Promise<unknown>][] = [
    ['gone1', 'Administrator', (loc) => rf.delete(loc)],
    ['off1', 'Operator', (loc) => rf.patch(loc, { Enabled: false })],
    ['name1', 'Operator', (loc) => rf.patch(loc, { UserName: 'name1b' })],
    ['role1', 'Administrator', (loc) => rf.patch(loc, { RoleId: 'ReadOnly' })],
    ['pass1', 'Operator', (loc) => rf.patch(loc, { Password: 'pass1-pass-2' })],
  ];
  for (const [user, role, change] of cases) {
    const loc = await make(user, role);
    const s = await session(user, `${user}-pass-1`);
    assert.equal((await s.get(SYS)).status, 200);
    await change(loc);
    assert.equal((await s.get(SYS)).status, 401, `the session of ${user} after the change`);
    if (user === 'gone1') assert.equal((await s.post(ACCOUNTS, { UserName: 'sneaky', Password: 'sneaky-pass-1', RoleId: 'Administrator' })).status, 401);
    const left = (await rf.get(loc)).status === 200;
    if (left) assert.equal((await rf.delete(loc)).status, 204);
  }
  assert.equal((await rf.get(ACCOUNTS)).json.Members.length, 1);
});

test('Locked reports a lockout after 5 failed logins; PATCH Locked: false lifts it', async () => {
  const rf = tr.redfish(0);
  const c = await rf.post(ACCOUNTS, { UserName: 'clumsy', Password: 'clumsy-pass-1', RoleId: 'Operator' });
  const loc = c.headers.get('location')!;
  assert.equal((await rf.get(loc)).json.Locked, false);
  for (let i = 0; i < 5; i++) assert.equal((await tr.redfish(0, 'clumsy', 'wrong-password').get(SYS)).status, 401);
  assert.equal((await rf.get(loc)).json.Locked, true);
  assert.equal((await tr.redfish(0, 'clumsy', 'clumsy-pass-1').get(SYS)).status, 401, 'locked out');
  assert.equal((await rf.patch(loc, { Locked: false })).status, 200);
  assert.equal((await rf.get(loc)).json.Locked, false);
  assert.equal((await tr.redfish(0, 'clumsy', 'clumsy-pass-1').get(SYS)).status, 200);
  assert.equal((await rf.delete(loc)).status, 204);
});

test('the last enabled Administrator cannot be deleted, even when a disabled one exists', async () => {
  const rf = tr.redfish(0);
  const c = await rf.post(ACCOUNTS, { UserName: 'dormant', Password: 'dormant-pass-1', RoleId: 'Administrator', Enabled: false });
  assert.equal(c.status, 201);
  const r = await rf.delete(`${ACCOUNTS}/1`);
  assert.equal(r.status, 409);
  assert.equal((await rf.get(`${ACCOUNTS}/1`)).status, 200);
  assert.equal((await rf.delete(c.headers.get('location')!)).status, 204, 'a disabled administrator can go');
});

test('an Image with a bad %-sequence does not break the virtual media resource', async () => {
  const rf = tr.redfish(2);
  assert.equal((await rf.post(`${CD}/Actions/VirtualMedia.InsertMedia`, { Image: 'http://h/bad%zz.iso' })).status, 204);
  const vm = await rf.get(CD);
  assert.equal(vm.status, 200);
  assert.equal(vm.json.ImageName, 'bad%zz.iso');
  assert.equal((await rf.patch(CD, { Inserted: false })).status, 200);
  assert.equal((await rf.get(CD)).json.Inserted, false);
  assert.equal((await rf.get('/redfish/v1/Managers/1/%E0%A4%A')).status, 404);
});

test('Redfish: a Link header names the schema; a body that is not JSON is 415; no body needs no Content-Type', async () => {
  const rf = tr.redfish(0);
  assert.equal((await rf.get(SYS)).headers.get('link'), '<http://redfish.dmtf.org/schemas/v1/ComputerSystem.v1_20_0.json>; rel=describedby');
  assert.equal((await rf.head('/redfish/v1/Systems')).headers.get('link'), '<http://redfish.dmtf.org/schemas/v1/ComputerSystemCollection.json>; rel=describedby');
  const r = await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, '{"ResetType": "On"}', { 'Content-Type': 'text/plain' });
  assert.equal(r.status, 415);
  assert.equal(r.json.error.code, `${BASE}.GeneralError`);
  assert.equal(tr.node(0).state.power.power, 'Off', 'nothing happened');
  assert.equal((await rf.patch(SYS, 'AssetTag=x', { 'Content-Type': 'application/x-www-form-urlencoded' })).status, 415);
  assert.equal((await rf.post(`${CD}/Actions/VirtualMedia.EjectMedia`)).status, 204);
});

test('firmware images: JSON null fails the task (Critical, with an end time); an oversized image is refused', async () => {
  const rf = tr.redfish(0);
  const run = async (name: string, body: Buffer): Promise<any> => {
    const r = await rf.post('/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate', { ImageURI: files.serve(name, body) });
    assert.equal(r.status, 202, r.text);
    return tr.until(async () => {
      const t = (await rf.get(r.json['@odata.id'])).json;
      return t.TaskState === 'Completed' || t.TaskState === 'Exception' ? t : undefined;
    }, 10_000, name);
  };
  for (const body of ['null', '[1]', '"x"']) {
    const t = await run(`fw-${body.length}.json`, Buffer.from(body));
    assert.equal(t.TaskState, 'Exception', body);
    assert.equal(t.TaskStatus, 'Critical', body);
    assert.ok(t.EndTime, `EndTime for ${body}`);
  }
  const big = await run('fw-big.json', Buffer.alloc(17 * 1024 * 1024, 0x20));
  assert.equal(big.TaskState, 'Exception');
  assert.match(big.Messages.at(-1).Message, /too large/);
  const ids = (await rf.get('/redfish/v1/TaskService/Tasks')).json.Members.map((m: { '@odata.id': string }) => m['@odata.id']);
  assert.equal(new Set(ids).size, ids.length);
});

test('virtual media behind a password: UserName/Password (or URL user-info) are used, and never shown or logged', async () => {
  const image = readFileSync(await buildImage({ 'installer.mjs': TEST_INSTALLER, 'hv.mjs': TEST_HYPERVISOR }, { name: 'test-installer', version: '1.0', entry: 'installer.mjs' }));
  const want = `Basic ${Buffer.from('lab:s3cret-media').toString('base64')}`;
  const auths: (string | undefined)[] = [];
  const srv: Server = createServer((req, res) => {
    auths.push(req.headers.authorization);
    if (req.headers.authorization !== want) res.writeHead(401).end('who are you');
    else res.writeHead(200).end(image);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  const rf = tr.redfish(2);
  const n = tr.node(2);
  try {
    assert.equal((await rf.post(`${CD}/Actions/VirtualMedia.InsertMedia`, { Image: `http://127.0.0.1:${port}/installer.tar`, UserName: 'lab', Password: 's3cret-media' })).status, 204);
    await rf.patch(SYS, { Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Once' } });
    await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' });
    await tr.until(() => n.state.power.running?.name === 'test-hypervisor', 15_000, 'the install from the protected server');
    assert.ok(auths.includes(want));
    // user-info in the URL: used for the download, dropped from what is shown
    await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'ForceOff' });
    assert.equal((await rf.post(`${CD}/Actions/VirtualMedia.InsertMedia`, { Image: `http://lab:s3cret-media@127.0.0.1:${port}/installer.tar` })).status, 204);
    assert.equal((await rf.get(CD)).json.Image, `http://127.0.0.1:${port}/installer.tar`);
    await rf.patch(SYS, { Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Once' } });
    await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' });
    await tr.until(() => n.consoleLines().filter((l) => l.includes('installer: done')).length === 2, 15_000, 'the second install');
    await rf.post(`${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'ForceOff' });
    const sel = JSON.stringify((await rf.get('/redfish/v1/Managers/1/LogServices/SEL/Entries')).json);
    const consoleText = JSON.stringify((await rf.get('/redfish/v1/Managers/1/LogServices/Console/Entries')).json);
    for (const [what, text] of [['SEL', sel], ['console', consoleText], ['rack log', tr.logs.join('\n')], ['console.log', readFileSync(n.layout.console, 'utf8')], ['hardware.json', readFileSync(n.layout.hardware, 'utf8')]] as const) {
      assert.ok(!text.includes('s3cret-media'), `${what} shows the password`);
    }
    assert.ok(sel.includes(`Virtual media inserted: http://127.0.0.1:${port}/installer.tar`));
  } finally {
    await rf.post(`${CD}/Actions/VirtualMedia.EjectMedia`);
    await new Promise<void>((r) => {
      srv.close(() => r());
      srv.closeAllConnections();
    });
  }
});

test('rack add: status answers while the new nodes start; a node that cannot start is rolled back', async () => {
  const count = tr.rack.config.nodes.length;
  const adding = tr.rack.addNodes(1);
  const during = tr.rack.status(); // rack.json already lists the new node; its BMC is not up yet
  assert.equal(during.nodes.length, count);
  const res = await fetch(`${tr.rack.controlUrl}/rack`, { headers: { Authorization: `Bearer ${tr.endpoint().token}` } });
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  const [added] = await adding;
  assert.equal(tr.rack.status().nodes.length, count + 1);
  assert.equal(added!.bmc.ip, `127.37.0.${count + 1}`);
  // the next node's address is taken: rack add fails and leaves the rack as it was
  const blocker = await listenBlocker(`127.37.0.${count + 2}`, 8443);
  try {
    await assert.rejects(tr.rack.addNodes(1), /EADDRINUSE|cannot listen/);
  } finally {
    await new Promise<void>((r) => blocker.close(() => r()));
  }
  assert.equal(tr.rack.config.nodes.length, count + 1);
  assert.equal(JSON.parse(readFileSync(tr.rack.layout.rackJson, 'utf8')).nodes.length, count + 1);
  assert.equal((await api.status()).nodes.length, count + 1);
  const [again] = await api.addNodes(1);
  assert.equal(again!.bmc.ip, `127.37.0.${count + 2}`);
  assert.equal((await tr.redfish(count + 1).get(SYS)).status, 200);
});

test('a custom model may not take the name of a known model unless it is the same model', async () => {
  const h1065 = findModel(BUILTIN_MODELS, 'CVG-H1065');
  const impostor: HardwareModel = { ...h1065, name: 'cvg-h1065', cpu: { ...h1065.cpu, sockets: 1 } };
  const models = tr.rack.config.models.length;
  const nodes = tr.rack.config.nodes.length;
  await assert.rejects(tr.rack.addNodes(1, undefined, impostor), (e: unknown) => e instanceof InputError && e.field === 'model.name');
  await assert.rejects(api.addNodes(1, undefined, impostor), (e: unknown) => (e as { field?: string }).field === 'model.name');
  assert.equal(tr.rack.config.nodes.length, nodes);
  // the very same definition is the same model
  const [same] = await tr.rack.addNodes(1, undefined, { ...h1065 });
  assert.equal(same!.model, 'CVG-H1065');
  assert.equal(tr.rack.config.models.length, models);
  // a new model, then a different one under its name (in another case)
  const mine: HardwareModel = { ...findModel(BUILTIN_MODELS, 'CVG-LAB-MINI'), name: 'MY-LAB' };
  await tr.rack.addNodes(1, undefined, mine);
  await assert.rejects(tr.rack.addNodes(1, undefined, { ...mine, name: 'my-lab', vendor: 'Other' }), (e: unknown) => e instanceof InputError && e.field === 'model.name');
  assert.equal(tr.rack.config.models.filter((m) => m.name.toLowerCase() === 'my-lab').length, 1);
  // rack up --model-file with a built-in's name
  const dir = mkdtempSync(join(tmpdir(), 'cvg-model-'));
  try {
    const opts = { dataDir: dir, clock: new SystemClock(), random: new SeededRandom(1), log: () => undefined };
    assert.throws(() => Rack.create(opts, { nodes: 1, modelFile: { ...impostor, name: 'CVG-LAB-MINI' } }), (e: unknown) => e instanceof InputError && e.field === 'model.name');
    assert.equal(Rack.exists(dir), false);
    const r = Rack.create(opts, { nodes: 1, modelFile: { ...h1065 } });
    assert.deepEqual([r.config.models, r.config.nodes[0]!.model], [[], 'CVG-H1065']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
