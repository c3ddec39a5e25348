// --pg-lock-timeout: PostgreSQL's lock_timeout in a school's migration
// session, so that an ALTER TABLE queued behind a long transaction of the
// school's own traffic gives up (SQLSTATE 55P03) instead of making every
// later query of that school queue behind it. The statement is cancelled,
// its transaction rolled back, and the school tried again later.
import type { Knex } from "knex";
import { sleep } from "./db.js";
import { errorCode, TenantWorkError } from "./errors.js";

/** lock_not_available: what PostgreSQL raises when lock_timeout ends a wait. */
const LOCK_NOT_AVAILABLE = "55P03";

/** Sets lock_timeout for the rest of the session (0: leaves the server's own setting). */
export async function setLockTimeout(db: Knex, ms: number): Promise<void> {
  if (ms <= 0) return;
  await db.raw("select set_config('lock_timeout', ?, false)", [`${ms}ms`]);
}

/** Whether `error` (or what it wraps) is a lock wait ended by lock_timeout. */
export function isLockTimeout(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (errorCode(e) === LOCK_NOT_AVAILABLE) return true;
  }
  return false;
}

/** A migration stopped by --pg-lock-timeout; keeps the migrations that did stay applied (non-transactional ones). */
export class LockWaitError extends TenantWorkError {
  constructor(message: string, migrations: string[], options?: { cause?: unknown }) {
    super(message, migrations, options);
    this.name = "LockWaitError";
  }
}

interface Holder {
  pid: number;
  application_name: string;
  state: string | null;
  xact_seconds: number | null;
  query: string | null;
  relations: string | null;
}

/**
 * Sessions that most likely held the lock a migration waited for: in this
 * database, holding a lock on one of its tables, in a transaction that was
 * already open when the wait began (oldest first). PostgreSQL does not say
 * which lock a cancelled wait was for, so this is read right after the
 * failure, on the same connection: one query, no extra connection.
 */
async function likelyHolders(db: Knex, waitedMs: number): Promise<Holder[]> {
  const { rows } = await db.raw(
    `select a.pid, a.application_name, a.state,
            extract(epoch from clock_timestamp() - a.xact_start)::float8 as xact_seconds,
            -- Another session's SQL: its string literals masked (they may hold secrets).
            left(regexp_replace(regexp_replace(a.query, '''([^'']|'''')*''', '''***''', 'g'), '\\s+', ' ', 'g'), 60) as query,
            string_agg(distinct c.relname, ', ') as relations
       from pg_locks l
       join pg_stat_activity a on a.pid = l.pid
       join pg_class c on c.oid = l.relation
      where l.locktype = 'relation' and l.granted
        and l.database = (select oid from pg_database where datname = current_database())
        and l.pid <> pg_backend_pid()
        and c.relnamespace <> 'pg_catalog'::regnamespace and c.relkind in ('r', 'p', 'm', 'f')
        and a.xact_start <= clock_timestamp() - make_interval(secs => ?)
      group by a.pid, a.application_name, a.state, a.xact_start, a.query
      order by a.xact_start
      limit 2`,
    [waitedMs / 2000],
  );
  return rows as Holder[];
}

function describeHolder(h: Holder): string {
  const open = h.xact_seconds === null ? "" : `, transaction open ${Math.round(h.xact_seconds)} s`;
  const query = h.query ? `, last query "${h.query}"` : "";
  return `pid ${h.pid} (application "${h.application_name}", ${h.state ?? "unknown state"}${open}, holding ${h.relations}${query})`;
}

/**
 * `error` unchanged unless lock_timeout ended it; then an error that says the
 * migration waited for a lock and names the sessions that likely held it.
 */
export async function explainLockWait(db: Knex, error: unknown, timeoutMs: number): Promise<unknown> {
  if (!isLockTimeout(error)) return error;
  const holders = await likelyHolders(db, timeoutMs).catch(() => undefined);
  const who =
    holders === undefined
      ? "the session holding it could not be read"
      : holders.length === 0
        ? "the session holding it had finished by the time it was looked up"
        : `held by ${holders.map(describeHolder).join("; ")}`;
  const message = `${(error as Error).message}: waited longer than --pg-lock-timeout (${formatSeconds(timeoutMs)}) for a lock, ${who}; rolled back`;
  const partial = error instanceof TenantWorkError ? error.migrations : [];
  return new LockWaitError(message, partial, { cause: error });
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/**
 * Runs `fn`, and runs it again after a lock wait, up to `retries` times with
 * exponential backoff (1 s, 2 s, 4 s… with jitter, at most 10 s): the live
 * transaction in the way is usually gone by then.
 */
export async function retryLockWaits<T>(
  fn: () => Promise<T>,
  options: {
    retries: number;
    signal?: AbortSignal | undefined;
    onRetry?: (error: LockWaitError, attempt: number, delayMs: number) => void;
  },
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (!(error instanceof LockWaitError)) throw error;
      if (attempt > options.retries || options.signal?.aborted) {
        if (attempt > 1) error.message += ` (gave up after ${attempt} tries)`;
        throw error;
      }
      const delayMs = Math.min(10_000, Math.round(1000 * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5)));
      options.onRetry?.(error, attempt, delayMs);
      await sleep(delayMs);
    }
  }
}
