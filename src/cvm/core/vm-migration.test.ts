import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../../shared/errors.ts';
import type { VmHost } from '../protocol/vms.ts';
import { chooseMigrationTarget, hostStateOf, migrationStep, type MigrationProgress } from './vm-migration.ts';

const h = (serial: string, freeMemoryMiB: number, state: VmHost['state'] = 'up', freeVcpus = 4): VmHost => ({
  serial, hostIp: `10.0.0.${serial.slice(-1)}`, cvmIp: `10.0.1.${serial.slice(-1)}`, state, memoryMiB: 8192, freeMemoryMiB, vcpus: 8, freeVcpus, vms: 0,
});
const vm = { name: 'web', vcpus: 1, memoryMiB: 1024, host: { serial: 'N1' } };
const field = (f: string, re: RegExp) => (e: unknown): boolean => e instanceof InputError && e.field === f && re.test(e.message);

test('chooseMigrationTarget: the wanted host by serial or host IP, refusals naming host', () => {
  const hosts = [h('N1', 4000), h('N2', 2000), h('N3', 3000), h('N4', 9000, 'maintenance'), h('N5', 500), h('N6', 9000, 'down'), h('N7', 9000, 'up', 0)];
  assert.equal(chooseMigrationTarget(hosts, vm, 'N2').serial, 'N2');
  assert.equal(chooseMigrationTarget(hosts, vm, '10.0.0.2').serial, 'N2');
  assert.throws(() => chooseMigrationTarget(hosts, vm, 'N1'), field('host', /runs on host N1 already/));
  assert.throws(() => chooseMigrationTarget(hosts, vm, 'N9'), field('host', /no host N9/));
  assert.throws(() => chooseMigrationTarget(hosts, vm, 'N4'), field('host', /N4 is maintenance/));
  assert.throws(() => chooseMigrationTarget(hosts, vm, 'N6'), field('host', /N6 is down/));
  assert.throws(() => chooseMigrationTarget(hosts, vm, 'N5'), field('host', /500 MiB free; VM web needs 1024 MiB/));
  assert.throws(() => chooseMigrationTarget(hosts, vm, 'N7'), field('host', /0 vCPUs free/));
});

test('chooseMigrationTarget: without a wanted host, the placement among the others (never its own)', () => {
  assert.equal(chooseMigrationTarget([h('N1', 9000), h('N2', 2000), h('N3', 3000)], vm).serial, 'N3');
  assert.throws(() => chooseMigrationTarget([h('N1', 9000), h('N2', 100)], vm), field('host', /no other host can take VM web: no host has 1024 MiB free/));
  assert.throws(() => chooseMigrationTarget([h('N1', 9000)], vm), field('host', /no other host can take VM web: .*N1: excluded/));
});

const m: MigrationProgress = { fromEpoch: 3, epoch: 4, port: null };

test('migrationStep: a fresh migration prepares, then sends on the known port, then is done', () => {
  assert.deepEqual(migrationStep(m, { epoch: 3, state: 'running' }, undefined), { kind: 'prepare' });
  assert.deepEqual(migrationStep({ ...m, port: 49152 }, { epoch: 3, state: 'running' }, { epoch: 4, state: 'incoming' }), { kind: 'send', port: 49152 });
  assert.equal(migrationStep(m, { epoch: 3, state: 'migrating' }, { epoch: 4, state: 'incoming' }).kind, 'wait');
  assert.deepEqual(migrationStep(m, { epoch: 3, state: 'migrated' }, { epoch: 4, state: 'running' }), { kind: 'done' });
  assert.deepEqual(migrationStep(m, undefined, { epoch: 4, state: 'paused' }), { kind: 'done' }, 'the source forgot it already');
});

test('migrationStep: resumed runs and leftovers', () => {
  // a new leader finds the target waiting on a port it does not know: start it again
  assert.equal(migrationStep(m, { epoch: 3, state: 'running' }, { epoch: 4, state: 'incoming' }).kind, 'drop-target');
  assert.equal(migrationStep({ ...m, port: 1 }, { epoch: 3, state: 'running' }, { epoch: 4, state: 'crashed' }).kind, 'drop-target');
  // a copy on the target at another epoch is not this migration's
  assert.deepEqual(migrationStep(m, { epoch: 3, state: 'running' }, { epoch: 2, state: 'off' }), { kind: 'prepare' });
  // the target runs it and the source still says running: a report that lags
  assert.equal(migrationStep(m, { epoch: 3, state: 'running' }, { epoch: 4, state: 'running' }).kind, 'wait');
  assert.equal(migrationStep(m, { epoch: 3, state: 'migrated' }, { epoch: 4, state: 'incoming' }).kind, 'wait');
  const lost = migrationStep(m, { epoch: 3, state: 'crashed' }, undefined);
  assert.equal(lost.kind, 'lost');
  assert.match(lost.kind === 'lost' ? lost.reason : '', /source: crashed at epoch 3; target: not there/);
});

test('hostStateOf: HA liveness first, then the poll, then maintenance', () => {
  const up = { answers: true, maintenance: false, evacuating: false, liveness: undefined };
  assert.equal(hostStateOf(up), 'up');
  assert.equal(hostStateOf({ ...up, liveness: 'suspect' }), 'up');
  assert.equal(hostStateOf({ ...up, answers: false }), 'down');
  assert.equal(hostStateOf({ ...up, liveness: 'fencing' }), 'down');
  assert.equal(hostStateOf({ ...up, liveness: 'fence-failed' }), 'down');
  assert.equal(hostStateOf({ ...up, liveness: 'fenced' }), 'fenced');
  assert.equal(hostStateOf({ ...up, answers: true, liveness: 'fenced' }), 'fenced', 'a fenced host that answers stays fenced until HA returns it');
  assert.equal(hostStateOf({ ...up, maintenance: true, evacuating: true }), 'entering-maintenance');
  assert.equal(hostStateOf({ ...up, maintenance: true }), 'maintenance');
  assert.equal(hostStateOf({ ...up, maintenance: true, answers: false }), 'down');
});
