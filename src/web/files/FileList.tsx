import type { JSX } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { contentUrl, type FileStat } from '../api.js';
import { formatDate, formatFullDate, formatSize } from '../format.js';
import { filesHref, Link } from '../router.js';
import { Icon } from '../ui/icons.js';

export type SortKey = 'name' | 'size' | 'mtime';
export interface Sort { key: SortKey; dir: 1 | -1 }

export interface FileListProps {
  dir: string;
  entries: FileStat[];
  sort: Sort;
  onSort(key: SortKey): void;
  /** A folder: go into it; a file: show its details. */
  onOpen(entry: FileStat): void;
  onRename(entry: FileStat): void;
  onDelete(entry: FileStat): void;
  onDetails(entry: FileStat): void;
  /** A read-only session: no rename or delete buttons or keys. */
  readOnly?: boolean;
  /** The row to focus once the list shows (a name), or '' for the first row; undefined: leave focus alone. */
  focusName?: string;
  /** Called once the row asked for by `focusName` has focus. */
  onFocused(): void;
}

/** Height of a row in pixels; fixed, so that the list knows which rows a scroll position shows. */
export const ROW_HEIGHT = 52;
/** Rows drawn above and below the visible ones, so that a fast scroll shows no blank. */
const OVERSCAN = 12;

const COLUMNS: { key: SortKey; label: string; class: string }[] = [
  { key: 'name', label: 'Name', class: 'col-name' },
  { key: 'size', label: 'Size', class: 'col-size' },
  { key: 'mtime', label: 'Modified', class: 'col-date' },
];

/**
 * The entries of a directory as a grid that draws only the rows in view (and a few around), so a
 * directory of 100,000 entries costs the page no more than one of 50. Keyboard: one row is in the
 * tab order at a time (roving tabindex); arrows, Page Up/Down, Home and End move between rows,
 * Enter or Space opens, F2 renames, Delete deletes; Tab goes through the row's buttons.
 */
