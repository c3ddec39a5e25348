// Configuration: resolveConfig's precedence and its errors, configuration and
// catalog errors through the CLI, and settings written the way people write
// them (a % in a URL, a # in .env, `node -- bin … --env-file`).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  BUNDLED_CATALOG_MIGRATIONS,
  type ConfigFlags,
  DEFAULT_CONCURRENCY,
  DEFAULT_LOCK_TIMEOUT_MS,
  resolveConfig,
} from "../src/core/config.ts";
import { ConfigError } from "../src/core/errors.ts";
import {
  BIN,
  type CatalogStatusJson,
  databaseExists,
  type Fleet,
  freePort,
  parseJson,
  runCli,
  SERVER,
  tableExists,
  urlFor,
  useFleet,
  withFleet,
} from "./helpers.ts";

const FILE_URL = "postgres://file_user:file_pw@file-host:5001/file_db";
const ENV_URL = "postgres://env_user:env_pw@env-host:5002/env_db";
const FLAG_URL = "postgres://flag_user:flag_pw@flag-host:5003/flag_db";

/** resolveConfig's ConfigError, or a failed assertion when it does not throw one. */
function configError(flags: ConfigFlags, env: Record<string, string | undefined>, cwd: string): ConfigError {
  try {
    resolveConfig(flags, env, cwd);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.exitCode, 2);
    return error;
  }
  assert.fail("resolveConfig did not throw");
}

