import type pg from "pg";
import {
  catalogSettings,
  connectCatalog,
  loadTenants,
  placeTenant,
  type TenantPlacement,
  withCatalog,
} from "../core/catalog.js";
import type { Config } from "../core/config.js";
import { describeConnection } from "../core/connection.js";
import { withRetries } from "../core/db.js";
import { describeError } from "../core/errors.js";
import { runFleet } from "../core/fleet.js";
import type { EmitEvent, FleetEvent, FleetResult, Tenant, TenantOutcome } from "../core/fleet-types.js";
import { HistoryRecorder } from "../core/history.js";
import { retryLockWaits } from "../core/lock-wait.js";
import type { MigrationFolder } from "../core/migration-folder.js";
import { AdminPools } from "../core/server-admin.js";
import type { TenantJob } from "../core/tenant-job.js";
import { carryingMigrations } from "../core/tenant-work.js";
import type { FleetCommandOptions } from "./options.js";
import { appMigrationFolder, checkMigrationFolder } from "./preflight.js";
import { recreatedDatabases } from "./recreated.js";
import { chooseTenants, rowProblems } from "./selection.js";
import { checkServerIdentities } from "./server.js";

/** What a fleet command's own steps (prepare, preflight) are given: the run's settings, folder, catalog and tenants. */
export interface FleetRun {
  config: Config;
  folder: MigrationFolder;
  catalog: pg.Client;
  tenants: Tenant[];
  /** Every catalog row (selection is a subset). */
  allTenants: Tenant[];
}

/**
 * The shared shape of provision, migrate, all and rollback: read the folder
 * once, read the catalog, pick tenants, record history, and run `work` for
 * each tenant on the fleet runner with retries for transient faults.
 */
