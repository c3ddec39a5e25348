import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Knex } from "knex";
import type pg from "pg";
import { recordChecksum } from "./checksums.js";
import { type ConnectionSettings, withDatabase } from "./connection.js";
import { withClient, withKnex } from "./db.js";
import { errorCode } from "./errors.js";
import { quoteIdent } from "./identifiers.js";
import { PROVISION_LOCK_CLASS } from "./lock-keys.js";
import type { MigrationFolder } from "./migration-folder.js";
import { PROVISIONING_CONNECTION_LIMIT } from "./provisioning.js";

// New tenants are copied (CREATE DATABASE ... TEMPLATE) from a database that
// already has every migration applied, instead of each running them all:
// the benchmark shows the copy costs about half of template1 + migrate.latest.

const digest = (parts: string[], length: number) =>
  createHash("sha256").update(parts.join("\n")).digest("hex").slice(0, length);

/**
 * The name every template of this admin database and role starts with. The
 * locks that guard templates live in the admin database (advisory locks are
 * per database), so runs with another admin database, such as another
 * catalog on the same server, get templates of their own and never drop or
 * rebuild these.
 */
export function templatePrefix(admin: Pick<ConnectionSettings, "database" | "user">): string {
  return `tenant_migrate_template_${digest([admin.database, admin.user], 12)}_`;
}

/** The knex that runs the migrations: another knex version may do the same files differently. */
const KNEX_VERSION = (createRequire(import.meta.url)("knex/package.json") as { version: string }).version;

/**
 * What a template holds: the knex version and every migration file's name
 * and bytes, in order. An edited file (not only a new one) gives a new key.
 */
export function migrationSetKey(folder: MigrationFolder): string {
  const files = folder.files.map(
    (f) => `${f.name}\t${createHash("sha256").update(readFileSync(f.file)).digest("hex")}`,
  );
  return digest([`knex ${KNEX_VERSION}`, ...files], 16);
}

/**
 * One template per admin database, role (a role may copy only the databases
 * it owns) and migration set (the files' contents, see migrationSetKey).
 */
export function templateName(
  admin: ConnectionSettings,
  folder: MigrationFolder,
  key = migrationSetKey(folder),
): string {
  return `${templatePrefix(admin)}${key}`;
}

/**
 * setval(seq, last_value, is_called) on every sequence: same value, log_cnt 0.
 * A copy (CREATE DATABASE ... TEMPLATE) gets each sequence page as it is; with
 * log_cnt > 0 the copy's first nextval calls write no WAL, and after a crash
 * the sequence would come back at the template's value and hand out ids again.
 */
const RESET_SEQUENCES = `do $$
declare
  seq regclass;
  last bigint;
  called boolean;
begin
  for seq in select oid::regclass from pg_class where relkind = 'S' loop
    execute format('select last_value, is_called from %s', seq) into last, called;
    perform setval(seq, last, called);
  end loop;
end
$$`;

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
  const name = templateName(admin, folder);
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
    const template = withDatabase(admin, name);
    // With the checksums a school migrated by the tool gets: copies carry them (same files).
    const afterEach = (trx: Knex, [m]: { name: string }[]) => (m ? recordChecksum(trx, folder, m.name) : undefined);
    await withKnex(template, (db) => db.migrate.latest({ migrationSource: folder, afterEach } as Knex.MigratorConfig));
    await withClient(template, (c) => c.query(RESET_SEQUENCES));
    // Frozen, as template0 is: otherwise each copy's first reader sets hint bits
    // on every page it reads, and with data checksums (on by default since
    // PostgreSQL 18) writes each page whole to WAL: ~40 KiB of WAL and a slower
    // first connection per school.
    await withClient(template, (c) => c.query("vacuum (freeze)"));
    await client.query(`alter database ${quoted} with allow_connections = false`);
    await dropOtherTemplates(client, templatePrefix(admin), name);
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
async function dropOtherTemplates(client: pg.PoolClient, prefix: string, keep: string): Promise<void> {
  const { rows } = await client.query<{ datname: string }>(
    `select datname from pg_database
      where starts_with(datname, $1) and datname <> $2 and datdba = (select oid from pg_roles where rolname = current_user)`,
    [prefix, keep],
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
    try {
      await client.query(
        `create database ${quoteIdent(database)} with template = ${quoteIdent(template)} allow_connections = false connection limit = ${PROVISIONING_CONNECTION_LIMIT}`,
      );
    } catch (error) {
      // Dropped by hand after the check above: the lock guards only against our own runs.
      if (errorCode(error) === "3D000") return false;
      throw error;
    }
    return true;
  } finally {
    await client.query("select pg_advisory_unlock_shared($1, hashtext($2))", [PROVISION_LOCK_CLASS, template]);
  }
}
