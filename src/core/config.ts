import { existsSync, readFileSync, statSync } from "node:fs";
import { userInfo } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import dotenv from "dotenv";
import { type ConnectionSettings, parseDatabaseUrl } from "./connection.js";
import { hashProblems, valuesCutAtHash } from "./env-comments.js";
import { ConfigError } from "./errors.js";
import { addSecret } from "./redact.js";

/**
 * Flags as the CLI (or an API caller) gives them; every field optional. An
 * unset (or empty) flag falls back to its environment variable, then the
 * `.env` file, then the default named here (`envFile` excepted: an empty one
 * names the working directory, which is refused as a settings file).
 */
export interface ConfigFlags {
  /** Catalog connection URL. @default CATALOG_DATABASE_URL, else PGHOST/PGPORT/PGUSER/PGPASSWORD with database CATALOG_DB or "catalog" */
  catalogUrl?: string;
  /** App (tenant) migrations folder, relative to the working directory. @default APP_MIGRATIONS_DIR, else "app_migrations" (DEFAULT_APP_MIGRATIONS_DIR) */
  appMigrations?: string;
  /** Catalog migrations folder. @default CATALOG_MIGRATIONS_DIR, else ./catalog_migrations if it is a directory, else the bundled one */
  catalogMigrations?: string;
  /** Tenants at once, per server. @default TENANT_MIGRATE_CONCURRENCY, else 8 (DEFAULT_CONCURRENCY) */
  concurrency?: string | number;
  /** Wait for another run on a tenant: "60", "60s", "500ms", "2m"; a number is seconds. @default TENANT_MIGRATE_LOCK_TIMEOUT, else 60 s (DEFAULT_LOCK_TIMEOUT_MS) */
  lockTimeout?: string | number;
  /** PostgreSQL lock_timeout of each tenant's migration session, as lockTimeout; 0 is off. @default TENANT_MIGRATE_PG_LOCK_TIMEOUT, else 10 s (DEFAULT_PG_LOCK_TIMEOUT_MS) */
  pgLockTimeout?: string | number;
  /** Retries of a transient fault per tenant. @default TENANT_MIGRATE_RETRIES, else 10 (DEFAULT_RETRIES) */
  retries?: string | number;
  /** Role granted CONNECT and TEMP on new tenant databases. @default TENANT_MIGRATE_APP_ROLE, else none (owner only) */
  appRole?: string;
  /** Run on an embedded PostgreSQL (true turns it on; false leaves it to the variable). @default TENANT_MIGRATE_EMBEDDED, else false */
  embedded?: boolean;
  /** Settings file, relative to the working directory; one named must exist. @default TENANT_MIGRATE_ENV_FILE, else ".env" when it exists */
  envFile?: string;
  /** true: provision new tenants by copying a template database; false: by running their migrations. @default TENANT_MIGRATE_TEMPLATE, else false */
  template?: boolean;
}

export interface Config {
  /** Undefined only with `embedded`, until the embedded server has started. */
  catalog: ConnectionSettings | undefined;
  catalogDatabase: string;
  appMigrationsDir: string;
  catalogMigrationsDir: string;
  /** Named tenant servers (TENANT_SERVERS): URL settings whose database is the admin database. */
  tenantServers: Map<string, ConnectionSettings>;
  /** Tenants worked on at once, per server. */
  concurrency: number;
  /** How long to wait for another run that holds a tenant, in ms. */
  lockTimeoutMs: number;
  /** PostgreSQL's lock_timeout in each tenant's migration session, in ms; 0: not set. */
  pgLockTimeoutMs: number;
  /** How many times a transient fault (connection refused, too many connections…) is retried. */
  retries: number;
  /** Role given CONNECT and TEMP on newly provisioned databases, besides their owner. */
  appRole: string | undefined;
  embedded: boolean;
  /** Provision new tenants by copying a template database that has every migration applied (opt-in). */
  template: boolean;
  cwd: string;
}

export const DEFAULT_CONCURRENCY = 8;
export const DEFAULT_LOCK_TIMEOUT_MS = 60_000;
export const DEFAULT_RETRIES = 10;
export const DEFAULT_PG_LOCK_TIMEOUT_MS = 10_000;
/** Relative to the working directory. */
export const DEFAULT_APP_MIGRATIONS_DIR = "app_migrations";

/** The catalog migrations shipped with the tool. */
export const BUNDLED_CATALOG_MIGRATIONS = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../catalog_migrations",
);

type Env = Record<string, string | undefined>;

/**
 * Resolves flags > environment > .env file > defaults into one validated
 * Config. Every problem is collected and thrown together as a ConfigError.
 */
