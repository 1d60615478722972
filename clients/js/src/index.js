// @tessera/sync: RxDB replication of Tessera collections over Tessera's /sync/v1/ websocket.
//
// RxDB's stock websocket client (plugin replication-websocket) speaks the same wire format, but an
// app built on it as is loses data or stalls: a request in flight when the connection drops is never
// answered (replication stops for good), error frames reach RxDB as `undefined`, cancel() leaves the
// socket open, and the default batch size makes the first sync of a large collection slow. This
// module is that client with those holes closed; the wire format is unchanged.

import { BehaviorSubject, Subject } from 'rxjs';
import { replicateRxCollection } from 'rxdb/plugins/replication';

export const DEFAULT_BATCH_SIZE = 1000; // the server's per-write maximum; pulls ~3x faster than RxDB's 100
export const DEFAULT_REQUEST_TIMEOUT = 15000;
export const DEFAULT_RETRY_TIME = 2000;
export const CLIENT_VERSION = '@tessera/sync 0.1.0';
const CLOSE_REVOKED = 4401;
const CLOSE_ELSEWHERE = 4421; // the workspace is served by another cell (moved): reconnect where told

/** An error the server sent (its `code`), or one of the client's own: `timeout`, `connection_lost`,
 * `canceled`, `device_revoked`, `pairing_failed`. */
export class TesseraSyncError extends Error {
  constructor(code, message, { status = null, retryable = true } = {}) {
    super(message || code);
    this.name = 'TesseraSyncError';
    this.code = code;
    this.status = status;
    this.retryable = retryable;
  }
}

const TYPES = {
  text: 'string',
  long_text: 'string',
  email: 'string',
  url: 'string',
  date: 'string',
  datetime: 'string',
  choice: 'string',
  integer: 'integer',
  number: 'number',
  boolean: 'boolean',
};

/** An RxDB schema for a Tessera collection: `id`, the server's `version` and `updated_at`, and the
 * collection's fields ({key, type} as in GET /api/v1/collections). */
export function tesseraSchema({ fields = [], version = 0 } = {}) {
  const properties = {
    id: { type: 'string', maxLength: 64 },
    version: { type: 'integer' },
    updated_at: { type: 'string' },
  };
  for (const field of fields) {
    properties[field.key] = TYPES[field.type] ? { type: TYPES[field.type] } : {};
  }
  return { version, primaryKey: 'id', type: 'object', properties, required: ['id'], additionalProperties: true };
}

/** The server already merged, field by field (a delete wins over an edit; the same field changed on
 * both sides keeps the value that reached the server first): its answer is the state to keep. Two
 * states are equal when the server's version and every field are. */
export const tesseraConflictHandler = {
  isEqual(a, b) {
    return stableJson(strip(a)) === stableJson(strip(b));
  },
  resolve(input) {
    return input.realMasterState;
  },
};

function strip(doc) {
  const out = {};
  for (const [k, v] of Object.entries(doc || {})) {
    if (k === '_deleted' ? v : !k.startsWith('_') && v !== null && v !== undefined) out[k] = v;
  }
  return out;
}

function stableJson(value) {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson(value[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Pair this device: with the text of the console's QR code (`qr`), or the server's address and the
 * 8-digit PIN (`server`, `pin`). Returns {token, websocketUrl, device, collections}; store the token
 * (it is shown once) and pass it with websocketUrl to syncCollection. */
export async function pairDevice({ qr, server, code, pin, name, clientVersion = CLIENT_VERSION, fetch: fetchImpl } = {}) {
  const doFetch = fetchImpl || globalThis.fetch;
  let url;
  if (qr) {
    const parsed = new URL(qr);
    code = parsed.searchParams.get('code') || code;
    url = `${parsed.origin}${parsed.pathname}`;
  } else if (server) {
    url = new URL('/sync/v1/pair', server).toString();
  } else {
    throw new TesseraSyncError('invalid_request', 'Pair with the QR code text (qr) or the server address and PIN.', { retryable: false });
  }
  let response;
  try {
    response = await doFetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ code, pin: pin && String(pin).replace(/\s+/g, ''), name: name || 'Phone', client_version: clientVersion }),
    });
  } catch (err) {
    throw new TesseraSyncError('connection_lost', `Could not reach ${url}: ${err && err.message}`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: reported by status below
  }
  if (response.status !== 201 || !body || !body.token) {
    throw new TesseraSyncError((body && body.code) || 'pairing_failed', (body && (body.detail || body.title)) || `HTTP ${response.status}`, {
      status: response.status,
      retryable: response.status === 429 || response.status >= 500,
    });
  }
  return { token: body.token, websocketUrl: body.websocket_url, device: body.device, collections: body.collections || [] };
}

