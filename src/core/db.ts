import type { Knex } from "knex";
import pg from "pg";
import { type ConnectionSettings, pgClientConfig } from "./connection.js";
import { errorCode } from "./errors.js";
import { cacheScramKeys } from "./scram.js";
import { rememberBindings } from "./sql-literals.js";

// PostgreSQL returns bigint counts and ids as strings by default; our counts are small.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));
cacheScramKeys();

/** One connection for the length of `fn`, always closed. */
export async function withClient<T>(settings: ConnectionSettings, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(pgClientConfig(settings));
  // An error after connect (server shutdown) must not crash the process; the
  // query in flight rejects with it.
  client.on("error", () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
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
  const db = knexModule.knex({
    client: "pg",
    connection: pgClientConfig(settings) as Knex.PgConnectionConfig,
    // One connection: the session that holds the tenant's advisory lock is the
    // one that migrates, and a tenant never costs more than one connection.
    pool: { min: 0, max: 1, idleTimeoutMillis: 3_600_000 },
    acquireConnectionTimeout: 60_000,
    log: silentLogger,
  });
  // PostgreSQL's message may repeat a bound value (`invalid input syntax …: "…"`): describeError masks it.
  db.on("query-error", (error: unknown, query: { bindings?: unknown }) => rememberBindings(error, query.bindings));
  try {
    return await fn(db);
  } finally {
    await db.destroy();
  }
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
  // Our own errors wrap PostgreSQL's (a failed migration keeps it as `cause`).
  const cause = (error as { cause?: unknown } | null)?.cause;
  if (cause !== undefined && cause !== error && isTransient(cause)) return true;
  const code = errorCode(error);
  if (code && TRANSIENT_CODES.has(code)) return true;
  const message = error instanceof Error ? error.message : "";
  return /Connection terminated unexpectedly|timeout expired|Connection terminated due to connection timeout/i.test(
    message,
  );
}

export interface RetryOptions {
  retries: number;
  /** First delay; doubled on each try, with jitter, capped at 5 s. */
  baseDelayMs?: number;
  signal?: AbortSignal | undefined;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/** Runs `fn`, trying transient faults again with bounded exponential backoff. */
export async function withRetries<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt > options.retries || !isTransient(error) || options.signal?.aborted) throw error;
      const base = (options.baseDelayMs ?? 200) * 2 ** (attempt - 1);
      const delayMs = Math.min(5000, Math.round(base * (0.75 + Math.random() * 0.5)));
      options.onRetry?.(error, attempt, delayMs);
      await sleep(delayMs);
    }
  }
}

/**
 * Takes a session advisory lock on `db`'s single connection, polling so that
 * the wait is bounded and reported: `onWait` is called once, when another
 * session holds the lock. Returns false when `timeoutMs` passed first.
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
