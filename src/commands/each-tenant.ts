import { loadTenants, placeTenant, selectTenants, type TenantPlacement, withCatalog } from "../core/catalog.js";
import { describeError } from "../core/errors.js";
import { redact } from "../core/redact.js";
import type { CommandOptions } from "./options.js";
import { rowProblems } from "./selection.js";

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
 * The shape of unlock and drop: each named tenant in turn, one result each;
 * a failure (bad row, unreachable server) is that tenant's result alone.
 * After an interrupt the tenants not yet reached are `skipped`.
 */
export async function forEachNamedTenant(
  options: CommandOptions & { tenants: string[] },
  work: (placement: TenantPlacement, database: string) => Promise<string>,
): Promise<SimpleResult> {
  return withCatalog(options.config, async (catalog) => {
    const all = await loadTenants(catalog);
    const problems = rowProblems(all, options.config);
    const results: SimpleTenantResult[] = [];
    for (const tenant of selectTenants(all, options.tenants)) {
      const base = { id: tenant.id, name: tenant.name, database: tenant.database };
      if (options.signal?.aborted) {
        results.push({ ...base, result: "skipped" });
        continue;
      }
      try {
        const problem = problems.get(tenant.id);
        if (problem) throw new Error(problem);
        results.push({ ...base, result: await work(placeTenant(options.config, tenant), tenant.database) });
      } catch (error) {
        results.push({ ...base, result: "failed", error: redact(describeError(error)) });
      }
    }
    return { ok: results.every((r) => r.result !== "failed"), tenants: results };
  });
}
