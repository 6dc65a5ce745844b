import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUILTIN_MODELS, findModel, inventoryFor, parseHardwareModel, rackNewNodes, bmcIpFor, macFor, parseBmcNetwork } from './models.ts';
import { InputError } from '../../shared/errors.ts';

const hybrid = findModel(BUILTIN_MODELS, 'CVG-H1065');
const flash = findModel(BUILTIN_MODELS, 'cvg-f1120');

test('built-in models: a hybrid (SSD + HDD) and an all-flash node, small lab disks', () => {
  assert.deepEqual(new Set(hybrid.disks.map((d) => d.mediaType)), new Set(['SSD', 'HDD']));
  assert.ok(flash.disks.every((d) => d.mediaType === 'SSD' && d.protocol === 'NVMe'));
  for (const m of BUILTIN_MODELS) for (const d of m.disks) assert.ok(d.capacityGiB <= 16, `${m.name} lab disks stay small`);
});

test('unknown model names the field and lists the models', () => {
  assert.throws(() => findModel(BUILTIN_MODELS, 'NX-9999'), (e: unknown) => e instanceof InputError && e.field === 'model' && e.allowed?.includes('CVG-H1065') === true);
});

test('model JSON is validated with the failing field named', () => {
  const bad = { ...structuredClone(hybrid), cpu: { ...hybrid.cpu, sockets: 0 } };
  assert.throws(() => parseHardwareModel(bad), (e: unknown) => e instanceof InputError && e.field === 'model.cpu.sockets');
  assert.throws(() => parseHardwareModel({ ...structuredClone(hybrid), name: 'bad name!' }), (e: unknown) => e instanceof InputError && e.field === 'model.name');
  assert.equal(parseHardwareModel(structuredClone(hybrid)).name, 'CVG-H1065');
});

test('nodes fill blocks of the model size with positions A..D, then start a new block', () => {
  const nodes = rackNewNodes([], hybrid, 6, (i) => `uuid-${i}`);
  assert.deepEqual(nodes.map((n) => n.position), ['A', 'B', 'C', 'D', 'A', 'B']);
  assert.equal(new Set(nodes.slice(0, 4).map((n) => n.blockSerial)).size, 1);
  assert.notEqual(nodes[4]!.blockSerial, nodes[0]!.blockSerial);
  assert.deepEqual(nodes.map((n) => n.bmcIp), ['127.10.0.1', '127.10.0.2', '127.10.0.3', '127.10.0.4', '127.10.0.5', '127.10.0.6']);
  assert.equal(new Set(nodes.map((n) => n.serial)).size, 6);
  // a different model starts its own block even when the last one has room
  const more = rackNewNodes(nodes, flash, 2, (i) => `uuid-${i}`);
  assert.equal(more[0]!.index, 7);
  assert.notEqual(more[0]!.blockSerial, nodes[5]!.blockSerial);
  assert.notEqual(more[1]!.blockSerial, more[0]!.blockSerial, 'an all-flash block holds one node');
});

test('addresses and MACs: 250 per /24, locally administered MACs unique per port', () => {
  assert.equal(bmcIpFor(250), '127.10.0.250');
  assert.equal(bmcIpFor(251), '127.10.1.1');
  assert.equal(bmcIpFor(3, '127.44'), '127.44.0.3');
  assert.throws(() => bmcIpFor(0), InputError);
  assert.equal(macFor(300, 2), '02:43:56:02:01:2c');
  assert.throws(() => parseBmcNetwork('10.0'), InputError);
  assert.throws(() => parseBmcNetwork('127.255'), InputError);
});

test('inventory expands the model: DIMMs per socket, NICs, disks with serials and byte capacities', () => {
  const [id] = rackNewNodes([], hybrid, 1, () => 'u');
  const inv = inventoryFor(hybrid, id!);
  assert.equal(inv.dimms.length, 8);
  assert.equal(inv.dimms[0]!.slot, 'P1-DIMMA1');
  assert.equal(inv.dimms[7]!.slot, 'P2-DIMMD1');
  assert.equal(inv.nics.length, 4);
  assert.equal(new Set(inv.nics.map((n) => n.mac)).size, 4);
  assert.equal(inv.disks.length, 6);
  assert.equal(inv.disks.filter((d) => d.mediaType === 'HDD').length, 4);
  assert.equal(inv.disks[0]!.capacityBytes, 4 * 1024 ** 3);
  assert.equal(new Set(inv.disks.map((d) => d.serial)).size, 6);
  assert.equal(inv.hba.passthroughCapable, true);
  assert.deepEqual(inventoryFor(hybrid, id!), inv, 'deterministic');
});