export function resolveConfig(
  flags: ConfigFlags = {},
  env: Env = process.env,
  cwd = process.cwd(),
  needs: { catalog?: boolean } = {},
): Config {
  const problems: string[] = [];
  const cutAtHash = { file: "", keys: new Map<string, { glued: boolean }>() };
  const merged = {
    ...readEnvFile(flags.envFile, env, cwd, problems, cutAtHash),
    ...definedOnly(env),
  };
  const pick = (flag: string | number | undefined, name: string): string | undefined => {
    if (flag !== undefined && flag !== "") return String(flag);
    const value = merged[name];
    return value === undefined || value === "" ? undefined : value;
  };

  const embedded = flags.embedded === true || isTruthy(merged.TENANT_MIGRATE_EMBEDDED);
  const catalogDatabase = merged.CATALOG_DB || "catalog";
  const catalog = resolveCatalog(
    flags.catalogUrl,
    merged,
    catalogDatabase,
    embedded,
    needs.catalog !== false,
    problems,
  );

  const appMigrationsDir = path.resolve(
    cwd,
    pick(flags.appMigrations, "APP_MIGRATIONS_DIR") ?? DEFAULT_APP_MIGRATIONS_DIR,
  );
  const catalogDirSetting = pick(flags.catalogMigrations, "CATALOG_MIGRATIONS_DIR");
  const localCatalogDir = path.resolve(cwd, "catalog_migrations");
  const catalogMigrationsDir = catalogDirSetting
    ? path.resolve(cwd, catalogDirSetting)
    : isDirectory(localCatalogDir)
      ? localCatalogDir
      : BUNDLED_CATALOG_MIGRATIONS;
  if (catalogDirSetting && !isDirectory(catalogMigrationsDir)) {
    problems.push(`--catalog-migrations / CATALOG_MIGRATIONS_DIR: ${catalogMigrationsDir} is not a directory`);
  }

  const concurrency = integerSetting(
    pick(flags.concurrency, "TENANT_MIGRATE_CONCURRENCY"),
    "--concurrency / TENANT_MIGRATE_CONCURRENCY",
    { min: 1, max: 1000, fallback: DEFAULT_CONCURRENCY },
    problems,
  );
  const retries = integerSetting(
    pick(flags.retries, "TENANT_MIGRATE_RETRIES"),
    "--retries / TENANT_MIGRATE_RETRIES",
    { min: 0, max: 100, fallback: DEFAULT_RETRIES },
    problems,
  );
  const lockTimeoutMs = durationSetting(
    pick(flags.lockTimeout, "TENANT_MIGRATE_LOCK_TIMEOUT"),
    "--lock-timeout / TENANT_MIGRATE_LOCK_TIMEOUT",
    DEFAULT_LOCK_TIMEOUT_MS,
    problems,
  );
  const pgLockTimeoutMs = durationSetting(
    pick(flags.pgLockTimeout, "TENANT_MIGRATE_PG_LOCK_TIMEOUT"),
    "--pg-lock-timeout / TENANT_MIGRATE_PG_LOCK_TIMEOUT",
    DEFAULT_PG_LOCK_TIMEOUT_MS,
    problems,
  );
  const appRole = pick(flags.appRole, "TENANT_MIGRATE_APP_ROLE");
  if (appRole !== undefined && (Buffer.byteLength(appRole) > 63 || /\0/.test(appRole))) {
    problems.push("--app-role / TENANT_MIGRATE_APP_ROLE is not a valid PostgreSQL role name (at most 63 bytes)");
  }
  const tenantServers = resolveTenantServers(merged.TENANT_SERVERS, problems);
  const template =
    flags.template ?? booleanSetting(merged.TENANT_MIGRATE_TEMPLATE, "TENANT_MIGRATE_TEMPLATE", problems);
  problems.push(
    ...hashProblems(
      cutAtHash.keys,
      cutAtHash.file,
      problems,
      (key) =>
        env[key] !== undefined ||
        (key === "CATALOG_DATABASE_URL" && Boolean(flags.catalogUrl)) ||
        (key === "PGPASSWORD" && Boolean(flags.catalogUrl || merged.CATALOG_DATABASE_URL)),
    ),
  );

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    catalog,
    catalogDatabase,
    appMigrationsDir,
    catalogMigrationsDir,
    tenantServers,
    concurrency,
    lockTimeoutMs,
    pgLockTimeoutMs,
    retries,
    appRole,
    embedded,
    template,
    cwd,
  };
}

function readEnvFile(
  envFile: string | undefined,
  env: Env,
  cwd: string,
  problems: string[],
  cutAtHash: { file: string; keys: Map<string, { glued: boolean }> },
): Env {
  const chosen = envFile ?? env.TENANT_MIGRATE_ENV_FILE;
  const file = path.resolve(cwd, chosen ?? ".env");
  if (!existsSync(file)) {
    if (chosen) problems.push(`--env-file: ${file} does not exist`);
    return {};
  }
  try {
    const text = readFileSync(file);
    cutAtHash.file = file;
    cutAtHash.keys = valuesCutAtHash(text.toString("utf8"));
    return dotenv.parse(text);
  } catch (error) {
    problems.push(`--env-file: cannot read ${file}: ${(error as Error).message}`);
    return {};
  }
}