function socketUrl(url, token) {
  const parsed = new URL(url);
  if (token) parsed.searchParams.set('token', token);
  return parsed.toString();
}

/** One websocket to the server, reconnected until closed; requests answered by id or failed by
 * timeout or by the connection's loss (never left waiting). Shared by every collection synced
 * through it. */
export class TesseraConnection {
  constructor({ url, token, WebSocket: WebSocketImpl, reconnectDelay = 1000, maxReconnectDelay = 15000 } = {}) {
    this.url = socketUrl(url, token);
    this.token = token || new URL(this.url).searchParams.get('token');
    this.WebSocket = WebSocketImpl || globalThis.WebSocket;
    if (!this.WebSocket) throw new TesseraSyncError('invalid_request', 'No WebSocket here: pass one (e.g. from the `ws` package).', { retryable: false });
    this.reconnectDelay = reconnectDelay;
    this.maxReconnectDelay = maxReconnectDelay;
    this.attempts = 0;
    this.pending = new Map();
    this.counter = 0;
    this.closed = false;
    this.socket = null;
    this.timer = null;
    this.messages$ = new Subject();
    this.connected$ = new BehaviorSubject(false);
    this.error$ = new Subject();
    this.open();
  }

  open() {
    if (this.closed) return;
    const socket = new this.WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      if (socket !== this.socket) return;
      this.attempts = 0;
      // Requests made while there was no connection go now (they were never sent).
      for (const [id, entry] of this.pending) {
        if (!entry.sent) {
          socket.send(JSON.stringify(entry.frame));
          entry.sent = true;
        }
      }
      this.connected$.next(true);
    };
    socket.onmessage = (event) => {
      if (socket !== this.socket) return;
      let msg;
      try {
        msg = JSON.parse(typeof event.data === 'string' ? event.data : String(event.data));
      } catch {
        return;
      }
      if (msg.id === 'workspace_elsewhere' && msg.error) {
        this.moveTo(msg.error.url);
        return;
      }
      const waiting = this.pending.get(msg.id);
      if (waiting && waiting.sent) {
        this.pending.delete(msg.id);
        clearTimeout(waiting.timer);
        if (msg.error) waiting.reject(new TesseraSyncError(msg.error.code || 'server_error', msg.error.message));
        else waiting.resolve(msg.result);
        return;
      }
      this.messages$.next(msg);
    };
    socket.onerror = () => {}; // followed by onclose
    socket.onclose = (event) => {
      if (event && event.code === CLOSE_ELSEWHERE) this.moveTo(String(event.reason || '').split(' ')[1]);
      this.drop(socket, event && event.code);
    };
  }

  /** The server says the workspace lives at another address now (moved to another cell): every
   * connection from now on goes there, with the same device token. Only ws:// or wss:// addresses. */
  moveTo(url) {
    if (!url || !/^wss?:\/\//.test(url)) return;
    this.url = socketUrl(url, this.token);
    this.moved = true;
  }

  /** The connection is gone (closed, or given up): what was sent on it fails at once, what was not
   * sent yet waits for the next one, which opens after a backoff. */
  drop(socket, code) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.connected$.next(false);
    const lost = new TesseraSyncError('connection_lost', 'The connection closed before the answer came.');
    for (const [id, entry] of [...this.pending]) {
      if (entry.sent) {
        this.pending.delete(id);
        clearTimeout(entry.timer);
        entry.reject(lost);
      }
    }
    try {
      // A connection given up may never finish a close handshake (nothing comes back): end it now.
      if (typeof socket.terminate === 'function') socket.terminate();
      else socket.close(4000, 'given up');
    } catch {
      // already closed
    }
    if (code === CLOSE_REVOKED) {
      this.closed = true;
      this.failPending(new TesseraSyncError('device_revoked', 'This device was revoked: pair it again.', { retryable: false }));
      this.error$.next(new TesseraSyncError('device_revoked', 'This device was revoked: pair it again.', { retryable: false }));
      return;
    }
    if (!this.closed && code === CLOSE_ELSEWHERE && this.moved) {
      this.moved = false;
      this.attempts = 0;
      this.timer = setTimeout(() => this.open(), 0); // at once: the new address is known to serve
      return;
    }
    if (!this.closed) {
      const delay = Math.min(this.maxReconnectDelay, this.reconnectDelay * 2 ** Math.min(this.attempts, 4));
      this.attempts += 1;
      this.timer = setTimeout(() => this.open(), delay * (0.75 + Math.random() / 2));
    }
  }

  failPending(error) {
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const w of waiting) {
      clearTimeout(w.timer);
      w.reject(error);
    }
  }

  send(frame) {
    const socket = this.socket;
    if (!socket || socket.readyState !== 1) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  /** Send a request; its answer, or a TesseraSyncError (timeout, connection_lost, the server's
   * error). Made while disconnected, it is sent when the connection is back (within the timeout). */
  request(collection, method, params, timeout = DEFAULT_REQUEST_TIMEOUT) {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new TesseraSyncError('canceled', 'The connection was closed.', { retryable: false }));
      const id = `r${(this.counter += 1)}`;
      const entry = { resolve, reject, sent: false, frame: { id, collection, method, params }, timer: null };
      entry.timer = setTimeout(() => {
        if (!this.pending.delete(id)) return;
        reject(new TesseraSyncError('timeout', `No answer to ${method} within ${timeout} ms.`));
        // A connection that stops answering is as good as dead (a phone that walked out of
        // coverage often learns it only now): give it up and open a fresh one.
        if (entry.sent && this.socket) this.drop(this.socket, 4000);
      }, timeout);
      this.pending.set(id, entry);
      entry.sent = this.send(entry.frame);
    });
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.failPending(new TesseraSyncError('canceled', 'The connection was closed.', { retryable: false }));
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000, 'closed by the app');
    }
    this.connected$.next(false);
    this.connected$.complete();
    this.messages$.complete();
    this.error$.complete();
  }
}

