import { loadTenants, placeTenant, selectTenants, withCatalog } from "../core/catalog.js";
import { describeError } from "../core/errors.js";
import { redact } from "../core/redact.js";
import { unlockTenant } from "../core/tenant.js";
import { type CommandOptions, requireSelection, rowProblems } from "./context.js";

export interface SimpleTenantResult {
  id: string;
  name: string;
  database: string;
  result: string;
  error?: string;
}

export interface SimpleResult {
  ok: boolean;
  tenants: SimpleTenantResult[];
}

/**
 * Releases knex's lock flag left by a dead process. A tenant that a live run
 * holds is refused, so a running migration is never unlocked under its feet.
 */
export async function unlockTenants(options: CommandOptions & { tenants: string[] }): Promise<SimpleResult> {
  requireSelection(options.tenants, false, "name the tenants to unlock");
  return withCatalog(options.config, async (catalog) => {
    const all = await loadTenants(catalog);
    const tenants = selectTenants(all, options.tenants);
    const problems = rowProblems(all);
    const results: SimpleTenantResult[] = [];
    for (const tenant of tenants) {
      const base = {
        id: tenant.id,
        name: tenant.name,
        database: tenant.database,
      };
      try {
        const problem = problems.get(tenant.id);
        if (problem) throw new Error(problem);
        results.push({
          ...base,
          result: await unlockTenant(placeTenant(options.config, tenant).settings, tenant.database),
        });
      } catch (error) {
        results.push({
          ...base,
          result: "failed",
          error: redact(describeError(error)),
        });
      }
    }
    return {
      ok: results.every((r) => r.result !== "failed"),
      tenants: results,
    };
  });
}
