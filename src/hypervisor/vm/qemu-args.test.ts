import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../../shared/errors.ts';
import type { HostVmSpec } from '../protocol/vms.ts';
import { qemuArgs, qemuOpt, type QemuArgsInput } from './qemu-args.ts';
import { checkSpec } from './spec.ts';

const UUID = '0b5c1f5e-3f0e-4e55-9d0c-2a6f4b1c9e01';
const SUBNET = '7d2f8f10-7a47-4a39-8f55-0a3c3e4b5d6f';
const spec = (over: Partial<HostVmSpec> = {}): HostVmSpec => ({
  uuid: UUID, name: 'web-1', vcpus: 2, memoryMiB: 256, epoch: 1,
  disks: [{ vdisk: 'vm-web-1-disk0', bus: 'virtio-blk', bootIndex: 1 }],
  nics: [],
  ...over,
});
const input = (over: Partial<QemuArgsInput> = {}): QemuArgsInput => ({
  spec: spec(), accel: 'tcg',
  paths: { qmp: '/run/v/q.sock', serial: '/run/v/s.sock', consoleLog: '/var/v/console.log', vdiskSocket: '/run/link/vdisk.sock' },
  nicSocket: (s) => `/run/switch/${s}.sock`,
  ...over,
});
/** The value following `flag` each time it appears. */
const valuesOf = (argv: string[], flag: string): string[] => argv.flatMap((a, i) => (a === flag ? [argv[i + 1] ?? ''] : []));

test('the machine, accelerator, CPUs and memory come from the spec and the caller', () => {
  const a = qemuArgs(input());
  assert.deepEqual(valuesOf(a, '-machine'), ['type=q35']);
  assert.deepEqual(valuesOf(a, '-accel'), ['tcg']);
  assert.deepEqual(valuesOf(a, '-smp'), ['2']);
  assert.deepEqual(valuesOf(a, '-m'), ['256M']);
  assert.deepEqual(valuesOf(a, '-uuid'), [UUID]);
  assert.ok(a.includes('-nodefaults') && a.includes('-no-user-config'));
  assert.deepEqual(valuesOf(a, '-display'), ['none']);
  assert.deepEqual(valuesOf(a, '-vga'), ['none']);
  assert.deepEqual(valuesOf(qemuArgs(input({ accel: 'kvm', machine: 'pc', vga: 'std' })), '-machine'), ['type=pc']);
  assert.deepEqual(valuesOf(qemuArgs(input({ accel: 'kvm' })), '-accel'), ['kvm']);
  assert.deepEqual(valuesOf(qemuArgs(input({ vga: 'std' })), '-vga'), ['std']);
  assert.ok(!a.includes('-S') && !a.includes('-incoming'));
});

test('QMP and the serial console are Unix sockets; the console is logged and appended', () => {
  const a = qemuArgs(input());
  assert.deepEqual(valuesOf(a, '-qmp'), ['unix:/run/v/q.sock,server=on,wait=off']);
  assert.deepEqual(valuesOf(a, '-chardev'), ['socket,id=ser0,path=/run/v/s.sock,server=on,wait=off,logfile=/var/v/console.log,logappend=on']);
  assert.deepEqual(valuesOf(a, '-serial'), ['chardev:ser0']);
});

test('each disk is an NBD export of the redirector socket with its device and boot order', () => {
  const a = qemuArgs(input({
    spec: spec({
      disks: [
        { vdisk: 'boot', bus: 'virtio-blk', bootIndex: 2 },
        { vdisk: 'data0', bus: 'virtio-scsi' },
        { vdisk: 'data1', bus: 'virtio-scsi' },
        { vdisk: 'iso', bus: 'cdrom', bootIndex: 1 },
      ],
    }),
  }));
  const blockdevs = valuesOf(a, '-blockdev');
  assert.equal(blockdevs.length, 4);
  assert.equal(blockdevs[0], 'driver=nbd,server.type=unix,server.path=/run/link/vdisk.sock,export=boot,node-name=disk0,reconnect-delay=30,cache.direct=off,cache.no-flush=off,read-only=off,discard=unmap');
  assert.match(blockdevs[3] ?? '', /export=iso,node-name=disk3,.*read-only=on$/);
  assert.deepEqual(valuesOf(a, '-device'), [
    'virtio-scsi-pci,id=scsi0',
    'virtio-blk-pci,drive=disk0,id=vd0,bootindex=2',
    'scsi-hd,bus=scsi0.0,channel=0,scsi-id=0,lun=0,drive=disk1,id=vd1',
    'scsi-hd,bus=scsi0.0,channel=0,scsi-id=1,lun=0,drive=disk2,id=vd2',
    'ide-cd,bus=ide.0,drive=disk3,id=vd3,bootindex=1',
  ]);
});

