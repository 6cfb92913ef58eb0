import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { segments } from './paths.js';

/**
 * The page's routes, in the address bar (the history API), so that links, reloads and the back
 * button work; the name server answers index.html for each of them.
 *
 *   /files/a/b   the directory /a/b      /cluster   the cluster's health
 */
export type Route = { page: 'files'; path: string } | { page: 'cluster' } | { page: 'not-found' };

export function parseRoute(pathname: string): Route {
  if (pathname === '/' || pathname === '/files' || pathname === '/files/') return { page: 'files', path: '/' };
  if (pathname.startsWith('/files/')) {
    try {
      return { page: 'files', path: `/${segments(pathname.slice('/files'.length)).map(decodeURIComponent).join('/')}` };
    } catch {
      return { page: 'not-found' };
    }
  }
  if (pathname === '/cluster' || pathname === '/cluster/') return { page: 'cluster' };
  return { page: 'not-found' };
}

export function filesHref(path: string): string {
  return `/files/${segments(path).map(encodeURIComponent).join('/')}`;
}

const NAVIGATE = 'sdfs:navigate';

export function navigate(href: string, opts: { replace?: boolean } = {}): void {
  if (opts.replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  dispatchEvent(new Event(NAVIGATE));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.pathname));
  useEffect(() => {
    const update = (): void => setRoute(parseRoute(location.pathname));
    addEventListener('popstate', update);
    addEventListener(NAVIGATE, update);
    return () => {
      removeEventListener('popstate', update);
      removeEventListener(NAVIGATE, update);
    };
  }, []);
  return route;
}

interface LinkProps {
  href: string;
  class?: string;
  title?: string;
  tabIndex?: number;
  'aria-label'?: string;
  'aria-current'?: 'page';
  onClick?: (e: MouseEvent) => void;
  children?: ComponentChildren;
}

/** A real link (it opens in a new tab, it can be copied) that moves within the page on a plain click. */
export function Link({ href, onClick, ...rest }: LinkProps): JSX.Element {
  return (
    <a
      {...rest}
      href={href}
      onClick={(e) => {
        onClick?.(e);
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(href);
      }}
    />
  );
}
