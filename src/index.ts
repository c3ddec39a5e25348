// The programmatic API: the CLI's commands without the argument parsing.
// Each returns the results the CLI renders; none prints anything.
export { type AllResult, migrateAll } from "./commands/all.js";
export {
  type CatalogMigrateResult,
  type CatalogStatus,
  catalogStatus,
  migrateCatalog,
  rollbackCatalog,
} from "./commands/catalog.js";
export {
  type DiffGroup,
  type DiffOptions,
  type DiffReference,
  type DiffState,
  type FleetDiff,
  fleetDiff,
  type TenantDiff,
} from "./commands/diff.js";
export { dropTenants } from "./commands/drop.js";
export type { SimpleResult, SimpleTenantResult } from "./commands/each-tenant.js";
export { DEFAULT_HISTORY_LIMIT, DEFAULT_RUNS_LIMIT, historyRuns, tenantHistory } from "./commands/history.js";
export { type MakeOptions, type MigrationExtension, makeMigration } from "./commands/make.js";
export { migrateTenants } from "./commands/migrate.js";
export type { CommandOptions, FleetCommandOptions } from "./commands/options.js";
export {
  type ProvisionOptions,
  provisionTenants,
} from "./commands/provision.js";
export { type RollbackOptions, rollbackTenants } from "./commands/rollback.js";
export { shardOf } from "./commands/selection.js";
export { withServer } from "./commands/server.js";
export { type FleetStatus, fleetStatus } from "./commands/status.js";
export {
  listTemplates,
  type PruneAction,
  type PrunedTemplate,
  type PruneResult,
  pruneTemplates,
  type TemplateEntry,
  type TemplateOwner,
  type TemplatesResult,
} from "./commands/templates.js";
export {
  type AddTenantOptions,
  type AddTenantResult,
  addTenant,
  listTenants,
  type TenantListEntry,
} from "./commands/tenants.js";
export { unlockTenants } from "./commands/unlock.js";
export {
  type Config,
  type ConfigFlags,
  DEFAULT_APP_MIGRATIONS_DIR,
  DEFAULT_CONCURRENCY,
  DEFAULT_LOCK_TIMEOUT_MS,
  DEFAULT_PG_LOCK_TIMEOUT_MS,
  DEFAULT_RETRIES,
  resolveConfig,
} from "./core/config.js";
export {
  type ConnectionSettings,
  describeConnection,
} from "./core/connection.js";
export { retryWaitMs } from "./core/db.js";
export {
  ConfigError,
  describeError,
  InterruptedError,
  TenantMigrateError,
  UsageError,
} from "./core/errors.js";
export { countByResult } from "./core/fleet.js";
export type {
  EmitEvent,
  FleetEvent,
  FleetResult,
  FleetSummary,
  RecreatedDatabase,
  Tenant,
  TenantResult,
  TenantResultKind,
} from "./core/fleet-types.js";
export type { HistoryEntry, RunEntry } from "./core/history.js";
export { redact } from "./core/redact.js";
export type { ChangedObject, SchemaObject } from "./core/schema-fingerprint.js";
export type { TenantState, TenantStatus } from "./core/tenant-status.js";
