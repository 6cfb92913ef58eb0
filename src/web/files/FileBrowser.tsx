import type { JSX } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, ApiError, type FileStat, type ListResponse } from '../api.js';
import { formatSize, plural } from '../format.js';
import { baseName, parentOf, segments } from '../paths.js';
import { filesHref, Link, navigate } from '../router.js';
import { Icon } from '../ui/icons.js';
import { notify } from '../ui/toasts.js';
import { Breadcrumbs } from './Breadcrumbs.js';
import { DeleteDialog, DetailsDialog, NewFolderDialog, RenameDialog } from './dialogs.js';
import { FileList, type Sort, type SortKey } from './FileList.js';
import { uploads } from './uploads.js';

type Dialog =
  | { kind: 'mkdir' }
  | { kind: 'rename' | 'delete' | 'details'; entry: FileStat };

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

/** Folders first, then files; each group by the chosen key, ties by name. */
export function sortEntries(entries: FileStat[], sort: Sort): FileStat[] {
  const byName = (a: FileStat, b: FileStat): number => collator.compare(a.name, b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return [...entries].sort((a, b) => {
    if (a.type !== b.type) return a.type === 'dir' ? -1 : 1;
    const key = sort.key === 'size' ? a.size - b.size : sort.key === 'mtime' ? a.mtime - b.mtime : 0;
    return sort.dir * (key || byName(a, b));
  });
}

/** The file browser: one directory, its entries, and everything that can be done to them. */
export function FileBrowser({ path, readOnly = false }: { path: string; readOnly?: boolean }): JSX.Element {
  const [listing, setListing] = useState<ListResponse>();
  const [error, setError] = useState<ApiError>();
  const [reloads, setReloads] = useState(0);
  const [sort, setSort] = useState<Sort>({ key: 'name', dir: 1 });
  const [dialog, setDialog] = useState<Dialog & { seq: number }>();
  // Each opening is a dialog of its own (its key): a Delete pressed again before the closing of the
  // last one has been drawn must open a new dialog, not find the closed one still mounted.
  const opened = useRef(0);
  const openDialog = (d: Dialog): void => setDialog({ ...d, seq: ++opened.current });
  // Closes that one dialog only: a <dialog>'s close event comes in a task of its own, after the
  // browser has already given the focus back, so a Delete pressed in between has opened the next
  // dialog, which this close must not take away.
  const closeDialog = (seq: number) => (): void => setDialog((d) => (d?.seq === seq ? undefined : d));
  const [focusName, setFocusName] = useState<string>();
  // The row to focus once the next listing arrives (after a rename, a new folder, entering a folder).
  const pendingFocus = useRef<string | undefined>(undefined);
  const [dragging, setDragging] = useState(false);
  const dragDepth = useRef(0);
  const fileInput = useRef<HTMLInputElement>(null);
  const reload = (): void => setReloads((n) => n + 1);

  useEffect(() => {
    document.title = `${path === '/' ? 'All files' : baseName(path)} · sdfs`;
    // Moving between folders from the keyboard keeps the keyboard in the list.
    if (document.activeElement?.closest('.file-grid')) pendingFocus.current ??= '';
  }, [path]);

  useEffect(() => {
    const ctl = new AbortController();
    api.list(path, ctl.signal).then((r) => {
      setListing(r);
      setError(undefined);
      if (pendingFocus.current !== undefined) setFocusName(pendingFocus.current);
      pendingFocus.current = undefined;
    }, (err: unknown) => {
      if (ctl.signal.aborted) return;
      setError(err instanceof ApiError ? err : new ApiError('EINTERNAL', String(err)));
    });
    return () => ctl.abort();
  }, [path, reloads]);

  useEffect(() => uploads.onFinished((dir) => { if (dir === path) reload(); }), [path]);

  // Backspace or Alt+Up: the parent folder, from anywhere on the page but a text field or a dialog.
  useEffect(() => {
    const onKey = (e: KeyboardEvent): void => {
      if (e.defaultPrevented || e.ctrlKey || e.metaKey) return;
      if (!((e.key === 'Backspace' && !e.altKey) || (e.key === 'ArrowUp' && e.altKey))) return;
      const t = e.target as HTMLElement;
      if (t.closest('input, textarea, select, [contenteditable], dialog') || document.querySelector('dialog[open]')) return;
      e.preventDefault();
      goUp();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [path]);

  const current = listing?.path === path ? listing : undefined;
  const entries = useMemo(() => (current ? sortEntries(current.entries, sort) : []), [current, sort]);
  const dirs = entries.filter((e) => e.type === 'dir').length;
  const total = entries.reduce((n, e) => n + e.size, 0);

  function onSort(key: SortKey): void {
    setSort((s) => (s.key === key ? { key, dir: s.dir === 1 ? -1 : 1 } : { key, dir: key === 'name' ? 1 : -1 }));
  }

  function open(entry: FileStat): void {
    if (entry.type === 'dir') {
      pendingFocus.current = '';
      navigate(filesHref(entry.path));
    } else openDialog({ kind: 'details', entry });
  }

  function goUp(): void {
    if (path === '/') return;
    pendingFocus.current = baseName(path);
    navigate(filesHref(parentOf(path)));
  }

  function addFiles(files: Iterable<File>): void {
    const list = [...files];
    if (list.length === 0) return;
    if (readOnly) return notify('This access key is read-only: it cannot upload.', 'error');
    uploads.add(path, list);
  }

  function onDrop(e: DragEvent): void {
    e.preventDefault();
    dragDepth.current = 0;
    setDragging(false);
    const dt = e.dataTransfer;
    if (!dt) return;
    const files: File[] = [];
    let folders = 0;
    // Folders cannot be read as one file: they are left out, and said so.
    const items = [...dt.items];
    if (items.length > 0) {
      for (const item of items) {
        if (item.kind !== 'file') continue;
        if (item.webkitGetAsEntry?.()?.isDirectory) folders++;
        else {
          const f = item.getAsFile();
          if (f) files.push(f);
        }
      }
    } else files.push(...dt.files);
    if (folders > 0) notify(`${plural(folders, 'folder')} left out: drop files, not folders.`, 'error');
    addFiles(files);
  }

  const hasFiles = (e: DragEvent): boolean => !!e.dataTransfer && [...e.dataTransfer.types].includes('Files');

  return (
    <section class={`files${dragging ? ' dragging' : ''}`} aria-labelledby="files-title"
      onDragEnter={(e) => {
        if (!hasFiles(e)) return;
        e.preventDefault();
        dragDepth.current++;
        setDragging(true);
      }}
      onDragOver={(e) => {
        if (!hasFiles(e)) return;
        e.preventDefault();
        e.dataTransfer!.dropEffect = 'copy';
      }}
      onDragLeave={() => {
        dragDepth.current = Math.max(0, dragDepth.current - 1);
        if (dragDepth.current === 0) setDragging(false);
      }}
      onDrop={onDrop}>
      <div class="toolbar">
        <div class="title-block">
          {path !== '/' && <Breadcrumbs path={path} />}
          <h1 id="files-title" tabIndex={-1}>{path === '/' ? 'All files' : baseName(path)}</h1>
        </div>
        <div class="actions">
          {path !== '/' && (
            <Link class="button" href={filesHref(parentOf(path))} title="Parent folder (Backspace)" aria-label="Parent folder" onClick={() => { pendingFocus.current = baseName(path); }}>
              <Icon name="up" /><span class="button-label">Up</span>
            </Link>
          )}
          {!readOnly && (
            <button type="button" class="button button-primary" onClick={() => fileInput.current?.click()}>
              <Icon name="upload" /><span class="button-label">Upload</span>
            </button>
          )}
          <input ref={fileInput} type="file" multiple class="visually-hidden" tabIndex={-1} aria-hidden="true" data-testid="upload-input"
            onChange={(e) => {
              const input = e.currentTarget;
              addFiles(input.files ?? []);
              input.value = '';
            }} />
          {!readOnly && (
            <button type="button" class="button" onClick={() => openDialog({ kind: 'mkdir' })}>
              <Icon name="newFolder" /><span class="button-label">New folder</span>
            </button>
          )}
          <button type="button" class="button" onClick={reload} aria-label="Refresh" title="Refresh">
            <Icon name="refresh" />
          </button>
        </div>
      </div>

      {error && (!current || error.code !== 'ECANCELED') ? (
        <div class="notice notice-error" role="alert">
          <p>{error.code === 'ENOENT' ? `There is no folder ${path}.` : error.code === 'ENOTDIR' ? `${path} is a file, not a folder.` : `Cannot list ${path}: ${error.message} (${error.code}).`}</p>
          <p>
            {segments(path).length > 0 && <Link href={filesHref('/')}>Go to all files</Link>}{' '}
            <button type="button" class="button button-small" onClick={reload}>Try again</button>
          </p>
        </div>
      ) : !current ? (
        <p class="loading" role="status">Loading {path}…</p>
      ) : (
        <>
          <p class="summary" aria-live="polite">
            {plural(dirs, 'folder')}, {plural(entries.length - dirs, 'file')}{entries.length > dirs ? `, ${formatSize(total)}` : ''}
          </p>
          <FileList key={path} dir={path} entries={entries} sort={sort} onSort={onSort} onOpen={open}
            focusName={focusName} onFocused={() => setFocusName(undefined)}
            onRename={(entry) => openDialog({ kind: 'rename', entry })}
            onDelete={(entry) => openDialog({ kind: 'delete', entry })}
            readOnly={readOnly}
            onDetails={(entry) => openDialog({ kind: 'details', entry })} />
        </>
      )}
      <div class="drop-hint" aria-hidden="true">Drop files to upload them to {path}</div>

      {dialog?.kind === 'mkdir' && (
        <NewFolderDialog key={dialog.seq} dir={path} onClose={closeDialog(dialog.seq)} onDone={(name) => {
          pendingFocus.current = name;
          reload();
          notify(`Created folder ${name}`);
        }} />
      )}
      {dialog?.kind === 'rename' && (
        <RenameDialog key={dialog.seq} dir={path} entry={dialog.entry} onClose={closeDialog(dialog.seq)} onDone={(to) => {
          const here = parentOf(to) === path;
          pendingFocus.current = here ? baseName(to) : nextTo(entries, dialog.entry);
          reload();
          notify(here ? `Renamed to ${baseName(to)}` : `Moved to ${to}`);
        }} />
      )}
      {dialog?.kind === 'delete' && (
        <DeleteDialog key={dialog.seq} entry={dialog.entry} onClose={closeDialog(dialog.seq)} onDone={() => {
          pendingFocus.current = nextTo(entries, dialog.entry);
          reload();
          notify(`Deleted ${dialog.entry.name}`);
        }} />
      )}
      {dialog?.kind === 'details' && <DetailsDialog key={dialog.seq} entry={dialog.entry} onClose={closeDialog(dialog.seq)} />}
    </section>
  );
}

/** The entry to focus once `gone` has left the list: the one after it, else the one before. */
function nextTo(entries: FileStat[], gone: FileStat): string {
  const i = entries.findIndex((e) => e.path === gone.path);
  return (entries[i + 1] ?? entries[i - 1])?.name ?? '';
}
