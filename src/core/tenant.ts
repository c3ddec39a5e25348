import type { Knex } from "knex";
import pg from "pg";
import type { Tenant, TenantPlacement } from "./catalog.js";
import { type ConnectionSettings, pgClientConfig } from "./connection.js";
import { acquireAdvisoryLock, clearStaleKnexLock, withClient, withKnex } from "./db.js";
import { describeError, errorCode } from "./errors.js";
import { type EmitEvent, type TenantOutcome, TenantSkipped } from "./fleet.js";
import { quoteIdent } from "./identifiers.js";
import type { MigrationFolder } from "./migration-folder.js";
import { createFromTemplate, ensureTemplate, PROVISION_LOCK_CLASS } from "./template.js";

/**
 * Session advisory lock held by the run working on a tenant. PostgreSQL frees
 * it when the session ends, so a killed run never leaves it behind, and it is
 * scoped to the tenant's database.
 */
export const TENANT_LOCK_KEY = 7_465_767_000;

export interface AppliedMigration {
  name: string;
  batch: number;
}

/** What one tenant job needs: where the tenant lives and the shared, per-run pieces. */
export interface TenantJob {
  tenant: Tenant;
  placement: TenantPlacement;
  folder: MigrationFolder;
  admin: AdminPools;
  lockTimeoutMs: number;
  appRole: string | undefined;
  emit: EmitEvent;
  /** Provision new databases by copying a template with every migration applied. */
  useTemplate: boolean;
  /** Aborted on SIGINT/SIGTERM: a tenant still waiting for another run's lock gives up, as `skipped`. */
  signal?: AbortSignal | undefined;
  dryRun: boolean;
}

