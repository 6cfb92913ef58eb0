import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, contentUrl, type BlocksResponse, type FileStat } from '../api.js';
import { formatFullDate, formatSize, plural } from '../format.js';
import { joinPath, resolveInput } from '../paths.js';
import { Modal } from '../ui/Modal.js';

function message(err: unknown): string {
  return err instanceof ApiError ? `${err.message} (${err.code})` : String(err);
}

/** A form in a dialog: runs `action` on submit, shows its error, and closes when it succeeds. */
function FormDialog({ title, submit, danger, onClose, action, children }: {
  title: string; submit: string; danger?: boolean; onClose: () => void; action: () => Promise<void>; children: JSX.Element | JSX.Element[];
}): JSX.Element {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  return (
    <Modal title={title} onClose={onClose}>
      <form onSubmit={(e) => {
        e.preventDefault();
        if (busy) return;
        setBusy(true);
        setError(undefined);
        action().then(onClose, (err: unknown) => {
          setBusy(false);
          setError(message(err));
        });
      }}>
        {children}
        {error && <p class="form-error" role="alert">{error}</p>}
        <div class="dialog-buttons">
          <button type="button" class="button" onClick={onClose} autoFocus={danger}>Cancel</button>
          <button type="submit" class={danger ? 'button button-danger' : 'button button-primary'} disabled={busy}>{busy ? 'Working…' : submit}</button>
        </div>
      </form>
    </Modal>
  );
}

export function NewFolderDialog({ dir, onClose, onDone }: { dir: string; onClose: () => void; onDone: (name: string) => void }): JSX.Element {
  const [name, setName] = useState('');
  return (
    <FormDialog title="New folder" submit="Create" onClose={onClose} action={async () => {
      const trimmed = name.trim();
      if (!trimmed) throw new Error('Give the folder a name.');
      await api.mkdir(joinPath(dir, trimmed));
      onDone(trimmed);
    }}>
      <label class="field">
        <span>Name of the new folder in {dir}</span>
        <input type="text" value={name} onInput={(e) => setName(e.currentTarget.value)} autoFocus required maxLength={255} spellcheck={false} autoComplete="off" />
      </label>
    </FormDialog>
  );
}

export function RenameDialog({ dir, entry, onClose, onDone }: { dir: string; entry: FileStat; onClose: () => void; onDone: (to: string) => void }): JSX.Element {
  const [target, setTarget] = useState(entry.name);
  return (
    <FormDialog title={`Rename or move ${entry.type === 'dir' ? 'folder' : 'file'}`} submit="Rename" onClose={onClose} action={async () => {
      const trimmed = target.trim();
      if (!trimmed) throw new Error('Give a new name or path.');
      const to = resolveInput(dir, trimmed);
      if (to === entry.path) return;
      const moved = await api.move(entry.path, to);
      onDone(moved.path);
    }}>
      <label class="field">
        <span>New name, or a path to move it to</span>
        <input type="text" value={target} onInput={(e) => setTarget(e.currentTarget.value)} autoFocus required spellcheck={false} autoComplete="off"
          onFocus={(e) => {
            // Select the name without its extension, as file managers do.
            const dot = entry.type === 'file' ? entry.name.lastIndexOf('.') : -1;
            e.currentTarget.setSelectionRange(0, dot > 0 ? dot : entry.name.length);
          }} />
      </label>
      <p class="hint">A name renames it in {dir}. A path moves it: <code>../archive/</code>, <code>/backup/{entry.name}</code>. Into a folder that exists, it keeps its name.</p>
    </FormDialog>
  );
}

export function DeleteDialog({ entry, onClose, onDone }: { entry: FileStat; onClose: () => void; onDone: () => void }): JSX.Element {
  const dir = entry.type === 'dir';
  return (
    <FormDialog title={dir ? 'Delete folder?' : 'Delete file?'} submit="Delete" danger onClose={onClose} action={async () => {
      await api.remove(entry.path, dir);
      onDone();
    }}>
      <p>
        {dir ? <>The folder <strong>{entry.path}</strong> and everything in it will be deleted.</>
          : <>The file <strong>{entry.path}</strong> ({formatSize(entry.size)}) will be deleted.</>}
        {' '}This cannot be undone.
      </p>
    </FormDialog>
  );
}

