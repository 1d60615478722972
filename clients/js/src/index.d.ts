// Types of @tessera/sync (src/index.js).
import type { Observable, BehaviorSubject } from 'rxjs';
import type { RxCollection, RxConflictHandler, RxJsonSchema } from 'rxdb';
import type { RxReplicationState } from 'rxdb/plugins/replication';

export declare const DEFAULT_BATCH_SIZE: number;
export declare const DEFAULT_REQUEST_TIMEOUT: number;
export declare const DEFAULT_RETRY_TIME: number;
export declare const CLIENT_VERSION: string;

/** Codes of the client's own errors; anything else is the server's error frame code
 * (`unknown_collection`, `forbidden`, `invalid_params`, `server_error`, …). */
export type TesseraClientErrorCode =
  | 'timeout'
  | 'connection_lost'
  | 'canceled'
  | 'device_revoked'
  | 'pairing_failed'
  | 'invalid_request';

export declare class TesseraSyncError extends Error {
  readonly name: 'TesseraSyncError';
  readonly code: TesseraClientErrorCode | string;
  readonly status: number | null;
  /** false: retrying cannot help (revoked device, canceled sync, bad pairing code). */
  readonly retryable: boolean;
  constructor(code: string, message?: string, options?: { status?: number | null; retryable?: boolean });
}

/** A Tessera document: the record's fields plus the server's `version` and `updated_at`. */
export interface TesseraDocument {
  id: string;
  version?: number;
  updated_at?: string;
  [field: string]: unknown;
}

export interface TesseraField {
  key: string;
  type: string;
}

export declare function tesseraSchema(options: { fields: TesseraField[]; version?: number }): RxJsonSchema<TesseraDocument>;
export declare const tesseraConflictHandler: RxConflictHandler<TesseraDocument>;

export interface Pairing {
  /** The device token: shown once, store it (e.g. in the platform's secure storage). */
  token: string;
  websocketUrl: string;
  device: { id: number; name: string; role: string; user: string };
  collections: string[];
}

export declare function pairDevice(options: {
  /** The text of the console's QR code (a URL). */
  qr?: string;
  /** The workspace's address, with `pin`. */
  server?: string;
  code?: string;
  pin?: string;
  name?: string;
  clientVersion?: string;
  fetch?: typeof fetch;
}): Promise<Pairing>;

export declare class TesseraConnection {
  constructor(options: { url: string; token?: string; WebSocket?: unknown; reconnectDelay?: number; maxReconnectDelay?: number });
  readonly connected$: BehaviorSubject<boolean>;
  readonly error$: Observable<TesseraSyncError>;
  request<T = unknown>(collection: string, method: string, params: unknown[], timeout?: number): Promise<T>;
  close(): void;
}

export interface SyncOptions {
  collection: RxCollection<TesseraDocument>;
  /** `websocketUrl` from pairDevice. */
  url?: string;
  token?: string;
  /** The Tessera collection's slug when it differs from the RxDB collection's name. */
  remoteName?: string;
  /** Documents per pull and per push (default 1000, the server's per-write maximum). */
  batchSize?: number;
  /** Milliseconds to wait for each answer before the connection is given up (default 15000). */
  requestTimeout?: number;
  /** Milliseconds between retries of a failed pull or push (default 2000). */
  retryTime?: number;
  live?: boolean;
  /** A connection shared by several collections (closed by its owner). */
  connection?: TesseraConnection;
  /** The WebSocket class where there is no global one (Node 20: the `ws` package). */
  WebSocket?: unknown;
  replicationIdentifier?: string;
}

export interface TesseraSync {
  readonly replicationState: RxReplicationState<TesseraDocument, unknown>;
  readonly connection: TesseraConnection;
  /** Every failure, typed; the sync keeps retrying unless `retryable` is false. */
  readonly error$: Observable<TesseraSyncError>;
  awaitInitialReplication(): Promise<void>;
  /** Local changes are on the server and the server's are here; waits while paused. */
  awaitInSync(): Promise<true>;
  /** Stop syncing for now; local changes wait, none is dropped (an answer already on its way is
   * still taken in). Use this, never `replicationState.pause()`: see the README. */
  pause(): Promise<void>;
  /** Send what waited and pull what changed on the server meanwhile. */
  resume(): Promise<void>;
  /** Stop for good and close the socket. */
  cancel(): Promise<void>;
}

export declare function syncCollection(options: SyncOptions): Promise<TesseraSync>;
