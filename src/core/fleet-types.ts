// The shared vocabulary of a run: a tenant, what its work reports, what the
// fleet run returns, and the events that show progress. Types only, so that
// the catalog, the fleet runner, the tenant work and the history all use
// them without importing one another.

/** One catalog row: a school and where its database lives. */
export interface Tenant {
  id: string;
  name: string;
  database: string;
  /** A name from TENANT_SERVERS, or null for the catalog's own server. */
  server: string | null;
}

export type TenantResultKind =
  | "provisioned"
  | "migrated"
  | "up-to-date"
  | "rolled-back"
  | "nothing-to-roll-back"
  /** --rehearse: the pending migrations ran and were rolled back; the real run would succeed. */
  | "rehearsed"
  /** --rehearse: a pending migration runs outside a transaction, so nothing ran. */
  | "not-rehearsable"
  | "failed"
  | "skipped";

/** One tenant's outcome, as the JSON output and the history table show it. */
export interface TenantResult {
  id: string;
  name: string;
  database: string;
  server?: string;
  result: TenantResultKind;
  /** What ran, was rolled back, or would run under --dry-run, in order. */
  migrations: string[];
  error?: string;
  /** Why a `skipped` tenant did not run: interrupted, a canary or --max-failures stopped the run, or the work's own word. */
  reason?: string;
  /** The database was missing although earlier runs had seen it: it was created empty again. */
  recreated?: RecreatedDatabase;
  ms: number;
}

/** When runs had seen a database that has since vanished (ISO times, from the run history). */
export interface RecreatedDatabase {
  firstSeen: string;
  lastSeen: string;
}

export interface FleetSummary {
  total: number;
  succeeded: number;
  failed: number;
  skipped: number;
  /** --rehearse only: schools not rehearsed because a pending migration runs outside a transaction. */
  notRehearsable?: number;
  ms: number;
  /** How many tenants ended with each result kind (only kinds that occurred). */
  byResult: Record<string, number>;
}

export interface FleetResult {
  ok: boolean;
  tenants: TenantResult[];
  summary: FleetSummary;
  /** True when a signal stopped the run before every tenant was tried. */
  interrupted: boolean;
  /** What went wrong besides the tenants' own results (history not recorded); absent when nothing did. */
  warnings?: string[];
  /** The run's id in the history table (absent when no history was recorded, e.g. --dry-run). */
  run?: string;
}

/** Structured progress; the CLI decides how it looks. */
export type FleetEvent =
  | { type: "catalog-migrated"; migrations: string[] }
  | {
      type: "run-started";
      command: string;
      /** The history run id, when history is recorded. */
      run?: string;
      /** The catalog, password masked. */
      catalog: string;
      total: number;
      concurrency: number;
      /** The migration files of the folder, in order. */
      migrations: string[];
    }
  | { type: "fleet-started"; total: number }
  | { type: "tenant-started"; tenant: Tenant }
  | {
      type: "migration";
      tenant: Tenant;
      name: string;
      direction: "up" | "down";
    }
  /** A tenant's migration is about to run (the live view shows what each tenant is on). */
  | { type: "migration-started"; tenant: Tenant; name: string; direction: "up" | "down" }
  | { type: "notice"; tenant?: Tenant; message: string }
  | { type: "tenant-finished"; result: TenantResult };

export type EmitEvent = (event: FleetEvent) => void;

/** What a unit of tenant work reports; failures are thrown and become results here. */
export interface TenantOutcome {
  result: Exclude<TenantResultKind, "failed" | "skipped">;
  migrations: string[];
  recreated?: RecreatedDatabase;
}
