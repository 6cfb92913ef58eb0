import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import { describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChunkCrcs, parsePipeline, validateId } from '../src/protocol/blocks.js';
import { eachChunk } from '../src/protocol/each-chunk.js';
import { ERROR_TABLE, SdfsError, errorFromBody } from '../src/protocol/errors.js';
import { baseName, isWithin, parentOf, resolvePath } from '../src/protocol/paths.js';
import { quoteWord, tokenize } from '../src/cli/tokenize.js';
import { parseSize } from '../src/cli/units.js';
import { parseRange } from '../src/protocol/range.js';

describe('paths', () => {
  it('normalizes relative and absolute paths, with .. never above the root', () => {
    assert.equal(resolvePath('a/b', '/x'), '/x/a/b');
    assert.equal(resolvePath('../c', '/x/y'), '/x/c');
    assert.equal(resolvePath('/a//b/./c/'), '/a/b/c');
    assert.equal(resolvePath('../../..', '/a'), '/');
    assert.equal(resolvePath('.', '/'), '/');
    assert.equal(resolvePath('résumé 日本.txt', '/d'), '/d/résumé 日本.txt');
    assert.equal(parentOf('/a/b'), '/a');
    assert.equal(parentOf('/a'), '/');
    assert.equal(baseName('/a/b'), 'b');
    assert.ok(isWithin('/a/b', '/a'));
    assert.ok(!isWithin('/ab', '/a'));
  });

  it('refuses NUL, control characters, lone surrogates, empty and overlong names', () => {
    for (const bad of ['', 'a\0b', 'a\nb', 'x\u007f', '\ud800', 'n'.repeat(256), `/${'d/'.repeat(2100)}`]) {
      assert.throws(() => resolvePath(bad), (e: unknown) => e instanceof SdfsError && e.code === 'EINVAL', JSON.stringify(bad.slice(0, 20)));
    }
    assert.equal(resolvePath('n'.repeat(255)), '/' + 'n'.repeat(255));
  });
});

describe('errors', () => {
  it('every code maps to an HTTP status and an exit code, and survives a trip through JSON', () => {
    for (const code of Object.keys(ERROR_TABLE) as (keyof typeof ERROR_TABLE)[]) {
      const e = new SdfsError(code, 'why');
      const back = errorFromBody(e.httpStatus, JSON.parse(JSON.stringify(e.toJSON())));
      assert.equal(back.code, code);
      assert.equal(back.message, 'why');
      assert.ok(e.exitCode > 0);
    }
    assert.equal(errorFromBody(502, '<html>').code, 'EPROTO');
  });
});

describe('block ids and checksums', () => {
  it('accepts only 32 hex digits as ids', () => {
    assert.equal(validateId('0123456789abcdef0123456789abcdef'), '0123456789abcdef0123456789abcdef');
    for (const bad of ['../../etc/passwd', '0123456789ABCDEF0123456789ABCDEF', 'abc', '', 42]) {
      assert.throws(() => validateId(bad), { code: 'EINVAL' });
    }
  });

  it('CRC-32 per chunk does not depend on how the bytes were split', () => {
    const data = Buffer.alloc(10_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
    const whole = new ChunkCrcs(4096);
    whole.update(data);
    const pieces = new ChunkCrcs(4096);
    for (let off = 0; off < data.length; off += 333) pieces.update(data.subarray(off, off + 333));
    const expected = [0, 4096, 8192].map((o) => crc32(data.subarray(o, o + 4096)) >>> 0);
    assert.deepEqual(whole.finish(), expected);
    assert.deepEqual(pieces.finish(), expected);
  });

  it('parses the pipeline header and refuses junk in it', () => {
    const id = 'ab'.repeat(16);
    assert.deepEqual(parsePipeline(`${id}@127.0.0.1:3501,${id}@[::1]:3502`), [{ id, addr: '127.0.0.1:3501' }, { id, addr: '[::1]:3502' }]);
    for (const bad of ['x@y', `${id}@host/evil`, `${id}`, `${id}@a b:1`]) assert.throws(() => parsePipeline(bad), { code: 'EINVAL' });
  });

  it('parses byte ranges', () => {
    assert.deepEqual(parseRange(undefined, 100), { start: 0, end: 100, partial: false });
    assert.deepEqual(parseRange('bytes=10-19', 100), { start: 10, end: 20, partial: true });
    assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 100, partial: true });
    assert.deepEqual(parseRange('bytes=-5', 100), { start: 95, end: 100, partial: true });
    assert.deepEqual(parseRange('bytes=50-500', 100), { start: 50, end: 100, partial: true });
    for (const bad of ['items=1-2', 'bytes=1-2,4-5', 'bytes=-']) assert.throws(() => parseRange(bad, 100), { code: 'EINVAL' });
    for (const bad of ['bytes=5-1', 'bytes=200-', 'bytes=100-']) assert.throws(() => parseRange(bad, 100), { code: 'ERANGE' });
    assert.throws(() => parseRange('bytes=0-', 0), { code: 'ERANGE' });
  });
});

