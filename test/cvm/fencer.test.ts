/**
 * Fencing against the rack emulator's real BMCs (Redfish over HTTPS, the rack's CA pinned):
 * power on, ForceOff confirmed by PowerState Off, a fence of a host already off, and the failures
 * HA must see as failures (wrong password, a CA that did not sign the BMC, an unreachable BMC) with
 * reasons that never carry the password.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TestRack, PASSWORD } from '../drivers/rack-driver.ts';
import { SystemClock } from '../../src/shared/clock.ts';
import { createCa } from '../../src/shared/tls.ts';
import { TimeoutError, UnavailableError } from '../../src/shared/errors.ts';
import { RedfishFencer, BmcFencing, bmcBaseUrl, type BmcAccess } from '../../src/cvm/node/fencer.ts';
import { HaMonitor, type HaEvent } from '../../src/cvm/node/ha-monitor.ts';
import type { FenceRecord } from '../../src/cvm/core/ha.ts';
import { host, simplePlace, vm } from '../../src/cvm/core/ha.fixtures.ts';

let tr: TestRack;
let ca: string;
const clock = new SystemClock();
const fencers: RedfishFencer[] = [];

before(async () => {
  tr = await TestRack.start('127.106', { nodes: 2 });
  ca = readFileSync(tr.rack.layout.caCert, 'utf8');
});
after(async () => {
  await Promise.all(fencers.map((f) => f.close()));
  await tr.stop();
});

function fencer(i: number, o: Partial<BmcAccess> = {}, timeoutMs = 10_000): RedfishFencer {
  const f = new RedfishFencer({ address: tr.rack.bmcUrl(tr.node(i).identity.bmcIp), user: 'admin', password: PASSWORD, ca, ...o }, { clock, timeoutMs, pollMs: 50, requestTimeoutMs: 3000 });
  fencers.push(f);
  return f;
}

test('powerOn, then fence: ForceOff and PowerState Off confirmed; a second fence sends nothing', async (t) => {
  const f = fencer(0);
  assert.match(await f.systemPath(), /^\/redfish\/v1\/Systems\/\w+/);
  await f.powerOn();
  assert.equal(await f.powerState(), 'On');
  assert.equal((await f.powerOn()).sent, false, 'already on');
  const t0 = Date.now();
  const r = await f.fence();
  assert.equal(r.sent, true);
  assert.equal(await f.powerState(), 'Off');
  assert.equal(tr.node(0).state.power.power, 'Off', 'the node itself is off');
  assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  t.diagnostic(`fence (ForceOff confirmed Off) took ${r.tookMs} ms`);
  assert.equal((await f.fence()).sent, false, 'already off: fenced without a reset');
});

test('a wrong password is a failure that names the BMC, not the password', async () => {
  const f = fencer(1, { password: 'not-the-password-42' });
  await assert.rejects(f.fence(), (e: unknown) => {
    assert.ok(e instanceof UnavailableError);
    assert.match(e.message, /refused the credentials/);
    assert.ok(!e.message.includes('not-the-password-42') && !e.message.includes(PASSWORD));
    return true;
  });
});

test('a CA that did not sign the BMC\'s certificate: refused (the CA is pinned)', async () => {
  const other = await createCa('not the rack');
  const f = fencer(1, { ca: other.cert });
  await assert.rejects(f.fence(), (e: unknown) => e instanceof UnavailableError && /could not list its systems/.test(e.message) && /CERT|certificate|self.signed|UNABLE/i.test(e.message));
});

test('an unreachable BMC, and one too slow to confirm: failures with reasons', async () => {
  const api = tr.api();
  const serial = tr.node(1).identity.serial;
  await api.setFaults(serial, { bmcUnreachable: true });
  try {
    await assert.rejects(fencer(1).fence(), (e: unknown) => e instanceof UnavailableError && /ECONNREFUSED|fetch failed/.test(e.message));
  } finally {
    await api.clearFaults(serial);
  }
  // slower than each request's timeout
  await api.setFaults(serial, { bmcSlowMs: 4000 });
  try {
    await assert.rejects(fencer(1, {}, 2000).fence(), (e: unknown) => (e instanceof UnavailableError || e instanceof TimeoutError));
  } finally {
    await api.clearFaults(serial);
  }
});

test('bmcBaseUrl: a bare address is https on 443; http is refused', () => {
  assert.equal(bmcBaseUrl('127.10.0.1'), 'https://127.10.0.1');
  assert.equal(bmcBaseUrl('https://127.10.0.1:8443/redfish/v1'), 'https://127.10.0.1:8443');
  assert.throws(() => bmcBaseUrl('http://127.10.0.1'), /must be https/);
});

test('HaMonitor with BmcFencing on the stored credentials: a silent host is powered off by its real BMC before its VM restarts', async () => {
  const serial0 = tr.node(0).identity.serial;
  const stored = new Map<string, BmcAccess>([[serial0, { address: tr.rack.bmcUrl(tr.node(0).identity.bmcIp), user: 'admin', password: PASSWORD, ca }]]);
  const bmcs = new BmcFencing({ clock, read: (s) => Promise.resolve(stored.get(s)), timeoutMs: 10_000, pollMs: 50 });
  await assert.rejects(bmcs.fence('nobody'), /no BMC is known for host nobody/);
  await bmcs.powerOn(serial0);
  assert.equal(tr.node(0).state.power.power, 'On');
  let v = vm('v1', { on: serial0 });
  const events: HaEvent[] = [];
  const records = new Map<string, FenceRecord>();
  let poweredOffWhenRestarted: string | undefined;
  const m = new HaMonitor({
    clock, place: simplePlace, pollMs: 100, pollTimeoutMs: 100, ha: { downAfterMs: 500 },
    ports: {
      view: () => Promise.resolve({ hosts: [host(serial0), host('other')], vms: [v] }),
      pollHost: (h) => (h.serial === serial0 ? Promise.reject(new Error('no answer')) : Promise.resolve([])),
      fence: (s, signal) => bmcs.fence(s, signal),
      powerOn: (s, signal) => bmcs.powerOn(s, signal),
      restartVm: (_uuid, h, epoch) => {
        poweredOffWhenRestarted = tr.node(0).state.power.power;
        v = { ...v, host: { serial: h, hostIp: 'x' }, epoch };
        return Promise.resolve();
      },
      loadFenceRecords: () => Promise.resolve([...records.values()]),
      saveFenceRecord: (r) => { records.set(r.host, r); return Promise.resolve(); },
      deleteFenceRecord: (h) => { records.delete(h); return Promise.resolve(); },
      record: (e) => void events.push(e),
    },
  });
  const t0 = Date.now();
  await m.start();
  await tr.until(() => v.host?.serial === 'other', 10_000, 'the VM restarted on the other host');
  const took = Date.now() - t0;
  await m.stop();
  assert.equal(poweredOffWhenRestarted, 'Off', 'the BMC had powered the host off before the restart');
  assert.equal(v.epoch, 2);
  assert.equal(records.get(serial0)?.state, 'fenced');
  const done = events.find((e) => e.kind === 'fence-done');
  assert.ok(done && done.kind === 'fence-done' && done.ok);
  assert.ok(took < 5000, `restarted ${took} ms after the monitor started (down after 0.5 s)`);
});
