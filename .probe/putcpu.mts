import { request, Agent } from 'undici';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
const root = process.env.TREE!;
const { Cluster } = await import(`${root}/test/helpers/cluster.ts`);
const cluster = await Cluster.start({ storages: 1, replication: 1 });
const st = cluster.storages[0];
const url = `http://127.0.0.1:${st.port}`;
const cpu = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return [Number(f[11]), Number(f[12])]; };
const data = randomBytes(4096);
const agent = new Agent({ connections: 32 });
let mode = 'put';
let k = 0;
const ids: string[] = [];
async function one() {
  if (mode === 'put') {
    const id = randomBytes(16).toString('hex');
    const res = await request(`${url}/v1/blocks/${id}`, { method: 'PUT', body: data, dispatcher: agent, headers: { 'content-type': 'application/octet-stream', 'x-sdfs-token': cluster.blockToken(id, 'write') } });
    const j: any = await res.body.json(); if (res.statusCode !== 200) throw new Error(JSON.stringify(j)); ids.push(id);
  } else {
    const id = ids[k++ % ids.length];
    const res = await request(`${url}/v1/blocks/${id}`, { dispatcher: agent, headers: { 'x-sdfs-token': cluster.blockToken(id, 'read') } });
    await res.body.arrayBuffer();
  }
}
async function run(ms: number) { let n = 0; const end = Date.now() + ms; await Promise.all(Array.from({ length: 16 }, async () => { while (Date.now() < end) { await one(); n++; } })); return n; }
await run(3000);
const saved = process.env.MODE ?? 'put'; mode = saved; if (mode === 'get') await run(2000);
const pid = st.child.pid!; const b = cpu(pid); const bb = cpu(process.pid); const t0 = Date.now();
const n = await run(5000); const s = (Date.now() - t0) / 1000; const a = cpu(pid); const ab = cpu(process.pid);
console.log(saved, 'ops/s', Math.round(n / s), 'storage user us/op', ((a[0] - b[0]) * 10000 / n).toFixed(0), 'sys us/op', ((a[1] - b[1]) * 10000 / n).toFixed(0), 'bench us/op', ((ab[0] + ab[1] - bb[0] - bb[1]) * 10000 / n).toFixed(0));
await cluster.stop();
