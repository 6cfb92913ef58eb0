import { SdfsError } from './errors.js';

/**
 * Parses a single HTTP `bytes=a-b` range against a resource of `size` bytes; the end in the result is
 * exclusive. No header means the whole resource (`partial: false`).
 */
export function parseRange(value: string | undefined, size: number): { start: number; end: number; partial: boolean } {
  if (!value) return { start: 0, end: size, partial: false };
  // RFC 9110: every range of an empty representation is unsatisfiable.
  if (size === 0) throw new SdfsError('ERANGE', `range not satisfiable: ${value} of an empty file`);
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m || (m[1] === '' && m[2] === '')) throw new SdfsError('EINVAL', `unsupported range: ${value}`);
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size : Math.min(size, Number(m[2]) + 1);
  }
  if (start > end || start > size || (start === end && size > 0)) throw new SdfsError('ERANGE', `range not satisfiable: ${value} of ${size} bytes`);
  return { start, end, partial: true };
}
