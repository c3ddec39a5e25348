import type { Config } from "../core/config.js";
import type { EmitEvent } from "../core/fleet.js";

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
  /** Once more than this many tenants have failed, no new tenant starts; the rest are skipped. */
  maxFailures?: number | undefined;
  /** migrate, all: run each tenant's pending migrations in one transaction, then roll it back (no history). */
  rehearse?: boolean | undefined;
}
