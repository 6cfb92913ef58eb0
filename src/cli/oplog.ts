import * as fs from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * The client's log of the operations it performed, one line each (the course assignment behind the
 * seed asks every client to keep one). Logging never fails an operation.
 */
export class OperationLog {
  constructor(readonly file: string | null) {}

  static defaultPath(env: NodeJS.ProcessEnv = process.env): string {
    const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
    return join(base, 'sdfs', 'operations.log');
  }

  record(nameServer: string, op: string, args: string[], outcome: 'ok' | string): void {
    if (!this.file) return;
    const line = JSON.stringify({ time: new Date().toISOString(), nameServer, op, args, outcome }) + '\n';
    try {
      fs.mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
      fs.appendFileSync(this.file, line, { mode: 0o600 });
    } catch {
      // An unwritable log must not stop the user's work.
    }
  }
}
