/**
 * @module
 * The web UI's shell: a header and two pages chosen by the URL's hash — `#/` the deployment
 * wizard, `#/session/<id>` a session's live flow diagram (so a reload, or a link, opens the same
 * session again).
 */
import { useEffect, useMemo, useState, type ReactElement } from 'react';
import { FoundationClient } from '../../../src/foundation/protocol/client.ts';
import { routeOf } from '../model/route.ts';
import { FlowPage } from './flow-page.tsx';
import { WizardPage } from './wizard-page.tsx';

export function App(): ReactElement {
  const client = useMemo(() => new FoundationClient(''), []);
  const [hash, setHash] = useState(() => window.location.hash);
  useEffect(() => {
    const on = (): void => setHash(window.location.hash);
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  const route = routeOf(hash);
  return (
    <div className="app">
      <header className="topbar">
        <a href="#/" className="brand"><span className="logo" aria-hidden>✚</span> Converge Foundation</a>
        <span className="tagline">discover · validate · image · create the cluster</span>
      </header>
      {route.page === 'session' ? <FlowPage key={route.id} client={client} sessionId={route.id} /> : <WizardPage client={client} />}
    </div>
  );
}
