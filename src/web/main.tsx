import type { JSX } from 'preact';
import { render } from 'preact';
import { useEffect } from 'preact/hooks';
import { ClusterPage } from './cluster/ClusterPage.js';
import { FileBrowser } from './files/FileBrowser.js';
import { UploadPanel } from './files/UploadPanel.js';
import { filesHref, Link, navigate, useRoute } from './router.js';
import { Toasts } from './ui/toasts.js';
import './style.css';

function App(): JSX.Element {
  const route = useRoute();
  useEffect(() => {
    if (location.pathname === '/') navigate(`/files/${location.search}`, { replace: true });
  }, []);
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
      </header>
      <main id="main" tabIndex={-1}>
        {route.page === 'files' ? <FileBrowser path={route.path} />
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