/** Sync one RxDB collection with the Tessera collection of the same name (or `remoteName`). */
export async function syncCollection({
  collection,
  url,
  token,
  remoteName,
  batchSize = DEFAULT_BATCH_SIZE,
  requestTimeout = DEFAULT_REQUEST_TIMEOUT,
  retryTime = DEFAULT_RETRY_TIME,
  live = true,
  connection,
  WebSocket: WebSocketImpl,
  replicationIdentifier,
} = {}) {
  const name = remoteName || collection.name;
  const conn = connection || new TesseraConnection({ url, token, WebSocket: WebSocketImpl });
  const stream$ = new Subject();
  const errors$ = new Subject();
  // Pausing never reaches RxDB's own pause(): a push whose answer comes back while RxDB is paused is
  // dropped unread (its rows are not marked as pushed), and the next push cycle — the documents a pull
  // just wrote, which have nothing to push — moves RxDB's push checkpoint past those rows. The server
  // has them, but the phone never adopts its answer and never pulls them again: it stays on stale
  // versions for good. So the SDK pauses at its own door: requests wait in the handlers until resume
  // (nothing new is sent), while an answer already on its way is taken in as usual.
  let paused = false;
  let canceled = false;
  let resumed = null; // a promise while paused
  let resumeNow = () => {};
  const running = async () => {
    while (resumed) await resumed;
    if (canceled) throw new TesseraSyncError('canceled', 'Sync was canceled.', { retryable: false });
  };

  const state = replicateRxCollection({
    collection,
    replicationIdentifier: replicationIdentifier || `tessera-${name}`,
    live,
    retryTime,
    // RxDB would pause a hidden tab's replication with the same pause() (see above).
    toggleOnDocumentVisible: false,
    pull: {
      batchSize,
      stream$: stream$.asObservable(),
      handler: async (checkpoint, size) => {
        await running();
        return conn.request(name, 'masterChangesSince', [checkpoint, size], requestTimeout);
      },
    },
    push: {
      batchSize: Math.min(batchSize, 1000),
      handler: async (rows) => {
        // While paused the rows wait here, still RxDB's to push: none is sent, none is dropped.
        await running();
        return conn.request(name, 'masterWrite', [rows], requestTimeout);
      },
    },
  });
  state.error$.subscribe((err) => errors$.next(typed(err)));
  // RxDB 17.6 takes the live changes waiting in its pull queue together, up to the first RESYNC, and
  // discards that RESYNC when changes came before it: the pull never happens and whatever it was for
  // (changes missed while paused or offline, a gap the server saw) never arrives. Sent twice, one of
  // the two always runs; the other is skipped as older than the pull that ran.
  const resync = () => {
    state.reSync();
    state.reSync();
  };

  const subs = [
    conn.messages$.subscribe((msg) => {
      if (msg.collection !== name || msg.id !== 'stream') return;
      if (msg.error) errors$.next(new TesseraSyncError(msg.error.code, msg.error.message));
      // While paused live changes are not taken in; resume() pulls everything since the checkpoint.
      else if (msg.result === 'RESYNC' && !paused) {
        stream$.next('RESYNC');
        stream$.next('RESYNC');
      } else if (msg.result !== undefined && !paused) stream$.next(msg.result);
    }),
    conn.connected$.subscribe((up) => {
      if (!up) return;
      // (Re)connected: subscribe to live changes, and pull what was missed meanwhile.
      conn.send({ id: 'stream', collection: name, method: 'masterChangeStream$', params: [] });
      if (!paused) resync();
    }),
    conn.error$.subscribe((err) => errors$.next(err)),
  ];

  const sync = {
    replicationState: state,
    connection: conn,
    error$: errors$.asObservable(),
    awaitInitialReplication: () => state.awaitInitialReplication(),
    /** Resolves when every local change is on the server and the server's changes are here. While
     * paused it waits for resume() (a paused sync is not in sync). */
    async awaitInSync() {
      for (;;) {
        if (resumed) await resumed;
        await state.awaitInSync();
        if (!paused) return true;
      }
    },
    /** Stop sending and receiving; local changes wait, none is dropped. An answer already on its way
     * is still taken in. */
    async pause() {
      if (paused || canceled) return;
      paused = true;
      resumed = new Promise((resolve) => {
        resumeNow = resolve;
      });
    },
    /** Send what waited, and pull what changed on the server meanwhile. */
    async resume() {
      if (!paused) return;
      paused = false;
      resumed = null;
      resumeNow();
      resync();
    },
    /** Stop for good and close the socket (unless it was passed in as `connection`). */
    async cancel() {
      canceled = true;
      for (const sub of subs) sub.unsubscribe();
      if (paused) {
        paused = false;
        resumed = null;
        resumeNow();
      }
      await state.cancel();
      if (!connection) conn.close();
      stream$.complete();
      errors$.complete();
    },
  };
  await state.startPromise;
  return sync;
}

function typed(err) {
  if (err instanceof TesseraSyncError) return err;
  // RxDB wraps handler errors (RC_PULL, RC_PUSH): the first cause that is ours tells what happened.
  const causes = (err && err.parameters && err.parameters.errors) || [];
  for (const cause of causes) {
    if (cause && cause.code && cause.name === 'TesseraSyncError') {
      return new TesseraSyncError(cause.code, cause.message);
    }
  }
  const found = causes.find((c) => c && typeof c.code === 'string' && c.message);
  const e = new TesseraSyncError(found ? found.code : (err && err.code) || 'sync_error', String((err && err.message) || err));
  e.cause = err;
  return e;
}
