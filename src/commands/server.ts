// The servers a command runs on: the embedded one it may start, and which
// server each tenant's connection reaches (by address, and by identity).
import type pg from "pg";
import { catalogSettings, placeTenant, type TenantPlacement } from "../core/catalog.js";
import type { Config } from "../core/config.js";
import { serverKey } from "../core/connection.js";
import { startEmbedded } from "../core/embedded.js";
import type { Tenant } from "../core/fleet-types.js";
import {
  identifyServers,
  possibleAliases,
  type ServerIdentities,
  sameDatabaseProblems,
} from "../core/server-identity.js";

/**
 * Runs `fn` with the embedded PostgreSQL started when the config asks for it
 * (and stopped afterwards, also on error); otherwise just runs it.
 */
export async function withServer<T>(config: Config, fn: (config: Config) => Promise<T>): Promise<T> {
  if (!config.embedded || config.catalog) return fn(config);
  const server = await startEmbedded(config.cwd, config.catalogDatabase);
  try {
    return await fn({ ...config, catalog: server.settings });
  } finally {
    await server.stop();
  }
}

/** The server a tenant's connection goes to, for per-server bounds on reads (status, diff); "?" when it has none. */
export function serverOfTenant(config: Config): (tenant: Tenant) => string {
  return (tenant) => {
    try {
      return serverKey(placeTenant(config, tenant).admin);
    } catch {
      return "?";
    }
  };
}

/**
 * Reads the identity of the servers the run will use, and adds to `problems`
 * the rows that reach one database through two spellings of one server.
 */
export async function checkServerIdentities(
  config: Config,
  catalog: pg.Client,
  allTenants: Tenant[],
  placements: Map<Tenant, TenantPlacement | Error>,
  problems: Map<string, string>,
  signal: AbortSignal | undefined,
): Promise<ServerIdentities> {
  const placed: [Tenant, TenantPlacement][] = [];
  for (const tenant of allTenants) {
    if (problems.has(tenant.id)) continue;
    try {
      placed.push([tenant, placeTenant(config, tenant)]);
    } catch {
      // fails alone with its placement error
    }
  }
  const mustKnow = possibleAliases(placed);
  const used = [...placements.values()].filter((p): p is TenantPlacement => !(p instanceof Error));
  const servers = await identifyServers(
    [...used, ...placed.filter(([, p]) => mustKnow.has(serverKey(p.admin))).map(([, p]) => p)],
    { settings: catalogSettings(config), client: catalog },
    { retries: config.retries, signal, mustKnow },
  );
  for (const [id, problem] of sameDatabaseProblems(placed, servers)) problems.set(id, problem);
  return servers;
}
