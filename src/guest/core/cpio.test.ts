import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpioNewc } from './cpio.ts';

/** Reads a newc archive back: name, mode, size, rdev and data of each member. */
function parse(b: Buffer): { name: string; mode: number; mtime: number; rdev: [number, number]; data: Buffer }[] {
  const out = [];
  let o = 0;
  for (;;) {
    assert.equal(b.toString('ascii', o, o + 6), '070701');
    const f = (i: number): number => parseInt(b.toString('ascii', o + 6 + i * 8, o + 14 + i * 8), 16);
    const namesize = f(11);
    const size = f(6);
    const name = b.toString('utf8', o + 110, o + 110 + namesize - 1);
    assert.equal(b[o + 110 + namesize - 1], 0, 'names end with NUL');
    let d = o + 110 + namesize;
    d += (4 - (d % 4)) % 4;
    const data = b.subarray(d, d + size);
    if (name === 'TRAILER!!!') return out;
    out.push({ name, mode: f(1), mtime: f(5), rdev: [f(9), f(10)] as [number, number], data });
    o = d + size + ((4 - ((d + size) % 4)) % 4);
    assert.equal(o % 4, 0);
  }
}

test('cpio newc: dirs, files, symlinks and device nodes, 4-byte aligned, with a trailer', () => {
  const a = cpioNewc(
    [
      { kind: 'dir', path: 'bin' },
      { kind: 'file', path: '/init', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
      { kind: 'symlink', path: 'bin/sh', target: '/bin/busybox' },
      { kind: 'char', path: 'dev/console', major: 5, minor: 1 },
      { kind: 'file', path: 'odd', data: Buffer.from('abcde') },
    ],
    1704067200,
  );
  assert.equal(a.length % 4, 0);
  const m = parse(a);
  assert.deepEqual(m.map((x) => x.name), ['bin', 'init', 'bin/sh', 'dev/console', 'odd']);
  assert.equal(m[0]!.mode, 0o040755);
  assert.equal(m[1]!.mode, 0o100755);
  assert.equal(m[1]!.data.toString(), '#!/bin/sh\n');
  assert.equal(m[2]!.mode, 0o120777);
  assert.equal(m[2]!.data.toString(), '/bin/busybox');
  assert.equal(m[3]!.mode, 0o020600);
  assert.deepEqual(m[3]!.rdev, [5, 1]);
  assert.equal(m[4]!.data.toString(), 'abcde');
  assert.ok(m.every((x) => x.mtime === 1704067200));
});

test('cpio newc: the same entries give the same bytes; bad paths are refused', () => {
  const e = [{ kind: 'file' as const, path: 'a', data: Buffer.from('x') }];
  assert.deepEqual(cpioNewc(e, 1), cpioNewc(e, 1));
  assert.throws(() => cpioNewc([{ kind: 'dir', path: '/' }], 1), /bad path/);
});