describe("resolveConfig (core)", () => {
  let cwd: string;
  before(() => {
    cwd = mkdtempSync(path.join(tmpdir(), "tenant-migrate-config-"));
  });
  after(() => {
    rmSync(cwd, { recursive: true, force: true });
  });

  /** A fresh directory under cwd, with an optional .env file. */
  function dir(name: string, dotenv?: string): string {
    const d = path.join(cwd, name);
    mkdirSync(d, { recursive: true });
    if (dotenv !== undefined) writeFileSync(path.join(d, ".env"), dotenv);
    return d;
  }

  it("uses the defaults when only a catalog URL is given", () => {
    const d = dir("defaults");
    const config = resolveConfig({ catalogUrl: FLAG_URL }, {}, d);
    assert.deepEqual(config.catalog, {
      host: "flag-host",
      port: 5003,
      user: "flag_user",
      password: "flag_pw",
      database: "flag_db",
    });
    assert.equal(config.appMigrationsDir, path.join(d, "app_migrations"));
    assert.equal(config.catalogMigrationsDir, BUNDLED_CATALOG_MIGRATIONS);
    assert.equal(config.concurrency, DEFAULT_CONCURRENCY);
    assert.equal(DEFAULT_CONCURRENCY, 8, "the default README and --help document");
    assert.equal(config.lockTimeoutMs, DEFAULT_LOCK_TIMEOUT_MS);
    assert.equal(config.embedded, false);
    assert.equal(config.tenantServers.size, 0);
    assert.equal(config.appRole, undefined);
    assert.equal(config.template, false, "template copies are opt-in");
  });

  it("--template / TENANT_MIGRATE_TEMPLATE=1 opt in to template copies; --no-template and =0 stay accepted", () => {
    const d = dir("template", "TENANT_MIGRATE_TEMPLATE=1\n");
    const base = { catalogUrl: FLAG_URL };
    assert.equal(resolveConfig(base, {}, dir("template-none")).template, false);
    assert.equal(resolveConfig({ ...base, template: true }, {}, dir("template-none")).template, true);
    assert.equal(resolveConfig(base, { TENANT_MIGRATE_TEMPLATE: "1" }, dir("template-none")).template, true);
    assert.equal(resolveConfig(base, { TENANT_MIGRATE_TEMPLATE: "0" }, dir("template-none")).template, false);
    assert.equal(resolveConfig(base, {}, d).template, true, "from the .env file");
    assert.equal(resolveConfig(base, { TENANT_MIGRATE_TEMPLATE: "0" }, d).template, false, "the environment wins");
    assert.equal(resolveConfig({ ...base, template: false }, {}, d).template, false, "--no-template wins");
  });

  it("takes a flag over the environment over the .env file over the default", () => {
    const d = dir(
      "precedence",
      `CATALOG_DATABASE_URL=${FILE_URL}\nAPP_MIGRATIONS_DIR=file_migrations\nTENANT_MIGRATE_CONCURRENCY=3\n`,
    );
    const env = {
      CATALOG_DATABASE_URL: ENV_URL,
      APP_MIGRATIONS_DIR: "env_migrations",
      TENANT_MIGRATE_CONCURRENCY: "5",
    };
    const flags = { catalogUrl: FLAG_URL, appMigrations: "flag_migrations", concurrency: "7" };

    const fromFlags = resolveConfig(flags, env, d);
    assert.equal(fromFlags.catalog?.host, "flag-host");
    assert.equal(fromFlags.appMigrationsDir, path.join(d, "flag_migrations"));
    assert.equal(fromFlags.concurrency, 7);

    const fromEnv = resolveConfig({}, env, d);
    assert.equal(fromEnv.catalog?.host, "env-host");
    assert.equal(fromEnv.catalog?.database, "env_db");
    assert.equal(fromEnv.appMigrationsDir, path.join(d, "env_migrations"));
    assert.equal(fromEnv.concurrency, 5);

    const fromFile = resolveConfig({}, {}, d);
    assert.equal(fromFile.catalog?.host, "file-host");
    assert.equal(fromFile.catalog?.password, "file_pw");
    assert.equal(fromFile.appMigrationsDir, path.join(d, "file_migrations"));
    assert.equal(fromFile.concurrency, 3);

    const fromDefaults = resolveConfig({ catalogUrl: FLAG_URL }, {}, dir("precedence-empty"));
    assert.equal(fromDefaults.appMigrationsDir, path.join(cwd, "precedence-empty", "app_migrations"));
    assert.equal(fromDefaults.concurrency, DEFAULT_CONCURRENCY);
  });

  it("lets each setting fall back on its own (flag for one, file for another)", () => {
    const d = dir("mixed", `CATALOG_DATABASE_URL=${FILE_URL}\nTENANT_MIGRATE_CONCURRENCY=3\n`);
    const config = resolveConfig({ appMigrations: "/abs/migrations" }, { TENANT_MIGRATE_CONCURRENCY: "11" }, d);
    assert.equal(config.catalog?.host, "file-host");
    assert.equal(config.appMigrationsDir, "/abs/migrations");
    assert.equal(config.concurrency, 11);
  });

  it("a variable already set in the environment wins over the .env file, even a libpq one", () => {
    const d = dir(
      "env-wins",
      "PGHOST=file-host\nPGPORT=6000\nPGUSER=file_user\nPGPASSWORD=file_pw\nCATALOG_DB=file_cat\n",
    );
    const config = resolveConfig({}, { PGPASSWORD: "env_pw", CATALOG_DB: "env_cat" }, d);
    assert.deepEqual(config.catalog, {
      host: "file-host",
      port: 6000,
      user: "file_user",
      password: "env_pw",
      database: "env_cat",
    });
  });

  it("--env-file picks another file, relative to the working directory, instead of ./.env", () => {
    const d = dir("env-file", `CATALOG_DATABASE_URL=${FILE_URL}\nTENANT_MIGRATE_CONCURRENCY=3\n`);
    mkdirSync(path.join(d, "deploy"));
    writeFileSync(path.join(d, "deploy", "prod.env"), `CATALOG_DATABASE_URL=${ENV_URL}\n`);
    const config = resolveConfig({ envFile: "deploy/prod.env" }, {}, d);
    assert.equal(config.catalog?.host, "env-host");
    // ./.env is not read at all when another file is chosen.
    assert.equal(config.concurrency, DEFAULT_CONCURRENCY);
    // And the environment still wins over the chosen file.
    assert.equal(
      resolveConfig({ envFile: "deploy/prod.env" }, { CATALOG_DATABASE_URL: FLAG_URL }, d).catalog?.host,
      "flag-host",
    );
  });

  it("builds the catalog connection from PGHOST/PGPORT/PGUSER/PGPASSWORD with CATALOG_DB or catalog", () => {
    const d = dir("libpq");
    const env = { PGHOST: "db.internal", PGPORT: "6543", PGUSER: "alice", PGPASSWORD: "alice_pw" };
    assert.deepEqual(resolveConfig({}, env, d).catalog, {
      host: "db.internal",
      port: 6543,
      user: "alice",
      password: "alice_pw",
      database: "catalog",
    });
    assert.equal(resolveConfig({}, { ...env, CATALOG_DB: "fleet_catalog" }, d).catalog?.database, "fleet_catalog");
    // libpq's defaults: port 5432, the OS user, no password.
    assert.deepEqual(resolveConfig({}, { PGHOST: "db.internal" }, d).catalog, {
      host: "db.internal",
      port: 5432,
      user: userInfo().username,
      database: "catalog",
    });
    // A catalog URL wins over the libpq variables.
    assert.equal(resolveConfig({}, { ...env, CATALOG_DATABASE_URL: ENV_URL }, d).catalog?.host, "env-host");
  });

  it("reads TENANT_SERVERS and the embedded switch", () => {
    const d = dir("servers");
    const config = resolveConfig(
      {},
      {
        CATALOG_DATABASE_URL: ENV_URL,
        TENANT_SERVERS: JSON.stringify({ east: "postgres://e:e_pw@east-host:5433", west: "postgres://w@west-host" }),
      },
      d,
    );
    assert.deepEqual([...config.tenantServers.keys()].sort(), ["east", "west"]);
    assert.equal(config.tenantServers.get("east")?.host, "east-host");
    assert.equal(config.tenantServers.get("east")?.port, 5433);
    assert.equal(config.tenantServers.get("west")?.port, 5432);

    const embedded = resolveConfig({}, { TENANT_MIGRATE_EMBEDDED: "1" }, d);
    assert.equal(embedded.embedded, true);
    assert.equal(embedded.catalog, undefined, "the embedded server fills in the catalog later");
    assert.equal(resolveConfig({ embedded: true }, {}, d).embedded, true);
  });

  it("uses ./catalog_migrations when it exists, and --catalog-migrations over it", () => {
    const d = dir("local-catalog");
    mkdirSync(path.join(d, "catalog_migrations"));
    mkdirSync(path.join(d, "mine"));
    assert.equal(
      resolveConfig({ catalogUrl: FLAG_URL }, {}, d).catalogMigrationsDir,
      path.join(d, "catalog_migrations"),
    );
    assert.equal(
      resolveConfig({ catalogUrl: FLAG_URL, catalogMigrations: "mine" }, {}, d).catalogMigrationsDir,
      path.join(d, "mine"),
    );
    assert.equal(
      resolveConfig({ catalogUrl: FLAG_URL }, { CATALOG_MIGRATIONS_DIR: "mine" }, d).catalogMigrationsDir,
      path.join(d, "mine"),
    );
  });

  it("parses --lock-timeout durations", () => {
    const d = dir("durations");
    const ms = (lockTimeout: string) => resolveConfig({ catalogUrl: FLAG_URL, lockTimeout }, {}, d).lockTimeoutMs;
    assert.equal(ms("90"), 90_000);
    assert.equal(ms("90s"), 90_000);
    assert.equal(ms("500ms"), 500);
    assert.equal(ms("2m"), 120_000);
  });

  describe("errors", () => {
    const cases: { what: string; flags?: ConfigFlags; env?: Record<string, string>; problem: RegExp }[] = [
      { what: "a malformed URL flag", flags: { catalogUrl: "not a url" }, problem: /--catalog-url is not a valid URL/ },
      {
        what: "a malformed URL in the environment",
        env: { CATALOG_DATABASE_URL: "postgres://u:p@host:notaport/db" },
        problem: /CATALOG_DATABASE_URL is not a valid URL/,
      },
      {
        what: "a wrong scheme",
        env: { CATALOG_DATABASE_URL: "mysql://u:p@host:3306/db" },
        problem: /CATALOG_DATABASE_URL must start with postgres:\/\/ or postgresql:\/\//,
      },
      {
        what: "a URL without a database",
        flags: { catalogUrl: "postgres://u:p@host:5432" },
        problem: /--catalog-url names no database/,
      },
      {
        what: "a non-numeric --concurrency",
        flags: { catalogUrl: FLAG_URL, concurrency: "lots" },
        problem: /--concurrency \/ TENANT_MIGRATE_CONCURRENCY must be a whole number/,
      },
      {
        what: "a zero concurrency from the environment",
        flags: { catalogUrl: FLAG_URL },
        env: { TENANT_MIGRATE_CONCURRENCY: "0" },
        problem: /TENANT_MIGRATE_CONCURRENCY must be a whole number from 1/,
      },
      {
        what: "a fractional concurrency",
        flags: { catalogUrl: FLAG_URL, concurrency: "2.5" },
        problem: /--concurrency/,
      },
      {
        what: "a bad --lock-timeout",
        flags: { catalogUrl: FLAG_URL, lockTimeout: "soon" },
        problem: /--lock-timeout \/ TENANT_MIGRATE_LOCK_TIMEOUT must be a duration/,
      },
      {
        what: "a --lock-timeout in hours",
        flags: { catalogUrl: FLAG_URL, lockTimeout: "1h" },
        problem: /--lock-timeout/,
      },
      {
        what: "TENANT_SERVERS that is not JSON",
        flags: { catalogUrl: FLAG_URL },
        env: { TENANT_SERVERS: "{east: postgres://e@east}" },
        problem: /TENANT_SERVERS is not valid JSON/,
      },
      {
        what: "TENANT_SERVERS that is a JSON array",
        flags: { catalogUrl: FLAG_URL },
        env: { TENANT_SERVERS: '["postgres://e@east"]' },
        problem: /TENANT_SERVERS must be a JSON object/,
      },
      {
        what: "a TENANT_SERVERS entry that is not a string",
        flags: { catalogUrl: FLAG_URL },
        env: { TENANT_SERVERS: '{"east": 5432}' },
        problem: /TENANT_SERVERS\.east must be a URL string/,
      },
      {
        what: "a TENANT_SERVERS entry with a wrong scheme",
        flags: { catalogUrl: FLAG_URL },
        env: { TENANT_SERVERS: '{"east": "http://east:5432"}' },
        problem: /TENANT_SERVERS\.east must start with postgres:\/\//,
      },
      {
        what: "a missing --env-file",
        flags: { catalogUrl: FLAG_URL, envFile: "nope/missing.env" },
        problem: /--env-file: .*nope\/missing\.env does not exist/,
      },
      {
        what: "no catalog connection at all",
        problem: /no catalog connection: set --catalog-url or CATALOG_DATABASE_URL/,
      },
      {
        what: "libpq variables without PGHOST",
        env: { PGUSER: "alice", PGPASSWORD: "pw", CATALOG_DB: "cat" },
        problem: /no catalog connection/,
      },
      {
        what: "a PGPORT that is not a port",
        env: { PGHOST: "db", PGPORT: "99999" },
        problem: /PGPORT must be a port number/,
      },
      {
        what: "--embedded with a catalog URL flag",
        flags: { embedded: true, catalogUrl: FLAG_URL },
        problem: /--embedded cannot be combined with --catalog-url \/ CATALOG_DATABASE_URL/,
      },
      {
        what: "TENANT_MIGRATE_EMBEDDED=1 with CATALOG_DATABASE_URL",
        env: { TENANT_MIGRATE_EMBEDDED: "1", CATALOG_DATABASE_URL: ENV_URL },
        problem: /--embedded cannot be combined/,
      },
      {
        what: "a TENANT_MIGRATE_TEMPLATE that is not a switch",
        flags: { catalogUrl: FLAG_URL },
        env: { TENANT_MIGRATE_TEMPLATE: "maybe" },
        problem: /TENANT_MIGRATE_TEMPLATE must be 1 or 0/,
      },
      {
        what: "a --catalog-migrations folder that does not exist",
        flags: { catalogUrl: FLAG_URL, catalogMigrations: "no_such_folder" },
        problem: /--catalog-migrations \/ CATALOG_MIGRATIONS_DIR: .*no_such_folder is not a directory/,
      },
    ];
    for (const c of cases) {
      it(`reports ${c.what}`, () => {
        const error = configError(c.flags ?? {}, c.env ?? {}, dir("errors"));
        assert.equal(error.problems.length, 1, error.problems.join("\n"));
        assert.match(error.problems[0] as string, c.problem);
        assert.match(error.message, /^configuration error: /);
      });
    }

    it("never puts the password of a malformed URL in the problem", () => {
      const error = configError({ catalogUrl: "postgres://u:Sekrit-Malformed-991@host:port/db" }, {}, dir("errors"));
      assert.doesNotMatch(error.message, /Sekrit-Malformed-991/);
    });

    it("reports every problem at once", () => {
      const d = dir("many-errors");
      const error = configError(
        { catalogUrl: "ftp://nope", concurrency: "many", lockTimeout: "later", envFile: "gone.env" },
        { TENANT_SERVERS: "{", TENANT_MIGRATE_RETRIES: "-1" },
        d,
      );
      assert.equal(error.problems.length, 6, error.problems.join("\n"));
      for (const pattern of [
        /--env-file: .*gone\.env does not exist/,
        /--catalog-url must start with postgres:\/\//,
        /--concurrency/,
        /--lock-timeout/,
        /TENANT_SERVERS is not valid JSON/,
        /TENANT_MIGRATE_RETRIES/,
      ]) {
        assert.ok(
          error.problems.some((p) => pattern.test(p)),
          `${pattern} in ${error.problems.join(" | ")}`,
        );
      }
      assert.match(error.message, /^configuration errors:\n {2}- /);
      assert.equal(error.message.split("\n").length, 7);
    });
  });
});

