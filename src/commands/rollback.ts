import { placeTenant } from "../core/catalog.js";
import { serverKey } from "../core/connection.js";
import { withClient } from "../core/db.js";
import { UsageError } from "../core/errors.js";
import { runBounded } from "../core/fleet.js";
import type { FleetResult, Tenant } from "../core/fleet-types.js";
import { readApplied } from "../core/knex-state.js";
import type { TenantJob } from "../core/tenant-job.js";
import { emptiesTenant, type RollbackMode, rollbackTenant } from "../core/tenant-work.js";
import { type FleetRun, runFleetCommand } from "./fleet-command.js";
import type { FleetCommandOptions } from "./options.js";
import { appMigrationFolder } from "./preflight.js";
import { requireSelection } from "./selection.js";

export interface RollbackOptions extends FleetCommandOptions {
  /** Every tenant in the catalog, instead of the named ones. @default false */
  allTenants?: boolean;
  /** Undo this many batches. @default 1 (the last batch) */
  step?: number;
  /** Undo every batch. @default false */
  all?: boolean;
  /** Undo until this migration is the newest applied. @default undefined (step decides) */
  to?: string;
  /** Really roll back every tenant (`--all-tenants` refuses without it, unless nothing changes). @default false */
  yes?: boolean;
}

/** Undoes the last batch (or N batches, every batch, or back to a migration) on the chosen tenants. */
export function rollbackTenants(options: RollbackOptions): Promise<FleetResult> {
  requireSelection(
    options.tenants,
    { flag: "--all-tenants", set: options.allTenants === true },
    "rollback needs tenant names or --all-tenants (it never rolls back the whole fleet by default)",
  );
  const mode = rollbackMode(options);
  if (options.allTenants && !options.yes && !changesNothing(options)) {
    throw new UsageError(
      "refusing to roll back every tenant without --yes: rollback --all-tenants undoes migrations on the whole fleet (--dry-run shows what it would undo); nothing was changed",
    );
  }
  if (mode.kind === "to") {
    const folder = appMigrationFolder(options.config);
    if (!folder.has(mode.name)) throw new UsageError(`--to: no migration file named ${mode.name} in ${folder.dir}`);
  }
  // A retried school finishes the plan of its first attempt (see pinRollback), not a new count of batches.
  const pinned = new Map<string, RollbackMode>();
  const work = (job: TenantJob) =>
    rollbackTenant(job, pinned.get(job.tenant.id) ?? mode, (plan) => pinned.set(job.tenant.id, plan));
  return runFleetCommand("rollback", options, work, {
    preflight: (run) => refuseToEmpty(run, mode),
  });
}

/** Runs that change nothing need no --yes. (--rehearse, where rollback takes it, belongs here too.) */
function changesNothing(options: RollbackOptions): boolean {
  return options.dryRun === true;
}

/**
 * The last batch of a school provisioned in one go is everything it has:
 * undoing every migration of a school needs --all, said explicitly. Each
 * chosen school's applied list is read (bounded per server, like the run)
 * before anything is rolled back; schools that would be emptied are named,
 * exit 2. A school that cannot be read is left to fail alone in the run.
 */
async function refuseToEmpty(run: FleetRun & { problems: Map<string, string> }, mode: RollbackMode): Promise<void> {
  if (mode.kind === "all" || mode.kind === "to") return;
  const readable: { tenant: Tenant; placement: ReturnType<typeof placeTenant> }[] = [];
  for (const tenant of run.tenants) {
    if (run.problems.has(tenant.id)) continue;
    try {
      readable.push({ tenant, placement: placeTenant(run.config, tenant) });
    } catch {
      // no placement: fails alone in the run
    }
  }
  const emptied = new Set<Tenant>();
  await runBounded(
    readable,
    async ({ tenant, placement }) => {
      const applied = await withClient(placement.settings, readApplied).catch(() => []);
      if (emptiesTenant(applied, mode)) emptied.add(tenant);
    },
    { concurrency: run.config.concurrency, serverOf: (item) => serverKey(item.placement.admin) },
  );
  if (emptied.size === 0) return;
  const named = run.tenants.filter((t) => emptied.has(t)).map((t) => `${t.database} (id ${t.id})`);
  const shown = named.length > 20 ? [...named.slice(0, 20), `and ${named.length - 20} more`] : named;
  throw new UsageError(
    `rollback would undo every migration of ${named.length === 1 ? "school" : `${named.length} schools`} ${shown.join(", ")} (everything they have is in the batches it undoes): use --all to mean that, or --to MIGRATION; nothing was rolled back`,
  );
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
