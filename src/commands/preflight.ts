// Checks made before a command changes anything: what fails here is exit 2
// (UsageError) with nothing changed, instead of a failure per school after
// their databases were created (or the catalog was migrated).
import { placeTenant } from "../core/catalog.js";
import type { Config } from "../core/config.js";
import { describeConnection, serverKey } from "../core/connection.js";
import { withClient } from "../core/db.js";
import { UsageError } from "../core/errors.js";
import type { Tenant } from "../core/fleet-types.js";
import { MigrationFolder } from "../core/migration-folder.js";

/** The app migrations folder; a missing folder is exit 2 naming the setting. */
export function appMigrationFolder(config: Config): MigrationFolder {
  return new MigrationFolder(config.appMigrationsDir, "--app-migrations / APP_MIGRATIONS_DIR");
}

/**
 * No two files share a name stem, and every file loads and exports up and
 * down. Modules stay loaded on `folder`, so the run does not load them again.
 */
export async function checkMigrationFolder(folder: MigrationFolder): Promise<void> {
  const problems = folder
    .sameStems()
    .map((names) => `${names.join(" and ")} share a name stem (knex would run each of them): keep one`);
  // Loaded side by side (imports wait on the disk); failures reported in file order.
  const loads = await Promise.allSettled(folder.names.map((name) => folder.load(name)));
  for (const load of loads) if (load.status === "rejected") problems.push((load.reason as Error).message);
  if (problems.length === 0) return;
  throw new UsageError(
    problems.length === 1
      ? `migrations folder ${folder.dir}: ${problems[0]}; nothing was changed`
      : `migrations folder ${folder.dir}:\n${problems.map((p) => `  - ${p}`).join("\n")}\nnothing was changed`,
  );
}

/**
 * `--app-role` names a role that exists on every server the tenants live on
 * (one query per server). A server that cannot be reached is left to its
 * tenants, which fail alone as usual; a role that is missing is exit 2.
 */
export async function checkAppRole(config: Config, tenants: Tenant[]): Promise<void> {
  const role = config.appRole;
  if (!role) return;
  const servers = new Map<string, { name: string; settings: ReturnType<typeof placeTenant>["admin"] }>();
  for (const tenant of tenants) {
    try {
      const placement = placeTenant(config, tenant);
      const key = serverKey(placement.admin);
      if (!servers.has(key)) servers.set(key, { name: placement.serverName, settings: placement.admin });
    } catch {
      // no placement: that tenant fails alone with its own error
    }
  }
  const missing: string[] = [];
  for (const server of servers.values()) {
    const exists = await withClient(server.settings, async (client) => {
      const { rows } = await client.query("select 1 from pg_roles where rolname = $1", [role]);
      return rows.length > 0;
    }).catch(() => true);
    if (!exists) missing.push(`server ${server.name} (${describeConnection(server.settings)})`);
  }
  if (missing.length > 0) {
    throw new UsageError(
      `--app-role / TENANT_MIGRATE_APP_ROLE: role "${role}" does not exist on ${missing.join(", ")}: create it or fix the name; nothing was changed`,
    );
  }
}
