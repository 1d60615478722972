// Real RxDB clients (npm rxdb, memory storage, plugin replication-websocket) against Tessera's
// /sync/v1/ websocket, driven line by line from Python (tests/sync/test_rxdb_clients.py, bench/sync).
//
// stdin: one JSON command a line, {"seq": n, "cmd": "...", ...}; commands run concurrently.
// stdout: one JSON reply a line, {"seq": n, "ok": true, ...} or {"seq": n, "ok": false, "error": "..."}.
// Everything else (RxDB's own console output) goes to stderr, so stdout stays parseable.
//
// Each client is an RxDB database (memory storage) with one collection replicated by the plugin's
// websocket replication: {"stock": true} is `replicateWithWebsocketServer` as shipped; the default adds
// a reply timeout and nothing else (replicateWithTimeout below says why). RxDB's open core allows 13
// open collections per JS process (error COL23): at most 12 clients per driver. Between each and the server
// sits a small TCP proxy per client (unless {"proxy": false}): `offline` cuts the connection and
// refuses new ones, as a phone losing its network would; `online` lets the client's own reconnect
// through. The proxy also records what the server answered (upgrades, refused handshakes, bytes), so a
// test can tell that a revoked device got no further data. For bench/sync there are also
// protocol-level clients without RxDB (openRaw), a wire-only pull (pullRaw) and timed REST calls (rest).

import dns from 'node:dns';
import http from 'node:http';
import net from 'node:net';
import readline from 'node:readline';
import { performance } from 'node:perf_hooks';

import { WebSocket } from 'ws';
import { createRxDatabase } from 'rxdb';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { replicateRxCollection } from 'rxdb/plugins/replication';
import { createWebSocketClient, replicateWithWebsocketServer } from 'rxdb/plugins/replication-websocket';
import { randomToken } from 'rxdb/plugins/utils';
import { filter, firstValueFrom, map, timeout as rxTimeout } from 'rxjs';

// RxDB's websocket client logs socket errors with console.log: keep stdout for replies.
console.log = (...args) => console.error(...args);

// RxDB's stock websocket client (ReconnectingWebSocket) closes a socket whose handshake took longer
// than its 4 s connection timeout (a server still starting, on a loaded machine); ws then emits an
// 'error' nobody listens to, which would end this process and every client in it. The stock client
// reconnects by itself: noted on stderr. Anything else still ends the process.
process.on('uncaughtException', (err) => {
  if (String(err && err.message).includes('WebSocket was closed before the connection was established')) {
    console.error(`stock RxDB client: ${err.message} (its handshake timed out; it reconnects)`);
    return;
  }
  console.error(err);
  process.exit(1);
});

// SaaS workspaces live on <slug>.<base domain> (tessera.localhost in tests); resolve *.localhost here
// as browsers do, without touching the machine's resolver. ws -> http -> net reads dns.lookup per call.
const systemLookup = dns.lookup;
dns.lookup = function lookup(hostname, options, callback) {
  if (typeof options === 'function') {
    callback = options;
    options = {};
  } else if (typeof options === 'number') {
    options = { family: options };
  }
  if (hostname === 'localhost' || hostname.endsWith('.localhost')) {
    if (options && options.all) {
      process.nextTick(callback, null, [{ address: '127.0.0.1', family: 4 }]);
    } else {
      process.nextTick(callback, null, '127.0.0.1', 4);
    }
    return {};
  }
  return systemLookup.call(dns, hostname, options, callback);
};

// TESSERA_RXDB_TRACE=1: every frame each way on stderr (for protocol findings).
// TESSERA_RXDB_TRACE_SDK=1: each SDK client notes its commands, connection changes, requests, answers
// and local writes (command `trace`); a failed convergence check (tests/sync/rxdb_live.py: converged)
// writes them to <tmp>/rxdb-trace-<name>.json. That is how convergence seed 7919 was understood.
const TRACE = process.env.TESSERA_RXDB_TRACE === '1';
if (TRACE) {
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function traced(data, ...rest) {
    console.error(`>> ${String(data).slice(0, 1500)}`);
    return send.call(this, data, ...rest);
  };
  const emit = WebSocket.prototype.emit;
  WebSocket.prototype.emit = function tracedEmit(event, ...args) {
    if (event === 'message') console.error(`<< ${String(args[0]).slice(0, 1500)}`);
    if (event === 'close' || event === 'unexpected-response' || event === 'error') console.error(`-- ${event} ${String(args[0])}`);
    return emit.call(this, event, ...args);
  };
}

