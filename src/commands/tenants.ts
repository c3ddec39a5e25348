import { loadTenants, placeTenant, withCatalog } from "../core/catalog.js";
import type { ConnectionSettings } from "../core/connection.js";
import { withClient } from "../core/db.js";
import { describeError, errorCode, UsageError } from "../core/errors.js";
import type { FleetResult, Tenant } from "../core/fleet-types.js";
import { databaseNameFrom, databaseNameProblem } from "../core/identifiers.js";
import { ForeignDatabaseError, readDatabaseMark } from "../core/provisioning.js";
import { reservedDatabaseProblem } from "../core/reserved.js";
import { adminKey, databasesOn } from "../core/server-admin.js";
import type { CommandOptions } from "./options.js";
import { appMigrationFolder, checkAppRole, checkMigrationFolder } from "./preflight.js";
import { provisionTenants } from "./provision.js";

export interface TenantListEntry extends Tenant {
  /** Whether the database exists; null when its server could not be asked. */
  exists: boolean | null;
  problem?: string;
}

/** Catalog rows, with whether each database exists (one query per server). */
export async function listTenants(options: CommandOptions): Promise<TenantListEntry[]> {
  return withCatalog(options.config, async (catalog) => {
    const tenants = await loadTenants(catalog);
    const existing = new Map<string, Set<string> | Error>();
    const entries: TenantListEntry[] = [];
    for (const tenant of tenants) {
      let admin: ConnectionSettings;
      try {
        admin = placeTenant(options.config, tenant).admin;
      } catch (error) {
        entries.push({
          ...tenant,
          exists: null,
          problem: (error as Error).message,
        });
        continue;
      }
      const key = adminKey(admin);
      if (!existing.has(key)) existing.set(key, await withClient(admin, databasesOn).catch((error: Error) => error));
      const names = existing.get(key);
      if (names instanceof Error)
        entries.push({
          ...tenant,
          exists: null,
          problem: describeError(names),
        });
      else
        entries.push({
          ...tenant,
          exists: names?.has(tenant.database) ?? null,
        });
    }
    return entries;
  });
}

export interface AddTenantOptions extends CommandOptions {
  /** The school's name, e.g. "Lincoln High". */
  name: string;
  /** Its database. @default derived from the name, e.g. "lincoln_high" */
  database?: string;
  /** A server named in TENANT_SERVERS. @default undefined (the catalog's server) */
  server?: string;
  /** Create and migrate its database now. @default false */
  provision?: boolean;
  /** With provision: accept an existing database that the tool did not make and knex never migrated. @default false */
  adopt?: boolean;
}

export interface AddTenantResult {
  tenant: Tenant;
  provision?: FleetResult;
}

/** Inserts a catalog row (database name derived from the school name when not given); optionally provisions it. */
export async function addTenant(options: AddTenantOptions): Promise<AddTenantResult> {
  const name = options.name.trim();
  if (!name) throw new UsageError("a school needs a name");
  const database = options.database ?? databaseNameFrom(name);
  if (!database)
    throw new UsageError(`cannot derive a database name from ${JSON.stringify(name)}: give one with --database`);
  const problem = databaseNameProblem(database) ?? reservedDatabaseProblem(database, options.config);
  if (problem) throw new UsageError(`--database: ${problem}`);
  if (options.server !== undefined && !options.config.tenantServers.has(options.server)) {
    throw new UsageError(`--server: "${options.server}" is not a server named in TENANT_SERVERS`);
  }
  if (options.provision) {
    // What provisioning would refuse (exit 2) is refused before the row goes in: nothing changed.
    await checkMigrationFolder(appMigrationFolder(options.config));
    await checkAppRole(options.config, [{ id: "", name, database, server: options.server ?? null }]);
  }
  const tenant = await withCatalog(options.config, async (catalog) => {
    await loadTenants(catalog); // fails clearly when the catalog is not migrated
    // A server that cannot be asked now: the row goes in and its provisioning fails alone, as usual.
    if (options.provision && !options.adopt) {
      const foreign = await isForeign(options.config, database, options.server).catch(() => false);
      if (foreign) throw new UsageError(new ForeignDatabaseError(database).message);
    }
    try {
      const columns = options.server === undefined ? "" : ", school_server";
      const values = options.server === undefined ? "" : ", $3";
      const params = options.server === undefined ? [name, database] : [name, database, options.server];
      const { rows } = await catalog.query<{ id: string }>(
        `insert into schools (school_name, school_database${columns}) values ($1, $2${values}) returning school_id::text as id`,
        params,
      );
      return {
        id: rows[0]?.id ?? "",
        name,
        database,
        server: options.server ?? null,
      };
    } catch (error) {
      if (errorCode(error) === "23505") {
        throw new UsageError(`database "${database}" is already named by another school (use --database)`);
      }
      if (errorCode(error) === "42703") {
        throw new UsageError(
          "the catalog's schools table has no school_server column: run `tenant-migrate catalog migrate`",
        );
      }
      throw error;
    }
  });
  if (!options.provision) return { tenant };
  const provision = await provisionTenants({
    ...options,
    tenants: [tenant.id],
  });
  return { tenant, provision };
}

/**
 * Before the row is inserted: whether `--provision` would adopt an existing
 * database that the tool did not make and knex never migrated (refused with
 * exit 2, nothing inserted, unless --adopt).
 */
async function isForeign(
  config: AddTenantOptions["config"],
  database: string,
  server: string | undefined,
): Promise<boolean> {
  const { admin, settings } = placeTenant(config, { id: "", name: "", database, server: server ?? null });
  const mark = await withClient(admin, (client) => readDatabaseMark(client, database));
  // Absent, the tool's own (half-made), or closed (it then fails as closed): not for this check.
  if (!mark.exists || mark.provisioning || !mark.allowConnections) return false;
  return withClient(settings, async (client) => {
    const { rows } = await client.query<{ ok: boolean }>("select to_regclass('knex_migrations') is null as ok");
    return rows[0]?.ok === true;
  });
}
