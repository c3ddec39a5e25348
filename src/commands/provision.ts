import { placeTenant } from "../core/catalog.js";
import { withClient } from "../core/db.js";
import type { FleetResult, Tenant } from "../core/fleet-types.js";
import { databaseNameProblem } from "../core/identifiers.js";
import { adminKey, databasesOn } from "../core/server-admin.js";
import { migrateTenant } from "../core/tenant-work.js";
import { type FleetRun, runFleetCommand } from "./fleet-command.js";
import type { FleetCommandOptions } from "./options.js";
import { checkAppRole } from "./preflight.js";
import { requireSelection } from "./selection.js";

export interface ProvisionOptions extends FleetCommandOptions {
  /** Every tenant whose database does not exist yet. @default false */
  missing?: boolean;
  /** Migrate an existing database that the tool did not make and knex never migrated (refused otherwise). @default false */
  adopt?: boolean;
}

/** Creates each tenant's database if it is missing, then migrates it to latest. */
export function provisionTenants(options: ProvisionOptions): Promise<FleetResult> {
  requireSelection(
    options.tenants,
    { flag: "--missing", set: options.missing === true },
    "name the tenants to provision, or use --missing",
  );
  return runFleetCommand(
    "provision",
    options,
    (job) => migrateTenant(job, { provision: true, refuseForeign: options.adopt !== true }),
    {
      ...(options.missing ? { prepare: onlyMissing } : {}),
      preflight: (run) => checkAppRole(run.config, run.tenants),
    },
  );
}

/** Tenants whose database is absent, found with one query per server. */
async function onlyMissing(run: FleetRun): Promise<Tenant[]> {
  const byAdmin = new Map<string, { tenants: Tenant[]; settings: ReturnType<typeof placeTenant>["admin"] }>();
  const missing: Tenant[] = [];
  for (const tenant of run.tenants) {
    let admin: ReturnType<typeof placeTenant>["admin"];
    try {
      admin = placeTenant(run.config, tenant).admin;
    } catch {
      missing.push(tenant); // fails alone with its placement error
      continue;
    }
    if (databaseNameProblem(tenant.database)) {
      missing.push(tenant); // fails alone with its name problem
      continue;
    }
    const key = adminKey(admin);
    const group = byAdmin.get(key) ?? { tenants: [], settings: admin };
    group.tenants.push(tenant);
    byAdmin.set(key, group);
  }
  for (const group of byAdmin.values()) {
    // A server that cannot be asked: its tenants are tried, and fail alone.
    // An operator-closed database exists (not missing); a half-made one of the tool's is missing (it is finished).
    const existing = await withClient(group.settings, (client) => databasesOn(client, { closedToo: true })).catch(
      () => new Set<string>(),
    );
    missing.push(...group.tenants.filter((t) => !existing.has(t.database)));
  }
  const order = new Map(run.tenants.map((t, i) => [t, i]));
  return missing.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
}