const now = () => performance.timeOrigin + performance.now(); // epoch ms, sub-ms resolution

class Proxy {
  // `kbit`/`latencyMs` (bench/sync/deflate.py): the server's bytes reach the client at that rate and
  // that much later, as over a slow mobile link.
  constructor(targetPort, { kbit = 0, latencyMs = 0 } = {}) {
    this.targetPort = targetPort;
    this.online = true;
    this.pairs = new Set();
    this.kbit = kbit;
    this.latencyMs = latencyMs;
    this.stats = {
      accepted: 0,
      refusedOffline: 0,
      upgrades: 0,
      statuses: [],
      open: 0,
      serverBytes: 0,
      clientBytes: 0,
      extensions: [],
      closeCodes: [],
    };
  }

  // The server's chunk to the client, through the link's rate and latency (in order).
  deliver(pair, buf) {
    if (!this.kbit && !this.latencyMs) {
      pair.client.write(buf);
      return;
    }
    const at = performance.now();
    const start = Math.max(at, pair.linkFree || 0);
    pair.linkFree = start + (this.kbit ? (buf.length * 8) / this.kbit : 0);
    setTimeout(() => pair.closed || pair.client.write(buf), pair.linkFree - at + this.latencyMs);
  }

  listen() {
    this.server = net.createServer((client) => this.accept(client));
    return new Promise((resolve) => {
      this.server.listen(0, '127.0.0.1', () => {
        this.port = this.server.address().port;
        resolve();
      });
    });
  }

