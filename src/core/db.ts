import type { Knex } from "knex";
import pg from "pg";
import { type ConnectionSettings, pgClientConfig } from "./connection.js";
import { describeError, errorCode } from "./errors.js";
import { CachingClient } from "./scram.js";
import { rememberBindings } from "./sql-literals.js";

/**
 * Type parsing of the tool's own connections: bigint counts as numbers (ours
 * are small). Per client, never pg's global parsers: a migration run by knex,
 * and a library user's pg, get what plain pg gives (a bigint is a string).
 */
const toolTypes = new pg.TypeOverrides();
toolTypes.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

/** node-postgres options of the tool's own connections (catalog, admin, status reads); never knex's. */
export function toolClientConfig(settings: ConnectionSettings): pg.ClientConfig {
  return { ...pgClientConfig(settings), types: toolTypes };
}

/** A pool of the tool's own connections, with its type parsing and the SCRAM key cache. */
export function toolPool(settings: ConnectionSettings, options: pg.PoolConfig): pg.Pool {
  return new pg.Pool({ ...toolClientConfig(settings), ...options, Client: CachingClient });
}

/** One connection for the length of `fn`, always closed. */
export async function withClient<T>(settings: ConnectionSettings, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await openClient(settings);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * A connected client of the tool's own (its type parsing, the SCRAM key
 * cache) that reports a lost connection to its queries, never as an
 * unhandled 'error' event (a server shutdown must not crash the process).
 */
export async function openClient(settings: ConnectionSettings): Promise<pg.Client> {
  const client = new CachingClient(toolClientConfig(settings));
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw error;
  }
  return client;
}

const silentLogger = {
  warn() {},
  error() {},
  debug() {},
  deprecate() {},
  log() {},
};

/** A knex instance with a single connection, destroyed when `fn` ends. */
export async function withKnex<T>(settings: ConnectionSettings, fn: (db: Knex) => Promise<T>): Promise<T> {
  // knex is loaded only when a database needs a migrator: an up-to-date fleet never pays for it.
  const { default: knexModule } = await import("knex");
  // The first sign that the connection was lost (the server went away, the
  // backend was terminated): knex reports only its failed ROLLBACK afterwards.
  let lost: unknown;
  const db = knexModule.knex({
    client: "pg",
    connection: pgClientConfig(settings) as Knex.PgConnectionConfig,
    // One connection: the session that holds the tenant's advisory lock is the
    // one that migrates, and a tenant never costs more than one connection.
    pool: {
      min: 0,
      max: 1,
      idleTimeoutMillis: 3_600_000,
      afterCreate: (connection: pg.Client, done: (error: Error | null, connection: pg.Client) => void) => {
        connection.on("error", (error) => {
          lost ??= error;
        });
        done(null, connection);
      },
    },
    acquireConnectionTimeout: 60_000,
    log: silentLogger,
  });
  db.on("query-error", (error: unknown, query: { bindings?: unknown }) => {
    if (isConnectionLoss(error)) lost ??= error;
    // PostgreSQL's message may repeat a bound value (`invalid input syntax …: "…"`): describeError masks it.
    rememberBindings(error, query.bindings);
  });
  try {
    return await fn(db);
  } catch (error) {
    throw lost === undefined ? error : namingLostConnection(error, lost);
  } finally {
    await db.destroy();
  }
}

/** SQLSTATEs and messages that say the session is gone (its transaction rolled back by the server). */
const CONNECTION_LOSS_CODES = new Set(["57P01", "57P02", "57P03", "08000", "08003", "08006", "ECONNRESET", "EPIPE"]);
const CONNECTION_LOSS_MESSAGE =
  /Connection terminated|not queryable|Client was closed|Connection ended unexpectedly|connection error/i;

/** Whether `error` (or what it wraps) says the connection was lost. */
export function isConnectionLoss(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = errorCode(e);
    if (code && CONNECTION_LOSS_CODES.has(code)) return true;
    if (e instanceof Error && CONNECTION_LOSS_MESSAGE.test(e.message)) return true;
    if ((e as { lostConnection?: unknown }).lostConnection !== undefined) return true;
  }
  return false;
}

/** knex's wrapper of a query on a dead connection ("ROLLBACK - Client has encountered a connection error …"). */
const DEAD_CLIENT_MESSAGE =
  /(?:[A-Z][A-Za-z ]* - )?(?:Client has encountered a connection error and is not queryable|Client was closed and is not queryable|Connection terminated(?: unexpectedly)?)/;

/**
 * The error a lost connection left, naming the real cause instead of knex's
 * failed ROLLBACK on the dead connection; marked so that it is retried.
 */
function namingLostConnection(error: unknown, lost: unknown): unknown {
  if (!(error instanceof Error) || !isConnectionLoss(error)) return error;
  const cause = `connection lost: ${describeError(lost)}`;
  if (DEAD_CLIENT_MESSAGE.test(error.message) && !error.message.includes(cause)) {
    error.message = error.message.replace(DEAD_CLIENT_MESSAGE, cause);
  }
  Object.assign(error, { lostConnection: lost });
  return error;
}

// Faults worth trying again: the server is starting, stopping or full, or a
// transaction lost a race. Anything else is the migration's own problem.
const TRANSIENT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "53300", // too_many_connections
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "40001", // serialization_failure
  "40P01", // deadlock_detected
  "08000",
  "08003",
  "08006", // connection_exception family
]);

