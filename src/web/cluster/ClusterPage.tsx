import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, type StatusResponse, type StorageStatus } from '../api.js';
import { formatAgo, formatFullDate, formatSize, plural } from '../format.js';
import { Icon } from '../ui/icons.js';

/** How often the page asks the name server again, ms. */
export const REFRESH_MS = 2000;

/** The status, asked again every REFRESH_MS while the page is visible; the last good answer stays shown on an error. */
function useStatus(): { status?: StatusResponse; error?: ApiError; updated?: number; refresh: () => void } {
  const [state, setState] = useState<{ status?: StatusResponse; error?: ApiError; updated?: number }>({});
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async (): Promise<void> => {
      if (!document.hidden) {
        try {
          const status = await api.status(ctl.signal);
          setState({ status, updated: Date.now() });
        } catch (err) {
          if (ctl.signal.aborted) return;
          setState((s) => ({ ...s, error: err instanceof ApiError ? err : new ApiError('EINTERNAL', String(err)) }));
        }
      }
      if (!ctl.signal.aborted) timer = setTimeout(() => void poll(), REFRESH_MS);
    };
    void poll();
    const onVisible = (): void => {
      if (document.hidden) return;
      clearTimeout(timer);
      void poll();
    };
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      ctl.abort();
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [tick]);
  return { ...state, refresh: () => setTick((n) => n + 1) };
}

/** Re-renders every second, so that "3 s ago" stays true between two answers. */
function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  return now;
}

export function ClusterPage(): JSX.Element {
  const { status, error, updated, refresh } = useStatus();
  const now = useNow();
  useEffect(() => { document.title = 'Cluster · sdfs'; }, []);
  const live = status?.storages.filter((s) => s.alive).length ?? 0;
  return (
    <section class="cluster" aria-labelledby="cluster-title">
      <div class="toolbar">
        <div class="title-block">
          <h1 id="cluster-title" tabIndex={-1}>Cluster</h1>
          <p class="muted" data-testid="updated">
            {updated ? `Updated ${formatAgo(updated, now)}` : 'Loading…'} · refreshes every {REFRESH_MS / 1000} s
          </p>
        </div>
        <div class="actions">
          <button type="button" class="button" onClick={refresh} aria-label="Refresh now" title="Refresh now"><Icon name="refresh" /></button>
        </div>
      </div>
      {error && (
        <div class="notice notice-error" role="alert">
          Cannot reach the name server: {error.message} ({error.code}).{status ? ' Showing the last answer.' : ''}
        </div>
      )}
      {status && (
        <>
          <p class="visually-hidden" aria-live="polite">{live} of {plural(status.storages.length, 'storage server')} alive.</p>
          <Summary status={status} live={live} />
          <h2>Storage servers</h2>
          <StorageTable storages={status.storages} now={now} />
        </>
      )}
    </section>
  );
}

function Summary({ status, live }: { status: StatusResponse; live: number }): JSX.Element {
  const h = status.health;
  const dead = status.storages.length - live;
  const usedPct = status.capacity > 0 ? Math.round(((status.capacity - status.free) / status.capacity) * 100) : 0;
  return (
    <dl class="tiles">
      <Tile label="Storage servers" tone={dead > 0 ? 'warn' : live === 0 ? 'bad' : 'ok'} testid="servers"
        value={`${live} of ${status.storages.length} alive`} note={dead > 0 ? `${dead} dead` : undefined} />
      <Tile label="Free space" value={formatSize(status.free)} note={`of ${formatSize(status.capacity)} · ${formatSize(status.used)} of sdfs blocks`}>
        <Meter fraction={usedPct / 100} label={`disks ${usedPct}% full`} />
      </Tile>
      <Tile label="Files" value={status.files.toLocaleString()} note={plural(status.dirs, 'folder')} />
      <Tile label="Blocks" value={h.blocks.toLocaleString()} note={status.replicationInFlight > 0 ? `${status.replicationInFlight} being copied` : undefined} />
      <Tile label="Under-replicated blocks" value={h.underReplicated.toLocaleString()} tone={h.underReplicated > 0 ? 'warn' : 'ok'} testid="under-replicated" />
      <Tile label="Missing blocks" value={h.missing.toLocaleString()} tone={h.missing > 0 ? 'bad' : 'ok'} testid="missing"
        note={h.missing > 0 ? 'no live replica' : undefined} />
      {status.uploadsInProgress > 0 && <Tile label="Uploads in progress" value={status.uploadsInProgress.toLocaleString()} />}
    </dl>
  );
}

