import { UsageError } from "../core/errors.js";
import type { FleetResult } from "../core/fleet-types.js";
import { migrateTenant } from "../core/tenant-work.js";
import { runFleetCommand } from "./fleet-command.js";
import type { FleetCommandOptions } from "./options.js";
import { rehearseFleet } from "./rehearse.js";

/** Migrates the named tenants (all when none is named) to the latest app migration. */
export function migrateTenants(options: FleetCommandOptions): Promise<FleetResult> {
  checkRehearse(options);
  if (options.rehearse) return rehearseFleet("migrate", options);
  return runFleetCommand("migrate", options, (job) => migrateTenant(job, { provision: false }));
}

/** --rehearse changes nothing and runs the migrations; --dry-run runs nothing: one or the other. */
export function checkRehearse(options: FleetCommandOptions): void {
  if (options.rehearse && options.dryRun) throw new UsageError("use --rehearse or --dry-run, not both");
}
