import type { Knex } from "knex";
import type pg from "pg";
import type { TenantPlacement } from "./catalog.js";
import { editedMigrations, forgetChecksum, readChecksums, recordChecksum } from "./checksums.js";
import type { ConnectionSettings } from "./connection.js";
import { acquireAdvisoryLock, clearStaleKnexLock, toolPool, withClient, withKnex } from "./db.js";
import { describeError, errorCode, TenantSkipped, TenantWorkError } from "./errors.js";
import type { EmitEvent, Tenant, TenantOutcome } from "./fleet-types.js";
import { quoteIdent } from "./identifiers.js";
import { PROVISION_LOCK_CLASS, TENANT_LOCK_KEY } from "./lock-keys.js";
import { explainLockWait, setLockTimeout } from "./lock-wait.js";
import type { MigrationFolder } from "./migration-folder.js";
import {
  ClosedDatabaseError,
  CURRENT_DATABASE_MARKED,
  createMarkedDatabaseSql,
  ForeignDatabaseError,
  finishProvisioning,
  knexExec,
  MARKED,
  openForMigrations,
  pgExec,
  readDatabaseMark,
} from "./provisioning.js";
import { createFromTemplate, ensureTemplate } from "./template.js";

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
  /** PostgreSQL's lock_timeout in the migration session (--pg-lock-timeout); 0: not set. */
  pgLockTimeoutMs: number;
  appRole: string | undefined;
  emit: EmitEvent;
  /** Provision new databases by copying a template with every migration applied. */
  useTemplate: boolean;
  /** Aborted on SIGINT/SIGTERM: a tenant still waiting for another run's lock gives up, as `skipped`. */
  signal?: AbortSignal | undefined;
  dryRun: boolean;
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
  /** knex_migrations exists (a database knex never migrated has none). */
  knexTable: boolean;
  /** The tool created this database and has not finished provisioning it (see provisioning.ts). */
  provisioning: boolean;
}

/** What a tenant has applied, whether knex's lock flag is set and whether it is still being provisioned, in one round trip (simple query protocol). */
async function readKnexState(client: pg.Client): Promise<KnexState> {
  try {
    const results = (await client.query(
      `${CURRENT_DATABASE_MARKED}; select name, batch from knex_migrations order by id; select coalesce(max(is_locked), 0) = 1 as locked from knex_migrations_lock`,
    )) as unknown as [
      pg.QueryResult<{ provisioning: boolean }>,
      pg.QueryResult<AppliedMigration>,
      pg.QueryResult<{ locked: boolean }>,
    ];
    return {
      applied: results[1].rows,
      knexLocked: results[2].rows[0]?.locked === true,
      knexTable: true,
      provisioning: results[0].rows[0]?.provisioning === true,
    };
  } catch (error) {
    if (errorCode(error) !== "42P01") throw error;
    // One of knex's tables is missing: none yet, or a hand-made database with only knex_migrations.
    const { rows } = await client.query<{ provisioning: boolean; knex_table: boolean }>(
      `select (${CURRENT_DATABASE_MARKED}) as provisioning, to_regclass('knex_migrations') is not null as knex_table`,
    );
    const knexTable = rows[0]?.knex_table === true;
    return {
      applied: knexTable ? await readApplied(client) : [],
      knexLocked: false,
      knexTable,
      provisioning: rows[0]?.provisioning === true,
    };
  }
}

/**
 * Where a tenant's database stands: absent; closed, by the tool mid-way
 * (`unopened`, finished by the next provisioning run) or by an operator
 * (`closed`, never reopened); or open, with its knex state (still being
 * provisioned when `state.provisioning`).
 */
export type Peek =
  | { kind: "absent" }
  | { kind: "unopened" }
  | { kind: "closed" }
  | ({ kind: "open"; checksums: Map<string, string> } & KnexState);

/** One connection: whether the database exists, its knex state and the checksums of what the tool applied. */
export async function peek(job: TenantJob): Promise<Peek> {
  try {
    return await withClient(job.placement.settings, async (client) => ({
      kind: "open" as const,
      ...(await readKnexState(client)),
      checksums: await readChecksums(client),
    }));
  } catch (error) {
    const code = errorCode(error);
    if (code === "3D000") return { kind: "absent" };
    // Not accepting connections: pg_database says whether the tool closed it mid-way or an operator did.
    if (code === "55000") {
      const mark = await readDatabaseMark(job.admin.get(job.placement.admin), job.tenant.database);
      if (!mark.exists) return { kind: "absent" };
      // Ours (opened meanwhile or not): provisioning finishes it, under its lock.
      if (mark.provisioning) return { kind: "unopened" };
      if (!mark.allowConnections) return { kind: "closed" };
      throw error;
    }
    throw error;
  }
}

