// --rehearse: "will this release fail anywhere?" answered on every school's
// own data before anything changes. Each school's pending migrations run with
// knex's own migrator inside one transaction that is always rolled back.
import type { Knex } from "knex";
import { clearStaleKnexLock } from "./db.js";
import { describeError, TenantSkipped, TenantWorkError } from "./errors.js";
import type { TenantOutcome } from "./fleet-types.js";
import { type Peek, peek, readApplied, unknownMigrations, unknownMigrationsError } from "./knex-state.js";
import { ClosedDatabaseError } from "./provisioning.js";
import type { TenantJob } from "./tenant-job.js";
import { withTenantLock } from "./tenant-lock.js";
import { everyMigrationTransactional } from "./tenant-work.js";

/** A school whose database does not exist yet or is not finished: nothing to rehearse (the real run provisions it). */
export class NotProvisioned extends TenantSkipped {}

/** Thrown inside the rehearsal's transaction once every migration ran, so that knex rolls it back. */
class RollBackRehearsal extends Error {
  constructor(readonly migrations: string[]) {
    super("rehearsal over: rolled back");
  }
}

export interface RehearseOptions {
  /** true (`all`): a school not provisioned yet is skipped; false (`migrate`): it fails, as the real migrate does. */
  provision: boolean;
  /** Called with each school's pending migrations that run outside a transaction. */
  onNotRehearsable?: (files: string[]) => void;
}

/**
 * Runs one school's pending migrations and rolls them back: `rehearsed`
 * (what ran), `failed` (thrown: the error the real run would hit, naming the
 * migration), `up-to-date`, or `not-rehearsable` (nothing ran). Nothing stays
 * changed: knex's rows and lock flag, the schema and the data are rolled back
 * with the transaction, and the advisory lock goes with the session.
 */
export async function rehearseTenant(job: TenantJob, options: RehearseOptions): Promise<TenantOutcome> {
  const { tenant, placement, folder } = job;
  const missing = options.provision && (await job.admin.knownMissing(placement.admin, tenant.database));
  const state: Peek = missing ? { kind: "absent" } : await peek(job);
  // A closed school fails as the real run would; a half-made one is finished by provisioning, not rehearsed.
  if (state.kind === "closed") throw new ClosedDatabaseError(tenant.database);
  if (state.kind !== "open" || state.provisioning) {
    if (options.provision) throw new NotProvisioned(`${tenant.database}: not provisioned yet; nothing to rehearse`);
    // The words of the real migrate: a half-made database exists, its provisioning was cut short.
    const why = state.kind === "absent" ? "does not exist" : "was created but its provisioning was cut short";
    throw new Error(`database "${tenant.database}" ${why}: run \`tenant-migrate provision ${tenant.id}\``);
  }
  const unknown = unknownMigrations(state.applied, folder);
  if (unknown.length > 0) throw unknownMigrationsError(unknown);
  const done = new Set(state.applied.map((m) => m.name));
  const pending = folder.names.filter((name) => !done.has(name));
  if (pending.length === 0) return { result: "up-to-date", migrations: [] };
  const outside = await nonTransactional(job, pending);
  if (outside.length > 0) {
    options.onNotRehearsable?.(outside);
    return { result: "not-rehearsable", migrations: pending };
  }
  const migrations = await withTenantLock(job, (db) => rehearseInTransaction(db, job), { keepKnexFlag: true });
  return migrations.length > 0 ? { result: "rehearsed", migrations } : { result: "up-to-date", migrations: [] };
}

async function nonTransactional(job: TenantJob, names: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const name of names) if (!(await everyMigrationTransactional(job.folder, [name]))) found.push(name);
  return found;
}

/** knex's migrate.latest inside one transaction, always rolled back; returns what ran. */
async function rehearseInTransaction(db: Knex, job: TenantJob): Promise<string[]> {
  const ran: string[] = [];
  let current: string | undefined;
  try {
    await db.transaction(async (trx) => {
      // We hold the tenant's advisory lock, so a knex flag still set is stale:
      // clear it for knex's migrator, inside the transaction, so it comes back.
      await clearStaleKnexLock(trx);
      // Re-read under the lock: another run may have migrated this school meanwhile.
      const done = new Set((await readApplied(trx)).map((m) => m.name));
      if (job.folder.names.every((name) => done.has(name))) throw new RollBackRehearsal([]);
      await trx.migrate.latest({
        migrationSource: job.folder,
        beforeEach: async (_trx: Knex, [migration]: { name: string }[]) => {
          current = migration?.name;
        },
        afterEach: async (_trx: Knex, [migration]: { name: string }[]) => {
          if (migration) ran.push(migration.name);
        },
      } as Knex.MigratorConfig);
      throw new RollBackRehearsal(ran);
    });
  } catch (error) {
    if (error instanceof RollBackRehearsal) return error.migrations;
    const where = current ? `migration ${current} failed: ` : "";
    throw new TenantWorkError(`${where}${describeError(error)}`, [], { cause: error });
  }
  throw new Error("a rehearsal transaction committed"); // unreachable: the callback always throws
}
