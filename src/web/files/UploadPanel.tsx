import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { formatSize } from '../format.js';
import { Icon } from '../ui/icons.js';
import { useStore } from '../ui/store.js';
import { uploads, type UploadItem } from './uploads.js';

/** Every upload of the page, each with its own progress bar; stays in a corner while the person browses. */
export function UploadPanel(): JSX.Element | null {
  const items = useStore(uploads.items);
  const [open, setOpen] = useState(true);
  // New uploads unfold the panel again.
  const seen = useRef(0);
  useEffect(() => {
    if (items.length > seen.current) setOpen(true);
    seen.current = items.length;
  }, [items.length]);
  if (items.length === 0) return null;
  const done = items.filter((u) => u.state === 'done').length;
  const active = items.filter((u) => u.state === 'uploading' || u.state === 'queued').length;
  return (
    <section class="upload-panel" aria-label="Uploads">
      <header>
        <h2>{active > 0 ? `Uploading ${active} file${active === 1 ? '' : 's'}` : 'Uploads'} <span class="muted">· {done} of {items.length} done</span></h2>
        <button type="button" class="button button-small" onClick={() => uploads.clearFinished()} disabled={items.length === active}>Clear finished</button>
        <button type="button" class="icon-button" aria-expanded={open} aria-label={open ? 'Hide uploads' : 'Show uploads'} title={open ? 'Hide' : 'Show'} onClick={() => setOpen(!open)}>
          <Icon name={open ? 'close' : 'up'} />
        </button>
      </header>
      {open && <ul>{items.map((u) => <UploadRow key={u.id} item={u} />)}</ul>}
    </section>
  );
}

function UploadRow({ item }: { item: UploadItem }): JSX.Element {
  const size = item.file.size;
  const pct = size === 0 ? (item.state === 'done' ? 100 : 0) : Math.floor((item.loaded / size) * 100);
  const text = {
    queued: 'waiting',
    uploading: `${formatSize(item.loaded)} of ${formatSize(size)} · ${pct}%`,
    done: `${formatSize(size)} · done`,
    failed: item.error ? `${item.error.message}` : 'failed',
    canceled: 'canceled',
  }[item.state];
  return (
    <li class={`upload upload-${item.state}`} data-upload={item.path}>
      <div class="upload-line">
        <span class="upload-name" title={item.path}>{item.file.name}</span>
        {(item.state === 'uploading' || item.state === 'queued') && (
          <button type="button" class="button button-small" onClick={() => uploads.cancel(item.id)} aria-label={`Cancel upload of ${item.file.name}`}>Cancel</button>
        )}
        {item.state === 'failed' && item.error?.code === 'EEXIST' && (
          <button type="button" class="button button-small" onClick={() => uploads.retry(item.id, true)} aria-label={`Replace ${item.file.name}`}>Replace</button>
        )}
        {(item.state === 'failed' && item.error?.code !== 'EEXIST') || item.state === 'canceled' ? (
          <button type="button" class="button button-small" onClick={() => uploads.retry(item.id, item.overwrite)} aria-label={`Retry upload of ${item.file.name}`}>Retry</button>
        ) : null}
      </div>
      <progress max={100} value={item.state === 'done' ? 100 : pct} aria-label={`Upload of ${item.file.name}`} />
      <div class="upload-status" role={item.state === 'failed' ? 'alert' : undefined}>{text}</div>
    </li>
  );
}
