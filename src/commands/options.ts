import type { Config } from "../core/config.js";
import type { EmitEvent } from "../core/fleet-types.js";

/** Options every command takes. */
export interface CommandOptions {
  config: Config;
  /** Structured progress events. @default undefined (no events) */
  onEvent?: EmitEvent | undefined;
  /** Aborting stops new tenants from starting; those in flight finish. @default undefined (runs to the end) */
  signal?: AbortSignal | undefined;
}

/** Options of the fleet commands (provision, migrate, all, rollback, status). */
export interface FleetCommandOptions extends CommandOptions {
  /** school_id, school_database or school_name values; all tenants when empty. @default [] */
  tenants?: string[] | undefined;
  /** After a tenant fails: start the others all the same, or start no new one. @default "continue" */
  onError?: "continue" | "abort" | undefined;
  /** Say what would run; change nothing (no history either). @default false */
  dryRun?: boolean | undefined;
  /** Only the index-th (1-based) of count disjoint slices of the tenants. @default undefined (every slice) */
  shard?: { index: number; count: number } | undefined;
  /** Run this many tenants first; if one fails, skip the rest. @default undefined (no canary) */
  canary?: number | undefined;
  /** Once more than this many tenants have failed, no new tenant starts; the rest are skipped. @default undefined (no limit) */
  maxFailures?: number | undefined;
  /** migrate, all: run each tenant's pending migrations in one transaction, then roll it back (no history). @default false */
  rehearse?: boolean | undefined;
}
