import { loadTenants, placeTenant, withCatalog } from "../core/catalog.js";
import { InterruptedError } from "../core/errors.js";
import { runBounded } from "../core/fleet.js";
import { inspectTenant, type TenantStatus } from "../core/tenant-status.js";
import type { FleetCommandOptions } from "./options.js";
import { appMigrationFolder } from "./preflight.js";
import { chooseTenants, rowProblems } from "./selection.js";
import { serverOfTenant } from "./server.js";

export interface FleetStatus {
  latest: string | null;
  tenants: TenantStatus[];
}

/** Per tenant: applied, pending and state, read without changing anything. */
export async function fleetStatus(options: FleetCommandOptions): Promise<FleetStatus> {
  const { config } = options;
  const folder = appMigrationFolder(config);
  return withCatalog(config, async (catalog) => {
    const all = await loadTenants(catalog);
    const tenants = chooseTenants(all, options);
    const problems = rowProblems(all, config);
    const statuses = new Map<string, TenantStatus>();
    await runBounded(
      tenants,
      async (tenant) => {
        const base: TenantStatus = {
          id: tenant.id,
          name: tenant.name,
          database: tenant.database,
          state: "unreachable",
          applied: [],
          pending: [],
        };
        if (tenant.server) base.server = tenant.server;
        const problem = problems.get(tenant.id);
        let status: TenantStatus;
        if (problem) {
          status = { ...base, error: problem };
        } else {
          try {
            status = {
              ...base,
              ...(await inspectTenant(
                tenant,
                placeTenant(config, tenant).settings,
                folder,
                placeTenant(config, tenant).admin,
              )),
            };
          } catch (error) {
            status = { ...base, error: (error as Error).message };
          }
        }
        statuses.set(tenant.id, status);
      },
      {
        concurrency: config.concurrency,
        signal: options.signal,
        serverOf: serverOfTenant(config),
      },
    );
    // A read has nothing to finish: stop rather than report a partial fleet as if whole.
    if (options.signal?.aborted) {
      throw new InterruptedError(`interrupted after reading ${statuses.size} of ${tenants.length} tenants`);
    }
    return {
      latest: folder.latest ?? null,
      tenants: tenants.map((t) => statuses.get(t.id) as TenantStatus),
    };
  });
}
