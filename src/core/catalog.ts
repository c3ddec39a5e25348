import type pg from "pg";
import type { Config } from "./config.js";
import { type ConnectionSettings, describeConnection, withDatabase } from "./connection.js";
import { acquireAdvisoryLock, clearStaleKnexLock, openClient, withKnex, withRetries } from "./db.js";
import { describeError, errorCode, InterruptedError, UsageError } from "./errors.js";
import type { EmitEvent, Tenant } from "./fleet-types.js";
import { CATALOG_LOCK_KEY } from "./lock-keys.js";
import { MigrationFolder } from "./migration-folder.js";
import { redact } from "./redact.js";

export function catalogSettings(config: Config): ConnectionSettings {
  if (!config.catalog) throw new UsageError("no catalog connection (the embedded server has not started)");
  return config.catalog;
}

/**
 * Opens the catalog connection for the length of `fn`. A catalog that cannot
 * be reached is a catalog error (exit 2), named by its masked URL, once
 * transient faults (a restarting server) have been tried `--retries` times.
 */
export async function withCatalog<T>(config: Config, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connectCatalog(config);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** A new catalog connection, transient faults retried; a catalog error (exit 2) when it cannot be had. */
export async function connectCatalog(config: Config, signal?: AbortSignal): Promise<pg.Client> {
  const settings = catalogSettings(config);
  try {
    return await withRetries(() => openClient(settings), { retries: config.retries, signal });
  } catch (error) {
    throw catalogConnectError(settings, error);
  }
}

export function catalogConnectError(settings: ConnectionSettings, error: unknown): UsageError {
  const where = describeConnection(settings);
  if (errorCode(error) === "3D000") {
    return new UsageError(
      `catalog database "${settings.database}" does not exist on ${where}: create it (createdb ${settings.database}) or fix CATALOG_DATABASE_URL`,
      { cause: error },
    );
  }
  return new UsageError(redact(`cannot connect to the catalog ${where}: ${describeError(error)}`), { cause: error });
}

/**
 * Every catalog row, in school_id order. A catalog with no schools table is a
 * UsageError, or null when `missingOk`.
 */
export async function loadTenants(client: pg.Client): Promise<Tenant[]>;
export async function loadTenants(client: pg.Client, missingOk: boolean): Promise<Tenant[] | null>;
export async function loadTenants(client: pg.Client, missingOk = false): Promise<Tenant[] | null> {
  try {
    return await readSchools(client, missingOk);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    // A catalog that cannot be read is a catalog error: exit 2, nothing changed.
    throw new UsageError(`cannot read the catalog's schools table: ${describeError(error)}`, { cause: error });
  }
}

async function readSchools(client: pg.Client, missingOk: boolean): Promise<Tenant[] | null> {
  const { rows: columns } = await client.query<{ column_name: string }>(
    `select column_name from information_schema.columns
      where table_name = 'schools' and table_schema = any (current_schemas(false))`,
  );
  const names = new Set(columns.map((c) => c.column_name));
  if (!names.has("school_id") || !names.has("school_database")) {
    if (missingOk) return null;
    throw new UsageError(
      "the catalog has no schools table (school_id, school_name, school_database): run `tenant-migrate catalog migrate` first",
    );
  }
  const serverColumn = names.has("school_server") ? "school_server" : "null";
  const nameColumn = names.has("school_name") ? "school_name" : "null";
  const { rows } = await client.query<{
    id: string;
    name: string | null;
    database: string;
    server: string | null;
  }>(
    `select school_id::text as id, ${nameColumn}::text as name, school_database::text as database,
            ${serverColumn}::text as server
       from schools order by school_id`,
  );
  return rows.map((r) => ({
    id: r.id,
    name: r.name ?? "",
    database: r.database ?? "",
    server: r.server,
  }));
}

/**
 * The tenants named on the command line, by school_id, school_database or
 * exact school_name (case-insensitive), in the order given; every unknown or
 * ambiguous name is reported at once (exit 2), with the closest match.
 */
export function selectTenants(all: Tenant[], names: string[]): Tenant[] {
  if (names.length === 0) return all;
  const unknown: string[] = [];
  const problems: string[] = [];
  const chosen = new Map<string, Tenant>();
  for (const name of names) {
    let tenant = all.find((t) => t.id === name) ?? all.find((t) => t.database === name);
    if (!tenant) {
      const named = all.filter((t) => t.name !== "" && t.name.toLowerCase() === name.toLowerCase());
      if (named.length > 1) {
        problems.push(
          `"${name}" is the name of schools ${named.map((t) => t.id).join(", ")}: name one by its school_id`,
        );
        continue;
      }
      tenant = named[0];
    }
    if (tenant) chosen.set(tenant.id, tenant);
    else unknown.push(name);
  }
  if (unknown.length > 0) {
    const guesses = unknown.map((name) => {
      const guess = closestTenantName(all, name);
      return guess === undefined ? name : `${name} (did you mean ${guess}?)`;
    });
    problems.unshift(
      `unknown tenant${unknown.length > 1 ? "s" : ""}: ${guesses.join(", ")} (name a school by its school_id, school_database or school_name)`,
    );
  }
  if (problems.length > 0) throw new UsageError(problems.join("; "));
  return [...chosen.values()];
}

/** The school_database or school_name closest to `name` (a typo away), if any is close enough. */
export function closestTenantName(all: Tenant[], name: string): string | undefined {
  const wanted = name.toLowerCase();
  let best: { text: string; distance: number } | undefined;
  for (const tenant of all) {
    for (const text of [tenant.database, tenant.name]) {
      if (text === "") continue;
      const distance = editDistance(wanted, text.toLowerCase());
      if (!best || distance < best.distance) best = { text, distance };
    }
  }
  // A typo: a few letters wrong, not another word altogether.
  if (!best || best.distance > Math.max(2, Math.floor(wanted.length / 3))) return undefined;
  return best.text;
}

/** Levenshtein distance (insertions, deletions, substitutions). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

export interface TenantPlacement {
  /** The tenant database's connection settings. */
  settings: ConnectionSettings;
  /** The server's administrative connection (CREATE/DROP DATABASE). */
  admin: ConnectionSettings;
  /**
   * The server's name for messages: its TENANT_SERVERS name, or "catalog".
   * Not a key: results carry the tenant's own `server`, and concurrency is
   * bounded per server identity (see server-admin.ts for the notions of a server).
   */
  serverName: string;
}

