import type { JSX } from 'preact';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, AUTH_REQUIRED, type Session } from './api.js';
import { LoginPage } from './LoginPage.js';
import { ClusterPage } from './cluster/ClusterPage.js';
import { FileBrowser } from './files/FileBrowser.js';
import { UploadPanel } from './files/UploadPanel.js';
import { filesHref, Link, navigate, useRoute } from './router.js';
import { Toasts } from './ui/toasts.js';
import './style.css';

function App(): JSX.Element {
  const route = useRoute();
  const [session, setSession] = useState<Session | undefined>();
  useEffect(() => {
    if (location.pathname === '/') navigate(`/files/${location.search}`, { replace: true });
    api.session().then(setSession, () => setSession({ keysRequired: false, role: 'rw' }));
    const loggedOut = (): void => setSession((s) => ({ keysRequired: true, role: 'none', ...(s?.role === 'none' ? s : {}) }));
    addEventListener(AUTH_REQUIRED, loggedOut);
    return () => removeEventListener(AUTH_REQUIRED, loggedOut);
  }, []);
  const needsLogin = session?.keysRequired === true && session.role === 'none';
  return (
    <>
      <a class="skip-link" href="#main">Skip to content</a>
      <header class="topbar">
        <Link class="brand" href={filesHref('/')} aria-label="sdfs home">
          <img src="/favicon.svg" alt="" width="24" height="24" />
          <span>sdfs</span>
        </Link>
        <nav aria-label="Main">
          <ul>
            <li><Link href={filesHref('/')} aria-current={route.page === 'files' ? 'page' : undefined}>Files</Link></li>
            <li><Link href="/cluster" aria-current={route.page === 'cluster' ? 'page' : undefined}>Cluster</Link></li>
          </ul>
        </nav>
        {session?.keysRequired && session.role !== 'none' && (
          <div class="session">
            {session.role === 'ro' && <span class="badge badge-warn">read-only</span>}
            <button type="button" class="button button-small" onClick={() => void api.logout().then(setSession)}>Log out</button>
          </div>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        {session === undefined ? <p class="loading">Loading…</p>
          : needsLogin ? <LoginPage onLogin={setSession} />
          : route.page === 'files' ? <FileBrowser path={route.path} readOnly={session.role === 'ro'} />
          : route.page === 'cluster' ? <ClusterPage />
          : (
            <section class="notice">
              <h1>Not found</h1>
              <p>No page here. <Link href={filesHref('/')}>Go to the files</Link>.</p>
            </section>
          )}
      </main>
      <UploadPanel />
      <Toasts />
    </>
  );
}

render(<App />, document.getElementById('app')!);
