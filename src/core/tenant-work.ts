import type { Knex } from "knex";
import { editedMigrations, forgetChecksum, recordChecksum } from "./checksums.js";
import { ensureDatabase } from "./ensure-database.js";
import { describeError, TenantSkipped, TenantWorkError } from "./errors.js";
import type { TenantOutcome } from "./fleet-types.js";
import {
  type AppliedMigration,
  type Peek,
  peek,
  readApplied,
  unknownMigrations,
  unknownMigrationsError,
} from "./knex-state.js";
import type { MigrationFolder } from "./migration-folder.js";
import { ClosedDatabaseError, ForeignDatabaseError, finishProvisioning, knexExec } from "./provisioning.js";
import type { TenantJob } from "./tenant-job.js";
import { withTenantLock } from "./tenant-lock.js";

/**
 * Brings one tenant to the latest migration, creating its database first when
 * `provision` is set. An up-to-date tenant costs one connection and two round
 * trips (knex's state, then the tool's checksums: see peek).
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

/** What a later attempt's result becomes when an earlier attempt of the same run already changed the tenant. */
const CHANGED: Partial<Record<TenantOutcome["result"], TenantOutcome["result"]>> = {
  "up-to-date": "migrated",
  "nothing-to-roll-back": "rolled-back",
};

/**
 * `work` for the retry loops around it. A failed attempt's migrations that
 * stayed done (non-transactional ones, or each in its own transaction) are
 * this run's work too: every later attempt's result, and the last failure,
 * list them first, each once, so the result says all this run did to the tenant.
 */
export function carryingMigrations(work: () => Promise<TenantOutcome>): {
  attempt: () => Promise<TenantOutcome>;
  failure: (error: unknown) => unknown;
} {
  let earlier: string[] = [];
  const after = (later: string[]) => [...earlier, ...later.filter((name) => !earlier.includes(name))];
  return {
    attempt: async () => {
      try {
        const outcome = await work();
        if (earlier.length === 0) return outcome;
        return { ...outcome, result: CHANGED[outcome.result] ?? outcome.result, migrations: after(outcome.migrations) };
      } catch (error) {
        if (error instanceof TenantWorkError) earlier = after(error.migrations);
        throw error;
      }
    },
    failure: (error) => {
      if (earlier.length === 0 || error instanceof TenantSkipped) return error;
      const message = error instanceof TenantWorkError ? error.message : describeError(error);
      return new TenantWorkError(message, earlier, { cause: error });
    },
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
  // knex runs the batch in one transaction when every *pending* migration allows it: decide the same way.
  const applied = new Set((await readApplied(db)).map((m) => m.name));
  const pending = job.folder.names.filter((name) => !applied.has(name));
  const allTransactional = await everyMigrationTransactional(job.folder, pending);
  const run = trackMigrations(job, "up");
  try {
    const [, log] = await db.migrate.latest(run.config);
    return log as string[];
  } catch (error) {
    // knex ran the batch in one transaction when it could: then nothing stayed applied.
    throw run.failure(error, allTransactional);
  }
}

/**
 * knex's migrator config for one tenant's run in `direction`, with what both
 * migrate and rollback need: an event before and after each migration, the
 * tool's checksum recorded (up) or forgotten (down) in the migration's own
 * transaction, the list of migrations done, and a failure that names the
 * migration and carries what stayed done.
 */
function trackMigrations(job: TenantJob, direction: "up" | "down") {
  const done: string[] = [];
  let current: string | undefined;
  const config = {
    migrationSource: job.folder,
    beforeEach: async (_trx: Knex, [migration]: { name: string }[]) => {
      current = migration?.name;
      if (current) job.emit({ type: "migration-started", tenant: job.tenant, name: current, direction });
    },
    afterEach: async (trx: Knex, [migration]: { name: string }[]) => {
      if (!migration) return;
      // In the migration's own transaction: the checksum commits with it or not at all.
      if (direction === "up") await recordChecksum(trx, job.folder, migration.name);
      else await forgetChecksum(trx, migration.name);
      done.push(migration.name);
      job.emit({ type: "migration", tenant: job.tenant, name: migration.name, direction });
    },
  } as Knex.MigratorConfig;
  /** `error` as a TenantWorkError; in one transaction nothing stayed done, otherwise what knex finished did. */
  const failure = (error: unknown, oneTransaction: boolean) => {
    const where = current ? `${direction === "up" ? "migration" : "rollback of"} ${current} failed: ` : "";
    return new TenantWorkError(`${where}${describeError(error)}`, oneTransaction ? [] : done, { cause: error });
  };
  return { config, done, failure };
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
 * The rollback a retry must finish. `--step N` (and the last batch) count
 * batches from the state the first attempt saw: after a connection lost in
 * the middle of non-transactional downs, counting again from the new state
 * would undo more than asked. So the plan becomes "back to the newest
 * migration it keeps", which undoes exactly what is left of it.
 */
export function pinRollback(applied: AppliedMigration[], planned: string[], mode: RollbackMode): RollbackMode {
  if (mode.kind !== "last" && mode.kind !== "steps") return mode;
  const kept = applied.filter((m) => !planned.includes(m.name)).at(-1);
  return kept ? { kind: "to", name: kept.name } : mode;
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
 * Undoes migrations on one tenant with knex's migrator: whole batches, or
 * file by file down to `--to`. When every migration
 * involved is transactional, the whole rollback runs in one transaction, so a
 * process killed half-way leaves the tenant as it was.
 */
export async function rollbackTenant(
  job: TenantJob,
  mode: RollbackMode,
  /** Told, before anything is undone, the mode a retry of this tenant must use (pinRollback). */
  onPlanned?: (pinned: RollbackMode) => void,
): Promise<TenantOutcome> {
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
    onPlanned?.(pinRollback(applied, toUndo, mode));
    const run = trackMigrations(job, "down");
    const { config, done: undone } = run;
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
      throw run.failure(error, oneTransaction);
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
