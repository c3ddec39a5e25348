import { UsageError } from "../core/errors.js";
import { AdminPools, dropDatabase } from "../core/server-admin.js";
import { forEachNamedTenant, type SimpleResult } from "./each-tenant.js";
import type { CommandOptions } from "./options.js";
import { requireSelection } from "./selection.js";

/** Drops tenant databases; refuses without `yes`. Catalog rows stay (status then says not-provisioned). */
export async function dropTenants(
  options: CommandOptions & {
    /** school_id, school_database or school_name values. */
    tenants: string[];
    /** Really drop them (refused without it, exit 2). @default false */
    yes?: boolean;
  },
): Promise<SimpleResult> {
  requireSelection(options.tenants, null, "name the tenants whose databases to drop");
  if (!options.yes) {
    throw new UsageError(
      `refusing to drop ${options.tenants.join(", ")} without --yes: dropping a database deletes its data`,
    );
  }
  const admin = new AdminPools(1);
  try {
    return await forEachNamedTenant(options, (placement, database) =>
      dropDatabase(admin.get(placement.admin), database),
    );
  } finally {
    await admin.close();
  }
}
