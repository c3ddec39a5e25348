import { loadTenants, selectTenants, withCatalog } from "../core/catalog.js";
import { type HistoryEntry, readHistory } from "../core/history.js";
import type { CommandOptions } from "./context.js";

/** Past runs per tenant, newest first. */
export async function tenantHistory(
  options: CommandOptions & { tenants?: string[]; limit?: number },
): Promise<HistoryEntry[]> {
  return withCatalog(options.config, async (catalog) => {
    let ids: string[] | null = null;
    if (options.tenants && options.tenants.length > 0) {
      ids = selectTenants(await loadTenants(catalog), options.tenants).map((t) => t.id);
    }
    return readHistory(catalog, ids, options.limit ?? 50);
  });
}
