// sdfs paths on the page: absolute, `/`-separated. The name server normalizes and validates them
// again; these helpers only build them.

export function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function segments(path: string): string[] {
  return path.split('/').filter((p) => p !== '');
}

/** Resolves what a person typed (`name`, `../other/`, `/abs/path`) against the directory `dir`. */
export function resolveInput(dir: string, input: string): string {
  const parts = input.startsWith('/') ? [] : segments(dir);
  for (const part of input.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return `/${parts.join('/')}`;
}
