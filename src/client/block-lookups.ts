import type { ApiCaller } from '../protocol/api-caller.js';
import { errorFromBody, SdfsError } from '../protocol/errors.js';
import type { BlocksBatchResponse, BlocksResponse } from '../protocol/messages.js';

/** Calls for block lists in flight at once; the lists asked for meanwhile wait and go together. */
const MAX_IN_FLIGHT = 2;
/** Paths in one call at most (the name server takes 256). */
const MAX_BATCH = 64;

interface Lookup {
  path: string;
  resolve: (located: BlocksResponse) => void;
  reject: (err: unknown) => void;
}

/**
 * Block lists for readers. A lone reader's lookup goes at once, as `GET /fs/blocks`; while two calls
 * are out, the lookups asked for meanwhile queue and go as one `POST /fs/blocks` when a call returns.
 * Many readers at once then cost the name server one request per batch, not one per file, and a
 * lookup never waits for a timer.
 */
export class BlockLookups {
  private queue: Lookup[] = [];
  private inFlight = 0;

  constructor(private readonly api: ApiCaller) {}

  locate(path: string): Promise<BlocksResponse> {
    return new Promise((resolve, reject) => {
      this.queue.push({ path, resolve, reject });
      this.flush();
    });
  }

  private flush(): void {
    while (this.inFlight < MAX_IN_FLIGHT && this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      this.inFlight++;
      void this.send(batch).finally(() => {
        this.inFlight--;
        this.flush();
      });
    }
  }

  private async send(batch: Lookup[]): Promise<void> {
    if (batch.length === 1) return this.alone(batch[0]!);
    try {
      const { files } = await this.api<BlocksBatchResponse>('POST', '/fs/blocks', { paths: batch.map((l) => l.path) });
      if (files.length !== batch.length) throw new SdfsError('EPROTO', `${files.length} block lists for ${batch.length} paths`);
      files.forEach((f, i) => {
        const lookup = batch[i]!;
        if (!('error' in f)) lookup.resolve(f);
        // A file with more blocks than a batch answer holds is asked for alone.
        else if (f.error.code === 'ETOOBIG') void this.alone(lookup);
        else lookup.reject(errorFromBody(200, f));
      });
    } catch (err) {
      for (const l of batch) l.reject(err);
    }
  }

  private alone(lookup: Lookup): Promise<void> {
    return this.api<BlocksResponse>('GET', '/fs/blocks', undefined, { path: lookup.path }).then(lookup.resolve, lookup.reject);
  }
}
