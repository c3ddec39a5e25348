import type { FleetResult } from "../core/fleet.js";
import { migrateTenant } from "../core/tenant.js";
import { migrateCatalog } from "./catalog.js";
import { type FleetCommandOptions, runFleetCommand } from "./context.js";

export interface AllResult extends FleetResult {
  catalog: { migrations: string[] };
}

/**
 * The deploy job, what the original migrate.js did: catalog to latest, every
 * missing tenant database created, every tenant migrated to latest.
 */
export async function migrateAll(options: FleetCommandOptions): Promise<AllResult> {
  const catalog = await migrateCatalog({
    config: options.config,
    dryRun: options.dryRun === true,
    onEvent: options.onEvent,
    signal: options.signal,
  });
  options.onEvent?.({ type: "catalog-migrated", migrations: catalog.migrations });
  const fleet = await runFleetCommand("all", options, (job) => migrateTenant(job, { provision: true }), {
    catalogMayBeEmpty: options.dryRun === true,
  });
  return {
    ok: fleet.ok,
    catalog,
    tenants: fleet.tenants,
    summary: fleet.summary,
    interrupted: fleet.interrupted,
    ...(fleet.run ? { run: fleet.run } : {}),
  };
}