/** The blocks drawn at first; a file of many small blocks shows more on demand. */
const BLOCKS_SHOWN = 100;

export function DetailsDialog({ entry, onClose }: { entry: FileStat; onClose: () => void }): JSX.Element {
  const [info, setInfo] = useState<BlocksResponse>();
  const [error, setError] = useState<string>();
  const [limit, setLimit] = useState(BLOCKS_SHOWN);
  useEffect(() => {
    const ctl = new AbortController();
    api.blocks(entry.path, ctl.signal).then(setInfo, (err: unknown) => { if (!ctl.signal.aborted) setError(message(err)); });
    return () => ctl.abort();
  }, [entry.path]);
  const stat = info?.stat ?? entry;
  const liveReplicas = info?.blocks.map((b) => b.replicas.filter((r) => r.alive).length);
  const weakest = liveReplicas && liveReplicas.length > 0 ? Math.min(...liveReplicas) : undefined;
  return (
    <Modal title={stat.name} onClose={onClose} wide>
      <dl class="facts">
        <dt>Path</dt><dd class="break">{stat.path}</dd>
        <dt>Size</dt><dd>{formatSize(stat.size)} ({stat.size.toLocaleString()} bytes)</dd>
        <dt>Replication</dt><dd>{stat.replication} {weakest !== undefined && weakest < stat.replication && <span class="badge badge-warn">weakest block has {weakest} live</span>}</dd>
        <dt>Block size</dt><dd>{formatSize(stat.blockSize)}</dd>
        <dt>Modified</dt><dd>{formatFullDate(stat.mtime)}</dd>
        <dt>Created</dt><dd>{formatFullDate(stat.ctime)}</dd>
      </dl>
      <h3>{info ? plural(info.blocks.length, 'block') : 'Blocks'}</h3>
      {error && <p class="form-error" role="alert">{error}</p>}
      {!info && !error && <p aria-live="polite">Loading…</p>}
      {info && info.blocks.length > 0 && (
        <div class="table-scroll">
          <table class="blocks">
            <thead><tr><th scope="col">#</th><th scope="col">Offset</th><th scope="col">Size</th><th scope="col">Digest</th><th scope="col">Replicas</th></tr></thead>
            <tbody>
              {info.blocks.slice(0, limit).map((b) => (
                <tr key={b.id}>
                  <td>{b.index}</td>
                  <td>{formatSize(b.offset)}</td>
                  <td>{formatSize(b.size)}</td>
                  <td><code title={b.digest}>{b.digest.slice(0, 16)}…</code></td>
                  <td>
                    <ul class="replicas">
                      {b.replicas.map((r) => (
                        <li key={r.id}>
                          <span class={`dot ${r.alive ? 'dot-ok' : 'dot-bad'}`} aria-hidden="true" />
                          <code title={r.id}>{r.id.slice(0, 8)}</code> {r.addr} <span class="visually-hidden">{r.alive ? '(alive)' : '(dead)'}</span>
                          {!r.alive && <span class="badge badge-bad" aria-hidden="true">dead</span>}
                        </li>
                      ))}
                      {b.replicas.length === 0 && <li><span class="badge badge-bad">no replica</span></li>}
                    </ul>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {info && info.blocks.length > limit && (
        <button type="button" class="button" onClick={() => setLimit(limit + 1000)}>Show more blocks ({(info.blocks.length - limit).toLocaleString()} left)</button>
      )}
      <div class="dialog-buttons">
        <a class="button" href={contentUrl(stat.path)} download={stat.name}>Download</a>
        <button type="button" class="button button-primary" onClick={onClose} autoFocus>Close</button>
      </div>
    </Modal>
  );
}
