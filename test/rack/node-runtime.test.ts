/**
 * One node on its own (no BMC, no rack): what its runtime does when things around it go wrong. A
 * slow or huge virtual media download, a program that cannot be started, a console log that cannot
 * be written, a state file that cannot be saved, a console that outgrows its file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { processAlive } from '../../src/shared/processes.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SystemClock } from '../../src/shared/clock.ts';
import { SeededRandom } from '../../src/shared/random.ts';
import { BUILTIN_MODELS, findModel, rackNewNodes } from '../../src/rack/core/models.ts';
import { RackLayout } from '../../src/rack/node/layout.ts';
import { CONSOLE_ROTATE_BYTES, CONSOLE_TAIL_LINES, NodeRuntime, type NodeRuntimeDeps } from '../../src/rack/node/node-runtime.ts';

const model = findModel(BUILTIN_MODELS, 'CVG-LAB-MINI');
const [identity] = rackNewNodes([], model, 1, () => randomUUID(), '127.99');

interface Harness {
  node: NodeRuntime;
  logs: string[];
  dir: string;
  deps: NodeRuntimeDeps;
}

function layoutIn(dir: string): ReturnType<RackLayout['node']> {
  return new RackLayout(dir).node(identity!.serial);
}

function makeNode(over: Partial<NodeRuntimeDeps> = {}, dir = mkdtempSync(join(tmpdir(), 'cvg-node-'))): Harness {
  const logs: string[] = [];
  const deps: NodeRuntimeDeps = {
    clock: new SystemClock(),
    random: new SeededRandom(1),
    pace: 0,
    layout: layoutIn(dir),
    bmcUrl: 'https://127.99.0.1:8443',
    initialAccount: { userName: 'admin', passwordHash: 'scrypt$x$y' },
    log: (m) => void logs.push(m),
    ...over,
  };
  return { node: new NodeRuntime(identity!, model, deps), logs, dir, deps };
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function until(f: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** An HTTP server whose handler the test writes; answers on 127.0.0.1. */
async function server(handler: (res: ServerResponse, auth: string | undefined) => void): Promise<{ url: string; close: () => Promise<void> }> {
  const s: Server = createServer((req, res) => handler(res, req.headers.authorization));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const addr = s.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}/image.tar`,
    close: () => new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections();
    }),
  };
}

function bootFromCd(node: NodeRuntime, url: string): void {
  node.insertMedia(url, true, 'HTTP');
  node.setBootOverride('Cd', 'Once');
  node.reset('On');
}

test('ForceOff during a virtual media download that never finishes: the node is off at once', async () => {
  const media = await server((res) => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
    res.write(Buffer.from([0x1f, 0x8b])); // then nothing, for ever
  });
  const h = makeNode();
  try {
    bootFromCd(h.node, media.url);
    await until(() => h.node.consoleLines().some((l) => l.includes('virtual CD: reading')), 5000, 'the download to start');
    h.node.reset('ForceOff');
    await within(h.node.settled(), 3000, 'ForceOff behind a hanging download');
    assert.equal(h.node.state.power.power, 'Off');
    assert.ok(!h.node.consoleLines().some((l) => l.includes('boot failed')), 'an abandoned boot does not report a failure');
    // and the node boots normally afterwards (nothing left hanging)
    h.node.setBootOverride('Pxe', 'Once');
    h.node.reset('On');
    await until(() => h.node.state.power.phase === 'halted', 5000, 'the next boot');
  } finally {
    await within(h.node.shutdown(), 3000, 'shutdown');
    await media.close();
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test('rack down during a virtual media download that never finishes: shutdown does not wait for it', async () => {
  const media = await server((res) => {
    res.writeHead(200);
    res.write(Buffer.from([0x1f, 0x8b]));
  });
  const h = makeNode();
  try {
    bootFromCd(h.node, media.url);
    await until(() => h.node.consoleLines().some((l) => l.includes('virtual CD: reading')), 5000, 'the download to start');
    await within(h.node.shutdown(), 3000, 'shutdown');
    await within(h.node.settled(), 1000, 'the queued commands');
  } finally {
    await media.close();
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test('virtual media larger than the limit fails the boot with "image too large", by Content-Length or by counting', async () => {
  const declared = await server((res) => {
    res.writeHead(200, { 'Content-Length': String(2 * 1024 ** 3) });
    res.write(Buffer.alloc(1024));
  });
  const streamed = await server((res) => {
    res.writeHead(200); // chunked: no length announced
    res.write(Buffer.from([0x1f, 0x8b]));
    for (let i = 0; i < 32; i++) res.write(Buffer.alloc(8192));
    res.end();
  });
  const a = makeNode();
  const b = makeNode({ maxMediaBytes: 64 * 1024 });
  try {
    bootFromCd(a.node, declared.url);
    await until(() => a.node.state.power.phase === 'halted', 5000, 'the boot to fail');
    assert.ok(a.node.consoleLines().some((l) => /boot failed: virtual CD: cannot read .*image too large/.test(l)), a.node.consoleLines().join('\n'));
    bootFromCd(b.node, streamed.url);
    await until(() => b.node.state.power.phase === 'halted', 5000, 'the boot to fail');
    assert.ok(b.node.consoleLines().some((l) => /boot failed: .*image too large/.test(l)), b.node.consoleLines().join('\n'));
    assert.ok(!existsSync(b.deps.layout.media) || readdirSync(b.deps.layout.media).length === 0, 'the partial download is removed');
  } finally {
    await a.node.shutdown();
    await b.node.shutdown();
    await declared.close();
    await streamed.close();
    rmSync(a.dir, { recursive: true, force: true });
    rmSync(b.dir, { recursive: true, force: true });
  }
});

test('a program that cannot be started (spawn ENOENT) fails the boot once, and the node stays usable', async () => {
  const h = makeNode({ execPath: join(tmpdir(), 'no-such-dir', 'node') });
  try {
    const root = join(h.deps.layout.bootDisk, 'data');
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, 'boot.json'), JSON.stringify({ name: 'hv', version: '1', entry: 'hv.mjs' }));
    writeFileSync(join(root, 'hv.mjs'), 'setInterval(() => {}, 1000);');
    h.node.reset('On');
    await until(() => h.node.state.power.phase === 'halted', 5000, 'the boot to fail');
    assert.equal(h.node.consoleLines().filter((l) => l.includes('boot failed: cannot start hv.mjs')).length, 1);
    h.node.reset('ForceOff');
    await within(h.node.settled(), 3000, 'ForceOff after a failed spawn');
    assert.equal(h.node.state.power.power, 'Off');
    h.node.reset('On');
    await until(() => h.node.state.power.phase === 'halted', 5000, 'the second boot to fail too');
  } finally {
    await within(h.node.shutdown(), 3000, 'shutdown after a failed spawn');
    rmSync(h.dir, { recursive: true, force: true });
  }
});

/** A boot disk whose program starts a "VM" in a process group of its own that ignores SIGTERM and its stdin, as the CVM is to the hypervisor. */
function bootDiskWithVm(h: Harness): string {
  const root = join(h.deps.layout.bootDisk, 'data');
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'boot.json'), JSON.stringify({ name: 'hv', version: '1', entry: 'hv.mjs' }));
  writeFileSync(join(root, 'hv.mjs'), [
    "import { spawn } from 'node:child_process';",
    "import { existsSync, writeFileSync } from 'node:fs';",
    "const vm = spawn(process.execPath, ['-e', 'process.on(\\'SIGTERM\\', () => {}); setInterval(() => {}, 1000);'], { detached: true, stdio: 'ignore' });",
    "vm.unref();",
    "writeFileSync('vm.pid', String(vm.pid));",
    "if (existsSync('crash')) setTimeout(() => process.exit(9), 300); else setInterval(() => {}, 1000);",
  ].join('\n'));
  return join(root, 'vm.pid');
}

test('power off and reset stop every process the node runs, even one in a group of its own; the next boot starts after it is gone', { skip: !existsSync('/proc/self/environ') && 'needs /proc' }, async () => {
  const h = makeNode();
  const pids: number[] = [];
  const vmPid = async (not?: number): Promise<number> => {
    let pid = 0;
    await until(() => {
      try {
        pid = Number(readFileSync(pidFile, 'utf8'));
      } catch {
        return false;
      }
      return pid > 0 && pid !== not && processAlive(pid);
    }, 10_000, 'the VM to start');
    pids.push(pid);
    return pid;
  };
  const pidFile = bootDiskWithVm(h);
  try {
    h.node.reset('On');
    const first = await vmPid();
    h.node.reset('ForceRestart');
    const second = await vmPid(first);
    assert.equal(processAlive(first), false, 'the first boot\'s VM is gone');
    h.node.reset('ForceOff');
    await within(h.node.settled(), 5000, 'ForceOff');
    assert.equal(h.node.state.power.power, 'Off');
    assert.equal(processAlive(second), false, 'power off stopped the VM');
    // a program that crashes: what it started goes with it; the node halts
    writeFileSync(join(h.deps.layout.bootDisk, 'data', 'crash'), '');
    h.node.reset('On');
    const third = await vmPid(second);
    await until(() => h.node.state.power.phase === 'halted', 5000, 'the crash');
    await until(() => !processAlive(third), 5000, 'the crashed program\'s VM to be gone');
  } finally {
    await within(h.node.shutdown(), 5000, 'shutdown');
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test('a console log that cannot be opened or written is logged; the node goes on', async () => {
  const dir1 = mkdtempSync(join(tmpdir(), 'cvg-node-'));
  mkdirSync(layoutIn(dir1).console, { recursive: true }); // console.log is a directory
  const a = makeNode({}, dir1);
  const dir2 = mkdtempSync(join(tmpdir(), 'cvg-node-'));
  mkdirSync(layoutIn(dir2).dir, { recursive: true });
  symlinkSync('/dev/full', layoutIn(dir2).console); // every write fails with ENOSPC
  const b = makeNode({}, dir2);
  try {
    for (const n of [a.node, b.node]) {
      n.consoleLine('hello');
      n.reset('On');
    }
    await until(() => a.logs.some((l) => l.includes('console log')), 3000, 'the open failure to be logged');
    await until(() => b.logs.some((l) => l.includes('console log') && l.includes('ENOSPC')), 3000, 'the write failure to be logged');
    await until(() => a.node.state.power.phase === 'halted' && b.node.state.power.phase === 'halted', 5000, 'both nodes to try to boot');
    assert.ok(b.node.consoleLines().some((l) => l.includes('hello')), 'the console is still kept in memory');
  } finally {
    await a.node.shutdown();
    await b.node.shutdown();
    rmSync(dir1, { recursive: true, force: true });
    rmSync(dir2, { recursive: true, force: true });
  }
});

test('a state file that cannot be saved when a timer fires is logged, not fatal', async () => {
  const h = makeNode();
  try {
    h.node.reset('On'); // queues the POST timer (0 ms at pace 0)
    rmSync(h.deps.layout.state);
    mkdirSync(h.deps.layout.state); // state.json is now a directory: saving fails
    await until(() => h.logs.some((l) => l.includes('timer postDone')), 3000, 'the failure to be logged');
  } finally {
    rmSync(h.deps.layout.state, { recursive: true, force: true });
    await h.node.shutdown();
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test('state.json (password hashes, media credentials) is readable by its owner only', () => {
  const h = makeNode();
  try {
    assert.equal(statSync(h.deps.layout.state).mode & 0o777, 0o600);
    h.node.insertMedia('http://u:secret@127.0.0.1:9/a.tar', true, 'HTTP');
    assert.equal(statSync(h.deps.layout.state).mode & 0o777, 0o600);
  } finally {
    void h.node.shutdown();
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test('the console log rotates at 1 MiB; Entries keep the last 1000 lines with Ids that survive rotation and restarts', async () => {
  const h = makeNode();
  const filler = 'x'.repeat(90);
  const lines = Math.ceil((CONSOLE_ROTATE_BYTES * 1.5) / 120);
  for (let i = 1; i <= lines; i++) h.node.consoleLine(`line ${i} ${filler}`);
  const entries = h.node.consoleEntries();
  assert.equal(entries.length, CONSOLE_TAIL_LINES);
  assert.equal(entries[entries.length - 1]!.id, lines);
  assert.equal(entries[0]!.id, lines - CONSOLE_TAIL_LINES + 1);
  assert.ok(entries[entries.length - 1]!.line.endsWith(`line ${lines} ${filler}`));
  assert.equal(h.node.consoleLines().length, CONSOLE_TAIL_LINES);
  await h.node.shutdown();
  const L = h.deps.layout;
  assert.ok(existsSync(`${L.console}.1`), 'console.log.1 is kept');
  assert.ok(statSync(L.console).size < CONSOLE_ROTATE_BYTES, 'console.log stays under 1 MiB');
  assert.ok(statSync(`${L.console}.1`).size <= CONSOLE_ROTATE_BYTES + 200);
  // a restarted rack continues where the Ids were
  const again = makeNode({}, h.dir);
  try {
    const e2 = again.node.consoleEntries();
    assert.equal(e2[e2.length - 1]!.id, lines);
    assert.deepEqual(e2.map((e) => e.line), entries.map((e) => e.line));
    again.node.consoleLine('after restart');
    assert.equal(again.node.consoleEntries().at(-1)!.id, lines + 1);
  } finally {
    await again.node.shutdown();
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test('hardware.json tells the running program where its BMC is now', () => {
  const h = makeNode();
  try {
    assert.deepEqual([h.node.hardware('Hdd').bmc.ip, h.node.hardware('Hdd').bmc.url], [identity!.bmcIp, 'https://127.99.0.1:8443']);
    h.node.state.bmcNetwork.address = '127.99.9.9';
    h.node.bmcMoved('https://127.99.9.9:8443');
    assert.deepEqual([h.node.hardware('Hdd').bmc.ip, h.node.hardware('Hdd').bmc.url], ['127.99.9.9', 'https://127.99.9.9:8443']);
    assert.equal(h.node.bmcUrl, 'https://127.99.9.9:8443');
  } finally {
    void h.node.shutdown();
    rmSync(h.dir, { recursive: true, force: true });
  }
});
