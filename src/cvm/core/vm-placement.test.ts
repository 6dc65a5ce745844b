import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../../shared/errors.ts';
import { checkCapacity, chooseHost, type PlacementHost } from './vm-placement.ts';

const h = (serial: string, freeMemoryMiB: number, freeVcpus: number, state: PlacementHost['state'] = 'up'): PlacementHost => ({ serial, hostIp: `10.0.0.${serial.slice(-1)}`, state, freeMemoryMiB, freeVcpus });

test('spread: the host with the most free memory that fits; ties by vCPUs then serial', () => {
  const hosts = [h('N1', 1000, 4), h('N2', 3000, 2), h('N3', 3000, 4)];
  assert.equal(chooseHost(hosts, { vcpus: 1, memoryMiB: 512 }).serial, 'N3');
  assert.equal(chooseHost([h('N2', 3000, 4), h('N1', 3000, 4)], { vcpus: 1, memoryMiB: 512 }).serial, 'N1');
  assert.equal(chooseHost(hosts, { vcpus: 3, memoryMiB: 512 }).serial, 'N3');
  assert.equal(chooseHost(hosts, { vcpus: 1, memoryMiB: 512 }, ['N3']).serial, 'N2');
  assert.equal(chooseHost(hosts, { vcpus: 1, memoryMiB: 512 }, ['10.0.0.3', 'N2']).serial, 'N1');
});

test('hosts not up take nothing', () => {
  const hosts = [h('N1', 9000, 8, 'down'), h('N2', 9000, 8, 'fenced'), h('N3', 9000, 8, 'maintenance'), h('N4', 600, 1)];
  assert.equal(chooseHost(hosts, { vcpus: 1, memoryMiB: 512 }).serial, 'N4');
  assert.throws(() => chooseHost(hosts.slice(0, 3), { vcpus: 1, memoryMiB: 1 }), (e: unknown) => e instanceof InputError && e.field === 'host');
});

test('a VM that fits no host is refused naming what is short and the most there is', () => {
  const hosts = [h('N1', 1000, 4), h('N2', 2000, 2)];
  assert.throws(() => chooseHost(hosts, { vcpus: 1, memoryMiB: 4096 }), (e: unknown) => e instanceof InputError && e.field === 'memoryMiB' && /most any host has is 2000 MiB/.test(e.reason));
  assert.throws(() => chooseHost(hosts, { vcpus: 8, memoryMiB: 128 }), (e: unknown) => e instanceof InputError && e.field === 'vcpus' && /most any host has is 4/.test(e.reason));
  assert.throws(() => chooseHost(hosts, { vcpus: 4, memoryMiB: 1500 }), (e: unknown) => e instanceof InputError && e.field === 'memoryMiB' && /both/.test(e.reason));
});

test('a VM larger than any host could hold is refused at create, naming the field', () => {
  const hosts = [{ serial: 'a', memoryMiB: 4096, vcpus: 8 }, { serial: 'b', memoryMiB: 8192, vcpus: 4 }];
  checkCapacity(hosts, { memoryMiB: 8192, vcpus: 4 });
  checkCapacity([], { memoryMiB: 1 << 30, vcpus: 1000 });
  assert.throws(() => checkCapacity(hosts, { memoryMiB: 8193, vcpus: 1 }), (e: unknown) => e instanceof InputError && e.field === 'memoryMiB' && /8192 MiB for VMs/.test(e.message));
  assert.throws(() => checkCapacity(hosts, { memoryMiB: 8192, vcpus: 5 }), (e: unknown) => e instanceof InputError && e.field === 'vcpus');
  assert.throws(() => checkCapacity(hosts, { memoryMiB: 1024, vcpus: 9 }), (e: unknown) => e instanceof InputError && e.field === 'vcpus');
});
