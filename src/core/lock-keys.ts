// Every PostgreSQL advisory lock the tool takes, in one place.
//
// Advisory locks are per database: a lock taken in one database never meets
// one taken in another. Within a database PostgreSQL keeps two key spaces
// apart, as pg_locks shows: a single bigint key (pg_advisory_lock(bigint))
// is stored as classid = high 32 bits, objid = low 32 bits, objsubid = 1; a
// pair of int4 keys (pg_advisory_lock(int4, int4)) as classid = first,
// objid = second, objsubid = 2. So a single key can never collide with a
// (class, hashtext(name)) pair, whatever the numbers; within each space the
// values below are distinct (test/unit/lock-keys.test.ts). An application's
// own advisory locks may use either space: these numbers are chosen to be
// unlikely there (the 7_465_767_xxx family for single keys, 74_65x classes).

/**
 * Single key, in each tenant's own database: held for the session by the
 * run working on that tenant (migrate, provision's migrations, rollback,
 * rehearse; unlock tries it to tell a live run from a stale knex flag).
 * PostgreSQL frees it when the session ends, so a killed run never leaves it
 * behind.
 */
export const TENANT_LOCK_KEY = 7_465_767_000;

/**
 * Single key, in the catalog database: held for the session while a run
 * migrates the catalog, so that pipelines starting at once take turns.
 */
export const CATALOG_LOCK_KEY = 7_465_767_001;

/**
 * Single key, in the catalog database, transaction-scoped: taken while the
 * history table is created, so that runs starting at once do not race on
 * CREATE TABLE IF NOT EXISTS.
 */
export const HISTORY_LOCK_KEY = 7_465_767_002;

/**
 * Class of an int4 pair, in a server's admin database; the object is
 * hashtext(database name). Guards creating and opening a tenant's database
 * (runs provisioning one database take turns) and building, copying (held
 * shared) and dropping a template. It equals PROVISIONING_CONNECTION_LIMIT
 * (provisioning.ts), which is a connection limit, not a lock: they never meet.
 */
export const PROVISION_LOCK_CLASS = 74_657;

/**
 * Class of an int4 pair, in a server's admin database; the object is
 * hashtext(scratch database name). Held by a `diff` run for the life of its
 * scratch database: one whose lock is free belongs to a run that is gone and
 * is dropped by the next run.
 */
export const SCRATCH_LOCK_CLASS = 74_658;

/** Which advisory lock space a value lives in (see the top of this file). */
export type AdvisoryLockSpace = "single bigint key" | "int4 class of a (class, hashtext) pair";

/** Every advisory lock value above, with its space: distinct within each space. */
export const ADVISORY_LOCKS: readonly { name: string; space: AdvisoryLockSpace; value: number }[] = [
  { name: "TENANT_LOCK_KEY", space: "single bigint key", value: TENANT_LOCK_KEY },
  { name: "CATALOG_LOCK_KEY", space: "single bigint key", value: CATALOG_LOCK_KEY },
  { name: "HISTORY_LOCK_KEY", space: "single bigint key", value: HISTORY_LOCK_KEY },
  { name: "PROVISION_LOCK_CLASS", space: "int4 class of a (class, hashtext) pair", value: PROVISION_LOCK_CLASS },
  { name: "SCRATCH_LOCK_CLASS", space: "int4 class of a (class, hashtext) pair", value: SCRATCH_LOCK_CLASS },
];
