import type pg from "pg";
import type { TenantPlacement } from "./catalog.js";
import { type ConnectionSettings, serverKey } from "./connection.js";
import { withClient, withRetries } from "./db.js";
import { describeError } from "./errors.js";
import type { Tenant } from "./fleet-types.js";

// Two spellings of one server (an alias in TENANT_SERVERS, `localhost` and
// `127.0.0.1`) must count as one: for rows that would reach one database, and
// for the per-server concurrency. A server is identified by what it says it
// is, not by how it is reached.

/**
 * What the server says it is: its cluster's system identifier (when the role
 * may read pg_control_system(); replicas share it), the port it listens on and
 * when its postmaster started. Any role may read the last two, which alone
 * already tell servers apart.
 */
export async function readServerIdentity(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ port: string; started: string }>(
    "select current_setting('port') as port, pg_postmaster_start_time()::text as started",
  );
  let system = "?";
  try {
    const control = await client.query<{ id: string }>("select system_identifier::text as id from pg_control_system()");
    system = control.rows[0]?.id ?? "?";
  } catch {
    // not granted to this role: the port and start time still tell servers apart
  }
  return `${system}/${rows[0]?.port}/${rows[0]?.started}`;
}

export interface ServerIdentities {
  /** The identity of the server `settings` reach, or their spelling when it could not be read. */
  of(settings: ConnectionSettings): string;
  /** Why a server's identity could not be read, by spelling. */
  unknown: Map<string, string>;
}

/**
 * Reads the identity of every server the tenants are placed on, once per
 * server per run, before any change. The catalog's server is asked over the
 * run's catalog connection. A server whose identity cannot be read (it is
 * down) keeps its spelling; its tenants meet the same fault themselves.
 */
export async function identifyServers(
  placements: Iterable<TenantPlacement>,
  catalog: { settings: ConnectionSettings; client: pg.Client },
  options: { retries: number; signal?: AbortSignal | undefined; mustKnow: Set<string> },
): Promise<ServerIdentities> {
  const identities = new Map<string, string>();
  const unknown = new Map<string, string>();
  try {
    identities.set(serverKey(catalog.settings), await readServerIdentity(catalog.client));
  } catch (error) {
    unknown.set(serverKey(catalog.settings), describeError(error));
  }
  const toAsk = new Map<string, ConnectionSettings>();
  for (const placement of placements) {
    const key = serverKey(placement.admin);
    if (!identities.has(key) && !unknown.has(key) && !toAsk.has(key)) toAsk.set(key, placement.admin);
  }
  await Promise.all(
    [...toAsk].map(async ([key, settings]) => {
      try {
        // A server that may be an alias of another is asked until the retry budget is spent.
        const retries = options.mustKnow.has(key) ? options.retries : 0;
        identities.set(
          key,
          await withRetries(() => withClient(settings, readServerIdentity), { retries, signal: options.signal }),
        );
      } catch (error) {
        unknown.set(key, describeError(error));
      }
    }),
  );
  return {
    of: (settings) => identities.get(serverKey(settings)) ?? serverKey(settings),
    unknown,
  };
}

/**
 * The spellings of servers that may be aliases of each other: those of rows
 * that name one database on differently named servers. Only these need an
 * identity before the run can tell whether two rows are one database.
 */
export function possibleAliases(placed: [Tenant, TenantPlacement][]): Set<string> {
  const byDatabase = new Map<string, [Tenant, TenantPlacement][]>();
  for (const entry of placed) {
    const group = byDatabase.get(entry[0].database) ?? [];
    group.push(entry);
    byDatabase.set(entry[0].database, group);
  }
  const keys = new Set<string>();
  for (const group of byDatabase.values()) {
    // Rows naming the same server name are rowProblems' to report.
    if (new Set(group.map(([t]) => t.server ?? "")).size < 2) continue;
    for (const [, placement] of group) keys.add(serverKey(placement.admin));
  }
  return keys;
}

/**
 * Rows that reach one database through different spellings of one server:
 * each fails alone, naming the others. A row on a server whose identity could
 * not be read, sharing its database name with a row elsewhere, fails too: it
 * might be the same database.
 */
export function sameDatabaseProblems(
  placed: [Tenant, TenantPlacement][],
  identities: ServerIdentities,
): Map<string, string> {
  const problems = new Map<string, string>();
  const groups = new Map<string, [Tenant, TenantPlacement][]>();
  for (const entry of placed) {
    const key = `${identities.of(entry[1].admin)}\u0000${entry[0].database}`;
    groups.set(key, [...(groups.get(key) ?? []), entry]);
  }
  const label = (tenant: Tenant, placement: TenantPlacement) =>
    `school ${tenant.id} (server ${tenant.server ?? "of the catalog"}, ${serverKey(placement.admin)})`;
  for (const group of groups.values()) {
    if (group.length < 2 || new Set(group.map(([t]) => t.server ?? "")).size < 2) continue;
    for (const [tenant, placement] of group) {
      const others = group.filter(([t]) => t !== tenant).map(([t, p]) => label(t, p));
      problems.set(
        tenant.id,
        `school ${tenant.id}: database "${tenant.database}" on ${serverKey(placement.admin)} (server ${tenant.server ?? "of the catalog"}) is the same database as ${others.join(", ")}: both server names reach one server; fix school_server in the catalog`,
      );
    }
  }
  // The server names that name each database: a row fails only when its own database is also named elsewhere.
  const serverNames = new Map<string, Set<string>>();
  for (const [tenant] of placed) {
    serverNames.set(tenant.database, (serverNames.get(tenant.database) ?? new Set()).add(tenant.server ?? ""));
  }
  for (const [tenant, placement] of placed) {
    const key = serverKey(placement.admin);
    const why = identities.unknown.get(key);
    if (why === undefined || (serverNames.get(tenant.database)?.size ?? 0) < 2 || problems.has(tenant.id)) continue;
    problems.set(
      tenant.id,
      `school ${tenant.id}: database "${tenant.database}" is also named by a school on another server, and the server at ${key} could not be asked whether it is the same one: ${why}`,
    );
  }
  return problems;
}
