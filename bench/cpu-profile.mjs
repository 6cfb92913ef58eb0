// Preloaded into the cluster's processes by `npm run bench -- --profile` (NODE_OPTIONS=--import ...,
// since Node 20 refuses --cpu-prof there): samples the CPU from start to exit and writes a
// .cpuprofile (Chrome DevTools format) into $SDFS_BENCH_PROFILE_DIR, named by role and PID.
// Plain JavaScript, so that it adds no loader to the processes it measures.
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { basename, join } from 'node:path';

const dir = process.env.SDFS_BENCH_PROFILE_DIR;
if (dir) {
  const role = /^(name|storage|up)$/.test(process.argv[2] ?? '') ? process.argv[2] : basename(process.argv[1] ?? 'node');
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  session.post('Profiler.start');
  // An in-thread inspector session answers synchronously, so this works inside 'exit'.
  process.on('exit', () => {
    session.post('Profiler.stop', (err, res) => {
      if (err || !res) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${role.replace(/\W+/g, '_')}-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
