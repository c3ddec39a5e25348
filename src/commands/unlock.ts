import { unlockTenant } from "../core/tenant-lock.js";
import { forEachNamedTenant, type SimpleResult } from "./each-tenant.js";
import type { CommandOptions } from "./options.js";
import { requireSelection } from "./selection.js";

/**
 * Releases knex's lock flag left by a dead process. A tenant that a live run
 * holds is refused, so a running migration is never unlocked under its feet.
 */
export async function unlockTenants(options: CommandOptions & { tenants: string[] }): Promise<SimpleResult> {
  requireSelection(options.tenants, null, "name the tenants to unlock");
  return forEachNamedTenant(options, (placement, database) => unlockTenant(placement.settings, database));
}
