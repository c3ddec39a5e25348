import { createHash } from "node:crypto";
import type { Knex } from "knex";
import type pg from "pg";
import { type ConnectionSettings, withDatabase } from "./connection.js";
import { withKnex } from "./db.js";
import { quoteIdent } from "./identifiers.js";
import type { MigrationFolder } from "./migration-folder.js";

// New tenants are copied (CREATE DATABASE ... TEMPLATE) from a database that
// already has every migration applied, instead of each running them all:
// the benchmark shows the copy costs about half of template1 + migrate.latest.

/** Advisory lock class on a server's admin database; the object is hashtext(database name). */
export const PROVISION_LOCK_CLASS = 74_657;

const TEMPLATE_PREFIX = "tenant_migrate_template_";

/** One template per migration set and role (a role may copy only the databases it owns). */
export function templateName(folder: MigrationFolder, user: string): string {
  const digest = createHash("sha256")
    .update([user, ...folder.names].join("\n"))
    .digest("hex");
  return `${TEMPLATE_PREFIX}${digest.slice(0, 24)}`;
}

/**
 * Returns the template for `folder` on this server, building it when needed:
 * created, migrated with knex's migrator, then closed to connections, which
 * marks it finished (one left half-built by a killed run is rebuilt). Builds
 * hold the template's lock exclusively; copies hold it shared, so a template
 * is never dropped or rebuilt while it is being copied.
 */
export async function ensureTemplate(
  pool: pg.Pool,
  admin: ConnectionSettings,
  folder: MigrationFolder,
): Promise<string> {
  const name = templateName(folder, admin.user);
  const quoted = quoteIdent(name);
  const client = await pool.connect();
  let failure: Error | undefined;
  try {
    await client.query("select pg_advisory_lock($1, hashtext($2))", [PROVISION_LOCK_CLASS, name]);
    const { rows } = await client.query<{ datallowconn: boolean }>(
      "select datallowconn from pg_database where datname = $1",
      [name],
    );
    if (rows[0]?.datallowconn === false) return name;
    if (rows.length > 0) await client.query(`drop database ${quoted} with (force)`);
    await client.query(`create database ${quoted}`);
    await withKnex(withDatabase(admin, name), (db) =>
      db.migrate.latest({ migrationSource: folder } as Knex.MigratorConfig),
    );
    await client.query(`alter database ${quoted} with allow_connections = false`);
    await dropOtherTemplates(client, name);
    return name;
  } catch (error) {
    failure = error as Error;
    throw error;
  } finally {
    await client.query("select pg_advisory_unlock($1, hashtext($2))", [PROVISION_LOCK_CLASS, name]).catch(() => {});
    client.release(failure);
  }
}

/** Templates of older migration sets go, unless a run is copying one right now. */
async function dropOtherTemplates(client: pg.PoolClient, keep: string): Promise<void> {
  const { rows } = await client.query<{ datname: string }>(
    `select datname from pg_database
      where datname like $1 and datname <> $2 and datdba = (select oid from pg_roles where rolname = current_user)`,
    [`${TEMPLATE_PREFIX}%`, keep],
  );
  for (const { datname } of rows) {
    const { rows: lock } = await client.query<{ ok: boolean }>("select pg_try_advisory_lock($1, hashtext($2)) as ok", [
      PROVISION_LOCK_CLASS,
      datname,
    ]);
    if (!lock[0]?.ok) continue;
    try {
      await client.query(`drop database if exists ${quoteIdent(datname)}`);
    } catch {
      // in use after all: the next build tries again
    } finally {
      await client.query("select pg_advisory_unlock($1, hashtext($2))", [PROVISION_LOCK_CLASS, datname]);
    }
  }
}

/**
 * CREATE DATABASE from the template, holding its lock shared for the copy.
 * False when the template is gone (a newer run dropped it): create it plainly.
 */
export async function createFromTemplate(client: pg.PoolClient, database: string, template: string): Promise<boolean> {
  await client.query("select pg_advisory_lock_shared($1, hashtext($2))", [PROVISION_LOCK_CLASS, template]);
  try {
    const { rows } = await client.query("select 1 from pg_database where datname = $1 and not datallowconn", [
      template,
    ]);
    if (rows.length === 0) return false;
    await client.query(
      `create database ${quoteIdent(database)} with template = ${quoteIdent(template)} allow_connections = false`,
    );
    return true;
  } finally {
    await client.query("select pg_advisory_unlock_shared($1, hashtext($2))", [PROVISION_LOCK_CLASS, template]);
  }
}
