import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NAV, pageOf, pathOf, type Page } from './route.ts';

test('every page has a path that leads back to it', () => {
  const pages: Page[] = [
    ...NAV.filter((n) => n.page !== 'performance').map((n) => ({ page: n.page }) as Page),
    { page: 'vm', uuid: '6d1c1b5e-2a4f-4a8e-9d7b-0c3f5e6a7b8c' }, { page: 'create-vm' },
    { page: 'performance', entity: 'cluster' }, { page: 'performance', entity: 'vm:6d1c1b5e-2a4f-4a8e-9d7b-0c3f5e6a7b8c' },
  ];
  for (const p of pages) {
    const [path, query] = pathOf(p).split('?');
    assert.deepEqual(pageOf(path ?? '', query ? `?${query}` : ''), p, pathOf(p));
  }
});

test('what is not a page says so, and a bad entity falls back to the cluster', () => {
  assert.deepEqual(pageOf('/console'), { page: 'dashboard' });
  assert.deepEqual(pageOf('/console/vms/'), { page: 'vms' });
  assert.equal(pageOf('/console/nope').page, 'not-found');
  assert.equal(pageOf('/console/vms/<script>').page, 'not-found');
  assert.equal(pageOf('/console/vms/a/b').page, 'not-found');
  assert.equal(pageOf('/elsewhere').page, 'not-found');
  assert.deepEqual(pageOf('/console/performance', '?entity=vm:../../x'), { page: 'performance', entity: 'cluster' });
  assert.deepEqual(pageOf('/console/performance', '?entity=host:abc-1'), { page: 'performance', entity: 'host:abc-1' });
});