export function unknownMigrations(applied: AppliedMigration[], folder: MigrationFolder): string[] {
  return applied.map((m) => m.name).filter((name) => !folder.has(name));
}

export function unknownMigrationsError(unknown: string[]): Error {
  return new Error(
    `the database has applied migrations that no file matches: ${unknown.join(", ")} (knex calls this a corrupt migration directory)`,
  );
}

/**
 * Brings one tenant to the latest migration, creating its database first when
 * `provision` is set. An up-to-date tenant costs one connection and one query.
 */
export async function migrateTenant(
  job: TenantJob,
  options: {
    provision: boolean;
    /** Refuse an existing database the tool did not make and knex never migrated (provision without --adopt). */
    refuseForeign?: boolean;
  },
): Promise<TenantOutcome> {
  const { tenant, placement, folder } = job;
  let created = false;
  /** This database is the tool's and not finished yet: the run that clears its marks reports it provisioned. */
  let ours = false;
  // A fresh fleet: databases known to be missing skip the connection attempt that would only say so.
  const missing = options.provision && (await job.admin.knownMissing(placement.admin, tenant.database));
  let state: Peek = missing ? { kind: "absent" } : await peek(job);
  if (state.kind === "closed") throw new ClosedDatabaseError(tenant.database);
  if (state.kind === "open" && state.provisioning) ours = true;
  if (state.kind === "absent" || state.kind === "unopened") {
    if (!options.provision) {
      const why = state.kind === "absent" ? "does not exist" : "was created but its provisioning was cut short";
      throw new Error(`database "${tenant.database}" ${why}: run \`tenant-migrate provision ${tenant.id}\``);
    }
    if (job.dryRun) return { result: "provisioned", migrations: folder.names };
    const provisioned = await ensureDatabase(job);
    // A copy of the template has every migration already: nothing is left to run.
    if (provisioned.fromTemplate) return { result: "provisioned", migrations: folder.names };
    created = provisioned.created;
    // Made and finished by another run meanwhile: an existing database like any other.
    if (provisioned.ready) state = await peek(job);
    else ours = true;
  }
  if (state.kind === "open") {
    if (!state.provisioning && !state.knexTable && options.refuseForeign) {
      throw new ForeignDatabaseError(tenant.database);
    }
    const unknown = unknownMigrations(state.applied, folder);
    if (unknown.length > 0) throw unknownMigrationsError(unknown);
    noticeEdited(
      job,
      editedMigrations(
        state.applied.map((m) => m.name),
        state.checksums,
        folder,
      ),
    );
    const done = new Set(state.applied.map((m) => m.name));
    const pending = folder.names.filter((name) => !done.has(name));
    if (state.provisioning) {
      // Half-made by a run that is gone (or still working: the tenant lock below waits for it).
      if (!options.provision) {
        throw new Error(
          `database "${tenant.database}" was created but its provisioning was cut short: run \`tenant-migrate provision ${tenant.id}\``,
        );
      }
      if (job.dryRun) return { result: "provisioned", migrations: pending };
    } else {
      // Up to date: done, unless a dead process left knex's flag set, which is cleared below.
      if (pending.length === 0 && (!state.knexLocked || job.dryRun)) return { result: "up-to-date", migrations: [] };
      if (job.dryRun) return { result: "migrated", migrations: pending };
    }
  }
  const { migrations, finished } = await withTenantLock(
    job,
    async (db) => {
      const migrations = await runLatest(db, job);
      // Every migration ran: the database is made ready (app role granted, marks cleared) in one transaction.
      const finished =
        ours && (await db.transaction((trx) => finishProvisioning(knexExec(trx), tenant.database, job.appRole)));
      return { migrations, finished };
    },
    { fresh: created },
  );
  if (finished) return { result: "provisioned", migrations };
  return {
    result: migrations.length > 0 ? "migrated" : "up-to-date",
    migrations,
  };
}

