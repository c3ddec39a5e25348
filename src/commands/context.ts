import { createHash } from "node:crypto";
import type pg from "pg";
import {
  catalogSettings,
  loadTenants,
  placeTenant,
  selectTenants,
  type Tenant,
  type TenantPlacement,
  withCatalog,
} from "../core/catalog.js";
import type { Config } from "../core/config.js";
import { describeConnection, serverKey } from "../core/connection.js";
import { withRetries } from "../core/db.js";
import { startEmbedded } from "../core/embedded.js";
import { describeError, UsageError } from "../core/errors.js";
import type { EmitEvent, FleetEvent, FleetResult, TenantOutcome } from "../core/fleet.js";
import { runFleet } from "../core/fleet.js";
import { HistoryRecorder } from "../core/history.js";
import { databaseNameProblem } from "../core/identifiers.js";
import { MigrationFolder } from "../core/migration-folder.js";
import { AdminPools, type TenantJob } from "../core/tenant.js";

/** Options every command takes. */
export interface CommandOptions {
  config: Config;
  /** Structured progress events; none by default. */
  onEvent?: EmitEvent | undefined;
  /** Aborting stops new tenants from starting; those in flight finish. */
  signal?: AbortSignal | undefined;
}

/** Options of the fleet commands (provision, migrate, all, rollback, status). */
export interface FleetCommandOptions extends CommandOptions {
  /** school_id or school_database values; all tenants when empty. */
  tenants?: string[] | undefined;
  onError?: "continue" | "abort" | undefined;
  dryRun?: boolean | undefined;
  /** Only the index-th (1-based) of count disjoint slices of the tenants. */
  shard?: { index: number; count: number } | undefined;
  canary?: number | undefined;
}

/**
 * Runs `fn` with the embedded PostgreSQL started when the config asks for it
 * (and stopped afterwards, also on error); otherwise just runs it.
 */
export async function withServer<T>(config: Config, fn: (config: Config) => Promise<T>): Promise<T> {
  if (!config.embedded || config.catalog) return fn(config);
  const server = await startEmbedded(config.cwd, config.catalogDatabase);
  try {
    return await fn({ ...config, catalog: server.settings });
  } finally {
    await server.stop();
  }
}

/** Stable slice of the tenants: a tenant's slice depends on its school_id alone. */
export function shardOf(tenantId: string, count: number): number {
  const digest = createHash("sha256").update(tenantId).digest();
  return (digest.readUInt32BE(0) % count) + 1;
}

/** Tenants selected by name, then by shard. */
export function chooseTenants(all: Tenant[], options: FleetCommandOptions): Tenant[] {
  const named = selectTenants(all, options.tenants ?? []);
  const shard = options.shard;
  if (!shard) return named;
  return named.filter((t) => shardOf(t.id, shard.count) === shard.index);
}

/** Databases that are never a tenant's, whatever a catalog row says. */
function reservedDatabases(config: Config): Set<string> {
  return new Set(["postgres", "template0", "template1", config.catalog?.database ?? config.catalogDatabase]);
}

/**
 * Why a catalog row cannot be worked on, checked before any SQL reaches its
 * database: a bad or reserved name, a database named by two rows.
 */
export function rowProblems(all: Tenant[], config: Config): Map<string, string> {
  const problems = new Map<string, string>();
  const reserved = reservedDatabases(config);
  const seen = new Map<string, Tenant[]>();
  for (const tenant of all) {
    const key = `${tenant.server ?? ""}\u0000${tenant.database}`;
    seen.set(key, [...(seen.get(key) ?? []), tenant]);
  }
  for (const tenant of all) {
    const problem = reserved.has(tenant.database)
      ? `database "${tenant.database}" is the catalog's or the server's own, never a tenant's`
      : databaseNameProblem(tenant.database);
    if (problem) {
      problems.set(tenant.id, `school ${tenant.id}: ${problem}`);
      continue;
    }
    const sharing = seen.get(`${tenant.server ?? ""}\u0000${tenant.database}`) ?? [];
    if (sharing.length > 1) {
      const others = sharing.filter((t) => t !== tenant).map((t) => t.id);
      problems.set(
        tenant.id,
        `school ${tenant.id}: database "${tenant.database}" is also named by school ${others.join(", ")}`,
      );
    }
  }
  return problems;
}

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
  } = {},
): Promise<FleetResult> {
  const { config } = options;
  const folder = new MigrationFolder(config.appMigrationsDir, "--app-migrations / APP_MIGRATIONS_DIR");
  const emit: EmitEvent = options.onEvent ?? (() => {});
  return withCatalog(config, async (catalog) => {
    const allTenants = (await loadTenants(catalog, extra.catalogMayBeEmpty === true)) ?? [];
    let tenants = chooseTenants(allTenants, options);
    if (extra.prepare) tenants = await extra.prepare({ config, folder, catalog, tenants, allTenants });
    const problems = rowProblems(allTenants, config);
    if (allTenants.length === 0) emit({ type: "notice", message: "the catalog has no schools: nothing to do" });
    const history = options.dryRun ? undefined : await startHistory(catalog, command, tenants, emit);
    emit({
      type: "run-started",
      command,
      ...(history ? { run: history.runId } : {}),
      catalog: describeConnection(catalogSettings(config)),
      total: tenants.length,
      concurrency: config.concurrency,
      migrations: folder.names,
    });
    const admin = new AdminPools(config.concurrency);
    const placements = new Map<Tenant, TenantPlacement | Error>();
    for (const tenant of tenants) {
      try {
        placements.set(tenant, placeTenant(config, tenant));
      } catch (error) {
        placements.set(tenant, error as Error);
      }
    }
    try {
      const result = await runFleet(
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
            appRole: config.appRole,
            emit: context.emit,
            signal: context.signal,
            useTemplate: config.template,
            dryRun: options.dryRun === true,
          };
          return withRetries(() => work(job), {
            retries: config.retries,
            signal: context.signal,
            onRetry: (error, attempt, delayMs) =>
              context.emit({
                type: "notice",
                tenant,
                message: `${tenant.database}: transient fault (${(error as Error).message}); retry ${attempt} of ${config.retries} in ${delayMs} ms`,
              } satisfies FleetEvent),
          });
        },
        {
          concurrency: config.concurrency,
          onError: options.onError ?? "continue",
          canary: options.canary,
          signal: options.signal,
          onEvent: emit,
          serverOf: (tenant) => {
            const placement = placements.get(tenant);
            return placement instanceof Error || !placement ? "?" : serverKey(placement.admin);
          },
          onResult: history ? (result) => history.record(result) : undefined,
        },
      );
      return history ? { ...result, run: history.runId } : result;
    } finally {
      await history?.flush();
      await admin.close();
    }
  });
}

/** History is bookkeeping: a catalog role that cannot create its table still migrates, with a notice. */
async function startHistory(
  catalog: pg.Client,
  command: string,
  tenants: Tenant[],
  emit: EmitEvent,
): Promise<HistoryRecorder | undefined> {
  try {
    return await HistoryRecorder.start(catalog, command, tenants);
  } catch (error) {
    emit({ type: "notice", message: `run history is not recorded: ${describeError(error)}` });
    return undefined;
  }
}

/** Tenants named, or the command's all-of-them flag (`flag`), exactly one of the two. */
export function requireSelection(
  names: string[] | undefined,
  all: { flag: string; set: boolean } | null,
  what: string,
): void {
  const named = (names?.length ?? 0) > 0;
  if (!named && !all?.set) throw new UsageError(what);
  if (named && all?.set) throw new UsageError(`name tenants or use ${all.flag}, not both`);
}
