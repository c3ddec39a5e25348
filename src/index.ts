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
  type CommandOptions,
  type FleetCommandOptions,
  shardOf,
  withServer,
} from "./commands/context.js";
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
export { historyRuns, tenantHistory } from "./commands/history.js";
export { type MakeOptions, makeMigration } from "./commands/make.js";
export { migrateTenants } from "./commands/migrate.js";
export {
  type ProvisionOptions,
  provisionTenants,
} from "./commands/provision.js";
export { type RollbackOptions, rollbackTenants } from "./commands/rollback.js";
export { type FleetStatus, fleetStatus } from "./commands/status.js";
export {
  listTemplates,
  type PrunedTemplate,
  type PruneResult,
  pruneTemplates,
  type TemplateEntry,
  type TemplatesResult,
} from "./commands/templates.js";
export {
  type AddTenantOptions,
  addTenant,
  listTenants,
  type TenantListEntry,
} from "./commands/tenants.js";
export { unlockTenants } from "./commands/unlock.js";
export { type Config, type ConfigFlags, resolveConfig } from "./core/config.js";
export {
  type ConnectionSettings,
  describeConnection,
} from "./core/connection.js";
export {
  ConfigError,
  TenantMigrateError,
  UsageError,
} from "./core/errors.js";
export type {
  FleetEvent,
  FleetResult,
  FleetSummary,
  Tenant,
  TenantResult,
  TenantResultKind,
} from "./core/fleet-types.js";
export type { HistoryEntry, RunEntry } from "./core/history.js";
export { redact } from "./core/redact.js";
export type { TenantState, TenantStatus } from "./core/tenant-status.js";