export function FileList(props: FileListProps): JSX.Element {
  const { entries } = props;
  const scroller = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(600);
  // The active row (the one in the tab order), by path so that it stays put when rows come and go.
  const [active, setActive] = useState({ path: '', index: 0 });
  // Bumped to move focus to the active row once it is drawn.
  const [focusRequest, setFocusRequest] = useState(0);

  useLayoutEffect(() => {
    const el = scroller.current!;
    const observer = new ResizeObserver(() => setHeight(el.clientHeight));
    observer.observe(el);
    setHeight(el.clientHeight);
    return () => observer.disconnect();
  }, []);

  const found = active.path ? entries.findIndex((e) => e.path === active.path) : -1;
  const current = found >= 0 ? found : Math.min(active.index, Math.max(0, entries.length - 1));

  // The row asked for by the page (after entering a folder, a rename, a new folder), once.
  useEffect(() => {
    if (props.focusName === undefined) return;
    if (entries.length === 0) {
      // An empty folder: the list itself takes focus, so that the keyboard stays here.
      scroller.current?.focus();
      props.onFocused();
      return;
    }
    const i = props.focusName === '' ? 0 : entries.findIndex((e) => e.name === props.focusName);
    moveTo(i < 0 ? 0 : i);
    props.onFocused();
  }, [props.focusName, entries]);

  useEffect(() => {
    if (focusRequest > 0) scroller.current?.querySelector<HTMLElement>(`[data-index="${current}"]`)?.focus({ preventScroll: true });
  }, [focusRequest]);

  function moveTo(i: number): void {
    const el = scroller.current;
    if (!el || entries.length === 0) return;
    const index = Math.max(0, Math.min(entries.length - 1, i));
    // Scroll just enough to show the row under the sticky header.
    const top = index * ROW_HEIGHT;
    const view = el.clientHeight - ROW_HEIGHT;
    if (top < el.scrollTop) el.scrollTop = top;
    else if (top + ROW_HEIGHT > el.scrollTop + view) el.scrollTop = top + ROW_HEIGHT - view;
    setScrollTop(el.scrollTop);
    setActive({ path: entries[index]!.path, index });
    setFocusRequest((n) => n + 1);
  }

  function onKeyDown(e: KeyboardEvent): void {
    const row = (e.target as HTMLElement).closest<HTMLElement>('[data-index]');
    if (!row) return;
    const index = Number(row.dataset.index);
    const entry = entries[index];
    if (!entry) return;
    const onRow = e.target === row;
    const page = Math.max(1, Math.floor((scroller.current?.clientHeight ?? ROW_HEIGHT * 10) / ROW_HEIGHT) - 1);
    const moves: Record<string, number> = {
      ArrowDown: index + 1, ArrowUp: index - 1, PageDown: index + page, PageUp: index - page, Home: 0, End: entries.length - 1,
    };
    if (e.key in moves && !(e.altKey || e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      moveTo(moves[e.key]!);
    } else if (onRow && (e.key === 'Enter' || e.key === ' ')) {
      e.preventDefault();
      props.onOpen(entry);
    } else if (props.readOnly) {
      // Nothing to change with a read-only key.
    } else if (e.key === 'F2') {
      e.preventDefault();
      props.onRename(entry);
    } else if (e.key === 'Delete') {
      e.preventDefault();
      props.onDelete(entry);
    }
  }

  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(entries.length, Math.ceil((scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
  const shown: number[] = [];
  // The active row stays drawn even when scrolled away, so that focus is never lost with it.
  if (entries.length > 0 && current < first) shown.push(current);
  for (let i = first; i < last; i++) shown.push(i);
  if (entries.length > 0 && current >= last) shown.push(current);

  return (
    <div class="file-grid" ref={scroller} role="grid" aria-label={`Contents of ${props.dir}`} aria-rowcount={entries.length + 1}
      tabIndex={entries.length === 0 ? 0 : undefined}
      onScroll={(e) => setScrollTop((e.currentTarget as HTMLDivElement).scrollTop)} onKeyDown={onKeyDown}>
      <div class="grid-header" role="row" aria-rowindex={1}>
        {COLUMNS.map((c) => {
          const sorted = props.sort.key === c.key;
          return (
            <div key={c.key} role="columnheader" class={c.class}
              aria-sort={sorted ? (props.sort.dir === 1 ? 'ascending' : 'descending') : 'none'}>
              <button type="button" class="sort-button" onClick={() => props.onSort(c.key)}
                title={`Sort by ${c.label.toLowerCase()}`}>
                {c.label}<span class="sort-mark" aria-hidden="true">{sorted ? (props.sort.dir === 1 ? '▲' : '▼') : ''}</span>
              </button>
            </div>
          );
        })}
        <div role="columnheader" class="col-actions"><span class="visually-hidden">Actions</span></div>
      </div>
      <div class="grid-body" role="rowgroup" style={{ height: `${entries.length * ROW_HEIGHT}px` }}>
        {shown.map((i) => (
          <Row key={entries[i]!.path} index={i} entry={entries[i]!} active={i === current} props={props}
            onPointerDown={() => setActive({ path: entries[i]!.path, index: i })} />
        ))}
      </div>
      {entries.length === 0 && <p class="empty">This folder is empty. Drop files here or use Upload.</p>}
    </div>
  );
}

function Row({ index, entry, active, props, onPointerDown }: {
  index: number; entry: FileStat; active: boolean; props: FileListProps; onPointerDown: () => void;
}): JSX.Element {
  const tab = active ? 0 : -1;
  const isDir = entry.type === 'dir';
  return (
    <div class={`grid-row${active ? ' active' : ''}`} role="row" aria-rowindex={index + 2} data-index={index} data-name={entry.name}
      tabIndex={tab} aria-label={isDir ? `Folder ${entry.name}` : `File ${entry.name}, ${formatSize(entry.size)}`} style={{ transform: `translateY(${index * ROW_HEIGHT}px)` }}
      onPointerDown={onPointerDown}>
      <div role="gridcell" class="col-name">
        <Icon name={isDir ? 'folder' : 'file'} class={isDir ? 'icon-folder' : 'icon-file'} />
        {isDir
          ? <Link href={filesHref(entry.path)} class="entry-name" tabIndex={tab} title={entry.name}>{entry.name}</Link>
          : <button type="button" class="entry-name link-button" tabIndex={tab} title={entry.name} onClick={() => props.onDetails(entry)}>{entry.name}</button>}
        <span class="entry-meta" aria-hidden="true">{isDir ? 'Folder' : formatSize(entry.size)} · {formatDate(entry.mtime)}</span>
      </div>
      <div role="gridcell" class="col-size">{isDir ? '—' : formatSize(entry.size)}</div>
      <div role="gridcell" class="col-date" title={formatFullDate(entry.mtime)}>{formatDate(entry.mtime)}</div>
      <div role="gridcell" class="col-actions">
        {!isDir && (
          <a class="icon-button" href={contentUrl(entry.path)} download={entry.name} tabIndex={tab} aria-label={`Download ${entry.name}`} title="Download">
            <Icon name="download" />
          </a>
        )}
        {!isDir && (
          <button type="button" class="icon-button" tabIndex={tab} aria-label={`Details of ${entry.name}`} title="Details (blocks and replicas)" onClick={() => props.onDetails(entry)}>
            <Icon name="info" />
          </button>
        )}
        {!props.readOnly && (
          <button type="button" class="icon-button" tabIndex={tab} aria-label={`Rename or move ${entry.name}`} title="Rename or move (F2)" onClick={() => props.onRename(entry)}>
            <Icon name="rename" />
          </button>
        )}
        {!props.readOnly && (
          <button type="button" class="icon-button danger" tabIndex={tab} aria-label={`Delete ${entry.name}`} title="Delete (Del)" onClick={() => props.onDelete(entry)}>
            <Icon name="trash" />
          </button>
        )}
      </div>
    </div>
  );
}
