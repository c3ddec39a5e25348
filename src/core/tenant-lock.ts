import type { Knex } from "knex";
import type pg from "pg";
import type { ConnectionSettings } from "./connection.js";
import { acquireAdvisoryLock, clearStaleKnexLock, withClient, withKnex } from "./db.js";
import { TenantSkipped } from "./errors.js";
import { TENANT_LOCK_KEY } from "./lock-keys.js";
import { explainLockWait, setLockTimeout } from "./lock-wait.js";
import type { TenantJob } from "./tenant-job.js";

/**
 * Runs `fn` on a single-connection knex holding the tenant's advisory lock.
 * Waits for another run (bounded by lockTimeoutMs); once held, a knex lock
 * flag that is still set was left by a process that is gone, and is cleared
 * (unless `keepKnexFlag`: a rehearsal changes nothing). The session's
 * lock_timeout is --pg-lock-timeout; a statement it stopped fails with an
 * error that names the lock wait.
 */
export async function withTenantLock<T>(
  job: TenantJob,
  fn: (db: Knex) => Promise<T>,
  options: { fresh?: boolean; keepKnexFlag?: boolean } = {},
): Promise<T> {
  return withKnex(job.placement.settings, async (db) => {
    await acquireTenantLock(db, job);
    try {
      await setLockTimeout(db, job.pgLockTimeoutMs);
      // A database this run just created has no knex tables to clear.
      const cleared = !options.fresh && !options.keepKnexFlag && (await clearStaleKnexLock(db));
      if (cleared) {
        job.emit({
          type: "notice",
          tenant: job.tenant,
          message: `${job.tenant.database}: cleared a knex migration lock left by a process that is gone`,
        });
      }
      return await fn(db);
    } catch (error) {
      throw await explainLockWait(db, error, job.pgLockTimeoutMs);
    } finally {
      await db.raw("select pg_advisory_unlock(?)", [TENANT_LOCK_KEY]).catch(() => {});
    }
  });
}

async function acquireTenantLock(db: Knex, job: TenantJob): Promise<void> {
  const seconds = Math.round(job.lockTimeoutMs / 1000);
  const lock = await acquireAdvisoryLock(
    db,
    TENANT_LOCK_KEY,
    job.lockTimeoutMs,
    () =>
      job.emit({
        type: "notice",
        tenant: job.tenant,
        message: `${job.tenant.database}: another run is working on it; waiting (up to ${seconds} s)`,
      }),
    job.signal,
  );
  if (lock === "interrupted")
    throw new TenantSkipped(`${job.tenant.database}: interrupted while waiting for another run`);
  if (lock === "timed-out") {
    throw new Error(
      `another tenant-migrate run is working on ${job.tenant.database}; gave up after waiting ${seconds} s (--lock-timeout)`,
    );
  }
}

/** Whether a tenant-migrate run holds this tenant's advisory lock right now. */
export async function heldByARun(client: pg.Client): Promise<boolean> {
  const { rows } = await client.query<{ held: boolean }>(
    `select exists (
       select 1 from pg_locks l join pg_database d on d.oid = l.database
        where l.locktype = 'advisory' and d.datname = current_database() and l.granted
          and l.classid = ($1::bigint >> 32)::oid and l.objid = ($1::bigint & 4294967295)::oid and l.objsubid = 1
     ) as held`,
    [TENANT_LOCK_KEY],
  );
  return rows[0]?.held === true;
}

export type UnlockResult = "unlocked" | "not-locked";

/** Clears knex's lock flag, unless a live run holds the tenant. */
export async function unlockTenant(settings: ConnectionSettings, database: string): Promise<UnlockResult> {
  return withClient(settings, async (client) => {
    const { rows } = await client.query<{ ok: boolean }>("select pg_try_advisory_lock($1) as ok", [TENANT_LOCK_KEY]);
    if (!rows[0]?.ok) {
      throw new Error(`a tenant-migrate run is working on ${database} right now; its lock is not stale`);
    }
    return (await clearStaleKnexLock(client)) ? "unlocked" : "not-locked";
  });
}