describe("configuration and catalog errors through the CLI", () => {
  let fleet: Fleet;
  useFleet((f) => {
    fleet = f;
  });

  it("exits 2 on a configuration error, naming the setting, and changes nothing", async () => {
    await withFleet({ migrateCatalog: false }, async (fresh) => {
      const database = fresh.db("untouched");
      const bad = await fresh.run(["all", "--concurrency", "zero"]);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(
        bad.stderr,
        /configuration error: --concurrency \/ TENANT_MIGRATE_CONCURRENCY must be a whole number/,
      );
      assert.equal(bad.stdout, "");
      // `all` would have migrated the catalog first: it did not even connect.
      assert.equal(await tableExists(fresh.catalog, "schools"), false);
      assert.equal(await tableExists(fresh.catalog, "knex_migrations"), false);

      const servers = await fresh.run(["all"], { env: { TENANT_SERVERS: "not json" } });
      assert.equal(servers.code, 2, servers.stderr);
      assert.match(servers.stderr, /TENANT_SERVERS is not valid JSON/);
      assert.equal(await tableExists(fresh.catalog, "schools"), false);

      assert.equal((await fresh.run(["catalog", "migrate"])).code, 0);
      await fresh.addSchools({ name: "Untouched", database });
      const lock = await fresh.run(["all", "--lock-timeout", "eventually"]);
      assert.equal(lock.code, 2, lock.stderr);
      assert.match(lock.stderr, /--lock-timeout/);
      assert.equal(await databaseExists(database), false);
      assert.equal(await tableExists(fresh.catalog, "tenant_migrate_history"), false, "no run history was written");
    });
  });

  it("reports several configuration problems in one run", async () => {
    const result = await fleet.run(["status", "--concurrency", "0", "--lock-timeout", "x"], {
      env: { CATALOG_DATABASE_URL: "mysql://a@b/c" },
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /configuration errors:/);
    assert.match(result.stderr, /CATALOG_DATABASE_URL must start with postgres:\/\//);
    assert.match(result.stderr, /--concurrency/);
    assert.match(result.stderr, /--lock-timeout/);
  });

  it("reads the catalog URL from .env, from --env-file, and lets the environment win", async () => {
    writeFileSync(path.join(fleet.cwd, ".env"), `CATALOG_DATABASE_URL=${urlFor(fleet.db("nowhere"))}\n`);
    writeFileSync(path.join(fleet.cwd, "good.env"), `CATALOG_DATABASE_URL=${urlFor(fleet.catalog)}\n`);
    try {
      // The environment's URL wins over the broken one in .env.
      const envWins = await fleet.run(["catalog", "status"]);
      assert.equal(envWins.code, 0, envWins.stderr);
      // Without it, .env is used: its database does not exist.
      const fromFile = await fleet.run(["catalog", "status"], { env: { CATALOG_DATABASE_URL: undefined } });
      assert.equal(fromFile.code, 2);
      assert.match(fromFile.stderr, new RegExp(`catalog database "${fleet.db("nowhere")}" does not exist`));
      // --env-file names the good file instead.
      const chosen = await fleet.run(["catalog", "status", "--env-file", "good.env"], {
        env: { CATALOG_DATABASE_URL: undefined },
      });
      assert.equal(chosen.code, 0, chosen.stderr);
      assert.match(chosen.stdout, /catalog: 2 applied, 0 pending/);
    } finally {
      rmSync(path.join(fleet.cwd, ".env"));
      rmSync(path.join(fleet.cwd, "good.env"));
    }
  });

  // On Node 20, node itself scans the script's arguments for --env-file and
  // exits 9 ("node: missing.env: not found") before the tool runs (nodejs/node#54232).
  it("--env-file naming a missing file exits 2 naming the setting", async () => {
    for (const args of [
      ["catalog", "status", "--env-file", "missing.env"],
      ["--env-file=missing.env", "status"],
    ]) {
      const result = await fleet.run(args);
      assert.equal(result.code, 2, `${args.join(" ")}: exit ${result.code}: ${result.stderr}`);
      assert.match(result.stderr, /--env-file: .*missing\.env does not exist/);
    }
  });

  it("connects with the libpq variables and CATALOG_DB", async () => {
    const result = await fleet.run(["catalog", "status", "--json"], {
      env: {
        CATALOG_DATABASE_URL: undefined,
        PGHOST: SERVER.hostname,
        PGPORT: SERVER.port,
        PGUSER: decodeURIComponent(SERVER.username),
        PGPASSWORD: decodeURIComponent(SERVER.password),
        CATALOG_DB: fleet.catalog,
      },
    });
    assert.equal(result.code, 0, result.stderr);
    const status = parseJson<CatalogStatusJson>(result.stdout);
    assert.equal(status.applied.length, 2);
    assert.deepEqual(status.pending, []);
  });

  it("a wrong password exits 2 and never prints it", async () => {
    const password = "Zebra-Quokka-93817-wrong";
    const url = urlFor(fleet.catalog, { name: decodeURIComponent(SERVER.username), password });
    for (const args of [["all"], ["status"], ["catalog", "migrate"], ["tenants", "list"], ["all", "--json"]]) {
      const result = await fleet.run(args, { env: { CATALOG_DATABASE_URL: url } });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, /password authentication failed/);
      assert.ok(!result.stdout.includes(password), `${args.join(" ")}: stdout shows the password`);
      assert.ok(!result.stderr.includes(password), `${args.join(" ")}: stderr shows the password`);
      assert.match(result.stderr, /postgres:\/\/[^:\s]+:\*\*\*@/);
    }
    // The same password given as a flag is not printed either.
    const flag = await fleet.run(["status", "--catalog-url", url], { env: { CATALOG_DATABASE_URL: undefined } });
    assert.equal(flag.code, 2);
    assert.ok(!`${flag.stdout}${flag.stderr}`.includes(password));
  });

  it("an unreachable port exits 2 with the URL printed masked", async () => {
    const port = await freePort();
    const password = "Unreachable-Pw-55121";
    const url = `postgres://someone:${password}@127.0.0.1:${port}/somewhere`;
    for (const args of [["all"], ["status"], ["catalog", "migrate"], ["catalog", "status"], ["migrate"]]) {
      // A refused catalog is retried (a restarting server) before it is an error: no retries here.
      const result = await fleet.run(args, { env: { CATALOG_DATABASE_URL: url, TENANT_MIGRATE_RETRIES: "0" } });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.ok(result.stderr.includes(`postgres://someone:***@127.0.0.1:${port}/somewhere`), result.stderr);
      assert.match(result.stderr, /ECONNREFUSED/);
      assert.ok(!`${result.stdout}${result.stderr}`.includes(password));
    }
  });

  it("a catalog host that does not resolve exits 2 for every command, naming the masked URL", async () => {
    const password = "Nohost-Pw-40417";
    const url = `postgres://someone:${password}@no-such-host.invalid:5432/somewhere`;
    const masked = "postgres://someone:***@no-such-host.invalid:5432/somewhere";
    const seen: Record<string, string> = {};
    const expected: Record<string, string> = {};
    for (const args of [
      ["status"],
      ["tenants", "list"],
      ["catalog", "migrate"],
      ["catalog", "status"],
      ["all"],
      ["catalog", "rollback"],
    ]) {
      const result = await fleet.run(args, { env: { CATALOG_DATABASE_URL: url } });
      assert.ok(!`${result.stdout}${result.stderr}`.includes(password));
      assert.match(result.stderr, /ENOTFOUND/);
      // Every command, checked before asserting, so that a failure lists them all.
      seen[args.join(" ")] =
        `exit ${result.code}, ${result.stderr.includes(masked) ? "names" : "does not name"} the URL`;
      expected[args.join(" ")] = "exit 2, names the URL";
    }
    assert.deepEqual(seen, expected);
  });

  it("a catalog database that does not exist exits 2 with a clear message", async () => {
    const missing = fleet.db("no_such_catalog");
    for (const args of [["all"], ["catalog", "migrate"], ["status"], ["tenants", "list"]]) {
      const result = await fleet.run(args, { env: { CATALOG_DATABASE_URL: urlFor(missing) } });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, new RegExp(`catalog database "${missing}" does not exist`));
    }
    assert.equal(await databaseExists(missing), false);
  });

  it("migrate and status on a catalog never migrated exit 2 saying to run catalog migrate", async () => {
    await withFleet({ migrateCatalog: false }, async (fresh) => {
      for (const args of [
        ["migrate"],
        ["status"],
        ["status", "--json"],
        ["provision", "--missing"],
        ["tenants", "list"],
      ]) {
        const result = await fresh.run(args);
        assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
        assert.match(result.stderr, /tenant-migrate catalog migrate/);
        if (args.includes("--json")) {
          // Even a run that cannot start prints its one JSON document.
          const doc = parseJson<{ ok: boolean; error: string }>(result.stdout);
          assert.equal(doc.ok, false);
          assert.match(doc.error, /tenant-migrate catalog migrate/);
        }
      }
      assert.equal(await tableExists(fresh.catalog, "schools"), false);
      assert.equal(await tableExists(fresh.catalog, "tenant_migrate_history"), false);
    });
  });

  it("commander usage errors exit 2", async () => {
    for (const args of [
      ["all", "--no-such-option"],
      ["no-such-command"],
      ["catalog", "no-such-subcommand"],
      ["tenants", "add"],
      ["all", "--on-error", "maybe"],
      ["status", "--shard", "3/2"],
      ["migrate", "--canary", "zero"],
      ["rollback"],
    ]) {
      const result = await fleet.run(args);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, /error/i);
      assert.equal(result.stdout, "", `${args.join(" ")} printed on stdout`);
    }
    const version = await fleet.run(["--version"]);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+/);
  });
});