/** Where a tenant lives, or why it cannot be placed. */
export function placeTenant(config: Config, tenant: Tenant): TenantPlacement {
  const catalog = catalogSettings(config);
  if (tenant.server === null || tenant.server === "") {
    return {
      settings: withDatabase(catalog, tenant.database),
      admin: catalog,
      serverName: "catalog",
    };
  }
  const server = config.tenantServers.get(tenant.server);
  if (!server) {
    throw new Error(`school_server "${tenant.server}" is not a server named in TENANT_SERVERS`);
  }
  return {
    settings: withDatabase(server, tenant.database),
    admin: server,
    serverName: tenant.server,
  };
}

export function catalogFolder(config: Config): MigrationFolder {
  return new MigrationFolder(config.catalogMigrationsDir, "--catalog-migrations / CATALOG_MIGRATIONS_DIR");
}

/** knex's migrator on the catalog's own migrations, under the catalog's advisory lock. */
export async function withCatalogMigrator<T>(
  config: Config,
  fn: (db: import("knex").Knex, folder: MigrationFolder) => Promise<T>,
  hooks: { onEvent?: EmitEvent | undefined; signal?: AbortSignal | undefined } = {},
): Promise<T> {
  // A catalog that cannot be reached yet (a restarting server) is tried again, as withCatalog does.
  const retryIf = (error: unknown) => error instanceof UsageError;
  return withRetries(() => catalogMigrator(config, fn, hooks), {
    retries: config.retries,
    signal: hooks.signal,
    retryIf,
  });
}

async function catalogMigrator<T>(
  config: Config,
  fn: (db: import("knex").Knex, folder: MigrationFolder) => Promise<T>,
  hooks: { onEvent?: EmitEvent | undefined; signal?: AbortSignal | undefined },
): Promise<T> {
  const folder = catalogFolder(config);
  const settings = catalogSettings(config);
  return withKnex(settings, async (db) => {
    // Several pipelines may migrate the catalog at once: take turns. This is
    // also the first query, so a failure here is a failure to connect.
    const seconds = Math.round(config.lockTimeoutMs / 1000);
    const onWait = () =>
      hooks.onEvent?.({
        type: "notice",
        message: `catalog: another run is migrating it; waiting (up to ${seconds} s)`,
      });
    let lock: Awaited<ReturnType<typeof acquireAdvisoryLock>>;
    try {
      lock = await acquireAdvisoryLock(db, CATALOG_LOCK_KEY, config.lockTimeoutMs, onWait, hooks.signal);
    } catch (error) {
      throw catalogConnectError(settings, error);
    }
    if (lock === "interrupted") {
      throw new InterruptedError("interrupted while waiting for another run's catalog migration lock; nothing changed");
    }
    if (lock !== "acquired") {
      throw new UsageError(
        `another tenant-migrate run is migrating the catalog; gave up after ${seconds} s (--lock-timeout)`,
      );
    }
    if (await clearStaleKnexLock(db)) {
      hooks.onEvent?.({
        type: "notice",
        message: "catalog: cleared a knex migration lock left by a process that is gone",
      });
    }
    return fn(db, folder);
  });
}
