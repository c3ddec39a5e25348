import { createHash, randomBytes } from "node:crypto";
import type { Knex } from "knex";
import type pg from "pg";
import { type ConnectionSettings, withDatabase } from "./connection.js";
import { withClient, withKnex } from "./db.js";
import { quoteIdent } from "./identifiers.js";
import { SCRATCH_LOCK_CLASS } from "./lock-keys.js";
import type { MigrationFolder } from "./migration-folder.js";

/**
 * What this admin database and role's scratch databases are named with: a
 * run of another catalog on the same server has its own (its locks live in
 * its own admin database), so it never drops ours.
 */
export function scratchPrefix(admin: Pick<ConnectionSettings, "database" | "user">): string {
  const digest = createHash("sha256").update(`${admin.database}\n${admin.user}`).digest("hex").slice(0, 12);
  return `tenant_migrate_diff_${digest}_`;
}

/**
 * Creates a scratch database on the admin connection's server, migrates it
 * from `folder` with knex's migrator, runs `fn` on a connection to it, and
 * drops it, whatever happens. Leftovers of dead runs are dropped first.
 */
export async function withScratchDatabase<T>(
  admin: ConnectionSettings,
  folder: MigrationFolder,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const prefix = scratchPrefix(admin);
  return withClient(admin, async (client) => {
    await dropLeftovers(client, prefix);
    const name = `${prefix}${randomBytes(6).toString("hex")}`;
    await client.query("select pg_advisory_lock($1, hashtext($2))", [SCRATCH_LOCK_CLASS, name]);
    try {
      await client.query(`create database ${quoteIdent(name)}`);
      const settings = withDatabase(admin, name);
      await withKnex(settings, (db) => db.migrate.latest({ migrationSource: folder } as Knex.MigratorConfig));
      return await withClient(settings, fn);
    } finally {
      await client.query(`drop database if exists ${quoteIdent(name)} with (force)`).catch(() => {});
      await client.query("select pg_advisory_unlock($1, hashtext($2))", [SCRATCH_LOCK_CLASS, name]).catch(() => {});
    }
  });
}

async function dropLeftovers(client: pg.Client, prefix: string): Promise<void> {
  const { rows } = await client.query<{ datname: string }>(
    `select datname from pg_database
      where starts_with(datname, $1) and datdba = (select oid from pg_roles where rolname = current_user)`,
    [prefix],
  );
  for (const { datname } of rows) {
    const { rows: lock } = await client.query<{ ok: boolean }>("select pg_try_advisory_lock($1, hashtext($2)) as ok", [
      SCRATCH_LOCK_CLASS,
      datname,
    ]);
    if (!lock[0]?.ok) continue; // a live run's
    try {
      await client.query(`drop database if exists ${quoteIdent(datname)} with (force)`);
    } catch {
      // the next run tries again
    } finally {
      await client.query("select pg_advisory_unlock($1, hashtext($2))", [SCRATCH_LOCK_CLASS, datname]);
    }
  }
}
