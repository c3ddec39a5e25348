import type { ClientConfig } from "pg";

/** Where and as whom to connect; `database` is replaced per tenant. */
export interface ConnectionSettings {
  host: string;
  port: number;
  user: string;
  password?: string;
  database: string;
  /** libpq's sslmode, when the URL gave one. */
  sslmode?: string;
}

const SSL_MODES = new Set(["disable", "allow", "prefer", "require", "verify-ca", "verify-full", "no-verify"]);

/** Parses postgres://user:pass@host:port/db; throws a message naming `setting`. */
export function parseDatabaseUrl(url: string, setting: string, requireDatabase = true): ConnectionSettings {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(
      `${setting} is not a valid URL (expected postgres://user@host:port/database, with the password as user:password)`,
    );
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new Error(`${setting} must start with postgres:// or postgresql:// (got ${parsed.protocol}//)`);
  }
  const decode = (part: string, what: string) => decodeUrlPart(part, setting, what);
  const database = decode(parsed.pathname.replace(/^\//, ""), "database name");
  if (requireDatabase && !database) throw new Error(`${setting} names no database (add /DBNAME to the URL)`);
  if (database.includes("/")) throw new Error(`${setting} has a malformed database path`);
  const port = parsed.port ? Number(parsed.port) : 5432;
  const sslmode = parsed.searchParams.get("sslmode") ?? undefined;
  if (sslmode && !SSL_MODES.has(sslmode)) throw new Error(`${setting} has an unknown sslmode "${sslmode}"`);
  const settings: ConnectionSettings = {
    host: decode(parsed.hostname.replace(/^\[|\]$/g, ""), "host") || "localhost",
    port,
    user: decode(parsed.username, "user name") || process.env.USER || "postgres",
    database: database || "postgres",
  };
  if (parsed.password) settings.password = decode(parsed.password, "password");
  if (sslmode) settings.sslmode = sslmode;
  return settings;
}

/** A %-encoded part of a URL; a `%` that starts no %XX escape is an error naming the setting (never "URI malformed"). */
function decodeUrlPart(part: string, setting: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new Error(
      `${setting}: the ${what} has a "%" that starts no %XX escape; write a % in a URL as %25 (and @ : / # ? as %40 %3A %2F %23 %3F)`,
    );
  }
}

/** The URL with the password masked: the only way a connection is printed. */
export function describeConnection(settings: ConnectionSettings): string {
  const auth = settings.password === undefined ? settings.user : `${settings.user}:***`;
  const host = settings.host.includes(":") ? `[${settings.host}]` : settings.host;
  return `postgres://${encodeURIComponent(auth).replace("%3A***", ":***")}@${host}:${settings.port}/${settings.database}`;
}

export function withDatabase(settings: ConnectionSettings, database: string): ConnectionSettings {
  return { ...settings, database };
}

/**
 * A server as it is reached: host and port, as spelled in the settings. Two
 * spellings of one server give two keys (server-identity.ts tells them apart);
 * reads (status, diff, rollback) are bounded per key. See server-admin.ts for
 * how it differs from adminKey, the server identity and a placement's serverName.
 */
export function serverKey(settings: ConnectionSettings): string {
  return `${settings.host}:${settings.port}`;
}

/** node-postgres options for these settings. */
export function pgClientConfig(settings: ConnectionSettings, connectTimeoutMs = 10_000): ClientConfig {
  const config: ClientConfig = {
    host: settings.host,
    port: settings.port,
    user: settings.user,
    database: settings.database,
    application_name: "tenant-migrate",
    connectionTimeoutMillis: connectTimeoutMs,
  };
  if (settings.password !== undefined) config.password = settings.password;
  if (
    settings.sslmode &&
    settings.sslmode !== "disable" &&
    settings.sslmode !== "allow" &&
    settings.sslmode !== "prefer"
  ) {
    config.ssl = {
      rejectUnauthorized: settings.sslmode === "verify-ca" || settings.sslmode === "verify-full",
    };
  }
  return config;
}
