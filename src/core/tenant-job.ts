import type { TenantPlacement } from "./catalog.js";
import type { EmitEvent, Tenant } from "./fleet-types.js";
import type { MigrationFolder } from "./migration-folder.js";
import type { AdminPools } from "./server-admin.js";

/** What one tenant job needs: where the tenant lives and the shared, per-run pieces. */
export interface TenantJob {
  tenant: Tenant;
  placement: TenantPlacement;
  folder: MigrationFolder;
  admin: AdminPools;
  lockTimeoutMs: number;
  /** PostgreSQL's lock_timeout in the migration session (--pg-lock-timeout); 0: not set. */
  pgLockTimeoutMs: number;
  appRole: string | undefined;
  emit: EmitEvent;
  /** Provision new databases by copying a template with every migration applied. */
  useTemplate: boolean;
  /** Aborted on SIGINT/SIGTERM: a tenant still waiting for another run's lock gives up, as `skipped`. */
  signal?: AbortSignal | undefined;
  dryRun: boolean;
}
