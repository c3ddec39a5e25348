import { errorCode } from "./errors.js";
import { PROVISION_LOCK_CLASS } from "./lock-keys.js";
import {
  ClosedDatabaseError,
  createMarkedDatabaseSql,
  finishProvisioning,
  openForMigrations,
  pgExec,
  readDatabaseMark,
} from "./provisioning.js";
import { createFromTemplate } from "./template.js";
import type { TenantJob } from "./tenant-job.js";

/**
 * Creates the tenant's database if it is missing, closed and marked as the
 * tool's in one statement (see provisioning.ts), then opens it to its owner
 * for the migrations, PUBLIC revoked. Also opens one whose provisioning a
 * killed run left closed. A database an operator closed is never opened
 * (ClosedDatabaseError). Runs that provision the same database take turns
 * (GRANT and ALTER DATABASE fail when two sessions change one database at
 * once). With `useTemplate`, a missing database is copied from the server's
 * template instead (the same marks), and finished at once. `ready`: it
 * exists and is not the tool's to finish; otherwise the caller runs the
 * migrations and then finishProvisioning, unless `fromTemplate` (copied and
 * finished here: nothing is left to run). `created`: this call created it.
 */
export async function ensureDatabase(
  job: TenantJob,
): Promise<{ ready: boolean; created: boolean; fromTemplate: boolean }> {
  // Before taking a pooled connection: building the template needs one too.
  const template = job.useTemplate ? await job.admin.template(job.placement.admin, job.folder) : undefined;
  const client = await job.admin.get(job.placement.admin).connect();
  const database = job.tenant.database;
  let failure: Error | undefined;
  try {
    await client.query("select pg_advisory_lock($1, hashtext($2))", [PROVISION_LOCK_CLASS, database]);
    let mark = await readDatabaseMark(client, database);
    let created = false;
    let fromTemplate = false;
    if (!mark.exists) {
      try {
        fromTemplate = template !== undefined && (await createFromTemplate(client, database, template));
        // A copy is closed and marked by the same CREATE DATABASE, as a plain creation is.
        if (!fromTemplate) await client.query(createMarkedDatabaseSql(database));
        created = true;
      } catch (error) {
        // Created meanwhile by a run on another admin database (42P04 or, in a race, 23505).
        if (errorCode(error) !== "42P04" && errorCode(error) !== "23505") throw error;
      }
      mark = created
        ? { exists: true, allowConnections: false, provisioning: true }
        : await readDatabaseMark(client, database);
      if (!mark.exists) throw new Error(`database "${database}" was dropped while it was being created`);
    }
    if (!mark.provisioning) {
      if (mark.allowConnections) return { ready: true, created: false, fromTemplate: false };
      throw new ClosedDatabaseError(database);
    }
    if (!mark.allowConnections) await openForMigrations(client, database);
    if (fromTemplate) {
      // Every migration is in the copy already: made ready at once.
      await client.query("begin");
      await finishProvisioning(pgExec(client), database, job.appRole);
      await client.query("commit");
    }
    return { ready: false, created, fromTemplate };
  } catch (error) {
    await client.query("rollback").catch(() => {});
    if (!(error instanceof ClosedDatabaseError)) failure = error as Error;
    throw error;
  } finally {
    await client.query("select pg_advisory_unlock($1, hashtext($2))", [PROVISION_LOCK_CLASS, database]).catch(() => {});
    // A connection that failed is not handed to the next tenant.
    await job.admin.release(job.placement.admin, client, failure);
  }
}
