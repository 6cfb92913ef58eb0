import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { defineConfig, type Plugin } from 'vite';

/**
 * Builds the web UI (src/web) into dist/web, which the name server serves at `/`.
 * `npm run build` runs it after the server's tsc.
 */
const here = fileURLToPath(new URL('.', import.meta.url));
const outDir = resolve(here, '../../dist/web');

/** The budget of the page's JavaScript, gzipped. */
const JS_BUDGET = 150 * 1024;

export default defineConfig({
  root: here,
  base: '/',
  publicDir: 'public',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir,
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  plugins: [onlyWebSources(), budget()],
});

/** The UI talks to the HTTP API only: no module of the server may end up in its bundle (type imports vanish). */
function onlyWebSources(): Plugin {
  return {
    name: 'sdfs-only-web-sources',
    apply: 'build',
    generateBundle() {
      for (const id of this.getModuleIds()) {
        const file = id.split('?')[0]!;
        if (file.startsWith('\0') || file.includes(`${sep}node_modules${sep}`) || !file.startsWith(sep)) continue;
        if (!file.startsWith(here)) this.error(`the web UI imports code outside src/web: ${relative(here, file)}`);
      }
    },
  };
}

/**
 * After the build: prints the size of every file and the page's JavaScript gzipped, fails the build
 * over budget, and writes a `.gz` twin of each text file, which the name server sends to browsers
 * that accept gzip (so it never compresses on the fly).
 */
function budget(): Plugin {
  return {
    name: 'sdfs-budget',
    apply: 'build',
    closeBundle() {
      let jsGzip = 0;
      const lines: string[] = [];
      for (const file of walk(outDir)) {
        if (file.endsWith('.gz')) continue;
        const bytes = readFileSync(file);
        const gz = gzipSync(bytes, { level: 9 });
        const ext = extname(file);
        if (ext === '.js') jsGzip += gz.length;
        if (['.js', '.css', '.html', '.svg', '.json'].includes(ext) && gz.length < bytes.length) writeFileSync(`${file}.gz`, gz);
        lines.push(`  ${relative(outDir, file).padEnd(36)} ${kib(bytes.length).padStart(10)}   gzip ${kib(gz.length).padStart(10)}`);
      }
      console.log(`web UI -> ${relative(process.cwd(), outDir)}\n${lines.join('\n')}`);
      console.log(`page JavaScript: ${kib(jsGzip)} gzipped (budget ${kib(JS_BUDGET)})`);
      if (jsGzip > JS_BUDGET) throw new Error(`the page's JavaScript is ${kib(jsGzip)} gzipped, over its budget of ${kib(JS_BUDGET)}`);
    },
  };
}

function* walk(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else yield p;
  }
}

function kib(n: number): string {
  return `${(n / 1024).toFixed(1)} KiB`;
}
