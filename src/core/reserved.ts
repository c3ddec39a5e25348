import type { Config } from "./config.js";

/** Every database whose name starts with this is the tool's own (templates, scratch databases). */
export const TOOL_DATABASE_PREFIX = "tenant_migrate_";

/**
 * Why `database` can never be a school's database, or undefined: the tool's
 * own databases, the server's (postgres, template0, template1), the
 * catalog's and every admin database of TENANT_SERVERS.
 */
export function reservedDatabaseProblem(database: string, config: Config): string | undefined {
  if (database.startsWith(TOOL_DATABASE_PREFIX)) {
    return `database "${database}" is reserved: names starting with ${TOOL_DATABASE_PREFIX} are tenant-migrate's own`;
  }
  const reserved = new Set(["postgres", "template0", "template1", config.catalog?.database ?? config.catalogDatabase]);
  for (const server of config.tenantServers.values()) reserved.add(server.database);
  if (reserved.has(database)) {
    return `database "${database}" is the catalog's or a server's own (postgres, template0, template1, the catalog, an admin database of TENANT_SERVERS), never a tenant's`;
  }
  return undefined;
}