test('CD-ROMs take the IDE buses of the machine: one per AHCI port on q35, two units per bus on pc', () => {
  const disks: HostVmSpec['disks'] = [{ vdisk: 'a', bus: 'cdrom' }, { vdisk: 'b', bus: 'cdrom' }, { vdisk: 'c', bus: 'cdrom' }];
  const ide = (machine: 'q35' | 'pc'): string[] => valuesOf(qemuArgs(input({ machine, spec: spec({ disks }) })), '-device').map((d) => d.replace(/,drive=.*/, ''));
  assert.deepEqual(ide('q35'), ['ide-cd,bus=ide.0', 'ide-cd,bus=ide.1', 'ide-cd,bus=ide.2']);
  assert.deepEqual(ide('pc'), ['ide-cd,bus=ide.0,unit=0', 'ide-cd,bus=ide.0,unit=1', 'ide-cd,bus=ide.1,unit=0']);
});

test('each NIC is a stream netdev to its subnet\'s switch port and a virtio-net device with its MAC', () => {
  const a = qemuArgs(input({ spec: spec({ disks: [], nics: [{ mac: '52:54:00:AB:00:01', subnetUuid: SUBNET, ip: '10.0.0.5' }] }) }));
  assert.deepEqual(valuesOf(a, '-netdev'), [`stream,id=net0,server=off,addr.type=unix,addr.path=/run/switch/${SUBNET}.sock`]);
  assert.deepEqual(valuesOf(a, '-device'), ['virtio-net-pci,netdev=net0,mac=52:54:00:ab:00:01,id=nic0']);
});

test('an incoming migration waits with -incoming defer; a start stopped with -S', () => {
  assert.deepEqual(valuesOf(qemuArgs(input({ incoming: true })), '-incoming'), ['defer']);
  assert.ok(qemuArgs(input({ paused: true })).includes('-S'));
});

test('commas in option values are doubled (QEMU\'s escaping): names and paths cannot add options', () => {
  assert.equal(qemuOpt('a,b,,c'), 'a,,b,,,,c');
  const a = qemuArgs(input({
    paths: { qmp: '/r,x/q.sock', serial: '/r/s.sock', consoleLog: '/v,w/console.log', vdiskSocket: '/l,k/vdisk.sock' },
    nicSocket: () => '/sw,itch.sock',
    spec: spec({ name: 'evil,driver=file,filename=/etc/passwd', nics: [{ mac: '52:54:00:00:00:01', subnetUuid: SUBNET, ip: null }] }),
  }));
  assert.deepEqual(valuesOf(a, '-name'), ['guest=evil,,driver=file,,filename=/etc/passwd']);
  assert.deepEqual(valuesOf(a, '-qmp'), ['unix:/r,,x/q.sock,server=on,wait=off']);
  assert.match(valuesOf(a, '-chardev')[0] ?? '', /logfile=\/v,,w\/console\.log,/);
  assert.match(valuesOf(a, '-blockdev')[0] ?? '', /server\.path=\/l,,k\/vdisk\.sock,/);
  assert.match(valuesOf(a, '-netdev')[0] ?? '', /addr\.path=\/sw,,itch\.sock$/);
});

test('a bad spec is an InputError naming the field', () => {
  const bad = (over: Record<string, unknown>, field: string): void => {
    assert.throws(() => checkSpec({ ...spec(), ...over }), (e: unknown) => {
      assert.ok(e instanceof InputError, String(e));
      assert.equal(e.field, field);
      return true;
    });
  };
  bad({ memoryMiB: 0 }, 'memoryMiB');
  bad({ vcpus: 0 }, 'vcpus');
  bad({ vcpus: 1.5 }, 'vcpus');
  bad({ uuid: '../../etc' }, 'uuid');
  bad({ name: 'a\nb' }, 'name');
  bad({ epoch: -1 }, 'epoch');
  bad({ disks: [{ vdisk: 'a,b', bus: 'virtio-blk' }] }, 'disks[0].vdisk');
  bad({ disks: [{ vdisk: 'ok', bus: 'virtio-blk' }, { vdisk: '../x', bus: 'virtio-blk' }] }, 'disks[1].vdisk');
  bad({ disks: [{ vdisk: 'a/b', bus: 'virtio-blk' }] }, 'disks[0].vdisk');
  bad({ disks: [{ vdisk: 'a', bus: 'floppy' }] }, 'disks[0].bus');
  bad({ disks: [{ vdisk: 'a', bus: 'virtio-blk', bootIndex: 1 }, { vdisk: 'b', bus: 'virtio-blk', bootIndex: 1 }] }, 'disks[1].bootIndex');
  bad({ disks: Array.from({ length: 5 }, (_, i) => ({ vdisk: `c${i}`, bus: 'cdrom' })) }, 'disks');
  bad({ nics: [{ mac: '01:00:5e:00:00:01', subnetUuid: SUBNET, ip: null }] }, 'nics[0].mac');
  bad({ nics: [{ mac: '52:54:00:00:00:01', subnetUuid: 'x,y', ip: null }] }, 'nics[0].subnetUuid');
  bad({ nics: [{ mac: '52:54:00:00:00:01', subnetUuid: SUBNET, ip: '10.0.0.300' }] }, 'nics[0].ip');
  bad({ extra: 1 }, 'body');
  assert.deepEqual(checkSpec(spec()), spec());
});
