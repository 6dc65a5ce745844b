/**
 * The host agent's VM runtime with real QEMU (TCG): two runtimes in this process stand for two
 * hosts (127.101.0.1 and .2) that reach the same vdisks (one nbdkit on a Unix socket stands in for
 * both hosts' redirectors). The guest is a 79-byte boot sector SeaBIOS loads from the vdisk: it
 * prints a banner on COM1, then echoes what it reads there (waiting in `hlt` between timer ticks).
 * Covers: start, pause/resume, reset, console (log, live stream, input), ACPI shutdown ignored,
 * off, a crash, epochs, 409s, delete, a failed start, live migration over TLS between the hosts,
 * the HTTP routes, and QEMU dying with its host agent (SIGKILL).
 *
 * Addresses 127.101.0.x.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { ConflictError, InputError, NotFoundError, UnavailableError } from '../../src/shared/errors.ts';
import { createInternalApi } from '../../src/shared/http-api.ts';
import { processAlive } from '../../src/shared/processes.ts';
import { createCa, issueCert } from '../../src/shared/tls.ts';
import type { HostVm, HostVmSpec } from '../../src/hypervisor/protocol/vms.ts';
import { writeQemuTlsDir } from '../../src/hypervisor/vm/migration-tls.ts';
import { registerVmRoutes } from '../../src/hypervisor/vm/routes.ts';
import { VmRuntime, type VmRuntimeDeps } from '../../src/hypervisor/vm/runtime.ts';

const HOST_A = '127.101.0.1';
const HOST_B = '127.101.0.2';
const BANNER = 'converge test guest';
const SUBNET = '3f1c2b9a-8d4e-4f60-9a7b-1c2d3e4f5a6b';
/**
 * The guest (GNU as, .code16, linked at 0x7c00): print BANNER on COM1 (0x3f8, polling LSR 0x3fd),
 * then forever: sti; hlt; if LSR says a byte is there, read it and write it back.
 */
const BOOT_SECTOR = 'fa31c08ed88ed0bc007cbe397cac84c07405e81500ebf6fbf4bafd03eca80174f6baf803ece80200ebed50bafd03eca82074fb58baf803eec3636f6e766572676520746573742067756573740d0a00';

const dir = mkdtempSync(join(tmpdir(), 'cvg-vmrt-'));
const vdiskSocket = join(dir, 'vdisk.sock');
const logs: string[] = [];
let nbdkit: ChildProcess;
let a: VmRuntime;
let b: VmRuntime;
let api: FastifyInstance;
let hostApi: FastifyInstance;

const spec = (over: Partial<HostVmSpec> = {}): HostVmSpec => ({
  uuid: randomUUID(), name: 'test-vm', vcpus: 1, memoryMiB: 128, epoch: 1,
  disks: [{ vdisk: 'boot-disk', bus: 'virtio-blk', bootIndex: 1 }], nics: [],
  ...over,
});

