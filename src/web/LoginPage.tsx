import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { api, ApiError, type Session } from './api.js';

/** Asks for an access key when the name server requires one; the key becomes a session cookie. */
export function LoginPage({ onLogin }: { onLogin: (s: Session) => void }): JSX.Element {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      onLogin(await api.login(key.trim()));
    } catch (err) {
      setError(err instanceof ApiError && err.code === 'EAUTH' ? 'This access key is not known to the name server.' : (err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="notice login">
      <h1>Log in</h1>
      <p class="hint">This cluster asks for an access key. Read-only keys browse and download; read-write keys also change files.</p>
      <form onSubmit={(e) => void submit(e)}>
        <label class="field">
          <span>Access key</span>
          <input type="password" value={key} onInput={(e) => setKey(e.currentTarget.value)} autoFocus required
            autoComplete="current-password" spellcheck={false} maxLength={256} />
        </label>
        {error && <p class="form-error" role="alert">{error}</p>}
        <div class="dialog-buttons">
          <button type="submit" class="button button-primary" disabled={busy || key.trim() === ''}>{busy ? 'Checking…' : 'Log in'}</button>
        </div>
      </form>
    </section>
  );
}
