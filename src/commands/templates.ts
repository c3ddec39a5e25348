import type pg from "pg";
import { catalogSettings } from "../core/catalog.js";
import { type ConnectionSettings, serverKey } from "../core/connection.js";
import { withClient } from "../core/db.js";
import { describeError } from "../core/errors.js";
import { quoteIdent } from "../core/identifiers.js";
import { PROVISION_LOCK_CLASS } from "../core/lock-keys.js";
import type { MigrationFolder } from "../core/migration-folder.js";
import { migrationSetKey, templateName, templatePrefix } from "../core/template.js";
import type { CommandOptions } from "./options.js";
import { appMigrationFolder } from "./preflight.js";

/** Whose a template is: this catalog's (its admin database), another existing one's, or nobody's any more. */
export type TemplateOwner = "this-catalog" | "another-catalog" | "orphan";

export interface TemplateEntry {
  /** "catalog" or the TENANT_SERVERS names of the server. */
  server: string;
  name: string;
  /** The role that built it (its owner). */
  owner: string;
  /** pg_database_size; null when this role may not see it. */
  sizeBytes: number | null;
  /** Closed to connections: built to the end. An open one is being built, or was left half-built. */
  finished: boolean;
  /** This catalog's current migration files (and knex version) copy from it. */
  current: boolean;
  belongsTo: TemplateOwner;
  /** The admin database whose runs build and copy it; null for an orphan. */
  adminDatabase: string | null;
  /** This role may drop it (it owns it, is a member of its owner, or is a superuser). */
  droppable: boolean;
}

export interface TemplatesResult {
  ok: boolean;
  templates: TemplateEntry[];
  /** Servers that could not be read. */
  errors: { server: string; error: string }[];
}

/** kept: on purpose (current, another catalog's, being copied right now); failed: its DROP failed. */
export type PruneAction = "dropped" | "would-drop" | "kept" | "failed";

export interface PrunedTemplate extends TemplateEntry {
  action: PruneAction;
  /** Why it is kept, or why its drop failed. */
  reason?: string;
}

export interface PruneResult {
  ok: boolean;
  /** True without `yes`: nothing was dropped; `would-drop` says what would be. */
  refused: boolean;
  templates: PrunedTemplate[];
  errors: { server: string; error: string }[];
}

/** The tool's template names, as templateName makes them (0.1's names have the same shape). */
const TEMPLATE_NAME = "^tenant_migrate_template_[0-9a-f]{12}_[0-9a-f]{16}$";

/** One server, with the admin connections this configuration uses on it (the catalog's, TENANT_SERVERS'). */
interface Server {
  names: string[];
  admins: ConnectionSettings[];
}

/** The catalog's server and every TENANT_SERVERS server, each once. */
function servers(options: CommandOptions): Server[] {
  const byKey = new Map<string, Server>();
  const add = (name: string, admin: ConnectionSettings) => {
    const key = serverKey(admin);
    const server = byKey.get(key) ?? { names: [], admins: [] };
    server.names.push(name);
    server.admins.push(admin);
    byKey.set(key, server);
  };
  add("catalog", catalogSettings(options.config));
  for (const [name, admin] of options.config.tenantServers) add(name, admin);
  return [...byKey.values()];
}

/** The tool's templates on one server, read through its first admin connection. */
async function readServer(server: Server, folder: MigrationFolder, key: string | undefined): Promise<TemplateEntry[]> {
  const admin = server.admins[0] as ConnectionSettings;
  const current = new Set(key === undefined ? [] : server.admins.map((a) => templateName(a, folder, key)));
  const ours = new Set(server.admins.map((a) => a.database));
  return withClient(admin, async (client) => {
    const { rows } = await client.query<{
      name: string;
      owner: string;
      size: number | null;
      finished: boolean;
      droppable: boolean;
    }>(
      `select d.datname as name, r.rolname as owner, not d.datallowconn as finished,
              pg_has_role(d.datdba, 'MEMBER') as droppable,
              case when has_database_privilege(d.oid, 'CONNECT') then pg_database_size(d.oid)::float8 end as size
         from pg_database d join pg_roles r on r.oid = d.datdba
        where d.datname ~ $1 order by d.datname`,
      [TEMPLATE_NAME],
    );
    const { rows: databases } = await client.query<{ datname: string }>("select datname from pg_database");
    return rows.map((row) => {
      // A template's prefix is the hash of its admin database and its builder (its owner).
      const adminDatabase =
        databases.find((d) => row.name.startsWith(templatePrefix({ database: d.datname, user: row.owner })))?.datname ??
        null;
      const belongsTo: TemplateOwner =
        adminDatabase === null ? "orphan" : ours.has(adminDatabase) ? "this-catalog" : "another-catalog";
      return {
        server: server.names.join(", "),
        name: row.name,
        owner: row.owner,
        sizeBytes: row.size,
        finished: row.finished,
        current: current.has(row.name),
        belongsTo,
        adminDatabase,
        droppable: row.droppable,
      };
    });
  });
}