export function isTransient(error: unknown): boolean {
  return transientAlongCauses(error, new Set());
}

function transientAlongCauses(error: unknown, seen: Set<unknown>): boolean {
  // Our own errors wrap PostgreSQL's (a failed migration keeps it as `cause`); `seen` ends a cycle of causes.
  seen.add(error);
  const cause = (error as { cause?: unknown } | null)?.cause;
  if (cause !== undefined && !seen.has(cause) && transientAlongCauses(cause, seen)) return true;
  const code = errorCode(error);
  if (code && TRANSIENT_CODES.has(code)) return true;
  // A session that was lost: its transaction was rolled back by the server, so trying again is safe.
  if ((error as { lostConnection?: unknown } | null)?.lostConnection !== undefined) return true;
  const message = error instanceof Error ? error.message : "";
  return /Connection terminated|not queryable|Connection ended unexpectedly|timeout expired|the database system is (starting up|shutting down|in recovery mode)/i.test(
    message,
  );
}

export interface RetryOptions {
  retries: number;
  /** First delay; doubled on each try, with jitter, capped at 5 s. */
  baseDelayMs?: number;
  /**
   * "Too many connections" (53300) is waited out without using up `retries`,
   * polling for at most this long in all (60 s unless told).
   */
  busyTimeoutMs?: number;
  signal?: AbortSignal | undefined;
  /** Only errors this accepts are tried again (besides being transient). */
  retryIf?: (error: unknown) => boolean;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/**
 * The default backoff: 0.5 s doubled to at most 5 s. With the default of 10
 * retries that is about 37 s of waiting in all: longer than a server takes to
 * restart and recover from a crash (about 30 s).
 */
export const RETRY_BASE_DELAY_MS = 500;
const RETRY_MAX_DELAY_MS = 5000;

/** About how long `retries` retries wait in all with the default backoff (its jitter averages out). */
export function retryWaitMs(retries: number): number {
  let total = 0;
  for (let attempt = 1; attempt <= retries; attempt++) {
    total += Math.min(RETRY_MAX_DELAY_MS, RETRY_BASE_DELAY_MS * 2 ** (attempt - 1));
  }
  return total;
}

/** Runs `fn`, trying transient faults again with bounded exponential backoff. */
export async function withRetries<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  const busyDeadline = Date.now() + (options.busyTimeoutMs ?? 60_000);
  let busyDelay = 100;
  for (let attempt = 1; ; ) {
    try {
      return await fn();
    } catch (error) {
      if (!isTransient(error) || options.signal?.aborted || (options.retryIf && !options.retryIf(error))) throw error;
      if (isTooManyConnections(error) && Date.now() < busyDeadline) {
        // The server is full: someone else's connections, not ours, so it costs no retry.
        busyDelay = Math.min(busyDelay * 2, 1000);
        const delayMs = Math.min(Math.round(busyDelay * (0.75 + Math.random() * 0.5)), busyDeadline - Date.now());
        options.onRetry?.(error, 0, delayMs);
        await sleep(delayMs);
        continue;
      }
      if (attempt > options.retries) throw error;
      const base = (options.baseDelayMs ?? RETRY_BASE_DELAY_MS) * 2 ** (attempt - 1);
      const delayMs = Math.min(RETRY_MAX_DELAY_MS, Math.round(base * (0.75 + Math.random() * 0.5)));
      options.onRetry?.(error, attempt, delayMs);
      attempt++;
      await sleep(delayMs);
    }
  }
}

function isTooManyConnections(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (errorCode(e) === "53300") return true;
  }
  return false;
}

/**
 * Takes a session advisory lock on `db`'s single connection, polling so that
 * the wait is bounded and reported: `onWait` is called once, when another
 * session holds the lock. `timed-out` when `timeoutMs` passed first,
 * `interrupted` when `signal` was aborted while waiting.
 */
export async function acquireAdvisoryLock(
  db: Knex,
  key: number,
  timeoutMs: number,
  onWait: () => void,
  signal?: AbortSignal,
): Promise<"acquired" | "timed-out" | "interrupted"> {
  const deadline = Date.now() + timeoutMs;
  let waited = false;
  for (let delay = 25; ; delay = Math.min(delay * 2, 500)) {
    const { rows } = await db.raw("select pg_try_advisory_lock(?) as ok", [key]);
    if (rows[0]?.ok) return "acquired";
    // An interrupt ends the wait: nothing has started, so nothing needs finishing.
    if (signal?.aborted) return "interrupted";
    const left = deadline - Date.now();
    if (left <= 0) return "timed-out";
    if (!waited) {
      waited = true;
      onWait();
    }
    await sleep(Math.min(delay, left));
  }
}

/**
 * Sets knex's lock flag back to 0; true when it was set. Call it only
 * while holding the advisory lock that every run of ours takes first: then a
 * flag that is still set was left by a process that is gone.
 */
export async function clearStaleKnexLock(db: Knex | pg.Client): Promise<boolean> {
  const sql = "update knex_migrations_lock set is_locked = 0 where is_locked = 1";
  try {
    const result = "raw" in db ? await db.raw(sql) : await db.query(sql);
    return (result.rowCount ?? 0) > 0;
  } catch (error) {
    if (errorCode(error) === "42P01") return false;
    throw error;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
