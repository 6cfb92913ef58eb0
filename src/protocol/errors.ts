/**
 * Every error sdfs reports has a stable code from this table. The table is the one place that
 * maps a code to an HTTP status (at the API edge) and to a process exit code (at the CLI edge),
 * so a client can turn an HTTP error back into the same typed error the server threw.
 */
export const ERROR_TABLE = {
  ENOENT: { status: 404, exit: 2, text: 'no such file or directory' },
  EEXIST: { status: 409, exit: 3, text: 'already exists' },
  ENOTDIR: { status: 409, exit: 4, text: 'not a directory' },
  EISDIR: { status: 409, exit: 4, text: 'is a directory' },
  ENOTEMPTY: { status: 409, exit: 5, text: 'directory not empty' },
  EINVAL: { status: 400, exit: 6, text: 'invalid argument' },
  EACCES: { status: 403, exit: 14, text: 'permission denied' },
  EAUTH: { status: 401, exit: 15, text: 'authentication required' },
  EBUSY: { status: 409, exit: 7, text: 'resource busy' },
  ETOOBIG: { status: 413, exit: 6, text: 'too large' },
  ERANGE: { status: 416, exit: 6, text: 'range not satisfiable' },
  ENOSPACE: { status: 507, exit: 8, text: 'no storage space' },
  ENOSTORAGE: { status: 503, exit: 8, text: 'no live storage server' },
  ECHECKSUM: { status: 502, exit: 9, text: 'checksum mismatch' },
  EUNAVAILABLE: { status: 503, exit: 10, text: 'service unavailable' },
  EPROTO: { status: 502, exit: 11, text: 'protocol error' },
  ECANCELED: { status: 499, exit: 130, text: 'canceled' },
  EINTERNAL: { status: 500, exit: 1, text: 'internal error' },
} as const;

export type ErrorCode = keyof typeof ERROR_TABLE;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_TABLE, code);
}

export class SdfsError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERROR_TABLE[code].text, options);
    this.name = 'SdfsError';
    this.code = code;
  }

  get httpStatus(): number {
    return ERROR_TABLE[this.code].status;
  }

  get exitCode(): number {
    return ERROR_TABLE[this.code].exit;
  }

  toJSON(): ErrorBody {
    return { error: { code: this.code, message: this.message } };
  }
}

/** The JSON body of every error response of every sdfs HTTP server. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

export function errorFromBody(status: number, body: unknown): SdfsError {
  const e = (body as Partial<ErrorBody> | undefined)?.error;
  if (e && isErrorCode(e.code) && typeof e.message === 'string') return new SdfsError(e.code, e.message);
  return new SdfsError(status === 503 ? 'EUNAVAILABLE' : 'EPROTO', `unexpected HTTP ${status} response`);
}

const TLS_CERT_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_SIGNATURE_FAILURE', 'HOSTNAME_MISMATCH',
]);

/** Wraps any thrown value as an SdfsError, keeping typed errors as they are. */
export function toSdfsError(err: unknown): SdfsError {
  if (err instanceof SdfsError) return err;
  const code = (err as { code?: unknown })?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CONNECT_TIMEOUT' ||
      code === 'EHOSTUNREACH' || code === 'ENOTFOUND' || code === 'EPIPE' || code === 'UND_ERR_HEADERS_TIMEOUT' ||
      code === 'UND_ERR_BODY_TIMEOUT' || code === 'ETIMEDOUT') {
    return new SdfsError('EUNAVAILABLE', message, { cause: err });
  }
  // A certificate that cannot be verified (self-signed without --tls-ca, wrong host name, expired).
  if (typeof code === 'string' && (TLS_CERT_ERRORS.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_'))) {
    return new SdfsError('EPROTO', `TLS: ${message}`, { cause: err });
  }
  if (code === 'ABORT_ERR' || (err as Error)?.name === 'AbortError') return new SdfsError('ECANCELED', message, { cause: err });
  if (code === 'ENOSPC') return new SdfsError('ENOSPACE', message, { cause: err });
  // Local file system errors (a missing local file to upload, say) keep their meaning.
  if (code === 'EPERM') return new SdfsError('EACCES', message, { cause: err });
  if (isErrorCode(code) && (code === 'ENOENT' || code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EACCES')) {
    return new SdfsError(code, message, { cause: err });
  }
  return new SdfsError('EINTERNAL', message, { cause: err });
}
