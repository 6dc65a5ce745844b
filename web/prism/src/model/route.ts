/**
 * @module
 * The console's pages by path under /console/ (pure): what the address bar says is what is shown,
 * so a reload or a link opens the same page.
 */
export type Page =
  | { page: 'dashboard' } | { page: 'vms' } | { page: 'vm'; uuid: string } | { page: 'create-vm' }
  | { page: 'images' } | { page: 'networks' } | { page: 'hosts' } | { page: 'storage' }
  | { page: 'tasks' } | { page: 'alerts' } | { page: 'performance'; entity: string } | { page: 'lcm' }
  | { page: 'not-found'; path: string };

export const BASE = '/console/';

/** The navigation, in order: path and label. */
export const NAV: { path: string; label: string; page: Page['page'] }[] = [
  { path: '', label: 'Dashboard', page: 'dashboard' },
  { path: 'vms', label: 'VMs', page: 'vms' },
  { path: 'images', label: 'Images', page: 'images' },
  { path: 'networks', label: 'Networks', page: 'networks' },
  { path: 'hosts', label: 'Hosts', page: 'hosts' },
  { path: 'storage', label: 'Storage', page: 'storage' },
  { path: 'tasks', label: 'Tasks', page: 'tasks' },
  { path: 'alerts', label: 'Alerts', page: 'alerts' },
  { path: 'performance', label: 'Performance', page: 'performance' },
  { path: 'lcm', label: 'LCM', page: 'lcm' },
];

const UUID = /^[0-9a-fA-F-]{8,64}$/;
const ENTITY = /^(cluster|(vm|host|vdisk):[A-Za-z0-9-]{1,64})$/;

/** The page of a path and query (`/console/vms/<uuid>`, `/console/performance?entity=vm:<uuid>`). */
export function pageOf(pathname: string, search = ''): Page {
  const rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : pathname === '/console' ? '' : null;
  if (rest === null) return { page: 'not-found', path: pathname };
  const parts = rest.split('/').filter((p) => p !== '');
  const [a, b] = parts;
  if (parts.length === 0) return { page: 'dashboard' };
  if (a === 'vms' && b === 'new' && parts.length === 2) return { page: 'create-vm' };
  if (a === 'vms' && b !== undefined && UUID.test(b) && parts.length === 2) return { page: 'vm', uuid: b };
  if (a === 'performance' && parts.length === 1) {
    const entity = new URLSearchParams(search).get('entity') ?? 'cluster';
    return { page: 'performance', entity: ENTITY.test(entity) ? entity : 'cluster' };
  }
  const nav = NAV.find((n) => n.path === a);
  if (nav && parts.length === 1 && nav.page !== 'performance') return { page: nav.page } as Page;
  return { page: 'not-found', path: pathname };
}

/** The path of a page. */
export function pathOf(p: Page): string {
  switch (p.page) {
    case 'dashboard': return BASE;
    case 'vm': return `${BASE}vms/${p.uuid}`;
    case 'create-vm': return `${BASE}vms/new`;
    case 'performance': return `${BASE}performance${p.entity === 'cluster' ? '' : `?entity=${encodeURIComponent(p.entity)}`}`;
    case 'not-found': return p.path;
    case 'vms': case 'images': case 'networks': case 'hosts': case 'storage': case 'tasks': case 'alerts': case 'lcm': return `${BASE}${p.page}`;
  }
}
