/**
 * How long the cluster takes to restore R=3 after losing one of four storage servers, and how that
 * grows with the number of files. Defaults of a real name server (dead after 15 s, replication
 * checked every 1 s, 8 copies at once) unless flags say otherwise.
 *
 *   node --import tsx bench/repair.ts [--files 1000,2000,4000] [--size 65536] [--dead-after-ms 15000]
 */
import { parseArgs } from 'node:util';
import { Cluster, waitFor } from '../test/helpers/cluster.js';

const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '1000' },
    size: { type: 'string', default: '65536' },
    'dead-after-ms': { type: 'string', default: '15000' },
  },
});

const rows: { files: number; writeS: number; detectS: number; repairS: number; copies: number; copiesPerS: number }[] = [];
for (const n of values.files.split(',').map(Number)) {
  const cluster = await Cluster.start({
    storages: 4, replication: 3, blockSize: 64 * 1024 * 1024,
    nameArgs: ['--dead-after-ms', values['dead-after-ms'], '--replication-interval-ms', '1000'],
  });
  try {
    const client = cluster.client();
    const size = Number(values.size);
    const body = Buffer.alloc(size, 7);
    const t0 = Date.now();
    await client.mkdir('/data');
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < n) await client.writeFile(`/data/f${next++}`, body);
    }));
    const writeS = (Date.now() - t0) / 1000;
    const victim = cluster.storages[0]!;
    const onVictim = (await cluster.blocksOnDisk(0)).size;
    const killedAt = Date.now();
    await cluster.stopStorage(0, 'SIGKILL');
    await waitFor('death noticed', async () => (await client.status()).storages.some((s) => s.id === victim.id && !s.alive), 120_000);
    const detectS = (Date.now() - killedAt) / 1000;
    const repairStart = Date.now();
    await waitFor('R restored', async () => {
      const h = (await client.status()).health;
      return h.underReplicated === 0 && h.missing === 0;
    }, 600_000);
    const repairS = (Date.now() - repairStart) / 1000;
    rows.push({ files: n, writeS, detectS, repairS, copies: onVictim, copiesPerS: Math.round(onVictim / Math.max(repairS, 0.001)) });
    console.error(JSON.stringify(rows.at(-1)));
  } finally {
    await cluster.stop();
  }
}
console.log('files  write(s)  detect(s)  repair(s)  blocks re-made  blocks/s');
for (const r of rows) {
  console.log(`${String(r.files).padStart(5)}  ${r.writeS.toFixed(1).padStart(8)}  ${r.detectS.toFixed(1).padStart(9)}  ${r.repairS.toFixed(1).padStart(9)}  ${String(r.copies).padStart(14)}  ${String(r.copiesPerS).padStart(8)}`);
}