/** An edited file is a warning, not a failure: what is pending still runs. */
function noticeEdited(job: TenantJob, edited: string[]): void {
  if (edited.length === 0) return;
  job.emit({
    type: "notice",
    tenant: job.tenant,
    message: `${job.tenant.database}: changed since applied here (edited): ${edited.join(", ")}`,
  });
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
      afterEach: async (trx: Knex, [migration]: { name: string }[]) => {
        if (!migration) return;
        // In the migration's own transaction: the checksum commits with it or not at all.
        await recordChecksum(trx, job.folder, migration.name);
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
 * Whether a rollback that is not `--all` would undo every migration the
 * tenant has (a school provisioned in one go has everything in one batch):
 * that needs --all, said explicitly.
 */
export function emptiesTenant(applied: AppliedMigration[], mode: RollbackMode): boolean {
  if (mode.kind === "all" || mode.kind === "to" || applied.length === 0) return false;
  return planRollback(applied, mode).length === applied.length;
}

function emptiesTenantError(database: string): Error {
  return new Error(
    `rollback would undo every migration of ${database}: use --all to mean that; nothing was rolled back`,
  );
}

/**
 * Undoes batches on one tenant with knex's migrator. When every migration
 * involved is transactional, the whole rollback runs in one transaction, so a
 * process killed half-way leaves the tenant as it was.
 */
export async function rollbackTenant(job: TenantJob, mode: RollbackMode): Promise<TenantOutcome> {
  const state = await peek(job);
  if (state.kind === "closed") throw new ClosedDatabaseError(job.tenant.database);
  if (state.kind !== "open") throw new Error(`database "${job.tenant.database}" does not exist`);
  const unknown = unknownMigrations(state.applied, job.folder);
  if (unknown.length > 0) throw unknownMigrationsError(unknown);
  if (emptiesTenant(state.applied, mode)) throw emptiesTenantError(job.tenant.database);
  const planned = planRollback(state.applied, mode);
  if (planned.length === 0) return { result: "nothing-to-roll-back", migrations: [] };
  if (job.dryRun) return { result: "rolled-back", migrations: planned };

  const rolledBack = await withTenantLock(job, async (db) => {
    // Re-plan under the lock: another run may have changed the tenant meanwhile.
    const applied = await readApplied(db);
    // Checked before the run too; this catches another run's change meanwhile.
    if (emptiesTenant(applied, mode)) throw emptiesTenantError(job.tenant.database);
    const toUndo = planRollback(applied, mode);
    if (toUndo.length === 0) return [];
    const undone: string[] = [];
    let current: string | undefined;
    const config = {
      migrationSource: job.folder,
      beforeEach: async (_trx: Knex, [migration]: { name: string }[]) => {
        current = migration?.name;
        if (current) job.emit({ type: "migration-started", tenant: job.tenant, name: current, direction: "down" });
      },
      afterEach: async (trx: Knex, [migration]: { name: string }[]) => {
        if (!migration) return;
        await forgetChecksum(trx, migration.name);
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

export async function everyMigrationTransactional(folder: MigrationFolder, names: string[]): Promise<boolean> {
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

/**
 * The databases of a server that are ready: accepting connections, and not
 * half-made by the tool; with `closedToo`, also those an operator closed.
 */
export async function databasesOn(
  db: pg.Pool | pg.Client,
  options: { closedToo?: boolean } = {},
): Promise<Set<string>> {
  const open = options.closedToo ? "" : "datallowconn and";
  const { rows } = await db.query<{ datname: string }>(`select datname from pg_database d where ${open} not ${MARKED}`);
  return new Set(rows.map((r) => r.datname));
}

/** Identifies a server's admin connection: tenants sharing it share a pool and one database list. */
export function adminKey(settings: ConnectionSettings): string {
  return `${settings.host}:${settings.port}/${settings.database}/${settings.user}`;
}

/**
 * Administrative connections per server (CREATE/DROP DATABASE), pooled for the
 * run. Fleet runs use one per admin database, so that the run holds at most
 * `--concurrency` + 2 connections per server: one per tenant worker (a worker
 * never holds a tenant connection while it waits for the admin one), the
 * admin connection (open, maybe idle, for the run) and the catalog's.
 */
export class AdminPools {
  private readonly pools = new Map<string, pg.Pool>();
  private readonly databases = new Map<string, Promise<Set<string> | undefined>>();
  private readonly templates = new Map<string, Promise<string | undefined>>();
  /** `size`: admin connections per admin database (fleet runs use 1). */
  constructor(private readonly size: number) {}

  get(settings: ConnectionSettings): pg.Pool {
    const key = adminKey(settings);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = toolPool(settings, {
        max: this.size,
        idleTimeoutMillis: 10_000,
      });
      // Idle clients report errors to the pool; a checked-out client to itself:
      // a lost admin connection (a restart, pg_terminate_backend) must never
      // crash the process. The query in flight rejects with the error.
      pool.on("error", () => {});
      pool.on("connect", (client) => client.on("error", () => {}));
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
      names = databasesOn(this.get(settings), { closedToo: true }).catch(() => undefined);
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
 * Creates the tenant's database if it is missing, closed and marked as the
 * tool's in one statement (see provisioning.ts), then opens it to its owner
 * for the migrations, PUBLIC revoked. Also opens one whose provisioning a
 * killed run left closed. A database an operator closed is never opened
 * (ClosedDatabaseError). Runs that provision the same database take turns
 * (GRANT and ALTER DATABASE fail when two sessions change one database at
 * once). `ready`: it exists and is not the tool's to finish; otherwise the
 * caller runs the migrations and then finishProvisioning.
 */
export async function ensureDatabase(
  job: TenantJob,
): Promise<{ ready: boolean; created: boolean; fromTemplate: boolean }> {
  // Before taking a pooled connection: building the template needs one too.
  const template = job.useTemplate ? await job.admin.template(job.placement.admin, job.folder) : undefined;
  const client = await job.admin.get(job.placement.admin).connect();
  const database = job.tenant.database;
  let failure: Error | undefined;
  try {
    await client.query("select pg_advisory_lock($1, hashtext($2))", [PROVISION_LOCK_CLASS, database]);
    let mark = await readDatabaseMark(client, database);
    let created = false;
    let fromTemplate = false;
    if (!mark.exists) {
      try {
        fromTemplate = template !== undefined && (await createFromTemplate(client, database, template));
        // A copy is closed and marked by the same CREATE DATABASE, as a plain creation is.
        if (!fromTemplate) await client.query(createMarkedDatabaseSql(database));
        created = true;
      } catch (error) {
        // Created meanwhile by a run on another admin database (42P04 or, in a race, 23505).
        if (errorCode(error) !== "42P04" && errorCode(error) !== "23505") throw error;
      }
      mark = created
        ? { exists: true, allowConnections: false, provisioning: true }
        : await readDatabaseMark(client, database);
      if (!mark.exists) throw new Error(`database "${database}" was dropped while it was being created`);
    }
    if (!mark.provisioning) {
      if (mark.allowConnections) return { ready: true, created: false, fromTemplate: false };
      throw new ClosedDatabaseError(database);
    }
    if (!mark.allowConnections) await openForMigrations(client, database);
    if (fromTemplate) {
      // Every migration is in the copy already: made ready at once.
      await client.query("begin");
      await finishProvisioning(pgExec(client), database, job.appRole);
      await client.query("commit");
    }
    return { ready: false, created, fromTemplate };
  } catch (error) {
    await client.query("rollback").catch(() => {});
    if (!(error instanceof ClosedDatabaseError)) failure = error as Error;
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
  | "unreachable"
  /** Exists, connections not allowed, not a half-made database of the tool's: an operator closed it. */
  | "closed"
  | "edited";

export interface TenantStatus {
  id: string;
  name: string;
  database: string;
  server?: string;
  state: TenantState;
  applied: string[];
  pending: string[];
  unknown?: string[];
  /** Applied files whose contents changed since the tool applied them here. */
  edited?: string[];
  error?: string;
}

/** A tenant's state, read without changing anything. */
export async function inspectTenant(
  tenant: Tenant,
  settings: ConnectionSettings,
  folder: MigrationFolder,
  /** The server's admin connection: asked only when the database refuses connections. */
  admin?: ConnectionSettings,
): Promise<Omit<TenantStatus, "id" | "name" | "database" | "server">> {
  try {
    return await withClient(settings, async (client) => {
      const state = await readKnexState(client);
      const applied = state.applied.map((m) => m.name);
      const done = new Set(applied);
      const pending = folder.names.filter((name) => !done.has(name));
      // Created by the tool and not finished: the next provisioning run finishes it.
      if (state.provisioning) return { state: "not-provisioned" as const, applied, pending };
      const unknown = applied.filter((name) => !folder.has(name));
      const edited = editedMigrations(applied, await readChecksums(client), folder);
      if (unknown.length > 0)
        return {
          state: "unknown-migrations" as const,
          applied,
          pending,
          unknown,
          edited,
        };
      if (state.knexLocked || (await heldByARun(client))) return { state: "locked" as const, applied, pending, edited };
      return {
        state:
          pending.length > 0 ? ("pending" as const) : edited.length > 0 ? ("edited" as const) : ("up-to-date" as const),
        applied,
        pending,
        edited,
      };
    });
  } catch (error) {
    const code = errorCode(error);
    if (code === "55000" && admin) {
      const mark = await withClient(admin, (client) => readDatabaseMark(client, tenant.database)).catch(
        () => undefined,
      );
      if (mark?.exists && !mark.allowConnections && !mark.provisioning) {
        return {
          state: "closed",
          applied: [],
          pending: [],
          error: `${tenant.database}: closed to connections (ALLOW_CONNECTIONS false) by an operator`,
        };
      }
    }
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
