import type { Knex } from "knex";
import type pg from "pg";
import { quoteIdent } from "./identifiers.js";

// How a database the tool is creating is told apart from one an operator
// closed, also after a kill -9 at any point. CREATE DATABASE cannot run in a
// transaction, so the mark must be an attribute CREATE DATABASE sets itself:
// the database is created closed (ALLOW_CONNECTIONS false) with this
// CONNECTION LIMIT. Then, in one transaction, PUBLIC is revoked, a comment
// says what is going on, and the database is opened to its owner (PUBLIC has
// no CONNECT). After every migration ran, in one more transaction, the app
// role is granted and both marks are cleared. Both marks are in pg_database
// and pg_shdescription: one query per server sees them, without connecting
// to any school. A database is never renamed: a migration calling
// current_database() sees the school's own name.

/** The CONNECTION LIMIT of a database tenant-migrate has created and not yet finished. */
export const PROVISIONING_CONNECTION_LIMIT = 74_657;

/** The comment on such a database, once it is open to migrations. */
export const PROVISIONING_COMMENT =
  "tenant-migrate: being provisioned, not ready for use (the next tenant-migrate provision or all finishes it)";

/** SQL, true when the database row `d` (pg_database) carries either mark. */
export const MARKED = `(d.datconnlimit = ${PROVISIONING_CONNECTION_LIMIT}
  or coalesce(shobj_description(d.oid, 'pg_database') = '${PROVISIONING_COMMENT.replace(/'/g, "''")}', false))`;

/** One statement: whether the current database is one the tool has not finished provisioning. */
export const CURRENT_DATABASE_MARKED = `select ${MARKED} as provisioning from pg_database d where d.datname = current_database()`;

export type DatabaseMark =
  | { exists: false }
  | {
      exists: true;
      allowConnections: boolean;
      /** Created by tenant-migrate and not finished: the next provisioning run finishes it. */
      provisioning: boolean;
    };

/** What pg_database says about `database`, from any database of its server. */
export async function readDatabaseMark(
  client: pg.Pool | pg.PoolClient | pg.Client,
  database: string,
): Promise<DatabaseMark> {
  const { rows } = await client.query<{ datallowconn: boolean; provisioning: boolean }>(
    `select d.datallowconn, ${MARKED} as provisioning from pg_database d where d.datname = $1`,
    [database],
  );
  const row = rows[0];
  if (!row) return { exists: false };
  return { exists: true, allowConnections: row.datallowconn, provisioning: row.provisioning };
}

/** The statement that creates a school's database, closed and marked in one step. */
export function createMarkedDatabaseSql(database: string): string {
  return `create database ${quoteIdent(database)} with allow_connections = false connection limit = ${PROVISIONING_CONNECTION_LIMIT}`;
}

/**
 * Opens a marked database to its owner, for the migrations: PUBLIC revoked,
 * the comment set and connections allowed, in one transaction.
 */
export async function openForMigrations(client: pg.PoolClient | pg.Client, database: string): Promise<void> {
  const name = quoteIdent(database);
  await client.query("begin");
  try {
    await client.query(`revoke all on database ${name} from public`);
    await client.query(`comment on database ${name} is '${PROVISIONING_COMMENT.replace(/'/g, "''")}'`);
    await client.query(`alter database ${name} with allow_connections = true`);
    await client.query("commit");
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  }
}

/** Runs one statement with `?` placeholders: on a knex transaction or a pg client. */
export type Exec = (sql: string, params?: unknown[]) => Promise<Record<string, unknown>[]>;

export function knexExec(db: Knex | Knex.Transaction): Exec {
  return async (sql, params = []) => (await db.raw(sql, params as Knex.RawBinding[])).rows;
}

export function pgExec(client: pg.PoolClient | pg.Client): Exec {
  return async (sql, params = []) => {
    let n = 0;
    return (
      await client.query(
        sql.replace(/\?/g, () => `$${++n}`),
        params,
      )
    ).rows;
  };
}

/**
 * Makes a marked database ready, inside the caller's transaction: the app
 * role granted, the marks that are still ours cleared (a migration's own
 * COMMENT ON DATABASE or CONNECTION LIMIT stays). False when it carries no
 * mark (another run finished it, or it was never ours): nothing changed.
 */
export async function finishProvisioning(exec: Exec, database: string, appRole: string | undefined): Promise<boolean> {
  const rows = await exec(
    `select d.datconnlimit = ? as by_limit,
            coalesce(shobj_description(d.oid, 'pg_database') = ?, false) as by_comment
       from pg_database d where d.datname = ?`,
    [PROVISIONING_CONNECTION_LIMIT, PROVISIONING_COMMENT, database],
  );
  const mark = rows[0] as { by_limit: boolean; by_comment: boolean } | undefined;
  if (!mark || (!mark.by_limit && !mark.by_comment)) return false;
  const name = quoteIdent(database);
  if (appRole) await exec(`grant connect, temporary on database ${name} to ${quoteIdent(appRole)}`);
  if (mark.by_comment) await exec(`comment on database ${name} is null`);
  if (mark.by_limit) await exec(`alter database ${name} with connection limit = -1`);
  return true;
}

/** A database an operator closed: the tool never opens it. */
export class ClosedDatabaseError extends Error {
  constructor(database: string) {
    super(
      `database "${database}" is closed (ALLOW_CONNECTIONS false) and was not made by tenant-migrate: not reopened; an operator opens it with ALTER DATABASE ${quoteIdent(database)} ALLOW_CONNECTIONS true`,
    );
  }
}

/** An existing database that the tool did not make and knex never migrated: provision adopts it only when told. */
export class ForeignDatabaseError extends Error {
  constructor(database: string) {
    super(
      `database "${database}" already exists, was not made by tenant-migrate and has no knex_migrations table: not adopted (use --adopt to migrate it as this school's database)`,
    );
  }
}
