import type pg from "pg";
import {
  catalogSettings,
  loadTenants,
  placeTenant,
  selectTenants,
  type TenantPlacement,
  withCatalog,
} from "../core/catalog.js";
import type { ConnectionSettings } from "../core/connection.js";
import { withClient } from "../core/db.js";
import { describeError, errorCode, InterruptedError, UsageError } from "../core/errors.js";
import { runBounded } from "../core/fleet.js";
import type { Tenant } from "../core/fleet-types.js";
import { readApplied } from "../core/knex-state.js";
import type { MigrationFolder } from "../core/migration-folder.js";
import { readDatabaseMark } from "../core/provisioning.js";
import { redact } from "../core/redact.js";
import {
  type ChangedObject,
  compareSchemas,
  describeSchema,
  type SchemaDescription,
  type SchemaObject,
} from "../core/schema-fingerprint.js";
import { withScratchDatabase } from "../core/scratch-database.js";
import type { FleetCommandOptions } from "./options.js";
import { appMigrationFolder } from "./preflight.js";
import { chooseTenants, rowProblems } from "./selection.js";
import { serverOfTenant } from "./server.js";

export interface DiffOptions extends FleetCommandOptions {
  /** A school (school_id, school_database or school_name) to compare with. @default undefined (a scratch database migrated from the files) */
  against?: string | undefined;
}

/**
 * `identical` / `different`: compared with the reference. Not compared:
 * `pending` (migrations not applied yet), `unknown-migrations` (applied
 * names no file matches), `not-provisioned` (with `error` when the database
 * exists, half-made by a provisioning run that was cut short), `closed` (an
 * operator closed it to connections, with `error`), `unreachable` (with `error`).
 * The states a school has in both agree with `status`.
 */
export type DiffState =
  | "identical"
  | "different"
  | "pending"
  | "unknown-migrations"
  | "not-provisioned"
  | "closed"
  | "unreachable";

export interface TenantDiff {
  id: string;
  name: string;
  database: string;
  server?: string;
  state: DiffState;
  /** sha256 of the school's schema description, when it was read. */
  fingerprint?: string;
  added: SchemaObject[];
  missing: SchemaObject[];
  changed: ChangedObject[];
  /** Migrations not applied (state `pending`) or applied with no file (state `unknown-migrations`). */
  migrations?: string[];
  error?: string;
}

export interface DiffReference {
  /** `scratch`: a database made from the migration files for this run (dropped since); `tenant`: a school (--against). */
  kind: "scratch" | "tenant";
  database: string;
  id?: string;
  name?: string;
  fingerprint: string;
  objects: number;
}

/** Schools with one schema (fingerprint), largest group first; the reference's own first of all. */
export interface DiffGroup {
  fingerprint: string;
  identicalToReference: boolean;
  /** The schools' databases. */
  tenants: string[];
}

export interface FleetDiff {
  reference: DiffReference;
  groups: DiffGroup[];
  tenants: TenantDiff[];
}

type Reading =
  | { state: "read"; schema: SchemaDescription }
  | { state: "pending" | "unknown-migrations"; migrations: string[] }
  | { state: "not-provisioned"; error?: string }
  | { state: "closed"; error: string }
  | { state: "unreachable"; error: string };

/**
 * Compares each school's schema with a reference: a scratch database migrated
 * from the files (made and dropped here), or the school named by `against`.
 * Costs one connection per school, the fleet's bounded concurrency as status.
 */
export async function fleetDiff(options: DiffOptions): Promise<FleetDiff> {
  const { config } = options;
  const folder = appMigrationFolder(config);
  return withCatalog(config, async (catalog) => {
    const all = await loadTenants(catalog);
    const tenants = chooseTenants(all, options);
    const problems = rowProblems(all, config);
    const placementOf = (tenant: Tenant): TenantPlacement => {
      const problem = problems.get(tenant.id);
      if (problem) throw new Error(problem);
      return placeTenant(config, tenant);
    };

    let reference: DiffReference;
    let referenceSchema: SchemaDescription;
    let referenceTenant: Tenant | undefined;
    if (options.against !== undefined) {
      referenceTenant = selectTenants(all, [options.against])[0] as Tenant;
      const reading = await readTenant(referenceTenant, () => placementOf(referenceTenant as Tenant), folder);
      if (reading.state !== "read") {
        const why = "error" in reading && reading.error ? `${reading.state}: ${reading.error}` : reading.state;
        throw new UsageError(`--against ${options.against}: the reference school cannot be compared (${why})`);
      }
      referenceSchema = reading.schema;
      reference = {
        kind: "tenant",
        id: referenceTenant.id,
        name: referenceTenant.name,
        database: referenceTenant.database,
        fingerprint: referenceSchema.fingerprint,
        objects: referenceSchema.objects.length,
      };
    } else {
      let scratch = "";
      try {
        referenceSchema = await withScratchDatabase(catalogSettings(config), folder, async (client) => {
          scratch = (await client.query<{ db: string }>("select current_database() as db")).rows[0]?.db ?? "";
          return describeSchema(client);
        });
      } catch (error) {
        // Nothing of the fleet was read or changed: the files (or the server) are the problem.
        throw new UsageError(
          redact(`cannot build the reference database from the migration files: ${describeError(error)}`),
          {
            cause: error,
          },
        );
      }
      reference = {
        kind: "scratch",
        database: scratch,
        fingerprint: referenceSchema.fingerprint,
        objects: referenceSchema.objects.length,
      };
    }
    if (options.signal?.aborted) throw new InterruptedError("interrupted before the schools were read");

    const results = new Map<string, TenantDiff>();
    await runBounded(
      tenants,
      async (tenant) => {
        const reading: Reading =
          tenant.id === referenceTenant?.id
            ? { state: "read", schema: referenceSchema }
            : await readTenant(tenant, () => placementOf(tenant), folder);
        results.set(tenant.id, diffOf(tenant, reading, referenceSchema));
      },
      {
        concurrency: config.concurrency,
        signal: options.signal,
        serverOf: serverOfTenant(config),
      },
    );
    // A read has nothing to finish: stop rather than report a partial fleet as if whole.
    if (options.signal?.aborted) {
      throw new InterruptedError(`interrupted after reading ${results.size} of ${tenants.length} schools`);
    }
    const ordered = tenants.map((t) => results.get(t.id) as TenantDiff);
    return { reference, groups: groupsOf(ordered, reference.fingerprint), tenants: ordered };
  });
}

