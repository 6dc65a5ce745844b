/**
 * Discovery by each source alone: the rack's BMC list, Redfish SSDP, and address ranges; then the
 * inventory read over Redfish.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SystemClock } from '../../src/shared/clock.ts';
import { Foundation } from '../../src/foundation/node/foundation.ts';
import { TestRack, PASSWORD } from '../drivers/rack-driver.ts';
import { DeploymentPki } from '../../src/shared/identity.ts';
import type { RackEndpoint } from '../../src/rack/protocol/access.ts';

let tr: TestRack;
const dir = mkdtempSync(join(tmpdir(), 'cvg-disc-'));
before(async () => {
  tr = await TestRack.start('127.58', { nodes: 3 });
  await tr.rack.addNodes(1, 'CVG-F1120');
});
after(async () => {
  await tr.stop();
  rmSync(dir, { recursive: true, force: true });
});

let pki: DeploymentPki;
before(async () => {
  pki = await DeploymentPki.open(dir);
});

function foundation(o: { racks?: RackEndpoint[]; ssdpPort?: number }): Foundation {
  return new Foundation({
    pki,
    dataDir: dir, clock: new SystemClock(), url: 'http://127.0.0.1:1', log: () => undefined, profile: 'lab', bmcPort: 8443,
    creds: { user: 'admin', password: PASSWORD, ca: readFileSync(tr.rack.layout.caCert, 'utf8') },
    racks: o.racks ?? [], ssdpPort: o.ssdpPort ?? 9,
  });
}

const want = ['https://127.58.0.1:8443', 'https://127.58.0.2:8443', 'https://127.58.0.3:8443', 'https://127.58.0.4:8443'];

test('each source alone finds every BMC: the rack list, SSDP, an address range', async () => {
  assert.deepEqual(await foundation({ racks: [tr.endpoint()] }).findBmcs(), want);
  assert.deepEqual(await foundation({ ssdpPort: tr.rack.config.network.ssdpPort }).findBmcs(), want);
  assert.deepEqual(await foundation({}).findBmcs(['127.58.0.1-127.58.0.10']), want);
  assert.deepEqual(await foundation({}).findBmcs(), [], 'no source, nothing found');
  await assert.rejects(foundation({}).findBmcs(['127.58.0.9-127.58.0.1']), /range/);
});

test('inventory over Redfish: CPU, memory, disks, NICs, HBA, firmware, block and position', async () => {
  const nodes = await foundation({ racks: [tr.endpoint()] }).discover();
  assert.equal(nodes.length, 4);
  const a = nodes.find((n) => n.serial === tr.node(0).serial)!;
  assert.deepEqual(a.inventory.cpu, { model: 'Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz', sockets: 2, coresPerSocket: 16, threadsPerCore: 2 });
  assert.equal(a.inventory.memoryMiB, 256 * 1024);
  assert.equal(a.inventory.disks.length, 6);
  assert.deepEqual(a.inventory.disks.map((d) => d.serial), tr.node(0).inventory.disks.map((d) => d.serial));
  assert.equal(a.inventory.bootDevice?.capacityBytes, 4 * 1024 ** 3);
  assert.equal(a.inventory.hba?.passthroughCapable, true);
  assert.equal(a.inventory.nics.length, 4);
  assert.equal(a.inventory.firmware.bmc, '3.10.2');
  assert.equal(a.position, 'A');
  const f = nodes.find((n) => n.model === 'CVG-F1120')!;
  assert.ok(f.inventory.disks.every((d) => d.mediaType === 'SSD'));
  assert.notEqual(f.blockSerial, a.blockSerial);
  const blocks = Foundation.blocks(nodes);
  assert.equal(blocks.length, 2);
  assert.equal((blocks[0]!['nodes'] as unknown[]).length, 3);
});
