// What knex has recorded in a database, a tenant's mostly (knex_migrations and its
// lock flag), read without changing anything, and the checks on it that
// every kind of tenant work makes first.
import type { Knex } from "knex";
import type pg from "pg";
import { readChecksums } from "./checksums.js";
import { withClient } from "./db.js";
import { errorCode } from "./errors.js";
import type { MigrationFolder } from "./migration-folder.js";
import { CURRENT_DATABASE_MARKED, readDatabaseMark } from "./provisioning.js";
import type { TenantJob } from "./tenant-job.js";

export interface AppliedMigration {
  name: string;
  batch: number;
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

export interface KnexState {
  applied: AppliedMigration[];
  /** knex_migrations_lock.is_locked is set. */
  knexLocked: boolean;
  /** knex_migrations exists (a database knex never migrated has none). */
  knexTable: boolean;
  /** The tool created this database and has not finished provisioning it (see provisioning.ts). */
  provisioning: boolean;
}

/** What a tenant has applied, whether knex's lock flag is set and whether it is still being provisioned, in one round trip (simple query protocol). */
export async function readKnexState(client: pg.Client): Promise<KnexState> {
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
