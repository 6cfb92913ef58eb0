import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, ConsoleMessage, Page } from 'playwright-core';
import type { SdfsClient } from '../src/client/index.js';
import { Cluster, FAST_FAILURE, waitFor } from './helpers/cluster.js';
import { sha256, sha256Of } from './helpers/data.js';

// The web UI, end to end: the name server of a real cluster serves the built page (dist/web), and
// Debian's Chromium, driven by playwright-core, uses it as a person would: uploads by the file picker
// and by drag and drop, downloads and compares the bytes, makes, renames and deletes a folder with
// the keyboard, reads a file's blocks, lists 10,000 entries, and watches a killed storage server
// turn dead on the cluster page. Also checked: static serving (types, caching, the UI's routes,
// /api never shadowed), the OpenAPI description against docs/API.md, and that a large upload from
// the browser streams through the name server (its memory does not grow with the file).
//
// Without Chromium at /usr/bin/chromium (`apt-get install chromium`; .ci/run installs it) the
// tests are skipped, except under CI, where they fail. SDFS_SCREENSHOTS=1 saves the screenshots
// into docs/ (shown in the README); otherwise they go to a temporary folder. SDFS_WEB_UPLOAD_MB sets
// the size of the large upload (default 128; 1024 for the 1 GiB check).

const CHROMIUM = process.env.SDFS_CHROMIUM ?? '/usr/bin/chromium';
const IN_CI = Boolean(process.env.CI) && process.env.CI !== 'false';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const SKIP = !HAVE_CHROMIUM && !IN_CI ? `no Chromium at ${CHROMIUM} (apt-get install chromium); under CI this fails instead` : false;
const BIG_UPLOAD_MB = Number(process.env.SDFS_WEB_UPLOAD_MB ?? 128);
const ROOT = resolve(import.meta.dirname, '..');
const BLOCK = 4 * 1024 * 1024;
const BIG_DIR_ENTRIES = 10_000;

// Chromium as root in a closed network: no sandbox, nothing phoning home (see the machine notes).
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

