import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Knex } from "knex";
import type pg from "pg";
import { errorCode } from "./errors.js";
import type { MigrationFolder } from "./migration-folder.js";

// Edited migrations: when the tool applies a migration to a school, the
// sha256 of the file's contents is written to this table in the school's own
// database, inside the transaction that applies the migration (knex's
// afterEach hook gets it), so it commits with the migration or not at all.
// knex's own tables stay knex's. A database migrated before the tool knew it
// has no row for those migrations, and they are never reported as edited.

/** The school's table of applied files' checksums; `tenant_migrate_` marks it as the tool's (diff leaves it out). */
export const CHECKSUM_TABLE = "tenant_migrate_checksums";

const fileHashes = new WeakMap<MigrationFolder, Map<string, string>>();

/** sha256 of a migration file's contents, read once per folder and run. */
export function fileChecksum(folder: MigrationFolder, name: string): string | undefined {
  let hashes = fileHashes.get(folder);
  if (!hashes) {
    hashes = new Map();
    fileHashes.set(folder, hashes);
  }
  let hash = hashes.get(name);
  if (hash === undefined) {
    const entry = folder.files.find((f) => f.name === name);
    if (!entry) return undefined;
    hash = createHash("sha256").update(readFileSync(entry.file)).digest("hex");
    hashes.set(name, hash);
  }
  return hash;
}

/**
 * Records that `name` was applied with the file's current contents; call it
 * from knex's afterEach with the `trx` it passes (the migration's own
 * transaction, when it has one).
 */
export async function recordChecksum(db: Knex, folder: MigrationFolder, name: string): Promise<void> {
  const sha256 = fileChecksum(folder, name);
  if (sha256 === undefined) return;
  await db.raw(
    `create table if not exists ${CHECKSUM_TABLE} (
       name text primary key, sha256 text not null, applied_at timestamptz not null default now())`,
  );
  await db.raw(
    `insert into ${CHECKSUM_TABLE} (name, sha256) values (?, ?)
       on conflict (name) do update set sha256 = excluded.sha256, applied_at = now()`,
    [name, sha256],
  );
}

/** Forgets the checksum of a migration that was rolled back (same transaction as the rollback). */
export async function forgetChecksum(db: Knex, name: string): Promise<void> {
  // A failed statement would abort the rollback's transaction: look before deleting.
  const { rows } = await db.raw("select to_regclass(?) is not null as present", [CHECKSUM_TABLE]);
  if (rows[0]?.present) await db.raw(`delete from ${CHECKSUM_TABLE} where name = ?`, [name]);
}

/** The recorded checksums by migration name; none when the table does not exist (never migrated by the tool). */
export async function readChecksums(client: pg.Client): Promise<Map<string, string>> {
  try {
    const { rows } = await client.query<{ name: string; sha256: string }>(`select name, sha256 from ${CHECKSUM_TABLE}`);
    return new Map(rows.map((r) => [r.name, r.sha256]));
  } catch (error) {
    if (errorCode(error) === "42P01") return new Map();
    throw error;
  }
}

/** Applied migrations whose file changed since it was applied here (those with no recorded checksum are not). */
export function editedMigrations(applied: string[], recorded: Map<string, string>, folder: MigrationFolder): string[] {
  return applied.filter((name) => {
    const then = recorded.get(name);
    if (then === undefined) return false;
    const now = fileChecksum(folder, name);
    return now !== undefined && then !== now;
  });
}
