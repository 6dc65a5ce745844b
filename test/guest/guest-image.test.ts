/**
 * The Converge guest image, built from Debian packages and booted from its own disk in a real QEMU
 * (TCG): the boot line, DHCP, the root shell, the ACPI power button, and the write-and-verify loop
 * across a clean power-off, a host crash (SIGKILL) and a corrupted block (docs/guest-image.md).
 * The package cache is kept across runs in the system's temp folder.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GuestImage } from '../../src/guest/build.ts';
import { readMbr } from '../../src/guest/core/mbr.ts';
import { GUEST_CACHE as CACHE, GuestVm, buildTestGuest } from '../drivers/guest-vm.ts';
import { cvg } from '../drivers/cli.ts';

const BS = 65536;
const dir = mkdtempSync(join(tmpdir(), 'cvg-guest-'));
const image = join(dir, 'guest.img');
const data = join(dir, 'data.img');
const vms: GuestVm[] = [];
let built: GuestImage;

const BOOT = /converge-guest: booted (\S+) in ([\d.]+) s/;

async function boot(name: string, o: { nbd?: boolean; net?: boolean } = {}): Promise<{ vm: GuestVm; wallS: number; guestS: number; at: number }> {
  const vm = await GuestVm.start({ image, dataDisks: [data], dir: join(dir, name), ...o });
  vms.push(vm);
  const m = await vm.waitFor(BOOT, 90_000);
  return { vm, wallS: (Date.now() - vm.startedAt) / 1000, guestS: Number(m[2]), at: m.end };
}

/** The header the verify loop keeps in the data disk's first sector. */
function header(): { pass: number; blocks: number } {
  const b = Buffer.alloc(512);
  const fd = openSync(data, 'r');
  readSync(fd, b, 0, 512, 0);
  closeSync(fd);
  const m = /^CVGVERIFY1 pass=(\d+) blocks=(\d+) bs=65536\n/.exec(b.toString('latin1'));
  assert.ok(m, `no verify header: ${JSON.stringify(b.toString('latin1', 0, 60))}`);
  return { pass: Number(m[1]), blocks: Number(m[2]) };
}

