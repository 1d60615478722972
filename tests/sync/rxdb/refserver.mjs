// The baseline for bench/sync: RxDB's own reference server (startWebsocketServer from the
// replication-websocket plugin, memory storage) with the same collection shape as Tessera's.
// argv: <port> <collection> <records>. stdin: {"seq", "cmd": "patch", "id", "set"} -> stdout
// {"seq", "ok", "started", "finished"} (epoch ms on this machine's clock, as the driver's).
import readline from 'node:readline';
import { performance } from 'node:perf_hooks';

import { createRxDatabase } from 'rxdb';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { startWebsocketServer } from 'rxdb/plugins/replication-websocket';

console.log = (...args) => console.error(...args);
const now = () => performance.timeOrigin + performance.now();
const [port, name, records] = [Number(process.argv[2]), process.argv[3], Number(process.argv[4])];

const db = await createRxDatabase({ name: 'reference', storage: getRxStorageMemory(), multiInstance: false });
const schema = {
  version: 0,
  primaryKey: 'id',
  type: 'object',
  properties: { id: { type: 'string', maxLength: 64 }, version: { type: 'integer' }, updated_at: { type: 'string' } },
  required: ['id'],
  additionalProperties: true,
};
const collections = await db.addCollections({ [name]: { schema } });
const col = collections[name];
const stamp = new Date().toISOString();
for (let start = 0; start < records; start += 5000) {
  const docs = [];
  for (let n = start; n < Math.min(start + 5000, records); n += 1) {
    docs.push({ id: `r${String(n).padStart(7, '0')}`, title: `Job ${n}`, qty: n, version: 1, updated_at: stamp });
  }
  await col.bulkInsert(docs);
}
await startWebsocketServer({ database: db, port });
process.stdout.write(JSON.stringify({ seq: 0, ok: true, ready: true }) + '\n');

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const msg = JSON.parse(line);
  try {
    const started = now();
    const doc = await col.findOne(msg.id).exec();
    await doc.incrementalPatch({ ...msg.set, version: doc.version + 1, updated_at: new Date().toISOString() });
    process.stdout.write(JSON.stringify({ seq: msg.seq, ok: true, started, finished: now(), version: doc.version + 1 }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ seq: msg.seq, ok: false, error: String(err) }) + '\n');
  }
});
