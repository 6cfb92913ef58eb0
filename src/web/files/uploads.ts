import { ApiError, upload, type UploadHandle } from '../api.js';
import { joinPath } from '../paths.js';
import { Store } from '../ui/store.js';

export interface UploadItem {
  id: number;
  file: File;
  /** The directory it goes into, and its full path there. */
  dir: string;
  path: string;
  loaded: number;
  state: 'queued' | 'uploading' | 'done' | 'failed' | 'canceled';
  error?: { code: string; message: string };
  overwrite: boolean;
}

/** Uploads at once; the rest wait their turn. */
const PARALLEL = 3;

/**
 * Every upload of the page, queued and run a few at a time. It lives outside the pages, so that
 * uploads go on while the person browses elsewhere or looks at the cluster.
 */
class UploadQueue {
  readonly items = new Store<UploadItem[]>([]);
  private readonly running = new Map<number, UploadHandle>();
  private readonly finishedListeners = new Set<(dir: string) => void>();
  private nextId = 1;

  add(dir: string, files: Iterable<File>): void {
    const added: UploadItem[] = [...files].map((file) => ({
      id: this.nextId++, file, dir, path: joinPath(dir, file.name), loaded: 0, state: 'queued', overwrite: false,
    }));
    this.items.set([...this.items.get(), ...added]);
    this.pump();
  }

  cancel(id: number): void {
    const handle = this.running.get(id);
    if (handle) handle.abort();
    else this.update(id, { state: 'canceled' });
  }

  /** Tries a failed upload again; `overwrite` replaces a file that exists (after an EEXIST). */
  retry(id: number, overwrite: boolean): void {
    this.update(id, { state: 'queued', loaded: 0, error: undefined, overwrite });
    this.pump();
  }

  clearFinished(): void {
    this.items.set(this.items.get().filter((u) => u.state === 'queued' || u.state === 'uploading'));
  }

  /** Called with the directory each time an upload lands in it. */
  onFinished(listener: (dir: string) => void): () => void {
    this.finishedListeners.add(listener);
    return () => this.finishedListeners.delete(listener);
  }

  private pump(): void {
    for (const item of this.items.get()) {
      if (this.running.size >= PARALLEL) return;
      if (item.state === 'queued') this.start(item);
    }
  }

  private start(item: UploadItem): void {
    const handle = upload(item.path, item.file, { overwrite: item.overwrite, onProgress: (loaded) => this.update(item.id, { loaded }) });
    this.running.set(item.id, handle);
    this.update(item.id, { state: 'uploading', loaded: 0 });
    handle.done.then(
      () => {
        this.update(item.id, { state: 'done', loaded: item.file.size });
        for (const l of this.finishedListeners) l(item.dir);
      },
      (err: unknown) => {
        const e = err instanceof ApiError ? err : new ApiError('EINTERNAL', String(err));
        this.update(item.id, e.code === 'ECANCELED' ? { state: 'canceled' } : { state: 'failed', error: { code: e.code, message: e.message } });
      },
    ).finally(() => {
      this.running.delete(item.id);
      this.pump();
    });
  }

  private update(id: number, patch: Partial<UploadItem>): void {
    this.items.set(this.items.get().map((u) => (u.id === id ? { ...u, ...patch } : u)));
  }
}

export const uploads = new UploadQueue();