function resolveCatalog(
  flagUrl: string | undefined,
  env: Env,
  catalogDatabase: string,
  embedded: boolean,
  required: boolean,
  problems: string[],
): ConnectionSettings | undefined {
  const url = flagUrl || env.CATALOG_DATABASE_URL;
  if (url) {
    if (embedded) {
      problems.push("--embedded cannot be combined with --catalog-url / CATALOG_DATABASE_URL: pick one catalog");
      return undefined;
    }
    const setting = flagUrl ? "--catalog-url" : "CATALOG_DATABASE_URL";
    try {
      const settings = parseDatabaseUrl(url, setting);
      addSecret(settings.password);
      return settings;
    } catch (error) {
      problems.push((error as Error).message);
      return undefined;
    }
  }
  if (embedded || !required) return undefined;
  // libpq's variables; PGHOST is required so that a pipeline with no setting
  // fails instead of migrating whatever a local default points at.
  if (!env.PGHOST) {
    problems.push(
      "no catalog connection: set --catalog-url or CATALOG_DATABASE_URL (or PGHOST/PGPORT/PGUSER/PGPASSWORD with CATALOG_DB), or use --embedded",
    );
    return undefined;
  }
  const port = env.PGPORT ? Number(env.PGPORT) : 5432;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    problems.push(`PGPORT must be a port number (got ${JSON.stringify(env.PGPORT)})`);
    return undefined;
  }
  addSecret(env.PGPASSWORD);
  const settings: ConnectionSettings = {
    host: env.PGHOST,
    port,
    user: env.PGUSER || userInfo().username,
    database: catalogDatabase,
  };
  if (env.PGPASSWORD) settings.password = env.PGPASSWORD;
  if (env.PGSSLMODE) settings.sslmode = env.PGSSLMODE;
  return settings;
}

function resolveTenantServers(raw: string | undefined, problems: string[]): Map<string, ConnectionSettings> {
  const servers = new Map<string, ConnectionSettings>();
  if (!raw) return servers;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    problems.push('TENANT_SERVERS is not valid JSON (expected {"name": "postgres://user:password@host:port"})');
    return servers;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    problems.push('TENANT_SERVERS must be a JSON object {"name": "postgres://user:password@host:port"}');
    return servers;
  }
  for (const [name, url] of Object.entries(parsed)) {
    if (typeof url !== "string") {
      problems.push(`TENANT_SERVERS.${name} must be a URL string`);
      continue;
    }
    try {
      const settings = parseDatabaseUrl(url, `TENANT_SERVERS.${name}`, false);
      addSecret(settings.password);
      servers.set(name, settings);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  return servers;
}

function integerSetting(
  raw: string | undefined,
  name: string,
  limits: { min: number; max: number; fallback: number },
  problems: string[],
): number {
  if (raw === undefined) return limits.fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || value < limits.min || value > limits.max) {
    problems.push(`${name} must be a whole number from ${limits.min} to ${limits.max} (got ${JSON.stringify(raw)})`);
    return limits.fallback;
  }
  return value;
}

/** "90", "90s", "500ms", "2m" -> milliseconds; a bare number is seconds. */
function durationSetting(raw: string | undefined, name: string, fallback: number, problems: string[]): number {
  if (raw === undefined) return fallback;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw.trim());
  if (!match) {
    problems.push(`${name} must be a duration such as 60, 60s, 500ms or 2m (got ${JSON.stringify(raw)})`);
    return fallback;
  }
  const unit = match[2] ?? "s";
  return Math.round(Number(match[1]) * (unit === "ms" ? 1 : unit === "s" ? 1000 : 60_000));
}

/** 1/true/yes/on or 0/false/no/off; unset is false; anything else is a problem. */
function booleanSetting(raw: string | undefined, name: string, problems: string[]): boolean {
  if (raw === undefined || raw === "" || isFalsy(raw)) return false;
  if (isTruthy(raw)) return true;
  problems.push(`${name} must be 1 or 0 (or true/false, yes/no, on/off; got ${JSON.stringify(raw)})`);
  return false;
}

function isTruthy(value: string | undefined): boolean {
  return value !== undefined && /^(1|true|yes|on)$/i.test(value);
}

function isFalsy(value: string | undefined): boolean {
  return value !== undefined && /^(0|false|no|off)$/i.test(value);
}

function isDirectory(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

function definedOnly(env: Env): Env {
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined));
}
