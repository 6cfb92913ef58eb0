import type { JSX } from 'preact';
import { Store, useStore } from './store.js';

interface Toast {
  id: number;
  kind: 'info' | 'error';
  text: string;
}

const toasts = new Store<Toast[]>([]);
let nextId = 1;

/** Shows a short message; errors stay until dismissed, the rest go after a few seconds. */
export function notify(text: string, kind: Toast['kind'] = 'info'): void {
  const id = nextId++;
  toasts.set([...toasts.get().slice(-4), { id, kind, text }]);
  if (kind === 'info') setTimeout(() => dismiss(id), 5000);
}

function dismiss(id: number): void {
  toasts.set(toasts.get().filter((t) => t.id !== id));
}

/** Two live regions: screen readers announce infos politely and errors at once. */
export function Toasts(): JSX.Element {
  const all = useStore(toasts);
  const list = (kind: Toast['kind']): JSX.Element[] => all.filter((t) => t.kind === kind).map((t) => (
    <div class={`toast toast-${t.kind}`} key={t.id}>
      <span>{t.text}</span>
      <button type="button" class="icon-button" aria-label="Dismiss" title="Dismiss" onClick={() => dismiss(t.id)}>×</button>
    </div>
  ));
  return (
    <div class="toasts">
      <div role="status" aria-live="polite">{list('info')}</div>
      <div role="alert" aria-live="assertive">{list('error')}</div>
    </div>
  );
}
