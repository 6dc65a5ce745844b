/**
 * @module
 * Prism's console: the login page until a session exists, then the navigation (Dashboard, VMs,
 * Images, Networks, Hosts, Storage, Tasks, Alerts, Performance, LCM) and the page the address says.
 * A call answered 401 (the session ended) brings the login page back.
 */
import { useEffect, useState, type ReactElement } from 'react';
import * as api from '../api/client.ts';
import { NAV, BASE } from '../model/route.ts';
import { go, usePage, usePoll } from './hooks.ts';
import { Link } from './widgets.tsx';
import { LoginPage } from './login.tsx';
import { Dashboard } from './dashboard.tsx';
import { VmsPage } from './vms.tsx';
import { CreateVm } from './create-vm.tsx';
import { VmPage } from './vm-page.tsx';
import { ImagesPage } from './images.tsx';
import { NetworksPage } from './networks.tsx';
import { HostsPage } from './hosts.tsx';
import { StoragePage } from './storage.tsx';
import { TasksPage } from './tasks.tsx';
import { AlertsPage } from './alerts.tsx';
import { PerformancePage } from './performance.tsx';
import { LcmPage } from './lcm.tsx';

export function App(): ReactElement {
  // undefined: not known yet; null: not logged in
  const [user, setUser] = useState<string | null>();
  useEffect(() => {
    api.session().then((s) => setUser(s.username), () => setUser(null));
    return api.onUnauthorized(() => setUser(null));
  }, []);
  if (user === undefined) return <div className="splash">Prism</div>;
  if (user === null) return <LoginPage onLogin={setUser} />;
  return <Shell user={user} onLogout={() => setUser(null)} />;
}

function Shell({ user, onLogout }: { user: string; onLogout: () => void }): ReactElement {
  const page = usePage();
  const cluster = usePoll(api.cluster, 10_000);
  const alerts = usePoll(() => api.v2<{ entities: { severity: string }[] }>('alerts?resolved=false'), 10_000);
  const open = alerts.data?.entities ?? [];
  const critical = open.filter((a) => a.severity === 'kCritical').length;
  const logout = (): void => {
    void api.logout().finally(() => {
      window.history.replaceState(null, '', BASE);
      onLogout();
    });
  };
  const current = page.page === 'vm' || page.page === 'create-vm' ? 'vms' : page.page;
  return (
    <div className="shell">
      <header className="topbar">
        <Link to={BASE} className="brand"><span className="logo" aria-hidden>▦</span> Prism</Link>
        <span className="cluster-name">{cluster.data ? `${cluster.data.cluster.name} · ${cluster.data.members.length} nodes · RF${cluster.data.cluster.redundancyFactor}` : ''}</span>
        <span className="spacer" />
        <span className="user" data-testid="user">{user}</span>
        <button type="button" className="btn ghost small light" onClick={logout}>Log out</button>
      </header>
      <nav className="sidebar" aria-label="Prism">
        {NAV.map((n) => (
          <Link key={n.page} to={`${BASE}${n.path}`} className={current === n.page ? 'active' : ''}>
            {n.label}
            {n.page === 'alerts' && open.length > 0 ? <span className={`count ${critical > 0 ? 'bad' : 'warn'}`}>{open.length}</span> : null}
          </Link>
        ))}
      </nav>
      <main className="content">
        {(() => {
          switch (page.page) {
            case 'dashboard': return <Dashboard />;
            case 'vms': return <VmsPage />;
            case 'create-vm': return <CreateVm />;
            case 'vm': return <VmPage key={page.uuid} uuid={page.uuid} />;
            case 'images': return <ImagesPage />;
            case 'networks': return <NetworksPage />;
            case 'hosts': return <HostsPage />;
            case 'storage': return <StoragePage />;
            case 'tasks': return <TasksPage />;
            case 'alerts': return <AlertsPage onChange={alerts.refresh} />;
            case 'performance': return <PerformancePage entity={page.entity} />;
            case 'lcm': return <LcmPage />;
            case 'not-found': return <div className="empty">No page at {page.path}. <button type="button" className="btn small" onClick={() => go(BASE)}>Dashboard</button></div>;
          }
        })()}
      </main>
    </div>
  );
}