describe("settings written the way people write them", () => {
  let dir: string;
  // The servers named here refuse connections: no retries, the settings' errors are what is checked.
  const cli = (args: string[], env: Record<string, string> = {}) =>
    runCli(args, { cwd: dir, env: { TENANT_MIGRATE_RETRIES: "0", ...env } });

  it('a % in a URL names the setting (never "URI malformed") and prints no password', async () => {
    dir = mkdtempSync(path.join(tmpdir(), "tenant-migrate-settings-"));
    try {
      const result = await cli(["status"], { CATALOG_DATABASE_URL: "postgres://app:50%off@127.0.0.1:1/catalog" });
      assert.equal(result.code, 2, result.stderr);
      assert.match(
        result.stderr,
        /CATALOG_DATABASE_URL: the password has a "%" that starts no %XX escape; write a % in a URL as %25/,
      );
      assert.doesNotMatch(result.stderr, /URI malformed|50%off/);
      const servers = await cli(["status"], {
        CATALOG_DATABASE_URL: "postgres://app@127.0.0.1:1/catalog",
        TENANT_SERVERS: JSON.stringify({ east: "postgres://app:x@127.0.0.1:1/%zz" }),
      });
      assert.equal(servers.code, 2, servers.stderr);
      assert.match(servers.stderr, /TENANT_SERVERS\.east: the database name has a "%"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a # in an unquoted .env value gets the hint to quote it; a comment after a value does not", async () => {
    dir = mkdtempSync(path.join(tmpdir(), "tenant-migrate-settings-"));
    try {
      const env = path.join(dir, ".env");
      writeFileSync(env, "CATALOG_DATABASE_URL=postgres://app:pa#ss@127.0.0.1:1/catalog\n");
      const cut = await cli(["status"]);
      assert.equal(cut.code, 2, cut.stderr);
      assert.match(
        cut.stderr,
        /CATALOG_DATABASE_URL in .*\.env is cut at "#": quote the value: # starts a comment in \.env/,
      );
      assert.doesNotMatch(cut.stderr, /pa#ss|ss@/);

      writeFileSync(env, "PGHOST=127.0.0.1\nPGPORT=1\nPGPASSWORD=abc#def\n");
      const password = await cli(["status"]);
      assert.equal(password.code, 2, password.stderr);
      assert.match(password.stderr, /PGPASSWORD in .*\.env is cut at "#": quote the value/);

      // A comment after the value is what # is for: no hint, the connection is tried (and refused here).
      writeFileSync(env, "CATALOG_DATABASE_URL=postgres://app:pass@127.0.0.1:1/catalog # the catalog\n");
      const comment = await cli(["tenants", "list"]);
      assert.doesNotMatch(comment.stderr, /cut at "#"/);
      assert.match(comment.stderr, /cannot connect to the catalog postgres:\/\/app:\*\*\*@127\.0\.0\.1:1\/catalog/);
      // Quoted, the value is read whole.
      writeFileSync(env, 'PGHOST=127.0.0.1\nPGPORT=1\nPGPASSWORD="abc#def"\n');
      const quoted = await cli(["tenants", "list"]);
      assert.doesNotMatch(quoted.stderr, /cut at "#"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("`node -- bin/tenant-migrate.js … --env-file X` reads X (the form README gives; without --, Node 20 takes --env-file)", () => {
    dir = mkdtempSync(path.join(tmpdir(), "tenant-migrate-settings-"));
    try {
      const missing = path.join(dir, "missing.env");
      const result = spawnSync(process.execPath, ["--", BIN, "status", "--env-file", missing], {
        cwd: dir,
        encoding: "utf8",
        env: { PATH: process.env.PATH ?? "" },
      });
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr, /--env-file: .*missing\.env does not exist/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