  accept(client) {
    client.setNoDelay(true);
    if (!this.online) {
      this.stats.refusedOffline += 1;
      client.destroy();
      return;
    }
    this.stats.accepted += 1;
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    upstream.setNoDelay(true);
    const pair = { client, upstream, head: Buffer.alloc(0), upgraded: false, closed: false };
    this.pairs.add(pair);
    const close = () => {
      if (pair.closed) return;
      pair.closed = true;
      if (pair.upgraded) this.stats.open -= 1;
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    upstream.on('data', (buf) => {
      if (pair.muted) return; // the server's answers vanish on the way
      if (!pair.upgraded && pair.head !== null) {
        pair.head = Buffer.concat([pair.head, buf]);
        const text = pair.head.toString('latin1');
        const lineEnd = text.indexOf('\r\n');
        if (lineEnd >= 0) {
          const status = Number(text.slice(0, lineEnd).split(' ')[1]);
          this.stats.statuses.push(status);
          if (status === 101) {
            const ext = /\r\nsec-websocket-extensions:\s*([^\r]*)/i.exec(text);
            this.stats.extensions.push(ext ? ext[1] : '');
            pair.upgraded = true;
            this.stats.upgrades += 1;
            this.stats.open += 1;
          }
          pair.head = null;
        }
      } else if (pair.upgraded) {
        this.stats.serverBytes += buf.length;
        // A server close frame (opcode 8) carries its status code: 4401 = revoked.
        if (buf.length >= 4 && (buf[0] & 0x0f) === 8) this.stats.closeCodes.push(buf.readUInt16BE(2));
      }
      this.deliver(pair, buf);
    });
    client.on('data', (buf) => {
      if (pair.upgraded) this.stats.clientBytes += buf.length;
      upstream.write(buf);
    });
    for (const socket of [client, upstream]) {
      socket.on('error', close);
      socket.on('close', close);
      socket.on('end', close);
    }
  }

  cut() {
    this.online = false;
    for (const pair of [...this.pairs]) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
  }

  close() {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// RxDB's stock client (plugin replication-websocket) waits for each reply with no timeout: a request
// written into a connection that has just died (a phone walking out of coverage) is never answered and
// that replication direction stalls until the app restarts. This is the stock client, line for line
// (its own createWebSocketClient, replicateRxCollection from the replication plugin), with one change:
// a reply that does not come within `requestTimeout` ms fails the request, and RxDB retries it after
// `retryTime`. The wire format is untouched. {"stock": true} uses replicateWithWebsocketServer itself.
async function replicateWithTimeout(options) {
  const websocketClient = await createWebSocketClient(options);
  const wsClient = websocketClient.socket;
  const messages$ = websocketClient.message$;
  let requestCounter = 0;
  const requestFlag = randomToken(10);
  const request = (method, params) => {
    const id = `${options.collection.database.token}|${requestFlag}|${requestCounter++}`;
    const answer = firstValueFrom(
      messages$.pipe(
        filter((msg) => msg.id === id),
        map((msg) => msg.result),
        rxTimeout({ first: options.requestTimeout }),
      ),
    );
    wsClient.send(JSON.stringify({ id, collection: options.collection.name, method, params }));
    return answer;
  };
  const replicationState = replicateRxCollection({
    collection: options.collection,
    replicationIdentifier: options.replicationIdentifier,
    live: options.live,
    retryTime: options.retryTime,
    pull: {
      batchSize: options.batchSize,
      stream$: messages$.pipe(
        filter((msg) => msg.id === 'stream' && msg.collection === options.collection.name),
        map((msg) => msg.result),
      ),
      handler: (checkpoint, batchSize) => request('masterChangesSince', [checkpoint, batchSize]),
    },
    push: { batchSize: options.batchSize, handler: (rows) => request('masterWrite', [rows]) },
  });
  websocketClient.error$.subscribe((err) => replicationState.subjects.error.next(err));
  websocketClient.connected$.subscribe((isConnected) => {
    if (isConnected) {
      replicationState.reSync();
      wsClient.send(JSON.stringify({ id: 'stream', collection: options.collection.name, method: 'masterChangeStream$', params: [] }));
    }
  });
  options.collection.onClose.push(() => websocketClient.socket.close());
  return replicationState;
}

class PlainWebSocket extends WebSocket {
  constructor(address, protocols, options) {
    super(address, protocols, { ...(options || {}), perMessageDeflate: false });
  }
}

const TYPES = { text: 'string', long_text: 'string', email: 'string', url: 'string', integer: 'integer', number: 'number', boolean: 'boolean' };

function schemaFor(fields) {
  const properties = {
    id: { type: 'string', maxLength: 64 },
    version: { type: 'integer' },
    updated_at: { type: 'string' },
  };
  for (const field of fields || []) {
    properties[field.key] = TYPES[field.type] ? { type: TYPES[field.type] } : {};
  }
  return { version: 0, primaryKey: 'id', type: 'object', properties, required: ['id'], additionalProperties: true };
}

const clients = new Map();
let dbCounter = 0;

function client(name) {
  const c = clients.get(name);
  if (!c) throw new Error(`no client ${name}`);
  return c;
}

function plain(doc) {
  return doc.toJSON(false);
}

async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function open({
  name,
  url,
  collection,
  fields,
  batchSize = 1000,
  proxy = true,
  stock = false,
  requestTimeout = 5000,
  retryTime = 1000,
  timeout = 60000,
  track = true,
  sdk = false,
  sdkOptions = {},
  awaitInitial = true,
  deflate = true,
  linkKbit = 0,
  linkLatencyMs = 0,
}) {
  const target = new URL(url);
  let tcp = null;
  if (proxy) {
    tcp = new Proxy(Number(target.port || 80), { kbit: linkKbit, latencyMs: linkLatencyMs });
    await tcp.listen();
    target.port = String(tcp.port);
  }
  dbCounter += 1;
  const db = await createRxDatabase({
    name: `tessera${dbCounter}`,
    storage: getRxStorageMemory(),
    multiInstance: false,
    eventReduce: true,
  });
  // SDK clients take their schema and conflict handler from the SDK, as its README shows.
  const SDK = sdk ? await import('@tessera/sync') : null;
  const collections = await db.addCollections({
    [collection]: SDK ? { schema: SDK.tesseraSchema({ fields }), conflictHandler: SDK.tesseraConflictHandler } : { schema: schemaFor(fields) },
  });
  const col = collections[collection];
  const c = { name, db, col, tcp, errors: [], received: new Map(), replication: null, openedAt: now() };
  clients.set(name, c);
  // When each document version arrived (bench: fan-out latency; {"track": false}: not noted, as an
  // app that does not watch every document would not).
  if (track) {
    col.$.subscribe((ev) => {
      if (ev.documentData) c.received.set(`${ev.documentId}@${ev.documentData.version}`, now());
    });
  }
  const started = now();
  const options = {
    collection: col,
    url: target.toString(),
    replicationIdentifier: `tessera-${collection}`,
    live: true,
    batchSize,
  };
  let replicating;
  if (sdk) {
    // The SDK as an app uses it (clients/js, packed and installed by ./test.sh): its defaults unless
    // the test names them.
    // {"deflate": false}: the client does not offer permessage-deflate (ws offers it by default).
    c.sdkArgs = { collection: col, url: target.toString(), WebSocket: deflate ? WebSocket : PlainWebSocket, ...sdkOptions };
    c.SDK = SDK;
    replicating = SDK.syncCollection(c.sdkArgs);
  } else if (stock) {
    replicating = replicateWithWebsocketServer(options);
  } else {
    replicating = replicateWithTimeout({ ...options, requestTimeout, retryTime });
  }
  c.replication = await withTimeout(replicating, timeout, `connect ${name}`);
  if (sdk && process.env.TESSERA_RXDB_TRACE_SDK === '1') traceSdk(c);
  c.replication.error$.subscribe((err) => {
    c.errors.push({ code: err && err.code, name: err && err.name, message: String((err && err.message) || err).slice(0, 300) });
  });
  if (!awaitInitial) return { ms: 0, count: 0 };
  await withTimeout(c.replication.awaitInitialReplication(), timeout, `initial pull of ${name}`);
  const ms = now() - started;
  const count = await col.count().exec();
  return { ms, count };
}

async function dump({ name }) {
  const c = client(name);
  const docs = await c.col.find().exec();
  const out = {};
  for (const d of docs) out[d.primary] = plain(d);
  return { docs: out, count: docs.length };
}

// A document as the client's storage keeps it, deleted or not (a tombstone keeps what it was given).
async function stored({ name, id }) {
  const [doc] = await client(name).col.storageInstance.findDocumentsById([id], true);
  return { doc: doc || null };
}

async function insert({ name, doc }) {
  await client(name).col.insert(doc);
  return {};
}

async function patch({ name, id, set = {}, unset = [] }) {
  const doc = await client(name).col.findOne(id).exec();
  if (!doc) throw new Error(`${name} has no document ${id}`);
  const base = doc.getLatest().version;
  await doc.incrementalModify((data) => {
    Object.assign(data, set);
    for (const key of unset) delete data[key];
    return data;
  });
  return { base };
}

// One local write of many documents (RxDB's bulkUpsert): one push of them all.
async function bulkPatch({ name, ids, set = {} }) {
  const docs = await client(name).col.findByIds(ids).exec();
  if (docs.size !== ids.length) throw new Error(`${name} has ${docs.size} of the ${ids.length} documents`);
  await client(name).col.bulkUpsert([...docs.values()].map((doc) => ({ ...doc.toMutableJSON(), ...set })));
  return {};
}

async function remove({ name, id }) {
  const doc = await client(name).col.findOne(id).exec();
  if (!doc) throw new Error(`${name} has no document ${id}`);
  await doc.remove();
  return {};
}

function matches(doc, expect) {
  return Object.entries(expect).every(([k, v]) => JSON.stringify(doc[k]) === JSON.stringify(v));
}

// Wait until a condition holds on a client: {count}, {id, fields} (a document has these values),
// {gone} (a document id is absent or deleted).
async function wait({ name, count, id, fields, gone, timeout = 20000 }) {
  const c = client(name);
  const deadline = now() + timeout;
  for (;;) {
    let ok = true;
    if (count !== undefined) ok = ok && (await c.col.count().exec()) === count;
    if (id !== undefined) {
      const doc = await c.col.findOne(id).exec();
      ok = ok && !!doc && matches(plain(doc), fields || {});
    }
    if (gone !== undefined) ok = ok && !(await c.col.findOne(gone).exec());
    if (ok) return { waited: timeout - (deadline - now()) };
    if (now() > deadline) {
      const doc = id !== undefined ? await c.col.findOne(id).exec() : null;
      throw new Error(
        `timeout after ${timeout} ms waiting on ${name} for ${JSON.stringify({ count, id, fields, gone })}; ` +
          `count=${await c.col.count().exec()} doc=${JSON.stringify(doc && plain(doc))} errors=${JSON.stringify(c.errors.slice(-3))}`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

// Wait until every named client holds document `id` at `version`; returns when each received it.
async function arrival({ names, id, version, timeout = 20000 }) {
  const key = `${id}@${version}`;
  const deadline = now() + timeout;
  const got = (n) => (raws.has(n) ? raws.get(n) : client(n)).received.get(key);
  for (;;) {
    const missing = names.filter((n) => got(n) === undefined);
    // `clock`: this clock minus the wall clock (Date.now), to place times taken by other processes.
    if (missing.length === 0) return { at: Object.fromEntries(names.map((n) => [n, got(n)])), clock: now() - Date.now() };
    if (now() > deadline) throw new Error(`timeout: ${missing.length} clients never got ${key} (e.g. ${missing[0]})`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function insync({ name, timeout = 20000 }) {
  await withTimeout(client(name).replication.awaitInSync(), timeout, `in sync ${name}`);
  return {};
}

// Edits of one field in quick succession, `gapMs` apart (0: back to back), as a user typing would.
async function burst({ name, id, field, values, gapMs = 0 }) {
  const doc = await client(name).col.findOne(id).exec();
  if (!doc) throw new Error(`${name} has no document ${id}`);
  const base = doc.getLatest().version;
  for (const [i, value] of values.entries()) {
    if (i > 0 && gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
    await doc.getLatest().incrementalPatch({ [field]: value });
  }
  return { base };
}

// The server's bytes to this client on its current connection vanish from now on (its requests
// still arrive): a connection that dies while the phone waits for an answer. A new connection works.
function mute({ name }) {
  for (const pair of client(name).tcp.pairs) pair.muted = true;
  return {};
}

// New connections of this client go to another server process (a load balancer's next pick).
function retarget({ name, port }) {
  client(name).tcp.targetPort = Number(port);
  return {};
}

// When each version of a document reached the client's collection: {version: ms}.
function versions({ name, id }) {
  const c = raws.has(name) ? raws.get(name) : client(name);
  const out = {};
  for (const [key, at] of c.received) {
    const [docId, version] = [key.slice(0, key.lastIndexOf('@')), key.slice(key.lastIndexOf('@') + 1)];
    if (docId === id) out[version] = at;
  }
  return { at: out };
}

// The SDK's pause/resume (the stock client's are RxDB's own).
async function pause({ name }) {
  await client(name).replication.pause();
  return {};
}

async function resume({ name }) {
  await client(name).replication.resume();
  return {};
}

// Stop the client's replication for good, as an app leaving the screen would (the database stays).
async function cancel({ name }) {
  await client(name).replication.cancel();
  return {};
}

// An SDK client's app goes away and comes back: its sync is canceled (socket closed), and a new one
// starts on the same local database, from where the last one stopped.
async function reopen({ name }) {
  const c = client(name);
  await c.replication.cancel();
  c.replication = await c.SDK.syncCollection(c.sdkArgs);
  if (process.env.TESSERA_RXDB_TRACE_SDK === '1') traceSdk(c);
  c.replication.error$.subscribe((err) => {
    c.errors.push({ code: err && err.code, name: err && err.name, message: String((err && err.message) || err).slice(0, 300) });
  });
  return {};
}

// The typed errors an SDK client reported: [{code, message}].
function errors({ name }) {
  return { errors: client(name).errors };
}

function traceNote(c, what) {
  if (!c.trace) c.trace = [];
  c.trace.push(`${(now() - c.openedAt).toFixed(0)} ${what}`);
  if (c.trace.length > 4000) c.trace.shift();
}

function traceSdk(c) {
  const conn = c.replication.connection;
  if (conn.traced) return;
  conn.traced = true;
  conn.connected$.subscribe((up) => traceNote(c, up ? 'connected' : 'disconnected'));
  const request = conn.request.bind(conn);
  conn.request = (collection, method, params, timeout) => {
    const what = method === 'masterWrite' ? params[0].map((r) => `${r.newDocumentState.id}:${r.assumedMasterState ? r.assumedMasterState.version : '-'}`).join(',') : JSON.stringify(params[0]);
    traceNote(c, `req ${method} ${what}`);
    return request(collection, method, params, timeout).then(
      (res) => {
        traceNote(c, `ans ${method} ${method === 'masterWrite' ? res.map((d) => `${d.id}@${d.version}`).join(',') : `${res.documents.length} docs ${JSON.stringify(res.checkpoint)}`}`);
        return res;
      },
      (err) => {
        traceNote(c, `err ${method} ${err.code}`);
        throw err;
      },
    );
  };
  const state = c.replication.replicationState;
  state.sent$.subscribe((d) => traceNote(c, `sent$ ${d.id}`));
  state.received$.subscribe((d) => traceNote(c, `received$ ${d.id}@${d.version}`));
  c.col.$.subscribe((ev) => traceNote(c, `fork ${ev.operation} ${ev.documentId}@${ev.documentData && ev.documentData.version}`));
}

async function trace({ name }) {
  const c = client(name);
  const inner = c.replication.replicationState.internalReplicationState;
  return { trace: c.trace || [], lastCheckpoint: inner.lastCheckpointDoc };
}

// What a client's replication is doing (for a test's failure message): RxDB's own counters and flags.
async function inspect({ name }) {
  const c = client(name);
  const state = c.replication.replicationState || c.replication;
  const inner = state.internalReplicationState;
  const conn = c.replication.connection;
  return {
    paused: state.isPaused(),
    stopped: state.isStopped(),
    active: inner ? { up: inner.events.active.up.getValue(), down: inner.events.active.down.getValue() } : null,
    stats: inner ? inner.stats : null,
    connected: conn ? conn.connected$.getValue() : null,
    pending: conn ? [...conn.pending.values()].map((e) => ({ method: e.frame.method, sent: e.sent })) : null,
    errors: c.errors.slice(-5),
  };
}

function offline({ name }) {
  client(name).tcp.cut();
  return {};
}

function online({ name }) {
  client(name).tcp.online = true;
  return {};
}

function stats({ name }) {
  const c = client(name);
  return { proxy: c.tcp ? { ...c.tcp.stats } : null, errors: c.errors };
}

async function close({ name }) {
  const c = client(name);
  await c.replication.cancel();
  await c.db.close();
  if (c.tcp) await c.tcp.close();
  clients.delete(name);
  return {};
}

// An HTTP request from this process (bench: the REST write whose fan-out is timed, on this clock).
function rest({ port, host, method, path, headers = {}, body }) {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const started = now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: {
          Host: host,
          ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json = null;
          try {
            json = JSON.parse(text);
          } catch {
            // not JSON: the text is returned
          }
          resolve({ status: res.statusCode, body: json ?? text, started, finished: now() });
        });
      },
    );
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

// A device speaking the same wire protocol without RxDB (bench only): RxDB's open core allows 13
// open collections per JS process (error COL23), so a crowd of 1,000 devices cannot all be RxDB
// clients on one machine. It pulls once and subscribes to the stream, as RxDB does on connect, and
// notes when each document version arrives.
const raws = new Map();

function openRaw({ name, url, collection, timeout = 30000, deflate = true }) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = new WebSocket(url, deflate ? {} : { perMessageDeflate: false });
      const c = { socket, received: new Map(), pulled: 0 };
      raws.set(name, c);
      const started = now();
      socket.on('open', () => {
        socket.send(JSON.stringify({ id: 'stream', collection, method: 'masterChangeStream$', params: [] }));
        socket.send(JSON.stringify({ id: 'pull', collection, method: 'masterChangesSince', params: [null, 1000] }));
      });
      socket.on('message', (data) => {
        const msg = JSON.parse(String(data));
        if (msg.id === 'pull') {
          c.pulled = msg.result.documents.length;
          resolve({ ms: now() - started, count: c.pulled });
        } else if (msg.id === 'stream' && msg.result && msg.result.documents) {
          const at = now();
          for (const doc of msg.result.documents) c.received.set(`${doc.id}@${doc.version}`, at);
        }
      });
      socket.on('error', reject);
    }),
    timeout,
    `connect raw ${name}`,
  );
}

// Pull a whole collection over the wire protocol as fast as the server answers (no RxDB storage):
// the server's side of an initial sync.
// {"deflate": false}: the client does not offer permessage-deflate (RxDB's reference server never
// compresses; npm ws, like browsers, offers it by default).
function pullRaw({ url, collection, batchSize = 1000, timeout = 600000, deflate = true }) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = new WebSocket(url, deflate ? {} : { perMessageDeflate: false });
      let started = 0;
      let count = 0;
      let requests = 0;
      const ask = (checkpoint) => {
        requests += 1;
        socket.send(JSON.stringify({ id: `p${requests}`, collection, method: 'masterChangesSince', params: [checkpoint, batchSize] }));
      };
      socket.on('open', () => {
        started = now();
        ask(null);
      });
      socket.on('message', (data) => {
        const msg = JSON.parse(String(data));
        if (msg.id !== `p${requests}`) return;
        if (!msg.result) {
          reject(new Error(JSON.stringify(msg).slice(0, 500)));
          return;
        }
        count += msg.result.documents.length;
        if (msg.result.documents.length < batchSize) {
          socket.close();
          resolve({ ms: now() - started, count, requests });
        } else {
          ask(msg.result.checkpoint);
        }
      });
      socket.on('error', reject);
    }),
    timeout,
    'raw pull',
  );
}

function closeRaw({ name }) {
  raws.get(name).socket.close();
  raws.delete(name);
  return {};
}

// CPU time of this Node process so far, in ms (user + system).
function cpu() {
  const used = process.cpuUsage();
  return { ms: (used.user + used.system) / 1000 };
}

function memory() {
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, clients: clients.size, raw: raws.size };
}

