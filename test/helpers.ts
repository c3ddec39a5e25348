// Shared test fixtures: a fleet of its own per test (catalog and tenant
// databases under a unique prefix), the built CLI run as a user runs it, and
// direct SQL to check what really happened.
import { type SpawnOptions, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const BIN = path.join(ROOT, "bin", "tenant-migrate.js");

const serverUrl = process.env.TEST_DATABASE_URL;
if (!serverUrl) throw new Error("TEST_DATABASE_URL is not set: run the tests with `npm test`");
export const SERVER = new URL(serverUrl);

/** The test server's URL with another database. */
export function urlFor(database: string, user?: { name: string; password: string }): string {
  const url = new URL(SERVER.href);
  url.pathname = `/${database}`;
  if (user) {
    url.username = user.name;
    url.password = user.password;
  }
  return url.href;
}

export async function withDb<T>(database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: urlFor(database) });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function query<T extends pg.QueryResultRow = Record<string, unknown>>(
  database: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  return withDb(database, async (client) => (await client.query<T>(sql, params)).rows);
}

export async function databaseExists(database: string): Promise<boolean> {
  return (await query("postgres", "select 1 from pg_database where datname = $1", [database])).length > 0;
}

export async function tableExists(database: string, table: string): Promise<boolean> {
  const rows = await query<{ ok: boolean }>(database, "select to_regclass($1) is not null as ok", [table]);
  return rows[0]?.ok === true;
}

export async function appliedMigrations(database: string): Promise<string[]> {
  return (await query<{ name: string }>(database, "select name from knex_migrations order by id")).map((r) => r.name);
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * One test's own fleet: a catalog database and tenant databases that all
 * start with a unique prefix, a working directory with its own copy of the
 * sample migrations, and the environment that points the CLI at them.
 */
export class Fleet {
  readonly prefix = `t${randomBytes(4).toString("hex")}`;
  readonly catalog = `${this.prefix}_catalog`;
  readonly cwd = mkdtempSync(path.join(tmpdir(), "tenant-migrate-cwd-"));
  readonly appMigrations = path.join(this.cwd, "app_migrations");
  readonly env: Record<string, string>;

  private constructor() {
    cpSync(path.join(ROOT, "app_migrations"), this.appMigrations, { recursive: true });
    // The sample migrations are ES modules; so are the files tests write.
    writeFileSync(path.join(this.cwd, "package.json"), '{ "type": "module" }\n');
    this.env = {
      CATALOG_DATABASE_URL: urlFor(this.catalog),
      APP_MIGRATIONS_DIR: this.appMigrations,
    };
  }

  /** A fleet with its catalog database created (and migrated unless told not to). */
  static async create(options: { migrateCatalog?: boolean } = {}): Promise<Fleet> {
    const fleet = new Fleet();
    await query("postgres", `create database ${fleet.catalog}`);
    if (options.migrateCatalog !== false) {
      const result = await fleet.run(["catalog", "migrate"]);
      if (result.code !== 0) throw new Error(`catalog migrate failed: ${result.stderr}`);
    }
    return fleet;
  }

  /** A tenant database name under this fleet's prefix. */
  db(name: string): string {
    return `${this.prefix}_${name}`;
  }

  /** Inserts catalog rows by hand, as a user may; returns their school_ids. */
  async addSchools(...schools: { name: string; database: string; server?: string }[]): Promise<string[]> {
    const ids: string[] = [];
    for (const school of schools) {
      const rows = await query<{ id: string }>(
        this.catalog,
        "insert into schools (school_name, school_database, school_server) values ($1, $2, $3) returning school_id::text as id",
        [school.name, school.database, school.server ?? null],
      );
      ids.push(rows[0]?.id as string);
    }
    return ids;
  }

  /** Runs the built CLI in this fleet's directory and environment. */
  run(
    args: string[],
    options: { env?: Record<string, string | undefined>; timeoutMs?: number } = {},
  ): Promise<CliResult> {
    return runCli(args, { cwd: this.cwd, env: { ...this.env, ...options.env }, timeoutMs: options.timeoutMs });
  }

  /** Starts the CLI without waiting, for signal and concurrency tests. */
  start(args: string[], env: Record<string, string | undefined> = {}) {
    return startCli(args, { cwd: this.cwd, env: { ...this.env, ...env } });
  }

  writeMigration(name: string, source: string): string {
    const file = path.join(this.appMigrations, name);
    writeFileSync(file, source);
    return file;
  }

  /** Drops every database of this fleet and its working directory. */
  async cleanup(): Promise<void> {
    const rows = await query<{ datname: string }>("postgres", "select datname from pg_database where datname like $1", [
      `${this.prefix}\\_%`,
    ]);
    for (const { datname } of rows) {
      await query("postgres", `drop database if exists "${datname}" with (force)`);
    }
    rmSync(this.cwd, { recursive: true, force: true });
  }
}

/** The environment a CLI run gets: none of the runner's PostgreSQL or tool settings leak in. */
function cleanEnv(extra: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || /^(PG|CATALOG_|APP_MIGRATIONS|TENANT_)/.test(key)) continue;
    env[key] = value;
  }
  env.NO_COLOR = "";
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

