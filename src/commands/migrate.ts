import type { FleetResult } from "../core/fleet.js";
import { migrateTenant } from "../core/tenant.js";
import { type FleetCommandOptions, runFleetCommand } from "./context.js";

/** Migrates the named tenants (all when none is named) to the latest app migration. */
export function migrateTenants(options: FleetCommandOptions): Promise<FleetResult> {
  return runFleetCommand("migrate", options, (job) => migrateTenant(job, { provision: false }));
}