async function until<T>(what: string, f: () => T | undefined | false, ms = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const switchSocket = join(dir, 'switch.sock');
/** A stand-in for the host's virtual switch: a Unix socket that takes each NIC's connection and discards its frames. */
const switchConnections: Socket[] = [];
const vswitch = createServer((c) => {
  switchConnections.push(c);
  c.resume();
});

const runtime = (hostIp: string, name: string, tlsDir: string | undefined, vdisk = vdiskSocket, over: Partial<VmRuntimeDeps> = {}): VmRuntime => new VmRuntime({
  hostIp: () => hostIp, vdiskSocket: vdisk, stateDir: join(dir, name),
  capacity: () => ({ memoryMiB: 2048, vcpus: 2, cvmMemoryMiB: 1024, cvmVcpus: 1 }),
  nicSocket: (subnet) => (subnet === SUBNET ? switchSocket : join(dir, 'no-switch.sock')),
  migrationTlsDir: () => tlsDir,
  log: (m) => logs.push(`${name}: ${m}`), accel: 'tcg',
  timeouts: { shutdownMs: 1500, offMs: 5000 },
  ...over,
});

before(async () => {
  const img = Buffer.alloc(1 << 20);
  Buffer.from(BOOT_SECTOR, 'hex').copy(img);
  img[510] = 0x55;
  img[511] = 0xaa;
  writeFileSync(join(dir, 'disk.img'), img);
  // every export name is this disk (nbdkit serves any name by default)
  nbdkit = spawn('nbdkit', ['-f', '--unix', vdiskSocket, 'file', join(dir, 'disk.img')], { stdio: 'ignore' });
  await until('nbdkit', () => {
    try {
      return statSync(vdiskSocket).isSocket();
    } catch {
      return false;
    }
  }, 10_000);
  await new Promise<void>((r) => vswitch.listen(switchSocket, r));
  const ca = await createCa('test cluster');
  const creds = async (ip: string): Promise<string> => {
    const c = await issueCert(ca, { cn: `host-${ip}`, ou: 'host', ips: [ip], usage: 'both' });
    return writeQemuTlsDir(join(dir, `tls-${ip}`), { ca: ca.cert, cert: c.cert, key: c.key });
  };
  a = runtime(HOST_A, 'a', await creds(HOST_A));
  b = runtime(HOST_B, 'b', await creds(HOST_B));
  api = createInternalApi({ localPeer: { role: 'operator', name: 'test' } });
  registerVmRoutes(api, a);
  await api.listen({ host: HOST_A, port: 0 });
  hostApi = createInternalApi({ localPeer: { role: 'host', name: 'peer' } });
  registerVmRoutes(hostApi, a);
});

after(async () => {
  // the VMs first: their end ends any console stream an API still serves (close waits for it)
  await Promise.all([a?.close(), b?.close()]);
  await api?.close();
  await hostApi?.close();
  nbdkit?.kill('SIGKILL');
  for (const c of switchConnections) c.destroy();
  vswitch.close();
  if (process.env['KEEP_VMRT'] === undefined) rmSync(dir, { recursive: true, force: true });
  else console.log(logs.join('\n'));
});

const events = (vm: HostVm): string[] => vm.events.map((e) => e.event);

test('a VM starts, runs its boot sector, and its console is logged, streamed and typed into', { timeout: 90_000 }, async () => {
  const s = spec();
  const vm = await a.start(s);
  assert.equal(vm.state, 'running');
  assert.ok(vm.pid && processAlive(vm.pid));
  assert.ok(vm.startedAt);
  const { bootId, ...resources } = a.resources();
  assert.deepEqual(resources, { memoryMiB: 2048, cvmMemoryMiB: 1024, vmMemoryMiB: 128, freeMemoryMiB: 896, vcpus: 2, cvmVcpus: 1, vmVcpus: 1, accelerator: 'tcg' });
  assert.match(bootId ?? '', /^[0-9a-f-]{36}$/, 'a boot id: new at each start of the agent');
  assert.equal(a.resources().bootId, bootId, 'the same while the agent runs');
  await until('the banner', () => a.console(s.uuid).text.includes(BANNER));
  assert.ok(a.get(s.uuid).consoleBytes >= BANNER.length);
  // a second start while it runs: 409, whatever the epoch
  await assert.rejects(a.start({ ...s, epoch: 2 }), ConflictError);

  // the live stream gets what the guest echoes of our input
  const stream = a.consoleStream(s.uuid);
  let got = '';
  stream.on('data', (d: Buffer) => {
    got += d.toString();
  });
  await a.consoleInput(s.uuid, 'ping-42');
  await until('the echo on the stream', () => got.includes('ping-42'));
  stream.destroy();
  const c = a.console(s.uuid);
  assert.ok(c.text.includes(`${BANNER}\r\nping-42`), JSON.stringify(c.text));
  assert.equal(c.next, a.get(s.uuid).consoleBytes);
  assert.deepEqual(a.console(s.uuid, c.next), { text: '', next: c.next });
  assert.equal(a.console(s.uuid, 5).text, c.text.slice(5));

  // pause / resume: QEMU's STOP and RESUME events, the state follows
  assert.equal((await a.power(s.uuid, 'pause')).state, 'paused');
  await until('STOP', () => events(a.get(s.uuid)).includes('STOP'));
  await assert.rejects(a.power(s.uuid, 'shutdown'), ConflictError);
  assert.equal((await a.power(s.uuid, 'resume')).state, 'running');
  await until('RESUME', () => events(a.get(s.uuid)).slice(-1)[0] === 'RESUME');

  // reset: the guest boots again and prints its banner a second time
  await a.power(s.uuid, 'reset');
  await until('RESET', () => events(a.get(s.uuid)).includes('RESET'));
  await until('a second banner', () => a.console(s.uuid).text.split(BANNER).length === 3);

  // ACPI power button: this guest ignores it; after the timeout the VM is running again, and says so
  assert.equal((await a.power(s.uuid, 'shutdown')).state, 'shutting-down');
  await until('powerdown-timeout', () => events(a.get(s.uuid)).includes('powerdown-timeout'), 10_000);
  assert.equal(a.get(s.uuid).state, 'running');
  assert.ok(events(a.get(s.uuid)).includes('POWERDOWN'));

  // off: quit, the process gone, as asked
  const pid = vm.pid;
  const off = await a.power(s.uuid, 'off');
  assert.equal(off.state, 'off');
  assert.equal(off.pid, null);
  assert.equal(off.exit?.reason, 'powered off as asked');
  assert.equal(processAlive(pid), false);
  assert.equal(a.resources().vmMemoryMiB, 0);
  assert.throws(() => a.consoleStream(s.uuid), ConflictError);
  await assert.rejects(a.consoleInput(s.uuid, 'x'), ConflictError);
  assert.ok(a.console(s.uuid).text.includes(BANNER), 'the log outlives the process');
  assert.equal((await a.power(s.uuid, 'off')).state, 'off', 'off again changes nothing');
  await assert.rejects(a.power(s.uuid, 'resume'), ConflictError);

  // epochs: a lower one is a stale order; an equal or higher one starts it again
  await assert.rejects(a.start({ ...s, epoch: 1 }), (e: unknown) => e instanceof ConflictError && /epoch 1 is older than 2/.test(e.message));
  const again = await a.start({ ...s, epoch: 2 });
  assert.equal(again.state, 'running');
  assert.notEqual(again.pid, pid);
  assert.equal(again.exit, null);

  // killed from outside: crashed, and the exit says how
  process.kill(again.pid ?? 0, 'SIGKILL');
  const crashed = await until('crashed', () => (a.get(s.uuid).state === 'crashed' ? a.get(s.uuid) : undefined));
  assert.equal(crashed.exit?.signal, 'SIGKILL');
  assert.match(crashed.exit?.reason ?? '', /died unasked \(killed by SIGKILL\)/);

  // delete: 409 while it runs, then gone (and its epoch still remembered)
  await a.start({ ...s, epoch: 3 });
  await assert.rejects(a.delete(s.uuid), ConflictError);
  await a.power(s.uuid, 'off');
  await a.delete(s.uuid);
  assert.throws(() => a.get(s.uuid), NotFoundError);
  await assert.rejects(a.power(s.uuid, 'off'), NotFoundError);
  await assert.rejects(a.start({ ...s, epoch: 2 }), ConflictError);
});

test('auto accelerator: a VM whose KVM fails (a KVM internal error) starts again under TCG, and so does every later VM', { timeout: 90_000 }, async () => {
  // the emulated fault: a "QEMU" that, given -accel kvm, runs the real one under tcg and says, a moment
  // later, what QEMU says when KVM cannot run the guest's code (as on a nested KVM without
  // unrestricted-guest support); given tcg it is plain QEMU
  const fake = join(dir, 'qemu-kvm-fails');
  writeFileSync(fake, [
    '#!/bin/sh',
    'case " $* " in *" -accel kvm "*) kvm=1 ;; *) kvm= ;; esac',
    'if [ -n "$kvm" ]; then',
    '  echo "$*" >>"$0.kvm-runs"',
    '  (sleep 1; echo "KVM internal error. Suberror: 1" >&2; echo "emulation failure" >&2) &',
    '  set -- $(echo "$*" | sed "s/-accel kvm/-accel tcg/")',
    'fi',
    'exec qemu-system-x86_64 "$@"',
    '',
  ].join('\n'), { mode: 0o755 });
  const hostLogs = (name: string): string[] => logs.filter((l) => l.startsWith(`${name}: `));
  const c = runtime('127.101.0.3', 'c', undefined, vdiskSocket, { accel: 'auto', kvmProbe: () => true, qemuBinary: fake });
  try {
    assert.equal(c.resources().accelerator, 'kvm', '/dev/kvm is there: kvm first');
    const s = spec();
    assert.equal((await c.start(s)).state, 'running');
    const first = c.get(s.uuid).pid;
    await until('started again under TCG', () => c.get(s.uuid).pid !== first && c.get(s.uuid).state === 'running', 30_000);
    assert.equal(c.resources().accelerator, 'tcg');
    assert.ok(hostLogs('c').some((l) => /KVM failed on this host .*TCG/.test(l)), hostLogs('c').join('\n'));
    assert.ok(hostLogs('c').some((l) => l.includes('(tcg, 1 vCPU')), 'the new QEMU runs under tcg');
    await until('the banner of the TCG boot', () => c.console(s.uuid).text.includes(BANNER));
    assert.equal(c.get(s.uuid).exit, null, 'the new process has not exited');
    // a later VM goes straight to tcg: QEMU was asked for kvm once only
    const s2 = spec();
    await c.start(s2);
    assert.equal(readFileSync(`${fake}.kvm-runs`, 'utf8').trim().split('\n').length, 1);
  } finally {
    await c.close();
  }
  // the host agent started again (an upgrade's restart) remembers: its VMs, and those migrating in, run under TCG
  const again = runtime('127.101.0.3', 'c', undefined, vdiskSocket, { accel: 'auto', kvmProbe: () => true, qemuBinary: fake });
  try {
    assert.equal(again.resources().accelerator, 'tcg', 'KVM is not tried again after it failed on this host');
  } finally {
    await again.close();
  }
  // told to use kvm, the host does not fall back: the VM stays as QEMU left it
  const forced = runtime('127.101.0.4', 'd', undefined, vdiskSocket, { accel: 'kvm', qemuBinary: fake });
  try {
    const s = spec();
    const pid = (await forced.start(s)).pid;
    await until('the KVM error reported', () => hostLogs('d').some((l) => l.includes('KVM internal error')), 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(forced.get(s.uuid).pid, pid, 'the same QEMU');
    assert.equal(forced.resources().accelerator, 'kvm');
  } finally {
    await forced.close();
  }
});

test('a bad spec is an InputError naming the field; a start QEMU cannot make is a failed start with the reason', { timeout: 60_000 }, async () => {
  const bad = async (over: Record<string, unknown>, field: string): Promise<void> => {
    await assert.rejects(a.start({ ...spec(), ...over }), (e: unknown) => e instanceof InputError && e.field === field);
  };
  await bad({ memoryMiB: 0 }, 'memoryMiB');
  await bad({ disks: [{ vdisk: 'a,b', bus: 'virtio-blk' }] }, 'disks[0].vdisk');
  await bad({ disks: [{ vdisk: 'a/b', bus: 'virtio-blk' }] }, 'disks[0].vdisk');
  await bad({ disks: [{ vdisk: 'a', bus: 'usb' }] }, 'disks[0].bus');
  await assert.rejects(a.start(spec({ memoryMiB: 4096 })), (e: unknown) => e instanceof ConflictError && /MiB free/.test(e.message));
  // a host whose redirector is not there: QEMU cannot open the vdisk
  const c = runtime('127.101.0.3', 'c', undefined, join(dir, 'no-redirector.sock'));
  const s = spec();
  await assert.rejects(c.start(s), (e: unknown) => e instanceof UnavailableError && /QEMU did not start/.test(e.message));
  const vm = c.get(s.uuid);
  assert.ok(vm.state === 'crashed' || vm.state === 'off', vm.state);
  assert.match(vm.exit?.reason ?? '', /no-redirector\.sock|Failed to connect|No such file/i);
  assert.equal(vm.pid, null);
  // and without cluster certificates a host neither sends nor receives VMs
  await assert.rejects(c.incoming(spec()), (e: unknown) => e instanceof UnavailableError && /certificates/.test(e.message));
  await c.close();
});

test('a NIC is a connection to its subnet\'s switch port; a port that is not there fails the start', { timeout: 60_000 }, async () => {
  const s = spec({ nics: [{ mac: '52:54:00:12:34:56', subnetUuid: SUBNET, ip: '10.0.0.5' }] });
  const before = switchConnections.length;
  assert.equal((await a.start(s)).state, 'running');
  await until('the switch port connected', () => switchConnections.length === before + 1);
  await a.power(s.uuid, 'off');
  const noSwitch = spec({ nics: [{ mac: '52:54:00:12:34:57', subnetUuid: randomUUID(), ip: null }] });
  await assert.rejects(a.start(noSwitch), (e: unknown) => e instanceof UnavailableError && /no-switch\.sock/.test(e.message));
  await a.delete(noSwitch.uuid);
  await a.delete(s.uuid);
});

test('live migration over TLS: the VM runs on the target, the source is migrated, downtime reported', { timeout: 120_000 }, async () => {
  const s = spec({ epoch: 5 });
  await a.start(s);
  await until('the banner', () => a.console(s.uuid).text.includes(BANNER));
  await a.consoleInput(s.uuid, 'before');
  await until('echo before', () => a.console(s.uuid).text.includes('before'));

  const { port } = await b.incoming({ ...s, epoch: 6 });
  assert.ok(port >= 49152);
  assert.equal(b.get(s.uuid).state, 'incoming');
  assert.equal(b.resources().vmMemoryMiB, 128, 'an incoming VM holds its memory');
  const result = await a.migrate(s.uuid, HOST_B, port);
  console.log(`migration under TCG (128 MiB guest): downtime ${result.downtimeMs} ms, total ${result.totalMs} ms, ${result.transferredBytes} bytes`);
  assert.ok(result.downtimeMs >= 0 && result.totalMs > 0 && result.transferredBytes > 0, JSON.stringify(result));

  const src = a.get(s.uuid);
  assert.equal(src.state, 'migrated');
  assert.equal(src.pid, null);
  assert.equal(src.exit?.reason, `migrated to ${HOST_B}`);
  // under TCG the guest is stopped for the copy (docs/migration.md): the target holds it paused for the mover to resume
  assert.equal(result.resumeOnTarget, true);
  await until('paused on the target', () => b.get(s.uuid).state === 'paused');
  await b.power(s.uuid, 'resume');
  assert.equal(b.get(s.uuid).state, 'running');
  // the guest goes on where it was: it echoes on the target's console (no second banner: it did not boot again)
  await b.consoleInput(s.uuid, 'after');
  await until('echo after', () => b.console(s.uuid).text.includes('after'));
  assert.equal(b.console(s.uuid).text.includes(BANNER), false);
  assert.ok(events(b.get(s.uuid)).includes('MIGRATION'));

  // a second migration to a target that is not listening fails; the VM stays where it is, running (resumed after its stop)
  await assert.rejects(b.migrate(s.uuid, HOST_A, 49999), UnavailableError);
  assert.equal(b.get(s.uuid).state, 'running');

  // a paused VM migrates paused, and resumes on its new host
  await b.power(s.uuid, 'pause');
  const back = await a.incoming({ ...s, epoch: 7 });
  await b.migrate(s.uuid, HOST_A, back.port);
  assert.equal(b.get(s.uuid).state, 'migrated');
  await until('paused on A', () => a.get(s.uuid).state === 'paused');
  await a.power(s.uuid, 'resume');
  await a.consoleInput(s.uuid, 'home-again');
  await until('echo on A', () => a.console(s.uuid).text.includes('home-again'));
  await a.power(s.uuid, 'off');
});

test('a migration stream from a host of another cluster is refused (TLS), and the VM stays on its source', { timeout: 90_000 }, async () => {
  const other = await createCa('another cluster');
  const c = await issueCert(other, { cn: 'intruder', ou: 'host', ips: [HOST_A], usage: 'both' });
  const intruder = runtime(HOST_A, 'intruder', writeQemuTlsDir(join(dir, 'tls-intruder'), { ca: other.cert, cert: c.cert, key: c.key }));
  const s = spec({ epoch: 1 });
  try {
    await intruder.start(s);
    const { port } = await b.incoming({ ...s, epoch: 2 });
    await assert.rejects(intruder.migrate(s.uuid, HOST_B, port), UnavailableError);
    assert.equal(intruder.get(s.uuid).state, 'running');
    // the target never got a VM: it still waits (until its incoming timeout), and nothing ran there
    assert.equal(b.get(s.uuid).state, 'incoming');
    assert.equal(events(b.get(s.uuid)).includes('RESUME'), false);
    assert.equal((await b.power(s.uuid, 'off')).state, 'off');
  } finally {
    await intruder.close();
  }
});

test('the HTTP routes: roles, bodies checked, a live console stream', { timeout: 60_000 }, async () => {
  const s = spec();
  const put = await api.inject({ method: 'PUT', url: `/vms/${s.uuid}`, payload: { ...s, memoryMiB: 0 } });
  assert.equal(put.statusCode, 400);
  assert.equal(put.json<{ error: { field: string } }>().error.field, 'memoryMiB');
  const wrong = await api.inject({ method: 'PUT', url: `/vms/${randomUUID()}`, payload: s });
  assert.equal(wrong.json<{ error: { field: string } }>().error.field, 'uuid');
  assert.equal((await hostApi.inject({ method: 'PUT', url: `/vms/${s.uuid}`, payload: s })).statusCode, 403);
  const ok = await api.inject({ method: 'PUT', url: `/vms/${s.uuid}`, payload: s });
  assert.equal(ok.statusCode, 201, ok.body);
  assert.equal(ok.json<HostVm>().state, 'running');
  assert.equal((await api.inject({ method: 'PUT', url: `/vms/${s.uuid}`, payload: s })).statusCode, 409);
  assert.equal((await hostApi.inject({ method: 'GET', url: `/vms/${s.uuid}` })).statusCode, 200);
  assert.equal((await hostApi.inject({ method: 'GET', url: '/resources' })).json<{ vmMemoryMiB: number }>().vmMemoryMiB, 128);
  assert.equal((await api.inject({ method: 'POST', url: `/vms/${s.uuid}/power`, payload: { action: 'explode' } })).json<{ error: { field: string } }>().error.field, 'action');
  assert.equal((await api.inject({ method: 'GET', url: '/vms/not-a-uuid' })).statusCode, 400);
  assert.equal((await api.inject({ method: 'GET', url: `/vms/${randomUUID()}` })).statusCode, 404);
  assert.equal((await api.inject({ method: 'POST', url: `/vms/${s.uuid}/console/input`, payload: { data: 'x'.repeat(4097) } })).statusCode, 400);

  // the stream: chunked text/plain from now on; our input comes back through it
  const addr = api.server.address() as { port: number };
  let got = '';
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    httpGet({ host: HOST_A, port: addr.port, path: `/vms/${s.uuid}/console/stream` }, resolve).on('error', reject);
  });
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /^text\/plain/);
  assert.equal(res.headers['transfer-encoding'], 'chunked');
  res.on('data', (d: Buffer) => {
    got += d.toString();
  });
  const ended = new Promise<void>((r) => res.on('end', () => r()));
  await until('the banner', () => a.console(s.uuid).text.includes(BANNER));
  // a second reader on a second API: closing that API ends its stream (close does not wait for it)
  const other = createInternalApi({ localPeer: { role: 'operator', name: 'test' } });
  registerVmRoutes(other, a);
  await other.listen({ host: HOST_A, port: 0 });
  const res2 = await new Promise<IncomingMessage>((resolve, reject) => {
    httpGet({ host: HOST_A, port: (other.server.address() as { port: number }).port, path: `/vms/${s.uuid}/console/stream` }, resolve).on('error', reject);
  });
  res2.resume();
  await other.close();
  const input = await api.inject({ method: 'POST', url: `/vms/${s.uuid}/console/input`, payload: { data: 'via-http' } });
  assert.equal(input.statusCode, 200);
  await until('the echo on the HTTP stream', () => got.includes('via-http'));
  const log = (await api.inject({ method: 'GET', url: `/vms/${s.uuid}/console?offset=0` })).json<{ text: string; next: number }>();
  assert.ok(log.text.includes('via-http'));
  // power off ends the stream
  assert.equal((await api.inject({ method: 'POST', url: `/vms/${s.uuid}/power`, payload: { action: 'off' } })).json<HostVm>().state, 'off');
  await ended;
  assert.equal((await api.inject({ method: 'DELETE', url: `/vms/${s.uuid}` })).statusCode, 200);
  assert.equal((await api.inject({ method: 'GET', url: `/vms/${s.uuid}` })).statusCode, 404);
});

test('QEMU dies when the process hosting its runtime is killed (SIGKILL)', { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'vm-runtime-child.ts'), JSON.stringify({ stateDir: join(dir, 'child'), vdiskSocket, spec: spec() })], { stdio: ['ignore', 'pipe', 'inherit'] });
  const qemuPid = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve((JSON.parse(out) as { qemuPid: number }).qemuPid);
    });
    child.once('exit', (code) => reject(new Error(`the child exited (${code})`)));
  });
  assert.ok(processAlive(qemuPid));
  child.kill('SIGKILL');
  const t0 = Date.now();
  await until('QEMU gone', () => !processAlive(qemuPid), 2000);
  console.log(`QEMU ${qemuPid} gone ${Date.now() - t0} ms after its host process was killed`);
});