export function startCli(args: string[], options: { cwd: string; env?: Record<string, string | undefined> }) {
  const spawnOptions: SpawnOptions = { cwd: options.cwd, env: cleanEnv(options.env ?? {}), stdio: "pipe" };
  const child = spawn(process.execPath, ["--", BIN, ...args], spawnOptions);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const done = new Promise<CliResult>((resolve) => {
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done, output: () => ({ stdout, stderr }) };
}

export async function runCli(
  args: string[],
  options: { cwd: string; env?: Record<string, string | undefined>; timeoutMs?: number },
): Promise<CliResult> {
  const { child, done } = startCli(args, options);
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
  try {
    return await done;
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it is true (or throws after timeoutMs). */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 20_000, what = "condition") {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export function parseJson<T = unknown>(text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`stdout is not one JSON document:\n${text}`);
  }
}

export const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`);

/** A migration that creates (and its down drops) one table: `export` syntax, for the fleet's ESM folder. */
export function tableMigration(table: string): string {
  return `export async function up(knex) {
  await knex.schema.createTable("${table}", (t) => {
    t.increments("id");
    t.text("note");
  });
}

export async function down(knex) {
  await knex.schema.dropTable("${table}");
}
`;
}

/** Rows of the catalog's run history (0 when the table does not exist yet). */
export async function historyCount(catalog: string): Promise<number> {
  const rows = await query<{ n: number }>(
    catalog,
    "select case when to_regclass('tenant_migrate_history') is null then 0 else (select count(*)::int from tenant_migrate_history) end as n",
  );
  return rows[0]?.n ?? 0;
}

/** Whether `script` (util-linux) is there to give the CLI a pseudo-terminal. */
export const HAS_SCRIPT = (() => {
  try {
    return spawnSync("script", ["--version"], { stdio: "ignore" }).status === 0;
  } catch {
    return false;
  }
})();

/**
 * Runs the built CLI with stdout (and stderr, unless `stderrFile` is given)
 * on a pseudo-terminal, through `script`; returns what the terminal showed.
 * On timeout the CLI itself is killed (by its pid), not only `script`.
 */
export async function runInTty(
  fleet: Fleet,
  args: string[],
  options: { env?: Record<string, string | undefined>; stderrFile?: string; columns?: number; timeoutMs?: number } = {},
): Promise<{ code: number | null; tty: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
  const redirect = options.stderrFile ? ` 2>${quote(options.stderrFile)}` : "";
  // `script` gives a terminal of 0 columns unless told otherwise; a real terminal has a size.
  const size = options.columns === undefined ? "" : `stty cols ${options.columns} rows 40; `;
  const pidFile = path.join(fleet.cwd, `tty-${randomBytes(4).toString("hex")}.pid`);
  const cli = [process.execPath, BIN, ...args].map(quote).join(" ");
  const command = `${size}echo $$ > ${quote(pidFile)}; exec ${cli}${redirect}`;
  const env = cleanEnv({ ...fleet.env, ...options.env });
  const child = spawn("script", ["-qec", command, "/dev/null"], {
    cwd: fleet.cwd,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let tty = "";
  child.stdout?.on("data", (chunk) => {
    tty += chunk;
  });
  const timer = setTimeout(() => {
    try {
      process.kill(Number(readFileSync(pidFile, "utf8")), "SIGKILL");
    } catch {
      // not started yet, or already gone
    }
    child.kill("SIGKILL");
  }, options.timeoutMs ?? 60_000);
  const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  clearTimeout(timer);
  return { code, tty };
}