/** A failure that carries the migrations that did take effect before it. */
export class TenantWorkError extends Error {
  constructor(
    message: string,
    readonly migrations: string[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The applied migrations, oldest first; none when knex's table does not exist yet. */
export async function readApplied(client: pg.Client | Knex): Promise<AppliedMigration[]> {
  try {
    const sql = "select name, batch from knex_migrations order by id";
    const rows = "raw" in client ? (await client.raw(sql)).rows : (await client.query(sql)).rows;
    return rows as AppliedMigration[];
  } catch (error) {
    if (errorCode(error) === "42P01") return [];
    throw error;
  }
}

interface KnexState {
  applied: AppliedMigration[];
  /** knex_migrations_lock.is_locked is set. */
  knexLocked: boolean;
}

/** What a tenant has applied and whether knex's lock flag is set, in one round trip (simple query protocol). */
async function readKnexState(client: pg.Client): Promise<KnexState> {
  try {
    const results = (await client.query(
      "select name, batch from knex_migrations order by id; select coalesce(max(is_locked), 0) = 1 as locked from knex_migrations_lock",
    )) as unknown as [pg.QueryResult<AppliedMigration>, pg.QueryResult<{ locked: boolean }>];
    return { applied: results[0].rows, knexLocked: results[1].rows[0]?.locked === true };
  } catch (error) {
    // One of knex's tables is missing: none yet, or a hand-made database with only knex_migrations.
    if (errorCode(error) === "42P01") return { applied: await readApplied(client), knexLocked: false };
    throw error;
  }
}

type Peek = { exists: false } | ({ exists: true } & KnexState);

/** One connection and one round trip: whether the database exists, and its knex state. */
async function peek(settings: ConnectionSettings): Promise<Peek> {
  try {
    return await withClient(settings, async (client) => ({ exists: true, ...(await readKnexState(client)) }));
  } catch (error) {
    // 3D000: no such database; 55000: created but its provisioning was cut short.
    const code = errorCode(error);
    if (code === "3D000" || code === "55000") return { exists: false };
    throw error;
  }
}

function unknownMigrations(applied: AppliedMigration[], folder: MigrationFolder): string[] {
  return applied.map((m) => m.name).filter((name) => !folder.has(name));
}

function unknownMigrationsError(unknown: string[]): Error {
  return new Error(
    `the database has applied migrations that no file matches: ${unknown.join(", ")} (knex calls this a corrupt migration directory)`,
  );
}

/**
 * Brings one tenant to the latest migration, creating its database first when
 * `provision` is set. An up-to-date tenant costs one connection and one query.
 */
export async function migrateTenant(job: TenantJob, options: { provision: boolean }): Promise<TenantOutcome> {
  const { tenant, placement, folder } = job;
  let created = false;
  // A fresh fleet: databases known to be missing skip the connection attempt that would only say so.
  const missing = options.provision && (await job.admin.knownMissing(placement.admin, tenant.database));
  const state: Peek = missing ? { exists: false } : await peek(placement.settings);
  if (!state.exists) {
    if (!options.provision) {
      throw new Error(`database "${tenant.database}" does not exist: run \`tenant-migrate provision ${tenant.id}\``);
    }
    if (job.dryRun) return { result: "provisioned", migrations: folder.names };
    const provisioned = await ensureDatabase(job);
    // A copy of the template has every migration already: nothing is left to run.
    if (provisioned.fromTemplate) return { result: "provisioned", migrations: folder.names };
    created = provisioned.created;
  } else {
    const unknown = unknownMigrations(state.applied, folder);
    if (unknown.length > 0) throw unknownMigrationsError(unknown);
    const done = new Set(state.applied.map((m) => m.name));
    const pending = folder.names.filter((name) => !done.has(name));
    // Up to date: done, unless a dead process left knex's flag set, which is cleared below.
    if (pending.length === 0 && (!state.knexLocked || job.dryRun)) return { result: "up-to-date", migrations: [] };
    if (job.dryRun) return { result: "migrated", migrations: pending };
  }
  const migrations = await withTenantLock(job, (db) => runLatest(db, job), { fresh: created });
  if (created) return { result: "provisioned", migrations };
  return {
    result: migrations.length > 0 ? "migrated" : "up-to-date",
    migrations,
  };
}

/** knex's own migrate.latest, with events per migration and errors that name the file. */
async function runLatest(db: Knex, job: TenantJob): Promise<string[]> {
  const completed: string[] = [];
  let current: string | undefined;
  // knex runs the batch in one transaction when every *pending* migration allows it: decide the same way.
  const applied = new Set((await readApplied(db)).map((m) => m.name));
  const pending = job.folder.names.filter((name) => !applied.has(name));
  const allTransactional = await everyMigrationTransactional(job.folder, pending);
  try {
    const [, log] = await db.migrate.latest({
      migrationSource: job.folder,
      beforeEach: async (_trx: Knex, [migration]: { name: string }[]) => {
        current = migration?.name;
        if (current) job.emit({ type: "migration-started", tenant: job.tenant, name: current, direction: "up" });
      },
      afterEach: async (_trx: Knex, [migration]: { name: string }[]) => {
        if (!migration) return;
        completed.push(migration.name);
        job.emit({
          type: "migration",
          tenant: job.tenant,
          name: migration.name,
          direction: "up",
        });
      },
    } as Knex.MigratorConfig);
    return log as string[];
  } catch (error) {
    // knex ran the batch in one transaction when it could: then nothing stayed applied.
    const stayed = allTransactional ? [] : completed;
    const where = current ? `migration ${current} failed: ` : "";
    throw new TenantWorkError(`${where}${describeError(error)}`, stayed, {
      cause: error,
    });
  }
}

export type RollbackMode =
  | { kind: "last" }
  | { kind: "steps"; steps: number }
  | { kind: "all" }
  | { kind: "to"; name: string };

/** What a rollback would undo, newest first, from the applied list. */
export function planRollback(applied: AppliedMigration[], mode: RollbackMode): string[] {
  const newestFirst = [...applied].reverse();
  switch (mode.kind) {
    case "all":
      return newestFirst.map((m) => m.name);
    case "to": {
      const index = newestFirst.findIndex((m) => m.name === mode.name);
      if (index < 0) throw new Error(`migration ${mode.name} is not applied on this tenant`);
      return newestFirst.slice(0, index).map((m) => m.name);
    }
    default: {
      const steps = mode.kind === "steps" ? mode.steps : 1;
      const batches = [...new Set(newestFirst.map((m) => m.batch))].slice(0, steps);
      return newestFirst.filter((m) => batches.includes(m.batch)).map((m) => m.name);
    }
  }
}

/**
 * Undoes batches on one tenant with knex's migrator. When every migration
 * involved is transactional, the whole rollback runs in one transaction, so a
 * process killed half-way leaves the tenant as it was.
 */
export async function rollbackTenant(job: TenantJob, mode: RollbackMode): Promise<TenantOutcome> {
  const state = await peek(job.placement.settings);
  if (!state.exists) throw new Error(`database "${job.tenant.database}" does not exist`);
  const unknown = unknownMigrations(state.applied, job.folder);
  if (unknown.length > 0) throw unknownMigrationsError(unknown);
  const planned = planRollback(state.applied, mode);
  if (planned.length === 0) return { result: "nothing-to-roll-back", migrations: [] };
  if (job.dryRun) return { result: "rolled-back", migrations: planned };

  const rolledBack = await withTenantLock(job, async (db) => {
    // Re-plan under the lock: another run may have changed the tenant meanwhile.
    const toUndo = planRollback(await readApplied(db), mode);
    if (toUndo.length === 0) return [];
    const undone: string[] = [];
    let current: string | undefined;
    const config = {
      migrationSource: job.folder,
      beforeEach: async (_trx: Knex, [migration]: { name: string }[]) => {
        current = migration?.name;
        if (current) job.emit({ type: "migration-started", tenant: job.tenant, name: current, direction: "down" });
      },
      afterEach: async (_trx: Knex, [migration]: { name: string }[]) => {
        if (!migration) return;
        undone.push(migration.name);
        job.emit({ type: "migration", tenant: job.tenant, name: migration.name, direction: "down" });
      },
    } as Knex.MigratorConfig;
    // knex's rollback undoes a whole batch per call (one lock and one set of checks); --to goes file by file.
    const undo = async (trx: Knex) => {
      if (mode.kind === "to") {
        for (const name of toUndo) await trx.migrate.down({ ...config, name });
      } else if (mode.kind === "all") {
        await trx.migrate.rollback(config, true);
      } else {
        const batches = mode.kind === "steps" ? mode.steps : 1;
        for (let i = 0; i < batches && undone.length < toUndo.length; i++) await trx.migrate.rollback(config);
      }
      return undone;
    };
    const oneTransaction = await everyMigrationTransactional(job.folder, toUndo);
    try {
      return oneTransaction ? await db.transaction(undo) : await undo(db);
    } catch (error) {
      // In one transaction nothing stayed rolled back; otherwise what knex finished did.
      const where = current ? `rollback of ${current} failed: ` : "";
      throw new TenantWorkError(`${where}${describeError(error)}`, oneTransaction ? [] : undone, { cause: error });
    }
  });
  return rolledBack.length > 0
    ? { result: "rolled-back", migrations: rolledBack }
    : { result: "nothing-to-roll-back", migrations: [] };
}

async function everyMigrationTransactional(folder: MigrationFolder, names: string[]): Promise<boolean> {
  for (const name of names) {
    if (!folder.has(name)) continue;
    const module = await folder.load(name);
    if (module.config?.transaction === false) return false;
  }
  return true;
}

/**
 * Runs `fn` on a single-connection knex holding the tenant's advisory lock.
 * Waits for another run (bounded by lockTimeoutMs); once held, a knex lock
 * flag that is still set was left by a process that is gone, and is cleared.
 */
async function withTenantLock<T>(
  job: TenantJob,
  fn: (db: Knex) => Promise<T>,
  options: { fresh?: boolean } = {},
): Promise<T> {
  return withKnex(job.placement.settings, async (db) => {
    await acquireTenantLock(db, job);
    try {
      // A database this run just created has no knex tables to clear.
      const cleared = !options.fresh && (await clearStaleKnexLock(db));
      if (cleared) {
        job.emit({
          type: "notice",
          tenant: job.tenant,
          message: `${job.tenant.database}: cleared a knex migration lock left by a process that is gone`,
        });
      }
      return await fn(db);
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

/** The databases of a server that accept connections (one whose provisioning was cut short does not). */
export async function databasesOn(db: pg.Pool | pg.Client): Promise<Set<string>> {
  const { rows } = await db.query<{ datname: string }>("select datname from pg_database where datallowconn");
  return new Set(rows.map((r) => r.datname));
}

/** Identifies a server's admin connection: tenants sharing it share a pool and one database list. */
export function adminKey(settings: ConnectionSettings): string {
  return `${settings.host}:${settings.port}/${settings.database}/${settings.user}`;
}

/** Administrative connections per server (CREATE/DROP DATABASE), pooled for the run. */
export class AdminPools {
  private readonly pools = new Map<string, pg.Pool>();
  private readonly databases = new Map<string, Promise<Set<string> | undefined>>();
  private readonly templates = new Map<string, Promise<string | undefined>>();
  constructor(private readonly size: number) {}

  get(settings: ConnectionSettings): pg.Pool {
    const key = adminKey(settings);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new pg.Pool({
        ...pgClientConfig(settings),
        max: this.size,
        idleTimeoutMillis: 10_000,
      });
      pool.on("error", () => {});
      this.pools.set(key, pool);
    }
    return pool;
  }

  /**
   * Whether `database` was absent when this run first looked (one query per
   * server per run); false when unknown. A database created since is found
   * by ensureDatabase, so a stale answer costs nothing but that check.
   */
  async knownMissing(settings: ConnectionSettings, database: string): Promise<boolean> {
    const key = adminKey(settings);
    let names = this.databases.get(key);
    if (!names) {
      names = databasesOn(this.get(settings)).catch(() => undefined);
      this.databases.set(key, names);
    }
    const known = await names;
    return known !== undefined && !known.has(database);
  }

  /**
   * The server's template for `folder`, built at most once per run; undefined
   * when it cannot be built (then tenants run their migrations themselves, and
   * a failing migration is reported per tenant as usual).
   */
  template(settings: ConnectionSettings, folder: MigrationFolder): Promise<string | undefined> {
    const key = adminKey(settings);
    let template = this.templates.get(key);
    if (!template) {
      template =
        folder.names.length === 0
          ? Promise.resolve(undefined)
          : ensureTemplate(this.get(settings), settings, folder).catch(() => undefined);
      this.templates.set(key, template);
    }
    return template;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.end().catch(() => {})));
    this.pools.clear();
  }
}

/**
 * Creates the tenant's database if it is missing, closed to PUBLIC from the
 * first moment: it is created not accepting connections, its grants are set,
 * and only then is it opened. Runs that provision the same database take
 * turns (GRANT and ALTER DATABASE fail when two sessions change one database
 * at once). Returns true when this call created it.
 */
export async function ensureDatabase(job: TenantJob): Promise<{ created: boolean; fromTemplate: boolean }> {
  // Before taking a pooled connection: building the template needs one too.
  const template = job.useTemplate ? await job.admin.template(job.placement.admin, job.folder) : undefined;
  const client = await job.admin.get(job.placement.admin).connect();
  const database = job.tenant.database;
  const name = quoteIdent(database);
  let failure: Error | undefined;
  try {
    await client.query("select pg_advisory_lock($1, hashtext($2))", [PROVISION_LOCK_CLASS, database]);
    const { rows } = await client.query<{ datallowconn: boolean }>(
      "select datallowconn from pg_database where datname = $1",
      [database],
    );
    if (rows[0]?.datallowconn) return { created: false, fromTemplate: false };
    let created = false;
    let fromTemplate = false;
    if (rows.length === 0) {
      try {
        fromTemplate = template !== undefined && (await createFromTemplate(client, database, template));
        if (!fromTemplate) await client.query(`create database ${name} with allow_connections = false`);
        created = true;
      } catch (error) {
        // Created meanwhile by a run on another admin database (42P04 or, in a race, 23505).
        if (errorCode(error) !== "42P04" && errorCode(error) !== "23505") throw error;
      }
    }
    // Also finishes a database whose provisioning was cut short (it never accepted connections).
    await client.query("begin");
    await client.query(`revoke all on database ${name} from public`);
    if (job.appRole) await client.query(`grant connect, temporary on database ${name} to ${quoteIdent(job.appRole)}`);
    await client.query(`alter database ${name} with allow_connections = true`);
    await client.query("commit");
    return { created, fromTemplate };
  } catch (error) {
    await client.query("rollback").catch(() => {});
    failure = error as Error;
    throw error;
  } finally {
    await client.query("select pg_advisory_unlock($1, hashtext($2))", [PROVISION_LOCK_CLASS, database]).catch(() => {});
    // A connection that failed is not handed to the next tenant.
    client.release(failure);
  }
}

export type TenantState =
  | "up-to-date"
  | "pending"
  | "not-provisioned"
  | "unknown-migrations"
  | "locked"
  | "unreachable";

export interface TenantStatus {
  id: string;
  name: string;
  database: string;
  server?: string;
  state: TenantState;
  applied: string[];
  pending: string[];
  unknown?: string[];
  error?: string;
}

/** A tenant's state, read without changing anything. */
export async function inspectTenant(
  tenant: Tenant,
  settings: ConnectionSettings,
  folder: MigrationFolder,
): Promise<Omit<TenantStatus, "id" | "name" | "database" | "server">> {
  try {
    return await withClient(settings, async (client) => {
      const state = await readKnexState(client);
      const applied = state.applied.map((m) => m.name);
      const done = new Set(applied);
      const pending = folder.names.filter((name) => !done.has(name));
      const unknown = applied.filter((name) => !folder.has(name));
      if (unknown.length > 0)
        return {
          state: "unknown-migrations" as const,
          applied,
          pending,
          unknown,
        };
      if (state.knexLocked || (await heldByARun(client))) return { state: "locked" as const, applied, pending };
      return {
        state: pending.length > 0 ? ("pending" as const) : ("up-to-date" as const),
        applied,
        pending,
      };
    });
  } catch (error) {
    const code = errorCode(error);
    if (code === "3D000" || code === "55000") {
      return { state: "not-provisioned", applied: [], pending: folder.names };
    }
    return {
      state: "unreachable",
      applied: [],
      pending: [],
      error: `${tenant.database}: ${describeError(error)}`,
    };
  }
}

/** Whether a tenant-migrate run holds this tenant's advisory lock right now. */
async function heldByARun(client: pg.Client): Promise<boolean> {
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

export type DropResult = "dropped" | "not-provisioned";

export async function dropDatabase(admin: pg.Pool, database: string): Promise<DropResult> {
  const { rows } = await admin.query("select 1 from pg_database where datname = $1", [database]);
  if (rows.length === 0) return "not-provisioned";
  await admin.query(`drop database ${quoteIdent(database)}`);
  return "dropped";
}
