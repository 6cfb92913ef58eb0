import { SdfsError } from './errors.js';

/**
 * Paths in the sdfs namespace are absolute, `/`-separated, and normalized here, in one place,
 * wherever they enter a process: no empty, `.` or `..` components survive, no NUL or control
 * characters, names and paths of bounded length.
 */
export const MAX_NAME_BYTES = 255;
export const MAX_PATH_BYTES = 4096;
export const MAX_DEPTH = 256;

// C0 controls, DEL and NUL: never part of a name (they break terminals, logs and the classic protocol).
const CONTROL = /[\u0000-\u001f\u007f]/;

export function validateName(name: string): string {
  if (name.length === 0) throw new SdfsError('EINVAL', 'empty name');
  if (name === '.' || name === '..') throw new SdfsError('EINVAL', `invalid name: ${name}`);
  if (name.includes('/')) throw new SdfsError('EINVAL', `name contains '/': ${JSON.stringify(name)}`);
  if (CONTROL.test(name)) throw new SdfsError('EINVAL', `name contains a control character: ${JSON.stringify(name)}`);
  if (!name.isWellFormed()) throw new SdfsError('EINVAL', 'name is not valid Unicode');
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw new SdfsError('EINVAL', `name longer than ${MAX_NAME_BYTES} bytes`);
  return name;
}

/**
 * Resolves `path` against the absolute directory `cwd` (default `/`) and returns the normalized
 * absolute path. `..` at the root stays at the root, as in POSIX.
 */
export function resolvePath(path: string, cwd = '/'): string {
  if (typeof path !== 'string') throw new SdfsError('EINVAL', 'path must be a string');
  if (path.length === 0) throw new SdfsError('EINVAL', 'empty path');
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) throw new SdfsError('EINVAL', `path longer than ${MAX_PATH_BYTES} bytes`);
  const parts = path.startsWith('/') ? [] : splitPath(cwd);
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      parts.pop();
      continue;
    }
    parts.push(validateName(part));
  }
  if (parts.length > MAX_DEPTH) throw new SdfsError('EINVAL', `path deeper than ${MAX_DEPTH} levels`);
  const out = '/' + parts.join('/');
  if (Buffer.byteLength(out) > MAX_PATH_BYTES) throw new SdfsError('EINVAL', `path longer than ${MAX_PATH_BYTES} bytes`);
  return out;
}

/** The components of a normalized absolute path; `[]` for the root. */
export function splitPath(absPath: string): string[] {
  return absPath.split('/').filter((p) => p !== '');
}

export function parentOf(absPath: string): string {
  const parts = splitPath(absPath);
  parts.pop();
  return '/' + parts.join('/');
}

export function baseName(absPath: string): string {
  const parts = splitPath(absPath);
  return parts[parts.length - 1] ?? '';
}

export function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** True if `inner` is `outer` or lies below it. */
export function isWithin(inner: string, outer: string): boolean {
  return outer === '/' || inner === outer || inner.startsWith(outer + '/');
}