export async function runFleetCommand(
  command: string,
  options: FleetCommandOptions,
  work: (job: TenantJob) => Promise<TenantOutcome>,
  extra: {
    /** Narrows the chosen tenants further (provision --missing). */
    prepare?: (run: FleetRun) => Promise<Tenant[]>;
    /** No schools table yet means no tenants (all --dry-run before the catalog's first migration). */
    catalogMayBeEmpty?: boolean;
    /** The app folder, already read and checked (all checks it before the catalog migration). */
    folder?: MigrationFolder;
    /** The command's own checks before any change (exit 2 when they throw). */
    preflight?: (run: FleetRun & { problems: Map<string, string> }) => Promise<void>;
  } = {},
): Promise<FleetResult> {
  const { config } = options;
  const folder = extra.folder ?? appMigrationFolder(config);
  if (!extra.folder) await checkMigrationFolder(folder);
  const emit: EmitEvent = options.onEvent ?? (() => {});
  return withCatalog(config, async (catalog) => {
    const allTenants = (await loadTenants(catalog, extra.catalogMayBeEmpty === true)) ?? [];
    let tenants = chooseTenants(allTenants, options);
    if (extra.prepare) tenants = await extra.prepare({ config, folder, catalog, tenants, allTenants });
    const problems = rowProblems(allTenants, config);
    await extra.preflight?.({ config, folder, catalog, tenants, allTenants, problems });
    if (allTenants.length === 0) emit({ type: "notice", message: "the catalog has no schools: nothing to do" });
    const warnings: string[] = [];
    const history =
      options.dryRun || options.rehearse
        ? undefined
        : await startHistory(catalog, command, tenants, emit, () => connectCatalog(config), warnings);
    emit({
      type: "run-started",
      command,
      ...(history ? { run: history.runId } : {}),
      catalog: describeConnection(catalogSettings(config)),
      total: tenants.length,
      concurrency: config.concurrency,
      migrations: folder.names,
    });
    const recreated = recreatedDatabases(catalog, tenants, history?.runId, options.dryRun === true);
    // As many admin connections as workers, none kept idle: at most --concurrency + 2 connections per server.
    const admin = new AdminPools(config.concurrency, { closeOnRelease: true });
    const placements = new Map<Tenant, TenantPlacement | Error>();
    for (const tenant of tenants) {
      try {
        placements.set(tenant, placeTenant(config, tenant));
      } catch (error) {
        placements.set(tenant, error as Error);
      }
    }
    // Servers by what they say they are: two spellings of one server are one.
    const servers = await checkServerIdentities(config, catalog, allTenants, placements, problems, options.signal);
    let result: FleetResult | undefined;
    try {
      result = await runFleet(
        tenants,
        async (tenant, context) => {
          const problem = problems.get(tenant.id);
          if (problem) throw new Error(problem);
          const placement = placements.get(tenant);
          if (!placement || placement instanceof Error) throw placement ?? new Error("tenant has no placement");
          const job: TenantJob = {
            tenant,
            placement,
            folder,
            admin,
            lockTimeoutMs: config.lockTimeoutMs,
            pgLockTimeoutMs: config.pgLockTimeoutMs,
            appRole: config.appRole,
            emit: context.emit,
            signal: context.signal,
            useTemplate: config.template,
            dryRun: options.dryRun === true,
          };
          const lockWaits = {
            retries: config.retries,
            signal: context.signal,
            onRetry: (_error: unknown, attempt: number, delayMs: number) =>
              context.emit({
                type: "notice",
                tenant,
                message: `${tenant.database}: a migration waited longer than --pg-lock-timeout for a lock and was rolled back; retry ${attempt} of ${config.retries} in ${delayMs} ms`,
              }),
          };
          // What a failed attempt left done is listed in the school's result along with what the retry did.
          const carried = carryingMigrations(() => work(job));
          const outcome = await withRetries(() => retryLockWaits(carried.attempt, lockWaits), {
            retries: config.retries,
            signal: context.signal,
            busyTimeoutMs: Math.max(config.lockTimeoutMs, 60_000),
            onRetry: (error, attempt, delayMs) =>
              context.emit({
                type: "notice",
                tenant,
                message:
                  attempt === 0
                    ? `${tenant.database}: the server has too many connections; waiting ${delayMs} ms`
                    : `${tenant.database}: transient fault (${(error as Error).message}); retry ${attempt} of ${config.retries} in ${delayMs} ms`,
              } satisfies FleetEvent),
          }).catch((error: unknown) => {
            throw carried.failure(error);
          });
          return outcome.result === "provisioned" ? recreated.mark(tenant, outcome, context.emit) : outcome;
        },
        {
          concurrency: config.concurrency,
          onError: options.onError ?? "continue",
          canary: options.canary,
          maxFailures: options.maxFailures,
          signal: options.signal,
          onEvent: emit,
          serverOf: (tenant) => {
            const placement = placements.get(tenant);
            return placement instanceof Error || !placement ? "?" : servers.of(placement.admin);
          },
          onResult: history ? (result) => history.record(result) : undefined,
        },
      );
      if (history) result = { ...result, run: history.runId };
    } finally {
      await history?.flush();
      await admin.close();
    }
    if (history && history.notRecorded > 0) {
      // Never silent: rows left `running` would tell a later reader the run died.
      const message = `run history: ${history.notRecorded} of ${tenants.length} results were not recorded in the catalog (${history.lastError ?? "unknown error"}); their rows still say running`;
      emit({ type: "notice", message });
      warnings.push(message);
    }
    return warnings.length > 0 ? { ...result, warnings } : result;
  });
}

/** History is bookkeeping: a catalog role that cannot create its table still migrates, with a notice. */
async function startHistory(
  catalog: pg.Client,
  command: string,
  tenants: Tenant[],
  emit: EmitEvent,
  reconnect: () => Promise<pg.Client>,
  warnings: string[],
): Promise<HistoryRecorder | undefined> {
  try {
    return await HistoryRecorder.start(catalog, command, tenants, reconnect);
  } catch (error) {
    const message = `run history is not recorded: ${describeError(error)}`;
    emit({ type: "notice", message });
    warnings.push(message);
    return undefined;
  }
}