async function readAll(
  options: CommandOptions,
): Promise<{ list: [Server, TemplateEntry[]][]; errors: TemplatesResult["errors"] }> {
  const folder = appMigrationFolder(options.config);
  // No migration files: no run builds a template, so none is current.
  const key = folder.names.length === 0 ? undefined : migrationSetKey(folder);
  const list: [Server, TemplateEntry[]][] = [];
  const errors: TemplatesResult["errors"] = [];
  for (const server of servers(options)) {
    try {
      list.push([server, await readServer(server, folder, key)]);
    } catch (error) {
      errors.push({ server: server.names.join(", "), error: describeError(error) });
    }
  }
  return { list, errors };
}

/** The tool's template databases on each server, and whether this catalog's current files use them. */
export async function listTemplates(options: CommandOptions): Promise<TemplatesResult> {
  const { list, errors } = await readAll(options);
  return { ok: errors.length === 0, templates: list.flatMap(([, templates]) => templates), errors };
}

/** Why a template that this catalog's current files do not use is kept anyway; undefined: it may go. */
function keepReason(template: TemplateEntry): string | undefined {
  if (template.current) return "this catalog's current migration files use it";
  if (template.belongsTo === "another-catalog") {
    return `another catalog's (admin database ${template.adminDatabase}): its own runs replace its old templates`;
  }
  if (!template.droppable) return `owned by role ${template.owner}, which this role may not drop`;
  return undefined;
}

/**
 * Drops the templates that this catalog's current files do not use: this
 * catalog's older ones (any role's) and orphans (their admin database is
 * gone). Another catalog's are kept: whether its files still use them is not
 * known here. Without `yes` it drops nothing and says what it would drop.
 * A template is dropped only under its advisory lock, held exclusively in its
 * admin database, so never while one of our runs copies or builds it.
 */
export async function pruneTemplates(
  options: CommandOptions & {
    /** Really drop them; without it nothing is dropped and `refused` is true. @default false */
    yes?: boolean;
  },
): Promise<PruneResult> {
  const { list, errors } = await readAll(options);
  const templates: PrunedTemplate[] = [];
  for (const [server, entries] of list) {
    for (const entry of entries) {
      const reason = keepReason(entry);
      if (reason) templates.push({ ...entry, action: "kept", reason });
      else if (!options.yes) templates.push({ ...entry, action: "would-drop" });
      else templates.push(await dropTemplate(server, entry));
    }
  }
  const ok = errors.length === 0 && templates.every((t) => t.action !== "failed");
  return { ok, refused: options.yes !== true, templates, errors };
}

async function dropTemplate(server: Server, template: TemplateEntry): Promise<PrunedTemplate> {
  // This catalog's: the lock lives in its admin database. An orphan's admin database is gone, and no run can hold it.
  const admin =
    server.admins.find((a) => a.database === template.adminDatabase) ?? (server.admins[0] as ConnectionSettings);
  try {
    return await withClient(admin, async (client) => {
      if (!(await tryLock(client, template.name))) {
        return { ...template, action: "kept" as const, reason: "a run is copying or building it right now" };
      }
      try {
        await client.query(`drop database if exists ${quoteIdent(template.name)}`);
        return { ...template, action: "dropped" as const };
      } finally {
        await client.query("select pg_advisory_unlock($1, hashtext($2))", [PROVISION_LOCK_CLASS, template.name]);
      }
    });
  } catch (error) {
    // 55006: someone is connected to it (a half-built one, or opened by hand): the next prune tries again.
    return { ...template, action: "failed", reason: describeError(error) };
  }
}

async function tryLock(client: pg.Client, name: string): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>("select pg_try_advisory_lock($1, hashtext($2)) as ok", [
    PROVISION_LOCK_CLASS,
    name,
  ]);
  return rows[0]?.ok === true;
}
