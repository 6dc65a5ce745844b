import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConflictError, InputError } from '../../shared/errors.ts';
import { checkPowerAction, checkUpdate, parseConsoleInput, parseImageCreate, parseImageUpload, parseMigrate, parseSubnetCreate, parseVmCreate, parseVmUpdate } from './vm-spec.ts';

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof InputError, `an InputError, not ${String(e)}`);
    return e.field;
  }
  assert.fail('no error');
}

const ok = { name: 'web-1', vcpus: 1, memoryMiB: 256, disks: [{ sizeBytes: 1 << 30 }], nics: [{ subnet: 'lan' }] };

test('a create request with every disk shape parses, with defaults', () => {
  const r = parseVmCreate({ ...ok, disks: [{ image: 'debian', sizeBytes: 2 * 2 ** 30 }, { sizeBytes: 1 << 30, bus: 'virtio-scsi' }, { cdromImage: 'iso' }, { vdisk: 'old-disk' }] });
  assert.equal(r.disks.length, 4);
  assert.deepEqual(r.disks[2], { cdromImage: 'iso' });
  assert.equal(r.powerOn, false);
  assert.equal(r.ha, true);
});

test('create errors name the field', () => {
  assert.equal(fieldOf(() => parseVmCreate({ ...ok, memoryMiB: 'lots' })), 'memoryMiB');
  assert.equal(fieldOf(() => parseVmCreate({ ...ok, vcpus: 0 })), 'vcpus');
  assert.equal(fieldOf(() => parseVmCreate({ ...ok, name: '' })), 'name');
  assert.equal(fieldOf(() => parseVmCreate({ ...ok, disks: [{ sizeBytes: 1 << 20 }, { image: '' }] })), 'disks[1].image');
  assert.equal(fieldOf(() => parseVmCreate({ ...ok, disks: [{ sizeBytes: 1000 }] })), 'disks[0].sizeBytes');
  assert.equal(fieldOf(() => parseVmCreate({ ...ok, disks: [{ bus: 'ide' }] })), 'disks[0]');
  assert.equal(fieldOf(() => parseVmCreate({ ...ok, disks: [{ image: 'a', colour: 'red' }] })), 'disks[0]');
  assert.equal(fieldOf(() => parseVmCreate({ ...ok, nics: [{ subnet: '' }] })), 'nics[0].subnet');
  assert.equal(fieldOf(() => parseVmCreate({ ...ok, nics: [{ subnet: 'a', ip: '10.0.0.300' }] })), 'nics[0].ip');
  assert.equal(fieldOf(() => parseVmCreate({ ...ok, nics: [{ subnet: 'a', mac: '01:00:00:00:00:01' }] })), 'nics[0].mac');
  assert.equal(fieldOf(() => parseVmCreate({ ...ok, nics: [{ subnet: 'a', mac: '52:54:00:00:00:01' }, { subnet: 'b', mac: '52:54:00:00:00:01' }] })), 'nics[1].mac');
  assert.equal(fieldOf(() => parseVmCreate({ ...ok, disks: [{ vdisk: 'x' }, { vdisk: 'x' }] })), 'disks[1].vdisk');
  assert.equal(fieldOf(() => parseVmCreate([])), 'body');
});

test('an update that needs the VM off is refused while it runs, naming the field; a name change is not', () => {
  const vm = { name: 'web-1', specVersion: 3, powerState: 'on' as const };
  checkUpdate(vm, parseVmUpdate({ specVersion: 3, name: 'web-2' }));
  assert.throws(() => checkUpdate(vm, parseVmUpdate({ specVersion: 3, memoryMiB: 512 })), (e: unknown) => e instanceof ConflictError && e.message.startsWith('memoryMiB:'));
  assert.throws(() => checkUpdate(vm, parseVmUpdate({ specVersion: 3, addNics: [{ subnet: 'lan' }] })), (e: unknown) => e instanceof ConflictError && e.message.startsWith('addNics:'));
  assert.throws(() => checkUpdate(vm, parseVmUpdate({ specVersion: 2, name: 'x' })), (e: unknown) => e instanceof ConflictError && e.message.startsWith('specVersion:'));
  checkUpdate({ ...vm, powerState: 'off' }, parseVmUpdate({ specVersion: 3, memoryMiB: 512, addDisks: [{ sizeBytes: 1 << 20 }] }));
  assert.equal(fieldOf(() => parseVmUpdate({ specVersion: 3 })), 'body');
  assert.equal(fieldOf(() => parseVmUpdate({ specVersion: 3, addDisks: [{ image: 5 }] })), 'addDisks[0].image');
});

test('power actions that do not fit the state are conflicts', () => {
  checkPowerAction('a', 'off', 'on');
  assert.throws(() => checkPowerAction('a', 'off', 'shutdown'), ConflictError);
  assert.throws(() => checkPowerAction('a', 'on', 'resume'), ConflictError);
  checkPowerAction('a', 'paused', 'off');
});

test('image and subnet requests', () => {
  assert.equal(fieldOf(() => parseImageCreate({ name: 'x', url: 'ftp://a/b' })), 'url');
  assert.equal(fieldOf(() => parseImageCreate({ name: 'x', url: 'http://a/b', format: 'vmdk' })), 'format');
  assert.deepEqual(parseImageCreate({ name: 'x', url: 'http://a/b.qcow2' }), { name: 'x', url: 'http://a/b.qcow2' });
  assert.equal(fieldOf(() => parseSubnetCreate({ name: 'lan', vlanId: 5000 })), 'vlanId');
  assert.equal(fieldOf(() => parseSubnetCreate({ name: 'lan', vlanId: 1, gateway: '10.0.0.1' })), 'gateway');
  assert.deepEqual(parseSubnetCreate({ name: 'lan', vlanId: 1 }), { name: 'lan', vlanId: 1, dns: [] });
});

test('an upload\'s query: a name, a format, and the uuid the caller chose (Prism\'s two-step upload), which must be a UUID', () => {
  assert.deepEqual(parseImageUpload({ name: 'disk', format: 'qcow2' }), { name: 'disk', format: 'qcow2' });
  const uuid = '0b5e4a3c-1d2e-4f60-8a9b-0c1d2e3f4a5b';
  assert.deepEqual(parseImageUpload({ name: 'disk', uuid }), { name: 'disk', uuid });
  for (const bad of ['nope', uuid.toUpperCase(), `${uuid}0`, '../../etc/passwd']) assert.equal(fieldOf(() => parseImageUpload({ name: 'disk', uuid: bad })), 'uuid', bad);
  assert.equal(fieldOf(() => parseImageUpload({ uuid })), 'name');
});

test('migrate and console input bodies: errors name the field', () => {
  assert.deepEqual(parseMigrate(undefined), {});
  assert.deepEqual(parseMigrate({ host: 'N2' }), { host: 'N2' });
  assert.throws(() => parseMigrate({ host: '' }), (e: unknown) => e instanceof InputError && e.field === 'host');
  assert.throws(() => parseMigrate({ to: 'N2' }), (e: unknown) => e instanceof InputError);
  assert.deepEqual(parseConsoleInput({ data: 'ls\n' }), { data: 'ls\n' });
  assert.throws(() => parseConsoleInput({ data: '' }), (e: unknown) => e instanceof InputError && e.field === 'data');
  assert.throws(() => parseConsoleInput({ data: 'é'.repeat(2049) }), (e: unknown) => e instanceof InputError && e.field === 'data' && /4096 bytes/.test(e.message));
  assert.deepEqual(parseConsoleInput({ data: 'x'.repeat(4096) }).data.length, 4096);
});