describe('web UI in a real browser', { skip: SKIP }, () => {
  let cluster: Cluster;
  let client: SdfsClient;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let base: string;
  let local: string;
  let shots: string;
  const problems: string[] = [];

  before(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`no Chromium at ${CHROMIUM}: .ci/run installs Debian's chromium package`);
    assert.ok(existsSync(join(ROOT, 'dist/web/index.html')), 'the web UI is not built: run npm run build');
    const { chromium } = await import('playwright-core');
    // launch() runs Chromium on a fresh temporary profile (user-data-dir) that it deletes at close.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    cluster = await Cluster.start({ storages: 3, replication: 3, blockSize: BLOCK, nameArgs: FAST_FAILURE });
    client = cluster.client();
    base = cluster.url;
    local = await mkdtemp(join(tmpdir(), 'sdfs-web-'));
    shots = process.env.SDFS_SCREENSHOTS === '1' ? join(ROOT, 'docs') : join(local, 'shots');
    await mkdir(shots, { recursive: true });
    // Something to look at in the screenshots.
    for (const dir of ['photos', 'projects', 'backups', 'music & podcasts']) await client.mkdir(`/${dir}`);
    await client.writeFile('/notes.md', '# Notes\n\nThings to remember.\n');
    await client.writeFile('/holiday.jpg', randomBytes(2_485_760));
    await client.writeFile('/photos/beach.jpg', randomBytes(1_200_000));
    context = await newContext({ width: 1280, height: 800 });
    page = await context.newPage();
  });

  after(async () => {
    await browser?.close();
    await cluster?.stop();
    if (local) await rm(local, { recursive: true, force: true });
  });

  afterEach(() => {
    const seen = problems.splice(0);
    assert.deepEqual(seen, [], 'the page logged errors');
  });

  async function newContext(viewport: { width: number; height: number }, extra: Parameters<Browser['newContext']>[0] = {}): Promise<BrowserContext> {
    const ctx = await browser.newContext({ viewport, acceptDownloads: true, ...extra });
    ctx.on('page', watch);
    return ctx;
  }

  /** Every uncaught error and console error of a page fails the test that saw it (a CSP violation is one). */
  function watch(p: Page): void {
    p.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    p.on('console', (msg: ConsoleMessage) => {
      // Chromium logs every failed request; a 409 is the expected answer to an upload over an existing
      // file, a 401 to a wrong access key on the login page.
      if (msg.type() === 'error' && !/status of (409|401)/.test(msg.text())) problems.push(`console: ${msg.text()}`);
    });
  }

  const row = (p: Page, name: string) => p.locator(`.grid-row[data-name="${name.replace(/"/g, '\\"')}"]`);

  /** Presses Tab until the focused element is named `name`; the page must be usable without a mouse. */
  async function tabTo(p: Page, name: string, max = 40): Promise<void> {
    for (let i = 0; i < max; i++) {
      await p.keyboard.press('Tab');
      if (await focused(p) === name) return;
    }
    throw new Error(`Tab never reached ${name}`);
  }

  /** The focused element's row name, label or text. */
  const focused = (p: Page): Promise<string | null> => p.evaluate(() => {
    const el = document.activeElement as HTMLElement | null;
    return el?.dataset.name ?? el?.getAttribute('aria-label') ?? el?.textContent?.trim() ?? null;
  });

  it('serves the page and its assets with types and caching, the UI routes, and never shadows /api', async () => {
    const home = await fetch(`${base}/`);
    assert.equal(home.status, 200);
    assert.match(home.headers.get('content-type')!, /^text\/html/);
    assert.equal(home.headers.get('cache-control'), 'no-cache');
    assert.match(home.headers.get('content-security-policy')!, /default-src 'self'/);
    const html = await home.text();
    const script = /<script type="module" crossorigin src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(script, html);
    for (const route of ['/files/', '/files/photos', '/files/no%20such/deep/dir', '/cluster']) {
      const r = await fetch(`${base}${route}`);
      assert.equal(r.status, 200, route);
      assert.equal(await r.text(), html, route);
    }
    const js = await fetch(`${base}${script}`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type')!, /^text\/javascript/);
    assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.equal(js.headers.get('content-encoding'), 'gzip');
    const etag = js.headers.get('etag')!;
    await js.arrayBuffer();
    const again = await fetch(`${base}${script}`, { headers: { 'accept-encoding': 'gzip', 'if-none-match': etag } });
    assert.equal(again.status, 304);
    const icon = await fetch(`${base}/favicon.svg`);
    assert.equal(icon.headers.get('content-type'), 'image/svg+xml');
    await icon.arrayBuffer();
    // The API keeps its JSON errors; missing files are 404s, not the page; nothing outside dist/web.
    for (const path of ['/api/v1/nope', '/api/v2/fs/list', '/api', '/assets/nope.js', '/nope.txt', '/%2e%2e/%2e%2e/package.json', '/..%2f..%2fpackage.json']) {
      const r = await fetch(`${base}${path}`);
      assert.equal(r.status, 404, path);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'ENOENT', path);
    }
    const list = await fetch(`${base}/api/v1/fs/list?path=/`);
    assert.equal(list.status, 200);
    assert.ok(((await list.json()) as { entries: unknown[] }).entries.length > 0);
  });

  it('describes every route in its OpenAPI document and in docs/API.md', async () => {
    const res = await fetch(`${base}/api/v1/openapi.json`);
    assert.equal(res.status, 200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, { summary: string; responses: Record<string, unknown> }>> };
    assert.match(doc.openapi, /^3\./);
    const guide = await readFile(join(ROOT, 'docs/API.md'), 'utf8');
    const ops = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([m, op]) => ({ route: `${m.toUpperCase()} ${path}`, op })));
    assert.ok(ops.length >= 20, `only ${ops.length} operations`);
    for (const { route, op } of ops) {
      assert.notEqual(op.summary, 'undocumented', `${route} has no entry in src/name/openapi.ts`);
      assert.ok(op.responses['200'], route);
      assert.ok(guide.includes(route), `docs/API.md does not document ${route}`);
    }
    for (const route of ['GET /api/v1/fs/list', 'PUT /api/v1/fs/content', 'GET /api/v1/cluster/status', 'POST /api/v1/uploads/{id}/commit']) {
      assert.ok(ops.some((o) => o.route === route), route);
    }
  });

  it('uploads files through the picker and by drag and drop, lists them, and downloads the same bytes', async () => {
    const random = randomBytes(3 * 1024 * 1024 + 123);
    const json = Buffer.from(JSON.stringify({ a: 1, list: Array.from({ length: 50_000 }, (_, i) => i) }));
    await writeFile(join(local, 'random.bin'), random);
    await writeFile(join(local, 'data.json'), json);
    await writeFile(join(local, 'hello.txt'), 'hello, sdfs\n');
    await page.goto(`${base}/`);
    await page.waitForURL(`${base}/files/`);
    await row(page, 'notes.md').waitFor();

    await page.getByTestId('upload-input').setInputFiles([join(local, 'random.bin'), join(local, 'data.json'), join(local, 'hello.txt')]);
    for (const name of ['random.bin', 'data.json', 'hello.txt']) {
      await page.locator(`.upload-done[data-upload="/${name}"]`).waitFor({ timeout: 60_000 });
      await row(page, name).waitFor();
    }
    // The browser sends the bytes as they are, whatever the file's type (a .json file stays JSON bytes).
    assert.equal(sha256(await readAll('/data.json')), sha256(json));
    assert.equal(sha256(await readAll('/hello.txt')), sha256(Buffer.from('hello, sdfs\n')));
    assert.equal((await client.stat('/random.bin')).size, random.length);

    // Drag and drop: a file made in the page, dropped on the list.
    const dropped = await page.evaluateHandle(() => {
      const bytes = new Uint8Array(300_000);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 0xff;
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'dropped.bin', { type: 'application/octet-stream' }));
      return dt;
    });
    const zone = page.locator('section.files');
    await zone.dispatchEvent('dragenter', { dataTransfer: dropped });
    await zone.dispatchEvent('dragover', { dataTransfer: dropped });
    await page.locator('section.files.dragging').waitFor();
    await zone.dispatchEvent('drop', { dataTransfer: dropped });
    await row(page, 'dropped.bin').waitFor();
    const expected = Buffer.alloc(300_000);
    for (let i = 0; i < expected.length; i++) expected[i] = (i * 31 + 7) & 0xff;
    assert.equal(sha256(await readAll('/dropped.bin')), sha256(expected));
    assert.equal(await page.locator('section.files.dragging').count(), 0);

    await page.screenshot({ path: join(shots, 'screenshot-files.png') });
    // The uploads panel folds away (it sits over the list's corner).
    await page.getByRole('button', { name: 'Hide uploads' }).click();
    await page.locator('.upload-panel ul').waitFor({ state: 'detached' });

    // Download through the page, compared byte for byte.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download random.bin' }).click()]);
    assert.equal(download.suggestedFilename(), 'random.bin');
    const saved = await download.path();
    assert.equal(sha256(await readFile(saved)), sha256(random));

    // The same name again: refused, then replaced on request.
    const changed = Buffer.from('second version\n');
    await writeFile(join(local, 'hello.txt'), changed);
    await page.getByTestId('upload-input').setInputFiles(join(local, 'hello.txt'));
    await page.getByRole('button', { name: 'Replace hello.txt' }).click();
    await waitFor('hello.txt replaced', async () => sha256(await readAll('/hello.txt')) === sha256(changed));

  });

  it('makes, renames and deletes a folder, with the keyboard alone', async () => {
    await page.goto(`${base}/files/`);
    await row(page, 'notes.md').waitFor();
    // New folder: reached by Tab, opened by Enter, named, created by Enter; focus lands on its row.
    await tabTo(page, 'New folder');
    await page.keyboard.press('Enter');
    const name = page.getByLabel('Name of the new folder in /');
    await name.waitFor();
    await page.keyboard.type('kbd folder');
    await page.keyboard.press('Enter');
    await row(page, 'kbd folder').waitFor();
    assert.equal((await client.stat('/kbd folder')).type, 'dir');
    await waitFor('focus on the new folder', async () => (await focused(page)) === 'kbd folder', 5000);
    assert.notEqual(await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle), 'none', 'focus is visible');

    // Enter opens it, Backspace goes back up to it.
    await page.keyboard.press('Enter');
    await page.waitForURL(`${base}/files/kbd%20folder`);
    await page.getByText('This folder is empty').waitFor();
    await page.keyboard.press('Backspace');
    await page.waitForURL(`${base}/files/`);
    await waitFor('focus back on the folder', async () => (await focused(page)) === 'kbd folder', 5000);

    // F2 renames.
    await page.keyboard.press('F2');
    const rename = page.getByLabel('New name, or a path to move it to');
    await rename.waitFor();
    await rename.fill('renamed folder');
    await page.keyboard.press('Enter');
    await row(page, 'renamed folder').waitFor();
    assert.equal(await row(page, 'kbd folder').count(), 0);
    assert.equal(await client.exists('/kbd folder'), false);
    assert.equal((await client.stat('/renamed folder')).type, 'dir');
    await waitFor('focus on the renamed folder', async () => (await focused(page)) === 'renamed folder', 5000);

    // Moving: a path moves it into another folder.
    await client.writeFile('/renamed folder/inside.txt', 'x');
    await page.keyboard.press('F2');
    await rename.fill('/backups/');
    await page.keyboard.press('Enter');
    await waitFor('the folder moved', async () => (await row(page, 'renamed folder').count()) === 0);
    assert.equal((await client.stat('/backups/renamed folder/inside.txt')).size, 1);

    // Delete asks first; Escape keeps it, confirming deletes it and everything in it.
    await page.goto(`${base}/files/backups`);
    await row(page, 'renamed folder').waitFor();
    await row(page, 'renamed folder').focus();
    await page.keyboard.press('Delete');
    const dialog = page.getByRole('dialog', { name: 'Delete folder?' });
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await client.exists('/backups/renamed folder'), true);
    // Closing the dialog gives the focus back to the row it was opened from.
    await waitFor('focus back on the row', async () => (await focused(page)) === 'renamed folder', 5000);
    await page.keyboard.press('Delete');
    await dialog.waitFor();
    // A <dialog>'s close event comes in a task of its own: a Delete handled before it opens the next
    // dialog, which that late event must not take away (seen as a flaky run of this test).
    await page.evaluate(() => {
      document.querySelector<HTMLDialogElement>('dialog[open]')!.close();
      document.querySelector('[data-name="renamed folder"]')!.dispatchEvent(new KeyboardEvent('keydown', { key: 'Delete', bubbles: true }));
    });
    await waitFor('the next dialog, open', async () => (await page.locator('dialog[open]').count()) === 1, 5000);
    await dialog.waitFor();
    assert.equal(await focused(page), 'Cancel', 'the safe choice has focus');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await waitFor('the folder deleted', async () => (await row(page, 'renamed folder').count()) === 0);
    assert.equal(await client.exists('/backups/renamed folder'), false);

    // Mouse: a folder made and deleted with the buttons.
    await page.getByRole('button', { name: 'New folder' }).click();
    await page.getByLabel('Name of the new folder in /backups').fill('by mouse');
    await page.getByRole('button', { name: 'Create' }).click();
    await row(page, 'by mouse').waitFor();
    await page.getByRole('button', { name: 'Delete by mouse' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await waitFor('the folder deleted', async () => (await row(page, 'by mouse').count()) === 0);
    assert.equal(await client.exists('/backups/by mouse'), false);
  });

  it('sorts by name, size and date, folders first', async () => {
    await page.goto(`${base}/files/`);
    await row(page, 'notes.md').waitFor();
    const names = (): Promise<string[]> => page.locator('.grid-row').evaluateAll((rows) => rows
      .sort((a, b) => Number((a as HTMLElement).dataset.index) - Number((b as HTMLElement).dataset.index))
      .map((r) => (r as HTMLElement).dataset.name!));
    const listing = await client.readdir('/');
    const dirs = listing.filter((e) => e.type === 'dir').length;
    await page.getByRole('button', { name: 'Size', exact: true }).click();
    let shown = await names();
    const files = listing.filter((e) => e.type === 'file').sort((a, b) => b.size - a.size || 0);
    assert.equal(shown[dirs], files[0]!.name, 'largest file first after the folders');
    assert.ok(shown.slice(0, dirs).every((n) => listing.find((e) => e.name === n)!.type === 'dir'));
    await page.getByRole('button', { name: 'Size', exact: true }).click();
    shown = await names();
    assert.equal(shown.at(-1), files[0]!.name, 'largest last when ascending');
    await page.getByRole('button', { name: 'Modified', exact: true }).click();
    shown = await names();
    const newest = listing.filter((e) => e.type === 'file').sort((a, b) => b.mtime - a.mtime)[0]!;
    assert.equal(shown[dirs], newest.name);
    assert.equal(await page.locator('[role="columnheader"][aria-sort="descending"]').textContent(), 'Modified▼');
    await page.getByRole('button', { name: 'Name', exact: true }).click();
  });

  it('shows a file\'s blocks, and where each replica lives', async () => {
    await page.goto(`${base}/files/`);
    await page.getByRole('button', { name: 'Details of random.bin' }).click();
    const dialog = page.getByRole('dialog', { name: 'random.bin' });
    await dialog.getByRole('heading', { name: '1 block' }).waitFor();
    const blocks = (await client.blocks('/random.bin')).blocks;
    assert.equal(blocks.length, 1);
    assert.equal(await dialog.locator('table.blocks tbody tr').count(), blocks.length);
    for (const s of (await client.cluster()).storages) await dialog.getByText(s.addr).first().waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
  });

  it(`streams a ${BIG_UPLOAD_MB} MiB upload from the browser through the name server without holding it in memory`, { timeout: 15 * 60_000 }, async () => {
    const size = BIG_UPLOAD_MB * 1024 * 1024;
    const file = join(local, 'big.bin');
    const hash = createHash('sha256');
    const fh = await open(file, 'w');
    for (let left = size; left > 0;) {
      const chunk = randomBytes(Math.min(left, 8 * 1024 * 1024));
      hash.update(chunk);
      await fh.write(chunk);
      left -= chunk.length;
    }
    await fh.close();
    const digest = hash.digest('hex');

    const pid = cluster.name.child.pid!;
    const rss = async (): Promise<number> => Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
    const linux = existsSync(`/proc/${pid}/status`);
    const before = linux ? await rss() : 0;
    let peak = before;
    let sampling = linux;
    const sampler = (async () => { while (sampling) { peak = Math.max(peak, await rss()); await new Promise((r) => setTimeout(r, 50)); } })();

    await page.goto(`${base}/files/`);
    await row(page, 'notes.md').waitFor();
    const started = Date.now();
    await page.getByTestId('upload-input').setInputFiles(file);
    // The progress bar moves while the bytes go.
    const progress = page.locator('.upload[data-upload="/big.bin"] progress');
    await waitFor('upload progress', async () => Number(await progress.getAttribute('value')) > 0, 60_000);
    await page.locator('.upload-done[data-upload="/big.bin"]').waitFor({ timeout: 14 * 60_000 });
    const seconds = (Date.now() - started) / 1000;
    sampling = false;
    await sampler;
    const { sha256: got, size: gotSize } = await sha256Of(await client.createReadStream('/big.bin'));
    assert.equal(gotSize, size);
    assert.equal(got, digest);
    const grew = peak - before;
    console.log(`# ${BIG_UPLOAD_MB} MiB upload from the browser in ${seconds.toFixed(1)} s; name server RSS ${mib(before)} -> peak ${mib(peak)} (+${mib(grew)})`);
    if (linux) assert.ok(grew < Math.min(size / 2, 96 * 1024 * 1024), `the name server grew by ${mib(grew)} during a ${mib(size)} upload`);
    await client.rm('/big.bin');
    await rm(file);
  });

  it(`lists a directory of ${BIG_DIR_ENTRIES.toLocaleString()} entries without freezing, and scrolls to its end`, { timeout: 5 * 60_000 }, async () => {
    await client.mkdir('/big');
    let next = 0;
    const name = (i: number): string => (i % 100 === 0 ? `dir-${String(i / 100).padStart(3, '0')}` : `file-${String(i).padStart(5, '0')}`);
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < BIG_DIR_ENTRIES) {
        const i = next++;
        if (i % 100 === 0) await client.mkdir(`/big/${name(i)}`);
        else await client.create(`/big/${name(i)}`);
      }
    }));
    const big = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    watch(big);
    // Long tasks (over 50 ms on the main thread) while the listing loads, renders and sorts.
    await big.addInitScript(() => {
      (window as unknown as { longest: number }).longest = 0;
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) (window as unknown as { longest: number }).longest = Math.max((window as unknown as { longest: number }).longest, e.duration);
      }).observe({ type: 'longtask', buffered: true });
    });
    const started = Date.now();
    await big.goto(`${base}/files/big`);
    await big.locator(`[role="grid"][aria-rowcount="${BIG_DIR_ENTRIES + 1}"]`).waitFor({ timeout: 30_000 });
    await row(big, 'dir-000').waitFor();
    const shownIn = Date.now() - started;
    const drawn = await big.locator('.grid-row').count();
    assert.ok(drawn < 100, `${drawn} rows drawn: the list must draw only those in view`);
    assert.match((await big.locator('.summary').textContent())!, /100 folders, 9,900 files/);

    // Scroll to the end: the last entry appears, and still only a window of rows exists.
    await big.locator('.file-grid').evaluate((el) => { el.scrollTop = el.scrollHeight; });
    await row(big, 'file-09999').waitFor();
    assert.ok(await big.locator('.grid-row').count() < 100);
    // The keyboard reaches both ends too.
    await row(big, 'file-09999').click({ position: { x: 400, y: 10 } });
    await big.keyboard.press('Home');
    await waitFor('focus on the first row', async () => (await focused(big)) === 'dir-000', 5000);
    await big.keyboard.press('End');
    await waitFor('focus on the last row', async () => (await focused(big)) === 'file-09999', 5000);
    // Sorting 10,000 entries.
    await big.getByRole('button', { name: 'Size', exact: true }).click();
    await big.getByRole('button', { name: 'Name', exact: true }).click();
    const longest = await big.evaluate(() => (window as unknown as { longest: number }).longest);
    console.log(`# ${BIG_DIR_ENTRIES} entries listed in ${shownIn} ms; longest main-thread task ${Math.round(longest)} ms; ${drawn} rows drawn`);
    assert.ok(longest < 2000, `the page froze for ${Math.round(longest)} ms`);
    await big.close();
  });

  it('works at a phone\'s width', async () => {
    const phone = await newContext({ width: 390, height: 844 }, { isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const p = await phone.newPage();
    await p.goto(`${base}/files/`);
    await row(p, 'notes.md').waitFor();
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
    // Icon-only buttons keep their names.
    for (const name of ['Upload', 'New folder', 'Refresh', 'Download holiday.jpg', 'Delete photos']) {
      assert.ok(await p.getByRole(name.startsWith('Download') ? 'link' : 'button', { name, exact: true }).isVisible(), name);
    }
    await p.screenshot({ path: join(shots, 'screenshot-phone.png') });
    await p.goto(`${base}/cluster`);
    await p.locator('tr[data-state="alive"]').first().waitFor();
    const clusterOverflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(clusterOverflow <= 0, `the cluster page is ${clusterOverflow}px wider than the phone`);
    await p.screenshot({ path: join(shots, 'screenshot-phone-cluster.png') });
    await phone.close();
  });

  it('shows each storage server on the cluster page, and a killed one turns dead by itself', async () => {
    await page.goto(`${base}/cluster`);
    const servers = (await client.cluster()).storages;
    assert.equal(servers.length, 3);
    for (const s of servers) await page.locator(`tr[data-storage="${s.id}"][data-state="alive"]`).waitFor();
    assert.match((await page.getByTestId('servers').textContent())!, /3 of 3 alive/);
    assert.equal((await page.getByTestId('missing').locator('.tile-value').textContent()), '0');

    const victim = cluster.storages[2]!;
    const id = servers.find((s) => s.addr.endsWith(`:${victim.port}`))!.id;
    await cluster.stopStorage(2);
    // No reload: the page refreshes itself. The name server calls it dead after 1.5 s here.
    await page.locator(`tr[data-storage="${id}"][data-state="dead"]`).waitFor({ timeout: 20_000 });
    await waitFor('2 of 3 alive', async () => /2 of 3 alive/.test((await page.getByTestId('servers').textContent())!), 10_000);
    // Three replicas wanted, two servers left: every block is under-replicated, none missing.
    await waitFor('under-replicated blocks shown', async () => Number(await page.getByTestId('under-replicated').locator('.tile-value').textContent()) > 0, 20_000);
    assert.equal(await page.getByTestId('missing').locator('.tile-value').textContent(), '0');
    await page.screenshot({ path: join(shots, 'screenshot-cluster.png') });
  });

  it('asks for an access key when the name server has keys, and shows what a read-only key may do', async () => {
    const rw = `rw-${randomBytes(12).toString('hex')}`;
    const ro = `ro-${randomBytes(12).toString('hex')}`;
    const keys = join(local, 'keys');
    await writeFile(keys, `rw ${rw}\nro ${ro}\n`);
    const locked = await Cluster.start({ storages: 1, replication: 1, nameArgs: ['--access-keys-file', keys], clientKey: rw });
    const ctx = await newContext({ width: 1024, height: 700 });
    try {
      await locked.client().writeFile('/inside.txt', 'behind a key\n');
      const p = await ctx.newPage();
      await p.goto(`${locked.url}/`);
      await p.getByRole('heading', { name: 'Log in' }).waitFor();
      assert.equal(await p.locator('.grid-row').count(), 0, 'files listed before logging in');
      const field = p.getByLabel('Access key');
      await field.fill('not-a-key-of-this-cluster');
      await p.getByRole('button', { name: 'Log in' }).click();
      await p.getByRole('alert').filter({ hasText: 'not known' }).waitFor();
      await field.fill(ro);
      await field.press('Enter');
      await row(p, 'inside.txt').waitFor();
      await p.getByText('read-only').waitFor();
      // A read-only key sees no button that would change anything.
      assert.equal(await p.getByRole('button', { name: 'Upload' }).count(), 0);
      assert.equal(await p.getByRole('button', { name: 'New folder' }).count(), 0);
      assert.equal(await p.getByRole('button', { name: 'Delete inside.txt' }).count(), 0);
      assert.equal(await p.getByRole('link', { name: 'Download inside.txt' }).count(), 1);
      await p.screenshot({ path: join(shots, 'screenshot-login.png') });
      // The session is a cookie the page cannot read, and it survives a reload.
      assert.equal(await p.evaluate(() => document.cookie), '');
      await p.reload();
      await row(p, 'inside.txt').waitFor();
      await p.getByRole('button', { name: 'Log out' }).click();
      await p.getByRole('heading', { name: 'Log in' }).waitFor();
      await p.reload();
      await p.getByRole('heading', { name: 'Log in' }).waitFor();
    } finally {
      await ctx.close();
      await locked.stop();
    }
  });

  async function readAll(path: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of await client.createReadStream(path)) chunks.push(Buffer.from(c as Uint8Array));
    return Buffer.concat(chunks);
  }
});

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
