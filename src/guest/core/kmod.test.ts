import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadOrder, moduleDepends } from './kmod.ts';

test('moduleDepends reads the depends= field of .modinfo', () => {
  const ko = Buffer.concat([Buffer.from('\x7fELF...'), Buffer.from('\0license=GPL\0depends=virtio,virtio_ring\0vermagic=6.1\0')]);
  assert.deepEqual(moduleDepends(ko), ['virtio', 'virtio_ring']);
  assert.deepEqual(moduleDepends(Buffer.from('\0depends=\0')), []);
  assert.deepEqual(moduleDepends(Buffer.from('no modinfo')), []);
});

test('loadOrder puts dependencies first, each once, and names what is missing or cyclic', () => {
  const deps: Record<string, string[]> = {
    virtio_ring: [],
    virtio: [],
    virtio_pci: ['virtio', 'virtio_ring', 'virtio_pci_modern_dev'],
    virtio_pci_modern_dev: [],
    virtio_blk: ['virtio', 'virtio_ring'],
    net_failover: ['failover'],
    failover: [],
    virtio_net: ['virtio', 'net-failover', 'virtio_ring'],
  };
  assert.deepEqual(loadOrder(['virtio_pci', 'virtio_blk', 'virtio_net'], (n) => deps[n]), [
    'virtio',
    'virtio_ring',
    'virtio_pci_modern_dev',
    'virtio_pci',
    'virtio_blk',
    'failover',
    'net_failover',
    'virtio_net',
  ]);
  assert.throws(() => loadOrder(['virtio_blk', 'nope'], (n) => deps[n]), /no module nope/);
  assert.throws(() => loadOrder(['a'], (n) => ({ a: ['b'], b: ['a'] })[n]), /cycle through a/);
});
