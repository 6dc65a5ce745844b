import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskVolume, formatDisk, setDiskFailed } from './disk-volume.ts';
import { ConflictError, DiskFullError, DiskIoError, InputError } from './errors.ts';
import { zombie } from '../../test/drivers/zombie.ts';

function disk(capacityBytes: number): { v: DiskVolume; dir: string; done: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'cvg-disk-'));
  const dir = join(root, 'd0');
  formatDisk(dir, { serial: 'S1', model: 'M', mediaType: 'SSD', capacityBytes });
  return { v: DiskVolume.open(dir), dir, done: () => rmSync(root, { recursive: true, force: true }) };
}

test('capacity is enforced: a write past it fails and writes nothing', async () => {
  const { v, done } = disk(64 * 1024);
  try {
    await v.writeFile('a', Buffer.alloc(40 * 1024, 1));
    assert.equal(v.used(), 40 * 1024);
    await assert.rejects(v.writeFile('b', Buffer.alloc(40 * 1024, 2)), DiskFullError);
    assert.equal(await v.exists('b'), false);
    assert.equal(v.used(), 40 * 1024);
    await assert.rejects(v.pwrite('a', Buffer.alloc(4096), 64 * 1024), DiskFullError);
    // overwriting in place needs no new space
    await v.pwrite('a', Buffer.alloc(4096, 9), 0);
    assert.equal((await v.pread('a', 1, 0))[0], 9);
    await v.remove('a');
    assert.equal(v.used(), 0);
  } finally {
    done();
  }
});

test('usage survives reopening', async () => {
  const { v, dir, done } = disk(1 << 20);
  try {
    await v.writeFile('x/y', 'hello');
    const again = DiskVolume.open(dir);
    assert.equal(again.used(), 4096);
    assert.equal((await again.readFile('x/y')).toString(), 'hello');
  } finally {
    done();
  }
});

test('a failed disk answers every operation with an I/O error and changes nothing', async () => {
  const { v, dir, done } = disk(1 << 20);
  try {
    await v.writeFile('keep', 'data');
    setDiskFailed(dir, true);
    await assert.rejects(v.readFile('keep'), DiskIoError);
    await assert.rejects(v.writeFile('new', 'x'), DiskIoError);
    await assert.rejects(v.pread('keep', 1, 0), DiskIoError);
    setDiskFailed(dir, false);
    assert.equal((await v.readFile('keep')).toString(), 'data');
    assert.equal(await v.exists('new'), false);
  } finally {
    done();
  }
});

test('paths cannot leave the disk', async () => {
  const { v, done } = disk(1 << 20);
  try {
    await assert.rejects(v.writeFile('../escape', 'x'), InputError);
    await assert.rejects(v.readFile('/etc/passwd'), InputError);
  } finally {
    done();
  }
});

test('a claimed disk refuses a second opener until its holder releases it or dies', async () => {
  const { dir, done } = disk(64 * 1024);
  const other = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const mine = DiskVolume.claim(dir, 'CVM one');
    DiskVolume.open(dir); // the holder itself may open it again
    mine.unclaim();
    // another live process holds it
    writeFileSync(join(dir, 'LEASE'), JSON.stringify({ owner: 'CVM two', pid: other.pid }));
    assert.throws(() => DiskVolume.open(dir), (e: unknown) => e instanceof ConflictError && /disk S1 is held by CVM two \(pid \d+\); a second opener is refused/.test(e.message));
    assert.throws(() => DiskVolume.claim(dir, 'CVM one'), ConflictError);
    other.kill('SIGKILL');
    await new Promise((r) => other.once('exit', r));
    // its holder died: the lease is stale and taken over
    DiskVolume.claim(dir, 'CVM one');
    assert.equal(JSON.parse(readFileSync(join(dir, 'LEASE'), 'utf8')).pid, process.pid);
  } finally {
    other.kill('SIGKILL');
    done();
  }
});

test('a lease whose holder has exited but is not reaped yet (a zombie) is taken over', { skip: !existsSync('/proc/self/stat') && 'needs /proc' }, async () => {
  // the CVM of a node that lost power: killed with its hypervisor, adopted by init, reaped later (or never)
  const { dir, done } = disk(64 * 1024);
  const z = await zombie();
  try {
    writeFileSync(join(dir, 'LEASE'), JSON.stringify({ owner: 'the CVM at 127.0.0.9', pid: z.pid }));
    DiskVolume.open(dir);
    DiskVolume.claim(dir, 'the installer');
    assert.equal(JSON.parse(readFileSync(join(dir, 'LEASE'), 'utf8')).pid, process.pid);
  } finally {
    z.keeper.kill('SIGKILL');
    done();
  }
});

test('more files written at once than handles are kept open: every write lands (a handle just opened is never evicted)', async () => {
  const { v, done } = disk(64 << 20);
  try {
    await Promise.all(Array.from({ length: 400 }, (_, i) => v.pwrite(`many/f${i}`, Buffer.from(`file ${i}`), 0)));
    const back = await Promise.all(Array.from({ length: 400 }, (_, i) => v.readFile(`many/f${i}`)));
    back.forEach((b, i) => assert.equal(b.toString(), `file ${i}`));
  } finally {
    done();
  }
});
