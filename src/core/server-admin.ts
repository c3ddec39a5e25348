// A server's administrative side for one run: pooled admin connections
// (CREATE/DROP DATABASE), which databases it has, its template.
//
// Four notions of "a server", none interchangeable:
// - adminKey (here): one admin connection, host:port/admin database/role.
//   Templates and scratch databases are named per admin database and role,
//   and their locks live in the admin database, so two catalogs on one server
//   get a pool, a database list and a template each.
// - serverKey (connection.ts): a server as it is reached, host:port. Two
//   spellings of one server (an alias, localhost and 127.0.0.1) are two keys.
//   Reads (status, diff, rollback) are bounded per key; it also names a
//   server in messages and indexes the identities below.
// - The server identity (server-identity.ts): what the server says it is
//   (system identifier, port, start time), read once per serverKey per run.
//   Fleet runs bound concurrency by it, and rows on two spellings of one
//   server that name one database are refused.
// - serverName (TenantPlacement, catalog.ts): a label for messages, the
//   TENANT_SERVERS name or "catalog"; never a key. Results carry the row's
//   own school_server (Tenant.server, null for the catalog's server).
import type pg from "pg";
import type { ConnectionSettings } from "./connection.js";
import { toolPool } from "./db.js";
import { quoteIdent } from "./identifiers.js";
import type { MigrationFolder } from "./migration-folder.js";
import { MARKED } from "./provisioning.js";
import { ensureTemplate } from "./template.js";

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

/**
 * One admin connection (server, admin database and role): tenants sharing it
 * share a pool, one database list and one template. Unlike serverKey, two
 * admin databases on one server are two keys (see the top of this file).
 */
export function adminKey(settings: ConnectionSettings): string {
  return `${settings.host}:${settings.port}/${settings.database}/${settings.user}`;
}

/**
 * Administrative connections (CREATE/DROP DATABASE), pooled for the run per
 * adminKey. A fleet run's pools are as wide as `--concurrency`, so that its
 * workers create databases side by side, and each connection is closed when
 * it is handed back (`closeOnRelease`): then the run holds at most
 * `--concurrency` + 2 connections per server. A worker holds one connection
 * at a time (an admin one, closed by release() before it opens its school's,
 * or a school's), except the one building a template (the admin connection
 * and the template's): one more; and the catalog's.
 */
export class AdminPools {
  private readonly pools = new Map<string, pg.Pool>();
  private readonly databases = new Map<string, Promise<Set<string> | undefined>>();
  private readonly templates = new Map<string, Promise<string | undefined>>();
  /** `size`: admin connections per admin database at once; `closeOnRelease`: none is kept idle. */
  constructor(
    private readonly size: number,
    private readonly options: { closeOnRelease?: boolean } = {},
  ) {}

  get(settings: ConnectionSettings): pg.Pool {
    const key = adminKey(settings);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = toolPool(settings, {
        max: this.size,
        idleTimeoutMillis: 10_000,
        // Used once: the pool closes a connection as it is released (pool.query's too).
        ...(this.options.closeOnRelease ? { maxUses: 1 } : {}),
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
   * Hands back a connection taken from get(settings); one that failed is
   * closed. With `closeOnRelease`, returns once it is closed (its server slot
   * is free then), or after a second at most.
   */
  async release(settings: ConnectionSettings, client: pg.PoolClient, failure?: Error): Promise<void> {
    if (!this.options.closeOnRelease) {
      client.release(failure);
      return;
    }
    const pool = this.get(settings);
    let onRemove: ((removed: pg.Client) => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const closed = new Promise<void>((resolve) => {
      onRemove = (removed) => removed === client && resolve();
      pool.on("remove", onRemove);
      timer = setTimeout(resolve, 1_000);
    });
    client.release(true);
    await closed;
    clearTimeout(timer);
    if (onRemove) pool.off("remove", onRemove);
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

export type DropResult = "dropped" | "not-provisioned";

export async function dropDatabase(admin: pg.Pool, database: string): Promise<DropResult> {
  const { rows } = await admin.query("select 1 from pg_database where datname = $1", [database]);
  if (rows.length === 0) return "not-provisioned";
  await admin.query(`drop database ${quoteIdent(database)}`);
  return "dropped";
}
