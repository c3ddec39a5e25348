import { editedMigrations, readChecksums } from "./checksums.js";
import type { ConnectionSettings } from "./connection.js";
import { withClient } from "./db.js";
import { describeError, errorCode } from "./errors.js";
import type { Tenant } from "./fleet-types.js";
import { readKnexState } from "./knex-state.js";
import type { MigrationFolder } from "./migration-folder.js";
import { readDatabaseMark } from "./provisioning.js";
import { heldByARun } from "./tenant-lock.js";

export type TenantState =
  | "up-to-date"
  | "pending"
  | "not-provisioned"
  | "unknown-migrations"
  | "locked"
  | "unreachable"
  /** Exists, connections not allowed, not a half-made database of the tool's: an operator closed it. */
  | "closed"
  | "edited";

export interface TenantStatus {
  id: string;
  name: string;
  database: string;
  server?: string;
  state: TenantState;
  applied: string[];
  pending: string[];
  unknown?: string[];
  /** Applied files whose contents changed since the tool applied them here. */
  edited?: string[];
  error?: string;
}

/** A tenant's state, read without changing anything. */
export async function inspectTenant(
  tenant: Tenant,
  settings: ConnectionSettings,
  folder: MigrationFolder,
  /** The server's admin connection: asked only when the database refuses connections. */
  admin?: ConnectionSettings,
): Promise<Omit<TenantStatus, "id" | "name" | "database" | "server">> {
  try {
    return await withClient(settings, async (client) => {
      const state = await readKnexState(client);
      const applied = state.applied.map((m) => m.name);
      const done = new Set(applied);
      const pending = folder.names.filter((name) => !done.has(name));
      // Created by the tool and not finished: the next provisioning run finishes it.
      if (state.provisioning) return { state: "not-provisioned" as const, applied, pending };
      const unknown = applied.filter((name) => !folder.has(name));
      const edited = editedMigrations(applied, await readChecksums(client), folder);
      if (unknown.length > 0)
        return {
          state: "unknown-migrations" as const,
          applied,
          pending,
          unknown,
          edited,
        };
      if (state.knexLocked || (await heldByARun(client))) return { state: "locked" as const, applied, pending, edited };
      return {
        state:
          pending.length > 0 ? ("pending" as const) : edited.length > 0 ? ("edited" as const) : ("up-to-date" as const),
        applied,
        pending,
        edited,
      };
    });
  } catch (error) {
    const code = errorCode(error);
    if (code === "55000" && admin) {
      const mark = await withClient(admin, (client) => readDatabaseMark(client, tenant.database)).catch(
        () => undefined,
      );
      if (mark?.exists && !mark.allowConnections && !mark.provisioning) {
        return {
          state: "closed",
          applied: [],
          pending: [],
          error: `${tenant.database}: closed to connections (ALLOW_CONNECTIONS false) by an operator`,
        };
      }
    }
    if (code === "3D000" || code === "55000") {
      return { state: "not-provisioned", applied: [], pending: folder.names };
    }
    return {
      state: "unreachable",
      applied: [],
      pending: [],
      error: `${tenant.database}: ${describeError(error)}`,
    };
  }
}
