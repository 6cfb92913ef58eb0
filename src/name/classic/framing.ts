/**
 * The classic protocol's framing (PROTOCOL.md §1). A request is fields, each followed by `][`, padded
 * with spaces to 2048 *characters*: a non-ASCII name makes the frame longer than 2048 bytes, so the end
 * of a frame is found by counting UTF-8 characters, never by reading a fixed 2048 bytes. A response is
 * `TYPE][LEN][BODY` with LEN the body's length in UTF-8 bytes, with no padding and no terminator.
 */

/** Characters in a request frame. */
export const FRAME_CHARS = 2048;
/** The most bytes a frame can take: 2048 characters of 4 bytes each. */
export const MAX_FRAME_BYTES = FRAME_CHARS * 4;

const SEPARATOR = '][';

/**
 * Finds the end of a frame in a byte stream by counting characters the way a UTF-8 decoder does: a
 * lead byte starts a character, continuation bytes complete it, and any byte that fits neither counts
 * as one character on its own (as the decoder's replacement character would), so a frame is never
 * longer than MAX_FRAME_BYTES, whatever arrives.
 */
export class FrameScanner {
  private chars = 0;
  private pendingContinuations = 0;
  /** Bytes of the frame seen so far. */
  bytes = 0;

  get complete(): boolean {
    return this.chars === FRAME_CHARS && this.pendingContinuations === 0;
  }

  /** Scans `buf`; returns how many of its bytes belong to the frame (all of them unless the frame ends inside). */
  scan(buf: Uint8Array): number {
    for (let i = 0; i < buf.length; i++) {
      if (this.complete) return i;
      const b = buf[i]!;
      if (this.pendingContinuations > 0 && (b & 0xc0) === 0x80) {
        this.pendingContinuations--;
      } else {
        // A character cut short by a byte that does not continue it ends where it stopped.
        this.pendingContinuations = 0;
        if (this.chars === FRAME_CHARS) return i;
        this.chars++;
        this.pendingContinuations = b >= 0xc0 && b < 0xe0 ? 1 : b >= 0xe0 && b < 0xf0 ? 2 : b >= 0xf0 && b < 0xf8 ? 3 : 0;
      }
      this.bytes++;
    }
    return buf.length;
  }
}

export type Request =
  | { ok: true; type: string; args: string[] }
  | { ok: false; type: string; error: string; lostSync: boolean };

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Splits a frame into its request type and arguments. On failure, `type` is what to answer with (the
 * client reads a reply of the type it sent) and `lostSync` says that the frame did not end where the
 * client's did, so that bytes of it may still be in the stream.
 */
export function parseRequest(frame: Uint8Array): Request {
  let text: string;
  try {
    text = decoder.decode(frame);
  } catch {
    return { ok: false, type: replyType(Buffer.from(frame).toString('latin1')), error: 'the request is not valid UTF-8', lostSync: false };
  }
  const parts = text.split(SEPARATOR);
  const padding = parts.pop()!;
  if (parts.length === 0) {
    return { ok: false, type: replyType(text), error: `not a request: no "${SEPARATOR}" in it`, lostSync: /[^ ]/.test(padding) };
  }
  if (/[^ ]/.test(padding)) {
    return {
      ok: false, type: replyType(text), lostSync: true,
      error: `request longer than ${FRAME_CHARS} characters, or not padded with spaces`,
    };
  }
  return { ok: true, type: parts[0]!, args: parts.slice(1) };
}

/** The type to answer a request with: the one it gave if it looks like one, else `err`. */
export function replyType(requestText: string): string {
  const first = requestText.split(SEPARATOR, 1)[0]!;
  return /^[A-Za-z0-9_]{1,16}$/.test(first) ? first : 'err';
}

/** `TYPE][LEN][BODY`, LEN in bytes, as one buffer so that it goes out in one write. */
export function encodeReply(type: string, body: string): Buffer {
  const bytes = Buffer.from(body, 'utf8');
  return Buffer.concat([Buffer.from(`${type}${SEPARATOR}${bytes.length}${SEPARATOR}`, 'utf8'), bytes]);
}