before(async () => {
  const t0 = Date.now();
  built = await buildTestGuest(image);
  process.stderr.write(`guest image built in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  writeFileSync(data, Buffer.alloc(0));
  const fd = openSync(data, 'r+');
  writeSync(fd, Buffer.alloc(1), 0, 1, 16 * 1024 * 1024 - 1); // a 16 MiB sparse data disk
  closeSync(fd);
});

after(async () => {
  for (const vm of vms) await vm.kill();
  rmSync(dir, { recursive: true, force: true });
});

test('the image is an MBR disk with one active FAT partition holding syslinux; a warm rebuild (converge image build-guest) is quick and identical', async (t) => {
  const disk = readFileSync(image);
  assert.equal(disk.length, built.bytes);
  const mbr = readMbr(disk.subarray(0, 512));
  assert.ok(mbr, 'an MBR (0x55AA)');
  assert.equal(mbr.partitions.length, 1);
  const p = mbr.partitions[0]!;
  assert.equal(p.active, true);
  assert.equal(p.type, 0x0e);
  assert.equal(p.startLba, 2048);
  const vbr = disk.subarray(p.startLba * 512, p.startLba * 512 + 512);
  assert.equal(vbr.toString('latin1', 3, 11), 'SYSLINUX', 'syslinux wrote the partition boot sector');
  assert.equal(vbr.toString('latin1', 54, 59), 'FAT16');
  assert.ok(disk.includes(Buffer.from('LDLINUX SYS')), 'ldlinux.sys is on the FAT');
  assert.match(built.kernel, /^\d+\.\d+\.\d+-\d+-amd64$/);

  const t0 = Date.now();
  const r = await cvg('image', 'build-guest', '--out', join(dir, 'again.img'), '--cache', CACHE, '--json');
  const s = (Date.now() - t0) / 1000;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /build-guest: making the disk/, 'progress on stderr');
  const again = JSON.parse(r.stdout) as GuestImage;
  assert.equal(again.file, join(dir, 'again.img'));
  t.diagnostic(`warm rebuild ${s.toFixed(1)} s`);
  assert.ok(s < 60, `a warm rebuild took ${s} s`);
  assert.equal(again.sha256, built.sha256, 'the same packages give the same bytes');
  rmSync(join(dir, 'again.img'));
});

test('boots from its disk (served by nbdkit) to the boot line, DHCP, a shell and verify passes', async (t) => {
  const { vm, wallS, guestS, at } = await boot('boot1', { nbd: true, net: true });
  t.diagnostic(`boot line after ${wallS.toFixed(1)} s wall time (kernel uptime ${guestS} s)`);
  assert.match(vm.serial, /SYSLINUX 6\.\d+/, 'syslinux loaded the kernel from the disk');
  assert.equal(vm.serial.match(/converge-guest: booted/g)?.length, 1, 'exactly one boot line');
  assert.equal(BOOT.exec(vm.serial)?.[1], built.kernel);
  await vm.waitFor(/converge-guest: eth0 10\.0\.2\.15\/24/, 30_000);
  await vm.waitFor(/converge-guest: verify new disk \/dev\/vdb: 64 blocks of 64 KiB per pass/, 30_000, at);
  const pass = await vm.waitFor(/converge-guest: verify pass (\d+) ok \(64 blocks, (\d+) KiB\/s\)/, 60_000, at);
  t.diagnostic(`first verify pass: ${pass[2]} KiB/s`);
  vm.send('echo shell-says-$((6 * 7))');
  await vm.waitFor(/shell-says-42/, 20_000);
  await vm.kill(); // a host crash: no flush, no shutdown
  assert.doesNotMatch(vm.serial, /ERROR/);
  assert.ok(header().pass >= 1);
});

test('after a host crash the verify loop resumes on what its header promises; the ACPI power button powers it off', async () => {
  const promised = header().pass;
  const b2 = await boot('boot2');
  const r2 = await b2.vm.waitFor(/converge-guest: verify resumed pass (\d+): 64 blocks ok/, 60_000, b2.at);
  assert.equal(Number(r2[1]), promised);
  await b2.vm.waitFor(new RegExp(`converge-guest: verify pass ${promised + 1} ok`), 60_000, r2.end);
  await b2.vm.qmp.execute('system_powerdown');
  assert.equal(await b2.vm.waitExit(60_000), 0, 'QEMU ended after the guest powered off');
  assert.match(b2.vm.serial, /converge-guest: power button/);
  assert.match(b2.vm.serial, /converge-guest: power off/);
  assert.doesNotMatch(b2.vm.serial, /ERROR/);
  assert.ok(header().pass >= promised + 1);
});

test('a corrupted block of the region the header promises is reported at boot', async () => {
  const h = header();
  const block = 1 + (h.pass % 2) * h.blocks + 7;
  const line = `cvg-verify block ${block} gen ${h.pass}`.length + 1;
  const fd = openSync(data, 'r+');
  writeSync(fd, Buffer.from('CORRUPT!'), 0, 8, block * BS + 100 * line);
  closeSync(fd);
  const b4 = await boot('boot3');
  const err = await b4.vm.waitFor(/converge-guest: ERROR verify block (\d+) expected "([^"]*)" got "([^"]*)"/, 60_000, b4.at);
  assert.equal(Number(err[1]), block);
  assert.equal(err[2], `cvg-verify block ${block} gen ${h.pass}`);
  assert.match(err[3]!, /^CORRUPT!/);
  // the rest of the line may still be on its way (the serial console is read as it comes)
  await b4.vm.waitFor(new RegExp(`first difference at byte ${100 * line} of the block`), 10_000, b4.at);
  await b4.vm.waitFor(/converge-guest: verify stopped on \/dev\/vdb/, 10_000, err.end);
  assert.doesNotMatch(b4.vm.serial, /verify resumed/);
  assert.equal(header().pass, h.pass, 'the evidence is left as found');
});
