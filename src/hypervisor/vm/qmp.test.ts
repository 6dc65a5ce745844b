import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TimeoutError } from '../../shared/errors.ts';
import { QmpClient, QmpClosedError, QmpError, type QmpEvent } from './qmp.ts';

const dir = mkdtempSync(join(tmpdir(), 'cvg-qmp-'));
const sock = join(dir, 'qmp.sock');
let qemu: ChildProcess;
let qmp: QmpClient;

before(async () => {
  // a machine with nothing in it, stopped: QMP is all there is
  qemu = spawn('qemu-system-x86_64', ['-machine', 'none', '-S', '-nodefaults', '-no-user-config', '-display', 'none', '-qmp', `unix:${sock},server=on,wait=off`], { stdio: 'ignore' });
  qmp = await QmpClient.connect(sock, { timeoutMs: 10_000 });
});

after(() => {
  qmp.close();
  qemu.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('connects: the greeting names QEMU\'s version, and commands answer', async () => {
  assert.equal(qmp.greeting?.version.qemu.major !== undefined, true);
  const st = await qmp.execute<{ status: string; running: boolean }>('query-status');
  assert.equal(st.status, 'prelaunch');
  assert.equal(st.running, false);
});

test('concurrent commands are each answered by id', async () => {
  const [a, b, c] = await Promise.all([
    qmp.execute<{ qemu: { major: number } }>('query-version'),
    qmp.execute<{ status: string }>('query-status'),
    qmp.execute<{ name?: string }>('query-name'),
  ]);
  assert.equal(typeof a.qemu.major, 'number');
  assert.equal(b.status, 'prelaunch');
  assert.deepEqual(c, {});
});

test('an error answer is a QmpError with QEMU\'s class and description', async () => {
  await assert.rejects(qmp.execute('no-such-command'), (e: unknown) => {
    assert.ok(e instanceof QmpError);
    assert.equal(e.qmpClass, 'CommandNotFound');
    assert.equal(e.command, 'no-such-command');
    assert.match(e.desc, /no-such-command/);
    return true;
  });
  await assert.rejects(qmp.execute('object-del', { id: 'nothing' }), (e: unknown) => e instanceof QmpError && e.qmpClass === 'GenericError');
});

test('events arrive on the event stream (cont: RESUME, stop: STOP) and waitEvent', async () => {
  const seen: QmpEvent[] = [];
  const on = (e: QmpEvent): void => {
    seen.push(e);
  };
  qmp.on('event', on);
  const resumed = qmp.waitEvent('RESUME', 5000);
  await qmp.execute('cont');
  const r = await resumed;
  assert.equal(r.event, 'RESUME');
  assert.ok(Math.abs(r.at - Date.now()) < 60_000, 'the event carries QEMU\'s timestamp');
  const stopped = qmp.waitEvent('STOP', 5000);
  await qmp.execute('stop');
  await stopped;
  qmp.off('event', on);
  assert.deepEqual(seen.map((e) => e.event), ['RESUME', 'STOP']);
  await assert.rejects(qmp.waitEvent('NEVER', 50), TimeoutError);
});

test('a command that is not answered times out; a closed connection fails what is pending', async () => {
  // a fake QMP server that greets, accepts capabilities, then answers nothing
  const path = join(dir, 'mute.sock');
  const server: Server = createServer((c) => {
    c.write('{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""}, "capabilities": []}}\r\n');
    c.on('data', (d) => {
      for (const line of d.toString().split('\n').filter((l) => l.trim())) {
        const m = JSON.parse(line) as { execute: string; id: number };
        if (m.execute === 'qmp_capabilities') c.write(`{"return": {}, "id": ${m.id}}\r\n`);
        if (m.execute === 'hang-up') c.destroy();
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  try {
    const c = await QmpClient.connect(path);
    await assert.rejects(c.execute('query-status', undefined, { timeoutMs: 100 }), TimeoutError);
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    const pending = c.execute('query-status', undefined, { timeoutMs: 5000 });
    void c.execute('hang-up').catch(() => undefined);
    await assert.rejects(pending, QmpClosedError);
    await closed;
    await assert.rejects(c.execute('query-status'), QmpClosedError);
  } finally {
    server.close();
  }
});

test('connect gives up with a TimeoutError when nothing listens', async () => {
  await assert.rejects(QmpClient.connect(join(dir, 'absent.sock'), { timeoutMs: 200 }), TimeoutError);
});

test('quit: QEMU exits and the client closes', async () => {
  const closed = new Promise<Error | undefined>((r) => qmp.once('close', r));
  const exited = new Promise<number | null>((r) => qemu.once('exit', (code) => r(code)));
  await qmp.execute('quit').catch((e: unknown) => assert.ok(e instanceof QmpClosedError));
  await closed;
  assert.equal(await exited, 0);
  assert.equal(qmp.isClosed, true);
});
