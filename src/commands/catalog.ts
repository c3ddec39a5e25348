import type { Knex } from "knex";
import { catalogFolder, withCatalog, withCatalogMigrator } from "../core/catalog.js";
import { UsageError } from "../core/errors.js";
import { readApplied } from "../core/knex-state.js";
import type { MigrationFolder } from "../core/migration-folder.js";
import type { CommandOptions } from "./options.js";
import { checkMigrationFolder } from "./preflight.js";

export interface CatalogMigrateResult {
  migrations: string[];
}

/**
 * Brings the catalog to its latest migration (knex's migrate.latest). An
 * up-to-date catalog is settled with one query, before knex is even loaded.
 */
export async function migrateCatalog(
  options: CommandOptions & {
    /** Return the pending migrations; run none. @default false */
    dryRun?: boolean;
  },
): Promise<CatalogMigrateResult> {
  const folder = catalogFolder(options.config);
  const { pending, unknown } = await readCatalogStatus(options, folder);
  if (unknown.length > 0) {
    throw new UsageError(
      `the catalog has applied migrations that no file in ${folder.dir} matches: ${unknown.join(", ")} (is --catalog-migrations the right folder?)`,
    );
  }
  if (pending.length > 0) await checkMigrationFolder(folder);
  if (pending.length === 0 || options.dryRun) return { migrations: pending };
  return withCatalogMigrator(
    options.config,
    async (db) => {
      const [, log] = await db.migrate.latest({
        migrationSource: folder,
      } as Knex.MigratorConfig);
      return { migrations: log as string[] };
    },
    options,
  );
}

/** Undoes the catalog's last batch, or every batch with `all`. */
export async function rollbackCatalog(
  options: CommandOptions & {
    /** Undo every batch instead of the last one. @default false */
    all?: boolean;
  },
): Promise<CatalogMigrateResult> {
  return withCatalogMigrator(
    options.config,
    async (db, folder) => {
      const [, log] = await db.migrate.rollback(
        { migrationSource: folder } as Knex.MigratorConfig,
        options.all === true,
      );
      return { migrations: log as string[] };
    },
    options,
  );
}

export interface CatalogStatus {
  applied: string[];
  pending: string[];
  /** Applied migrations that no file matches. */
  unknown: string[];
  latest: string | null;
}

/** A read: it takes no lock, so it never waits for a run that is migrating the catalog. */
export async function catalogStatus(options: CommandOptions): Promise<CatalogStatus> {
  return readCatalogStatus(options, catalogFolder(options.config));
}

async function readCatalogStatus(options: CommandOptions, folder: MigrationFolder): Promise<CatalogStatus> {
  const applied = (await withCatalog(options.config, readApplied)).map((m) => m.name);
  const done = new Set(applied);
  return {
    applied,
    pending: folder.names.filter((n) => !done.has(n)),
    unknown: applied.filter((n) => !folder.has(n)),
    latest: folder.latest ?? null,
  };
}