function Tile({ label, value, note, tone, testid, children }: {
  label: string; value: string; note?: string; tone?: 'ok' | 'warn' | 'bad'; testid?: string; children?: JSX.Element;
}): JSX.Element {
  return (
    <div class={`tile${tone ? ` tile-${tone}` : ''}`} data-testid={testid}>
      <dt>{label}</dt>
      <dd>
        <span class="tile-value">{value}</span>
        {note && <span class="tile-note">{note}</span>}
        {children}
      </dd>
    </div>
  );
}

function Meter({ fraction, label }: { fraction: number; label: string }): JSX.Element {
  const pct = Math.max(0, Math.min(100, fraction * 100));
  return (
    <span class={`meter${pct > 90 ? ' meter-full' : ''}`} role="img" aria-label={label} title={label}>
      <span class="meter-fill" style={{ width: `${pct}%` }} />
    </span>
  );
}

function stateOf(s: StorageStatus): { text: string; tone: 'ok' | 'warn' | 'bad' } {
  if (!s.alive) return { text: 'dead', tone: 'bad' };
  if (s.state === 'draining') return s.drained ? { text: 'drained', tone: 'warn' } : { text: 'draining', tone: 'warn' };
  return { text: 'alive', tone: 'ok' };
}

function StorageTable({ storages, now }: { storages: StorageStatus[]; now: number }): JSX.Element {
  if (storages.length === 0) return <p class="notice">No storage server has registered yet. Start one with <code>sdfs storage</code>.</p>;
  const sorted = [...storages].sort((a, b) => a.addr.localeCompare(b.addr, undefined, { numeric: true }));
  return (
    <div class="table-scroll">
      <table class="storages">
        <thead>
          <tr>
            <th scope="col">Server</th>
            <th scope="col">State</th>
            <th scope="col" class="num">Stored</th>
            <th scope="col">Disk</th>
            <th scope="col" class="num">Blocks</th>
            <th scope="col">Last heartbeat</th>
          </tr>
        </thead>
        <tbody>
          {sorted.map((s) => {
            const st = stateOf(s);
            const usedFraction = s.capacity > 0 ? (s.capacity - s.free) / s.capacity : 0;
            return (
              <tr key={s.id} data-storage={s.id} data-addr={s.addr} data-state={st.text} class={s.alive ? '' : 'row-dead'}>
                <th scope="row" data-label="Server">
                  <span class="server">
                    <Icon name="server" />
                    <span class="server-addr">{s.addr}</span>
                    <code class="server-id" title={s.id}>{s.id.slice(0, 8)}</code>
                  </span>
                </th>
                <td data-label="State"><span class={`badge badge-${st.tone}`}>{st.text}</span></td>
                <td data-label="Stored" class="num" title="Bytes of sdfs blocks on this server">{formatSize(s.used)}</td>
                <td data-label="Disk">
                  <span class="disk-text">{formatSize(s.free)} free of {formatSize(s.capacity)}</span>
                  <Meter fraction={usedFraction} label={`disk ${Math.round(usedFraction * 100)}% full`} />
                </td>
                <td data-label="Blocks" class="num">{s.blocks.toLocaleString()}</td>
                <td data-label="Last heartbeat" title={formatFullDate(s.lastHeartbeat)}>{formatAgo(s.lastHeartbeat, now)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
