import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Vm } from '../../cvm/protocol/vms.ts';
import type { V3VmContext } from '../core/v3-vms.ts';
import { VmListView } from './vm-view.ts';

const ctx = { cluster: { uuid: 'c', name: 'c' }, hosts: [], subnets: [], images: [], containers: [] } satisfies V3VmContext;

/** A VM service whose list answers when told to (`release`), counting fetches. */
function service(): { fetch: () => Promise<{ vms: Vm[]; ctx: V3VmContext }>; release: () => void; fetches: number; names: string[] } {
  const s = {
    fetches: 0, names: ['a'],
    waiting: [] as (() => void)[],
    release: () => s.waiting.splice(0).forEach((f) => f()),
    fetch: () => {
      s.fetches++;
      const names = [...s.names];
      return new Promise<{ vms: Vm[]; ctx: V3VmContext }>((r) => s.waiting.push(() => r({ vms: names.map((name) => ({ name }) as Vm), ctx })));
    },
  };
  return s;
}

test('lists share one fetch; an old list is answered at once while a fresh one is fetched; a change made here makes the next list wait for a fresh one', async () => {
  let now = 0;
  const s = service();
  const view = new VmListView(s.fetch, 1000, () => now);
  const first = [view.get(), view.get()] as const;
  assert.equal(s.fetches, 1, 'one fetch for concurrent lists');
  s.release();
  const [a, b] = await Promise.all(first);
  assert.equal(a, b);
  assert.deepEqual(a.vms.map((v) => v.name), ['a']);
  assert.equal(VmListView.shape(a, 'v3', () => ({ built: 1 })), VmListView.shape(a, 'v3', () => ({ built: 2 })), 'built once per view');

  s.names.push('b'); // changed elsewhere
  now = 500;
  assert.equal(await view.get(), a, 'fresh enough: no fetch');
  assert.equal(s.fetches, 1);
  now = 1500;
  assert.equal(await view.get(), a, 'old: answered at once…');
  assert.equal(s.fetches, 2, '…while a fresh one is fetched');
  s.release();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual((await view.get()).vms.map((v) => v.name), ['a', 'b']);

  s.names.push('c');
  view.invalidate(); // Prism made a VM
  const next = view.get();
  assert.equal(s.fetches, 3);
  s.release();
  assert.deepEqual((await next).vms.map((v) => v.name), ['a', 'b', 'c'], 'the change is in the next list');
});

test('a fetch begun before a change made here is not used for the next list', async () => {
  let now = 0;
  const s = service();
  const view = new VmListView(s.fetch, 1000, () => now);
  const p = view.get();
  s.release();
  await p;
  now = 2000;
  await view.get(); // starts a background fetch of the old list
  assert.equal(s.fetches, 2);
  s.names.push('new');
  view.invalidate();
  const next = view.get();
  assert.equal(s.fetches, 3, 'a new fetch, not the one in flight');
  s.release();
  assert.deepEqual((await next).vms.map((v) => v.name), ['a', 'new']);
});

test('shapes are rebuilt only for the VMs that changed', async () => {
  const now = 0;
  const vm = (name: string, specVersion = 1): Vm => ({ uuid: name, name, specVersion, powerState: 'off', runtimeState: 'off', host: null, epoch: 0, nics: [] }) as unknown as Vm;
  let vms = [vm('a'), vm('b')];
  const view = new VmListView(() => Promise.resolve({ vms, ctx }), 1000, () => now);
  let built: string[] = [];
  const shape = (v: Vm): { name: string; specVersion: number } => {
    built.push(v.name);
    return { name: v.name, specVersion: v.specVersion };
  };
  const first = view.shapes(await view.get(), 'v3', shape);
  assert.deepEqual(built, ['a', 'b']);
  assert.equal(view.shapes(await view.get(), 'v3', shape), first, 'the same view: the same list');
  vms = [vm('a'), vm('b', 2), vm('c')];
  view.invalidate();
  built = [];
  const second = view.shapes(await view.get(), 'v3', shape);
  assert.deepEqual(built, ['b', 'c'], 'a unchanged: reused');
  assert.equal(second[0], first[0]);
  assert.deepEqual(second.map((x) => x.specVersion), [1, 2, 1]);
});
