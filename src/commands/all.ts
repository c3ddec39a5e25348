import { loadTenants, withCatalog } from "../core/catalog.js";
import type { FleetResult } from "../core/fleet-types.js";
import { migrateTenant } from "../core/tenant-work.js";
import { migrateCatalog } from "./catalog.js";
import { runFleetCommand } from "./fleet-command.js";
import { checkRehearse } from "./migrate.js";
import type { FleetCommandOptions } from "./options.js";
import { appMigrationFolder, checkAppRole, checkMigrationFolder } from "./preflight.js";
import { rehearseFleet } from "./rehearse.js";
import { chooseTenants } from "./selection.js";

export interface AllResult extends FleetResult {
  catalog: { migrations: string[] };
}

/**
 * The deploy job, what the original migrate.js did: catalog to latest, every
 * missing tenant database created, every tenant migrated to latest.
 * Everything that can be checked is checked before the catalog is migrated.
 */
export async function migrateAll(options: FleetCommandOptions): Promise<AllResult> {
  checkRehearse(options);
  const folder = appMigrationFolder(options.config);
  await checkMigrationFolder(folder);
  if (options.config.appRole) {
    // The schools known now (none before the catalog's first migration); checked again once it is migrated.
    const known = (await withCatalog(options.config, (client) => loadTenants(client, true))) ?? [];
    await checkAppRole(options.config, chooseTenants(known, options));
  }
  // A rehearsal leaves the catalog alone too: it says what would run there, as --dry-run does.
  const catalog = await migrateCatalog({
    config: options.config,
    dryRun: options.dryRun === true || options.rehearse === true,
    onEvent: options.onEvent,
    signal: options.signal,
  });
  options.onEvent?.({ type: "catalog-migrated", migrations: catalog.migrations });
  const fleet = options.rehearse
    ? await rehearseFleet("all", options, { catalogMayBeEmpty: true, folder })
    : await runFleetCommand("all", options, (job) => migrateTenant(job, { provision: true }), {
        catalogMayBeEmpty: options.dryRun === true,
        folder,
        preflight: (run) => checkAppRole(run.config, run.tenants),
      });
  return {
    ok: fleet.ok,
    catalog,
    tenants: fleet.tenants,
    summary: fleet.summary,
    interrupted: fleet.interrupted,
    ...(fleet.warnings ? { warnings: fleet.warnings } : {}),
    ...(fleet.run ? { run: fleet.run } : {}),
  };
}
