import type pg from "pg";
import type { EmitEvent, RecreatedDatabase, Tenant, TenantOutcome } from "../core/fleet-types.js";
import { databasesSeenBefore } from "../core/history.js";

/**
 * A school whose database vanished (dropped by hand) is created again, as the
 * original design does, but loudly: when the run history shows that earlier
 * runs saw its database, the result says `recreated` and a notice says when.
 * The history is read once, when the first school of the run is provisioned
 * (never on a run that provisions nothing), for every school of the run.
 */
export function recreatedDatabases(
  catalog: pg.Client,
  tenants: Tenant[],
  runId: string | undefined,
  dryRun: boolean,
): { mark: (tenant: Tenant, outcome: TenantOutcome, emit: EmitEvent) => Promise<TenantOutcome> } {
  let seen: Promise<Map<string, RecreatedDatabase>> | undefined;
  return {
    async mark(tenant, outcome, emit) {
      // History is bookkeeping: if it cannot be read, the school is provisioned all the same.
      seen ??= databasesSeenBefore(catalog, tenants, runId).catch(() => new Map());
      const before = (await seen).get(tenant.id);
      if (!before) return outcome;
      emit({
        type: "notice",
        tenant,
        message: `${tenant.database} (id ${tenant.id}): this database was provisioned before (runs saw it from ${before.firstSeen} to ${before.lastSeen}) and is gone: ${dryRun ? "it would be created" : "created it"} empty again`,
      });
      return { ...outcome, recreated: before };
    },
  };
}
