// Which tenants a command works on, and which catalog rows it must refuse.
import { createHash } from "node:crypto";
import { selectTenants } from "../core/catalog.js";
import type { Config } from "../core/config.js";
import { UsageError } from "../core/errors.js";
import type { Tenant } from "../core/fleet-types.js";
import { databaseNameProblem } from "../core/identifiers.js";
import { reservedDatabaseProblem } from "../core/reserved.js";
import type { FleetCommandOptions } from "./options.js";

/** Stable slice of the tenants: a tenant's slice depends on its school_id alone. */
export function shardOf(tenantId: string, count: number): number {
  const digest = createHash("sha256").update(tenantId).digest();
  return (digest.readUInt32BE(0) % count) + 1;
}

/** Tenants selected by name, then by shard. */
export function chooseTenants(all: Tenant[], options: FleetCommandOptions): Tenant[] {
  const named = selectTenants(all, options.tenants ?? []);
  const shard = options.shard;
  if (!shard) return named;
  return named.filter((t) => shardOf(t.id, shard.count) === shard.index);
}

/**
 * Why a catalog row cannot be worked on, checked before any SQL reaches its
 * database: a bad or reserved name, a database named by two rows.
 */
export function rowProblems(all: Tenant[], config: Config): Map<string, string> {
  const problems = new Map<string, string>();
  const seen = new Map<string, Tenant[]>();
  for (const tenant of all) {
    const key = `${tenant.server ?? ""}\u0000${tenant.database}`;
    seen.set(key, [...(seen.get(key) ?? []), tenant]);
  }
  for (const tenant of all) {
    const problem = databaseNameProblem(tenant.database) ?? reservedDatabaseProblem(tenant.database, config);
    if (problem) {
      problems.set(tenant.id, `school ${tenant.id}: ${problem}`);
      continue;
    }
    const sharing = seen.get(`${tenant.server ?? ""}\u0000${tenant.database}`) ?? [];
    if (sharing.length > 1) {
      const others = sharing.filter((t) => t !== tenant).map((t) => t.id);
      problems.set(
        tenant.id,
        `school ${tenant.id}: database "${tenant.database}" is also named by school ${others.join(", ")}`,
      );
    }
  }
  return problems;
}

/** Tenants named, or the command's all-of-them flag (`flag`), exactly one of the two. */
export function requireSelection(
  names: string[] | undefined,
  all: { flag: string; set: boolean } | null,
  what: string,
): void {
  const named = (names?.length ?? 0) > 0;
  if (!named && !all?.set) throw new UsageError(what);
  if (named && all?.set) throw new UsageError(`name tenants or use ${all.flag}, not both`);
}
