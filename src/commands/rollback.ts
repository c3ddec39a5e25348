import { UsageError } from "../core/errors.js";
import type { FleetResult } from "../core/fleet.js";
import { MigrationFolder } from "../core/migration-folder.js";
import { type RollbackMode, rollbackTenant } from "../core/tenant.js";
import { type FleetCommandOptions, requireSelection, runFleetCommand } from "./context.js";

export interface RollbackOptions extends FleetCommandOptions {
  allTenants?: boolean;
  /** Undo this many batches (default 1). */
  step?: number;
  /** Undo every batch. */
  all?: boolean;
  /** Undo until this migration is the newest applied. */
  to?: string;
}

/** Undoes the last batch (or N batches, every batch, or back to a migration) on the chosen tenants. */
export function rollbackTenants(options: RollbackOptions): Promise<FleetResult> {
  requireSelection(
    options.tenants,
    { flag: "--all-tenants", set: options.allTenants === true },
    "rollback needs tenant names or --all-tenants (it never rolls back the whole fleet by default)",
  );
  const mode = rollbackMode(options);
  if (mode.kind === "to") {
    const folder = new MigrationFolder(options.config.appMigrationsDir, "--app-migrations / APP_MIGRATIONS_DIR");
    if (!folder.has(mode.name)) throw new UsageError(`--to: no migration file named ${mode.name} in ${folder.dir}`);
  }
  return runFleetCommand("rollback", options, (job) => rollbackTenant(job, mode));
}

function rollbackMode(options: RollbackOptions): RollbackMode {
  const chosen = [options.step !== undefined, options.all === true, options.to !== undefined].filter(Boolean).length;
  if (chosen > 1) throw new UsageError("use only one of --step, --all and --to");
  if (options.all) return { kind: "all" };
  if (options.to !== undefined) return { kind: "to", name: options.to };
  if (options.step !== undefined) {
    if (!Number.isInteger(options.step) || options.step < 1)
      throw new UsageError("--step must be a whole number of 1 or more");
    return { kind: "steps", steps: options.step };
  }
  return { kind: "last" };
}
