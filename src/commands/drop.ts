import { loadTenants, placeTenant, selectTenants, withCatalog } from "../core/catalog.js";
import { describeError, UsageError } from "../core/errors.js";
import { redact } from "../core/redact.js";
import { AdminPools, dropDatabase } from "../core/tenant.js";
import { type CommandOptions, requireSelection, rowProblems } from "./context.js";
import type { SimpleResult, SimpleTenantResult } from "./unlock.js";

/** Drops tenant databases; refuses without `yes`. Catalog rows stay (status then says not-provisioned). */
export async function dropTenants(
  options: CommandOptions & { tenants: string[]; yes?: boolean },
): Promise<SimpleResult> {
  requireSelection(options.tenants, false, "name the tenants whose databases to drop");
  if (!options.yes) {
    throw new UsageError(
      `refusing to drop ${options.tenants.join(", ")} without --yes: dropping a database deletes its data`,
    );
  }
  return withCatalog(options.config, async (catalog) => {
    const all = await loadTenants(catalog);
    const tenants = selectTenants(all, options.tenants);
    const problems = rowProblems(all);
    const admin = new AdminPools(1);
    const results: SimpleTenantResult[] = [];
    try {
      for (const tenant of tenants) {
        const base = {
          id: tenant.id,
          name: tenant.name,
          database: tenant.database,
        };
        try {
          const problem = problems.get(tenant.id);
          if (problem) throw new Error(problem);
          const pool = admin.get(placeTenant(options.config, tenant).admin);
          results.push({
            ...base,
            result: await dropDatabase(pool, tenant.database),
          });
        } catch (error) {
          results.push({
            ...base,
            result: "failed",
            error: redact(describeError(error)),
          });
        }
      }
    } finally {
      await admin.close();
    }
    return {
      ok: results.every((r) => r.result !== "failed"),
      tenants: results,
    };
  });
}