describe('eachChunk', () => {
  it('hands on each chunk itself, one at a time, even while the source is ahead of a slow consumer', async () => {
    const sent = Array.from({ length: 64 }, (_, i) => Buffer.alloc(16 * 1024, i));
    let i = 0;
    // A source with a large buffer that fills at once: async iteration would join its chunks.
    const source = new Readable({ highWaterMark: 4 * 1024 * 1024, read() { this.push(i < sent.length ? sent[i++] : null); } });
    const got: Buffer[] = [];
    let busy = 0;
    await eachChunk(source, async (chunk) => {
      assert.equal(busy++, 0, 'a chunk was handed on before the previous one was done');
      await sleep(1);
      got.push(chunk);
      busy--;
    });
    assert.equal(got.length, sent.length);
    got.forEach((chunk, k) => assert.ok(chunk === sent[k], `chunk ${k} is not the buffer that was pushed`));
  });

  it('rejects with the consumer\'s error and destroys the source; rejects with the source\'s error', async () => {
    const endless = new Readable({ read() { this.push(Buffer.alloc(1024)); } });
    let calls = 0;
    await assert.rejects(eachChunk(endless, () => {
      if (++calls === 3) throw new SdfsError('ENOSPACE', 'disk full');
    }), (e: unknown) => e instanceof SdfsError && e.code === 'ENOSPACE');
    assert.equal(calls, 3);
    assert.ok(endless.destroyed);

    const failing = new Readable({ read() { this.destroy(new SdfsError('EUNAVAILABLE', 'connection lost')); } });
    await assert.rejects(eachChunk(failing, () => undefined), (e: unknown) => e instanceof SdfsError && e.code === 'EUNAVAILABLE');
  });
});

describe('shell words', () => {
  it('splits on blanks and honours quotes and backslashes', () => {
    assert.deepEqual(tokenize('write  a.txt "my file.txt"'), ['write', 'a.txt', 'my file.txt']);
    assert.deepEqual(tokenize(`cd 'with "quotes"' back\\ slash ""`), ['cd', 'with "quotes"', 'back slash', '']);
    assert.deepEqual(tokenize('"a\\"b"'), ['a"b']);
    assert.throws(() => tokenize('cd "open'), { code: 'EINVAL' });
    for (const w of ["it's", 'a b', '', 'plain', '日本 語', '$x']) assert.deepEqual(tokenize(quoteWord(w)), [w]);
  });

  it('parses sizes', () => {
    assert.equal(parseSize('64M'), 64 * 1024 * 1024);
    assert.equal(parseSize('1GiB'), 1024 ** 3);
    assert.equal(parseSize('4096'), 4096);
    assert.equal(parseSize('1.5k'), 1536);
    assert.throws(() => parseSize('lots'), { code: 'EINVAL' });
  });
});
