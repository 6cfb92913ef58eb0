import type { JSX } from 'preact';
import { joinPath, segments } from '../paths.js';
import { filesHref, Link } from '../router.js';

export function Breadcrumbs({ path }: { path: string }): JSX.Element {
  const parts = segments(path);
  let at = '/';
  const crumbs = [{ name: 'All files', path: '/' }, ...parts.map((name) => ({ name, path: (at = joinPath(at, name)) }))];
  return (
    <nav class="breadcrumbs" aria-label="Breadcrumb">
      <ol>
        {crumbs.map((c, i) => (
          <li key={c.path}>
            {i === crumbs.length - 1
              ? <span aria-current="page">{c.name}</span>
              : <Link href={filesHref(c.path)}>{c.name}</Link>}
          </li>
        ))}
      </ol>
    </nav>
  );
}