const COMMANDS = { rest, openRaw, closeRaw, pullRaw, open, dump, stored, insert, patch, bulkPatch, burst, remove, wait, arrival, insync, pause, resume, cancel, reopen, errors, inspect, trace, mute, retarget, versions, offline, online, stats, close, memory, cpu };

function reply(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const pending = new Set();
const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const task = handle(line);
  pending.add(task);
  task.finally(() => pending.delete(task));
});
async function handle(line) {
  if (!line.trim()) return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (err) {
    reply({ seq: null, ok: false, error: `bad command line: ${err.message}` });
    return;
  }
  const fn = COMMANDS[msg.cmd];
  if (msg.name && clients.has(msg.name)) traceNote(clients.get(msg.name), `cmd ${msg.cmd} ${JSON.stringify(msg.id || msg.set || '')}`);
  try {
    if (!fn) throw new Error(`unknown command ${msg.cmd}`);
    reply({ seq: msg.seq, ok: true, ...(await fn(msg)) });
  } catch (err) {
    reply({ seq: msg.seq, ok: false, error: String((err && err.stack) || err).slice(0, 2000) });
  }
}
lines.on('close', async () => {
  await Promise.allSettled([...pending]);
  for (const name of [...clients.keys()]) {
    try {
      await close({ name });
    } catch {
      // already broken: exiting anyway
    }
  }
  process.exit(0);
});