/** One connection: knex's applied list, then (when the school is up to date) its schema in one catalog query. */
async function readTenant(
  tenant: Tenant,
  placementOf: () => TenantPlacement,
  folder: MigrationFolder,
): Promise<Reading> {
  try {
    return await withClient(placementOf().settings, async (client: pg.Client) => {
      const applied = (await readApplied(client)).map((m) => m.name);
      const unknown = applied.filter((name) => !folder.has(name));
      if (unknown.length > 0) return { state: "unknown-migrations", migrations: unknown };
      const done = new Set(applied);
      const pending = folder.names.filter((name) => !done.has(name));
      if (pending.length > 0) return { state: "pending", migrations: pending };
      return { state: "read", schema: await describeSchema(client) };
    });
  } catch (error) {
    const code = errorCode(error);
    if (code === "55000") return closedReading(tenant, placementOf().admin);
    if (code === "3D000") return { state: "not-provisioned" };
    return { state: "unreachable", error: describeError(error) };
  }
}

/**
 * A database that refuses connections: pg_database (asked on the server's
 * admin connection) says whether the tool's provisioning was cut short or an
 * operator closed it, as `status` tells them apart.
 */
async function closedReading(tenant: Tenant, admin: ConnectionSettings): Promise<Reading> {
  const mark = await withClient(admin, (client) => readDatabaseMark(client, tenant.database)).catch(() => undefined);
  if (mark?.exists && mark.provisioning) {
    return {
      state: "not-provisioned",
      error: `database "${tenant.database}" was created but its provisioning was cut short: run \`tenant-migrate provision ${tenant.id}\``,
    };
  }
  if (mark?.exists && !mark.allowConnections) {
    return {
      state: "closed",
      error: `${tenant.database}: closed to connections (ALLOW_CONNECTIONS false) by an operator`,
    };
  }
  return { state: "not-provisioned" };
}

function diffOf(tenant: Tenant, reading: Reading, reference: SchemaDescription): TenantDiff {
  const who = {
    id: tenant.id,
    name: tenant.name,
    database: tenant.database,
    ...(tenant.server ? { server: tenant.server } : {}),
  };
  const none = { added: [], missing: [], changed: [] };
  switch (reading.state) {
    case "read": {
      const { fingerprint } = reading.schema;
      if (fingerprint === reference.fingerprint) return { ...who, state: "identical", fingerprint, ...none };
      return { ...who, state: "different", fingerprint, ...compareSchemas(reference, reading.schema) };
    }
    case "pending":
    case "unknown-migrations":
      return { ...who, state: reading.state, ...none, migrations: reading.migrations };
    case "not-provisioned":
      return { ...who, state: "not-provisioned", ...none, ...(reading.error ? { error: redact(reading.error) } : {}) };
    case "closed":
      return { ...who, state: "closed", ...none, error: redact(reading.error) };
    default:
      return { ...who, state: "unreachable", ...none, error: redact(`${tenant.database}: ${reading.error}`) };
  }
}

function groupsOf(tenants: TenantDiff[], referenceFingerprint: string): DiffGroup[] {
  const groups = new Map<string, DiffGroup>();
  for (const t of tenants) {
    if (!t.fingerprint) continue;
    let group = groups.get(t.fingerprint);
    if (!group) {
      group = { fingerprint: t.fingerprint, identicalToReference: t.fingerprint === referenceFingerprint, tenants: [] };
      groups.set(t.fingerprint, group);
    }
    group.tenants.push(t.database);
  }
  return [...groups.values()].sort(
    (a, b) => Number(b.identicalToReference) - Number(a.identicalToReference) || b.tenants.length - a.tenants.length,
  );
}
